//! PostgreSQL sources: every table dumped from one consistent snapshot, and restored.
//!
//! Why not `pg_dump`: the runner would need the PostgreSQL client of the server's major
//! version in its image, and its archive is one opaque stream. Here one `REPEATABLE READ`
//! read-only transaction reads the catalog and `COPY`s each table (text format, what
//! `pg_dump` itself uses for data) into its own encrypted object; the manifest keeps each
//! table's columns, types, `NOT NULL`s, primary key and row count. That covers the data
//! tables catalogs point at; indexes other than the primary key, constraints between tables,
//! views, functions and roles are not backed up (the README's limits).

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_postgres::{Client, NoTls, Transaction};

use super::{
    manifest::{Column, TableManifest},
    pipeline::Gather,
};

/// A PostgreSQL call failed.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// The connection URI does not parse.
    #[error("not a libpq connection URI: {0}")]
    Uri(#[source] tokio_postgres::Error),
    /// The server refused or failed a statement.
    #[error("{context}: {source}")]
    Query {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// A table named in the policy does not exist.
    #[error("table {0:?} does not exist")]
    NoSuchTable(String),
    /// The restore target already has the table.
    #[error(
        "table {0} already exists in the target; restore into an empty database or pass \
         --replace"
    )]
    Exists(String),
    /// The restored table does not hold the rows the manifest lists.
    #[error("table {table}: {restored} rows restored, the backup holds {expected}")]
    RowCount {
        /// `schema.table`.
        table: String,
        /// Rows in the target after the restore.
        restored: u64,
        /// Rows in the manifest.
        expected: u64,
    },
}

fn query(context: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> PgError {
    let context = context.into();
    move |source| PgError::Query { context, source }
}

/// Connects to `uri`; the connection task runs until the client is dropped.
pub async fn connect(uri: &str) -> Result<Client, PgError> {
    let config: tokio_postgres::Config = uri.parse().map_err(PgError::Uri)?;
    let (client, connection) = config
        .connect(NoTls)
        .await
        .map_err(query("cannot connect"))?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "PostgreSQL connection closed");
        }
    });
    Ok(client)
}

/// `"name"`, quotes doubled.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A table to dump and its estimated size (for progress).
#[derive(Clone, Debug)]
pub struct Planned {
    /// The table's description (rows still 0).
    pub table: TableManifest,
    /// Whether it is partitioned (then it is read through a query).
    partitioned: bool,
    /// `pg_table_size`, an estimate of the bytes to read.
    pub estimate: u64,
}

/// Starts the snapshot every table is read from.
pub async fn snapshot(client: &mut Client) -> Result<Transaction<'_>, PgError> {
    client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(query("cannot start a snapshot"))
}

const TABLES: &str = "SELECT c.oid::int8, n.nspname::text, c.relname::text, c.relkind = 'p', \
     pg_table_size(c.oid)::int8 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition \
     AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
     AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%' \
     AND ($1::text[] IS NULL OR c.oid = ANY(SELECT to_regclass(t)::oid FROM unnest($1::text[]) t)) \
     ORDER BY 2, 3";

const COLUMNS: &str = "SELECT attname::text, format_type(atttypid, atttypmod), attnotnull \
     FROM pg_attribute WHERE attrelid = $1::int8::oid AND attnum > 0 AND NOT attisdropped \
     AND attgenerated = '' ORDER BY attnum";

const PRIMARY_KEY: &str = "SELECT a.attname::text FROM pg_index i \
     JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
     WHERE i.indrelid = $1::int8::oid AND i.indisprimary \
     ORDER BY array_position(i.indkey::int2[], a.attnum)";

/// The tables to dump: `tables` (`schema.table` or `table`), or every user table when empty.
pub async fn plan(tx: &Transaction<'_>, tables: &[String]) -> Result<Vec<Planned>, PgError> {
    let filter: Option<Vec<String>> = (!tables.is_empty()).then(|| tables.to_vec());
    let rows = tx
        .query(TABLES, &[&filter])
        .await
        .map_err(query("cannot list the tables"))?;
    let mut planned = Vec::with_capacity(rows.len());
    for row in rows {
        let oid: i64 = row.get(0);
        let columns = tx
            .query(COLUMNS, &[&oid])
            .await
            .map_err(query("cannot read the columns"))?
            .iter()
            .map(|c| Column {
                name: c.get(0),
                type_: c.get(1),
                not_null: c.get(2),
            })
            .collect();
        let primary_key = tx
            .query(PRIMARY_KEY, &[&oid])
            .await
            .map_err(query("cannot read the primary key"))?
            .iter()
            .map(|c| c.get(0))
            .collect();
        planned.push(Planned {
            table: TableManifest {
                schema: row.get(1),
                name: row.get(2),
                columns,
                primary_key,
                rows: 0,
            },
            partitioned: row.get(3),
            estimate: u64::try_from(row.get::<_, i64>(4)).unwrap_or(0),
        });
    }
    if planned.len() < tables.len() {
        let found: Vec<String> = planned
            .iter()
            .map(|p| format!("{}.{}", p.table.schema, p.table.name))
            .collect();
        let missing = tables
            .iter()
            .find(|t| {
                let qualified = if t.contains('.') {
                    (*t).clone()
                } else {
                    format!("public.{t}")
                };
                !found.contains(&qualified)
            })
            .cloned()
            .unwrap_or_default();
        return Err(PgError::NoSuchTable(missing));
    }
    Ok(planned)
}

fn qualified(table: &TableManifest) -> String {
    format!("{}.{}", ident(&table.schema), ident(&table.name))
}

fn column_list(table: &TableManifest) -> String {
    table
        .columns
        .iter()
        .map(|c| ident(&c.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `COPY` of one table out of the snapshot into `out`, in text format; returns the rows.
pub async fn dump(
    tx: &Transaction<'_>,
    planned: &Planned,
    out: mpsc::Sender<std::io::Result<Bytes>>,
) -> Result<u64, PgError> {
    let table = &planned.table;
    let statement = if planned.partitioned {
        format!(
            "COPY (SELECT {} FROM {}) TO STDOUT",
            column_list(table),
            qualified(table)
        )
    } else {
        format!(
            "COPY {} ({}) TO STDOUT",
            qualified(table),
            column_list(table)
        )
    };
    let context = || format!("cannot dump {}.{}", table.schema, table.name);
    let stream = tx.copy_out(&statement).await.map_err(query(context()))?;
    futures::pin_mut!(stream);
    let mut rows = 0u64;
    // PostgreSQL sends one message per row (4x the throughput at 150-byte rows gathered).
    let mut gather = Gather::default();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(query(context()))?;
        // Text format escapes newlines in values, so each row ends with the only `\n`.
        rows += chunk.iter().filter(|b| **b == b'\n').count() as u64;
        if let Some(full) = gather.push(&chunk)
            && out.send(Ok(full)).await.is_err()
        {
            return Ok(rows);
        }
    }
    if let Some(rest) = gather.rest() {
        let _ = out.send(Ok(rest)).await;
    }
    Ok(rows)
}

/// The `CREATE TABLE` of a dumped table, without its primary key (added after the load, as
/// `pg_dump` does: one index build is faster than index updates per row).
pub fn create_table(table: &TableManifest) -> String {
    let parts: Vec<String> = table
        .columns
        .iter()
        .map(|c| {
            let not_null = if c.not_null { " NOT NULL" } else { "" };
            format!("{} {}{not_null}", ident(&c.name), c.type_)
        })
        .collect();
    format!("CREATE TABLE {} ({})", qualified(table), parts.join(", "))
}

/// The `ALTER TABLE … ADD PRIMARY KEY` of a dumped table that had one.
pub fn add_primary_key(table: &TableManifest) -> Option<String> {
    (!table.primary_key.is_empty()).then(|| {
        let key: Vec<String> = table.primary_key.iter().map(|k| ident(k)).collect();
        format!(
            "ALTER TABLE {} ADD PRIMARY KEY ({})",
            qualified(table),
            key.join(", ")
        )
    })
}

/// Recreates `table` in the target (dropping it first when `replace`), loads what `rows`
/// delivers and checks the row count, all in `tx`.
pub async fn restore(
    tx: &Transaction<'_>,
    table: &TableManifest,
    replace: bool,
    mut rows: mpsc::Receiver<Bytes>,
) -> Result<u64, PgError> {
    let name = format!("{}.{}", table.schema, table.name);
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {}",
        ident(&table.schema)
    ))
    .await
    .map_err(query(format!("cannot create schema {}", table.schema)))?;
    let exists: bool = tx
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&qualified(table)])
        .await
        .map_err(query("cannot look for the table"))?
        .get(0);
    if exists && !replace {
        return Err(PgError::Exists(name));
    }
    if exists {
        tx.batch_execute(&format!("DROP TABLE {} CASCADE", qualified(table)))
            .await
            .map_err(query(format!("cannot drop {name}")))?;
    }
    tx.batch_execute(&create_table(table))
        .await
        .map_err(query(format!("cannot create {name}")))?;
    let sink = tx
        .copy_in::<_, Bytes>(&format!(
            "COPY {} ({}) FROM STDIN",
            qualified(table),
            column_list(table)
        ))
        .await
        .map_err(query(format!("cannot load {name}")))?;
    futures::pin_mut!(sink);
    while let Some(chunk) = rows.recv().await {
        sink.send(chunk)
            .await
            .map_err(query(format!("cannot load {name}")))?;
    }
    let restored = sink
        .finish()
        .await
        .map_err(query(format!("cannot load {name}")))?;
    if let Some(statement) = add_primary_key(table) {
        tx.batch_execute(&statement)
            .await
            .map_err(query(format!("cannot add the primary key of {name}")))?;
    }
    if restored != table.rows {
        return Err(PgError::RowCount {
            table: name,
            restored,
            expected: table.rows,
        });
    }
    Ok(restored)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dumped_table_is_recreated_with_its_types_not_nulls_then_its_key() {
        let table = TableManifest {
            schema: "public".into(),
            name: "people".into(),
            columns: vec![
                Column {
                    name: "id".into(),
                    type_: "bigint".into(),
                    not_null: true,
                },
                Column {
                    name: "name".into(),
                    type_: "character varying(64)".into(),
                    not_null: false,
                },
            ],
            primary_key: vec!["id".into()],
            rows: 3,
        };
        assert_eq!(
            create_table(&table),
            "CREATE TABLE \"public\".\"people\" (\"id\" bigint NOT NULL, \
             \"name\" character varying(64))"
        );
        assert_eq!(
            add_primary_key(&table).unwrap(),
            "ALTER TABLE \"public\".\"people\" ADD PRIMARY KEY (\"id\")"
        );
    }

    #[test]
    fn identifiers_are_quoted_with_quotes_doubled() {
        assert_eq!(ident("we\"ird"), "\"we\"\"ird\"");
    }
}
