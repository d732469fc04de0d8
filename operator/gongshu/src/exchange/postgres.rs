//! PostgreSQL sources: one connection pool per provider Secret, prepared (cached) statements,
//! `COPY` for bulk downloads.

use std::{
    collections::HashMap,
    pin::Pin,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use bytes::Bytes;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use futures::{Stream, StreamExt, TryStreamExt};
use gongshu_api::v1alpha1::{PostgresSource, SecretKeyRef};
use kube::Client;
use tokio_postgres::{NoTls, error::SqlState, types::ToSql};

use super::sql::{Table, ident};

/// Connections per source pool.
const POOL_SIZE: usize = 16;
/// Connections of a pool that keyed lookups and verifications share (see [`Shared`]). On the
/// benchmark's two cores 2 served at least as many lookups as 4 (49% and 44% of direct
/// throughput in one run each, on a machine busy with other work), and two PostgreSQL backends
/// answering pipelined lookups use about half a core between them at 20,000 lookups a second.
const SHARED: usize = 2;
/// How long a connection URI read from a Secret is trusted before it is read again (so a
/// rotated password is picked up).
const SECRET_TTL: Duration = Duration::from_secs(300);
/// Rows per chunk of a JSON-lines download.
const ROWS_PER_CHUNK: usize = 512;

/// Why a source could not answer.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The connection Secret could not be read.
    #[error("cannot read Secret {namespace}/{name}: {source}")]
    Secret {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// Cause.
        #[source]
        source: kube::Error,
    },
    /// The Secret lacks the key, or its value is not a connection URI.
    #[error("Secret {namespace}/{name} key {key}: {reason}")]
    Uri {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The key.
        key: String,
        /// What is wrong (never the value).
        reason: String,
    },
    /// No connection could be had.
    #[error("cannot connect to the source database: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// The table does not match the catalog.
    #[error("{0}")]
    Mismatch(String),
    /// A value the caller sent is not valid for its column.
    #[error("a value is not valid for its column's type: {0}")]
    BadValue(String),
    /// The query failed.
    #[error("query failed: {0}")]
    Query(tokio_postgres::Error),
    /// A file source failed.
    #[error("{0}")]
    File(String),
}

impl From<tokio_postgres::Error> for SourceError {
    fn from(error: tokio_postgres::Error) -> Self {
        let bad_value = [
            SqlState::INVALID_TEXT_REPRESENTATION,
            SqlState::INVALID_DATETIME_FORMAT,
            SqlState::DATETIME_FIELD_OVERFLOW,
            SqlState::NUMERIC_VALUE_OUT_OF_RANGE,
            SqlState::INVALID_PARAMETER_VALUE,
        ];
        match error.as_db_error() {
            Some(db) if bad_value.contains(db.code()) => Self::BadValue(db.message().to_owned()),
            Some(db)
                if *db.code() == SqlState::UNDEFINED_COLUMN
                    || *db.code() == SqlState::UNDEFINED_TABLE =>
            {
                Self::Mismatch(format!(
                    "the source table does not match the catalog: {}",
                    db.message()
                ))
            }
            _ => Self::Query(error),
        }
    }
}

struct Entry {
    uri: String,
    read: Instant,
    pool: Pool,
    shared: Arc<Shared>,
    tables: Mutex<HashMap<String, Arc<Table>>>,
}

/// A few pooled connections that keyed lookups and verifications use together instead of
/// checking one out each.
///
/// tokio-postgres pipelines the statements of concurrent callers on one connection: the
/// connection task writes every queued statement in one go and PostgreSQL answers them in
/// order. Under load PostgreSQL and the exchange then wake once for several queries instead
/// of once per query, and on a small machine those wake-ups (not the queries) are most of the
/// cost (`bench/results/exchange-*.md`). Only statements that touch one key by index share a
/// connection, so none waits long behind another; pages, whose filters may scan, and
/// downloads keep a connection of their own.
struct Shared {
    pool: Pool,
    slots: Vec<Mutex<Option<Arc<Object>>>>,
    next: AtomicUsize,
}

impl Shared {
    fn new(pool: Pool) -> Self {
        Self {
            pool,
            slots: (0..SHARED).map(|_| Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// The next shared connection, round robin; a closed one is replaced from the pool.
    async fn get(&self) -> Result<Arc<Object>, SourceError> {
        let slot = &self.slots[self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len()];
        if let Some(client) = slot.lock().unwrap_or_else(PoisonError::into_inner).as_ref()
            && !client.is_closed()
        {
            return Ok(client.clone());
        }
        // Two callers may both find the slot empty: the connection of the one that stores
        // last stays, the other's goes back to the pool when its query is done.
        let fresh = Arc::new(self.pool.get().await?);
        *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(fresh.clone());
        Ok(fresh)
    }
}

/// The pools of every PostgreSQL source the exchange has served, by Secret.
pub struct Postgres {
    client: Client,
    entries: Mutex<HashMap<(String, String, String), Arc<Entry>>>,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postgres").finish_non_exhaustive()
    }
}

/// One source table ready to query: a pool and the described table.
#[derive(Clone)]
pub struct Source {
    pool: Pool,
    shared: Arc<Shared>,
    /// The table with its key columns and column types.
    pub table: Arc<Table>,
}

impl Postgres {
    /// Pools reading their Secrets through `client`.
    pub fn new(client: Client) -> Self {
        Self {
            client,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The source of `source` in the provider's `namespace`, checked against the catalog's
    /// `columns` (every declared field must exist; their types are learnt).
    pub async fn source(
        &self,
        namespace: &str,
        source: &PostgresSource,
        columns: &[String],
    ) -> Result<Source, SourceError> {
        let entry = self.entry(namespace, &source.connection_secret_ref).await?;
        let qualified = format!("{}.{}", ident(&source.schema), ident(&source.table));
        let cache_key = format!("{qualified}|{}", columns.join(","));
        let cached = entry
            .tables
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&cache_key)
            .cloned();
        let table = match cached {
            Some(table) => table,
            None => {
                let client = entry.pool.get().await?;
                let statement = client
                    .prepare(&Table::describe(&qualified, columns))
                    .await
                    .map_err(SourceError::from)?;
                let types = statement
                    .columns()
                    .iter()
                    .map(|c| {
                        let ty = c.type_();
                        (
                            c.name().to_owned(),
                            format!("{}.{}", ident(ty.schema()), ident(ty.name())),
                        )
                    })
                    .collect();
                let table = Arc::new(Table {
                    qualified,
                    keys: source.key_columns.clone(),
                    types,
                });
                entry
                    .tables
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(cache_key, table.clone());
                table
            }
        };
        Ok(Source {
            pool: entry.pool.clone(),
            shared: entry.shared.clone(),
            table,
        })
    }

    /// A pool for the database whose connection URI is in `secret` of `namespace` (the
    /// consumer's database of a `table` grant).
    pub async fn pool(&self, namespace: &str, secret: &SecretKeyRef) -> Result<Pool, SourceError> {
        Ok(self.entry(namespace, secret).await?.pool.clone())
    }

    async fn entry(
        &self,
        namespace: &str,
        secret: &SecretKeyRef,
    ) -> Result<Arc<Entry>, SourceError> {
        let key = (
            namespace.to_owned(),
            secret.name.clone(),
            secret.key.clone(),
        );
        let existing = self
            .entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            .cloned();
        if let Some(entry) = &existing
            && entry.read.elapsed() < SECRET_TTL
        {
            return Ok(entry.clone());
        }
        let uri = self.read_uri(namespace, secret).await?;
        let entry = match existing {
            // The same URI: keep the pool (and its described tables), trust it again.
            Some(entry) if entry.uri == uri => Arc::new(Entry {
                uri,
                read: Instant::now(),
                pool: entry.pool.clone(),
                shared: entry.shared.clone(),
                tables: Mutex::new(
                    entry
                        .tables
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .clone(),
                ),
            }),
            _ => {
                let uri_error = |reason: String| SourceError::Uri {
                    namespace: namespace.to_owned(),
                    name: secret.name.clone(),
                    key: secret.key.clone(),
                    reason,
                };
                let config: tokio_postgres::Config =
                    uri.parse().map_err(|e: tokio_postgres::Error| {
                        uri_error(format!("not a libpq connection URI ({e})"))
                    })?;
                let manager = Manager::from_config(
                    config,
                    NoTls,
                    ManagerConfig {
                        recycling_method: RecyclingMethod::Fast,
                    },
                );
                let pool = Pool::builder(manager)
                    .max_size(POOL_SIZE)
                    .runtime(deadpool_postgres::Runtime::Tokio1)
                    .wait_timeout(Some(Duration::from_secs(10)))
                    .create_timeout(Some(Duration::from_secs(5)))
                    .build()
                    .map_err(|e| uri_error(format!("cannot build a pool ({e})")))?;
                Arc::new(Entry {
                    uri,
                    read: Instant::now(),
                    shared: Arc::new(Shared::new(pool.clone())),
                    pool,
                    tables: Mutex::new(HashMap::new()),
                })
            }
        };
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, entry.clone());
        Ok(entry)
    }

    async fn read_uri(
        &self,
        namespace: &str,
        secret: &SecretKeyRef,
    ) -> Result<String, SourceError> {
        crate::secret::read_ref(&self.client, namespace, secret)
            .await
            .map_err(|error| match error {
                crate::secret::SecretError::Get {
                    namespace,
                    name,
                    source,
                } => SourceError::Secret {
                    namespace,
                    name,
                    source,
                },
                crate::secret::SecretError::Key {
                    namespace,
                    name,
                    key,
                    reason,
                } => SourceError::Uri {
                    namespace,
                    name,
                    key,
                    reason,
                },
            })
    }
}

fn params(values: &[Option<String>]) -> Vec<&(dyn ToSql + Sync)> {
    values.iter().map(|v| v as &(dyn ToSql + Sync)).collect()
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

impl Source {
    /// The granted `fields` of the record whose key is `key`, as a JSON object.
    pub async fn lookup(
        &self,
        fields: &[String],
        key: &[String],
    ) -> Result<Option<String>, SourceError> {
        let client = self.shared.get().await?;
        let statement = client.prepare_cached(&self.table.lookup(fields)).await?;
        let values: Vec<Option<String>> = key.iter().cloned().map(Some).collect();
        let row = client.query_opt(&statement, &params(&values)).await?;
        Ok(row.map(|r| r.get::<_, String>(0)))
    }

    /// Up to `limit` records matching `filters` (column, value), after the key `after`:
    /// each as (JSON object of `fields`, JSON array of its key).
    pub async fn page(
        &self,
        fields: &[String],
        filters: &[(String, String)],
        after: Option<&[String]>,
        limit: i64,
    ) -> Result<Vec<(String, String)>, SourceError> {
        let columns: Vec<String> = filters.iter().map(|(c, _)| c.clone()).collect();
        let client = self.pool.get().await?;
        let statement = client
            .prepare_cached(&self.table.page(fields, &columns, after.is_some()))
            .await?;
        let mut values: Vec<Option<String>> =
            filters.iter().map(|(_, v)| Some(v.clone())).collect();
        values.extend(after.unwrap_or_default().iter().cloned().map(Some));
        let mut bound = params(&values);
        bound.push(&limit);
        let rows = client.query(&statement, &bound).await?;
        Ok(rows
            .iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))
            .collect())
    }

    /// For the record with `key`, whether each offered (column, value) equals the stored one;
    /// `None` when no record has that key.
    pub async fn verify(
        &self,
        key: &[String],
        offered: &[(String, Option<String>)],
    ) -> Result<Option<Vec<bool>>, SourceError> {
        let columns: Vec<String> = offered.iter().map(|(c, _)| c.clone()).collect();
        let client = self.shared.get().await?;
        let statement = client.prepare_cached(&self.table.verify(&columns)).await?;
        let mut values: Vec<Option<String>> = key.iter().cloned().map(Some).collect();
        values.extend(offered.iter().map(|(_, v)| v.clone()));
        let row = client.query_opt(&statement, &params(&values)).await?;
        Ok(row.map(|r| {
            if offered.is_empty() {
                Vec::new()
            } else {
                (0..offered.len()).map(|i| r.get::<_, bool>(i)).collect()
            }
        }))
    }

    /// Replaces table `target` in the database of `into` with the granted `fields` of every
    /// record: in one transaction, drop, create with the source's column types, and `COPY`
    /// the rows streamed from the source. Readers of the replica see the old rows until the
    /// commit. Returns the rows copied.
    pub async fn replicate(
        &self,
        fields: &[String],
        into: &Pool,
        target: &str,
    ) -> Result<u64, SourceError> {
        use futures::SinkExt;
        let source = self.pool.get().await?;
        let rows = source
            .copy_out(self.table.copy_rows(fields).as_str())
            .await?;
        let mut consumer = into.get().await?;
        let tx = consumer.transaction().await?;
        tx.batch_execute(&format!("DROP TABLE IF EXISTS {}", ident(target)))
            .await?;
        tx.batch_execute(&self.table.replica_ddl(target, fields))
            .await?;
        let columns = fields
            .iter()
            .map(|f| ident(f))
            .collect::<Vec<_>>()
            .join(", ");
        let sink = tx
            .copy_in::<_, Bytes>(&format!(
                "COPY {} ({columns}) FROM STDIN WITH (FORMAT csv)",
                ident(target)
            ))
            .await?;
        futures::pin_mut!(sink);
        let mut rows = std::pin::pin!(rows);
        sink.send_all(&mut rows).await?;
        let copied = sink.finish().await?;
        tx.commit().await?;
        Ok(copied)
    }

    /// The granted `fields` of every record as CSV with a header, streamed by `COPY`.
    pub async fn download_csv(&self, fields: &[String]) -> Result<ByteStream, SourceError> {
        let client = self.pool.get().await?;
        let copy = client
            .copy_out(self.table.copy_csv(fields).as_str())
            .await?;
        Ok(Box::pin(Holding {
            inner: Box::pin(Coalesce::new(copy.map_err(std::io::Error::other))),
            _client: client,
        }))
    }

    /// The granted `fields` of every record as JSON lines.
    pub async fn download_jsonl(&self, fields: &[String]) -> Result<ByteStream, SourceError> {
        let client = self.pool.get().await?;
        let statement = client.prepare_cached(&self.table.scan_json(fields)).await?;
        let rows = client
            .query_raw(&statement, std::iter::empty::<&(dyn ToSql + Sync)>())
            .await?;
        let chunks = rows.ready_chunks(ROWS_PER_CHUNK).map(|batch| {
            let mut out = Vec::with_capacity(batch.len() * 128);
            for row in batch {
                let row = row.map_err(std::io::Error::other)?;
                out.extend_from_slice(row.get::<_, &str>(0).as_bytes());
                out.push(b'\n');
            }
            Ok(Bytes::from(out))
        });
        Ok(Box::pin(Holding {
            inner: Box::pin(chunks),
            _client: client,
        }))
    }
}

/// A streamed response body.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

/// A stream that keeps its pooled connection checked out until it is dropped.
struct Holding<S> {
    inner: Pin<Box<S>>,
    _client: Object,
}

impl<S: Stream> Stream for Holding<S> {
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

/// Drops the replica `target` from the consumer's database (revocation, suspension, expiry or
/// deletion of a `table` grant).
pub async fn drop_replica(into: &Pool, target: &str) -> Result<(), SourceError> {
    into.get()
        .await?
        .batch_execute(&format!("DROP TABLE IF EXISTS {}", ident(target)))
        .await?;
    Ok(())
}

/// Bytes per chunk a `COPY` download is gathered into.
const COALESCE: usize = 64 * 1024;

/// Gathers the small chunks of a stream (`COPY` sends one message per row) into chunks of up
/// to [`COALESCE`] bytes, so the response is written in large TLS records instead of one per
/// row. What has arrived is passed on as soon as the source would wait, so nothing is held
/// back.
struct Coalesce<S> {
    inner: Pin<Box<S>>,
    buf: bytes::BytesMut,
    /// The inner stream has ended: it must not be polled again.
    ended: bool,
}

impl<S> Coalesce<S> {
    fn new(inner: S) -> Self {
        Self {
            inner: Box::pin(inner),
            buf: bytes::BytesMut::with_capacity(COALESCE),
            ended: false,
        }
    }

    fn flush(&mut self) -> Bytes {
        self.buf.split().freeze()
    }
}

impl<S> Stream for Coalesce<S>
where
    S: Stream<Item = Result<Bytes, std::io::Error>>,
{
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        loop {
            match self.inner.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    self.buf.extend_from_slice(&chunk);
                    if self.buf.len() >= COALESCE {
                        return Poll::Ready(Some(Ok(self.flush())));
                    }
                }
                Poll::Ready(Some(Err(error))) => return Poll::Ready(Some(Err(error))),
                Poll::Ready(None) => {
                    self.ended = true;
                    return Poll::Ready((!self.buf.is_empty()).then(|| Ok(self.flush())));
                }
                Poll::Pending if self.buf.is_empty() => return Poll::Pending,
                Poll::Pending => return Poll::Ready(Some(Ok(self.flush()))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[tokio::test]
    async fn row_sized_chunks_are_gathered_and_nothing_is_lost() {
        let mut rows = (0..20_000).map(|i| Ok(Bytes::from(format!("{i},name-{i}\n"))));
        let expected: Vec<u8> = (0..20_000)
            .flat_map(|i| format!("{i},name-{i}\n").into_bytes())
            .collect();
        // Like `COPY`, the source must not be polled again once it has ended.
        let mut ended = false;
        let source = futures::stream::poll_fn(move |_| {
            assert!(!ended, "polled after its end");
            let next = rows.next();
            ended = next.is_none();
            Poll::Ready(next)
        });
        let mut coalesced = Coalesce::new(source);
        let mut chunks = Vec::new();
        while let Some(chunk) = coalesced.next().await {
            chunks.push(chunk.unwrap());
        }
        assert!(coalesced.next().await.is_none(), "ended stays ended");
        assert!(chunks.len() < 10, "{} chunks", chunks.len());
        assert!(chunks.iter().all(|c| c.len() <= COALESCE + 32));
        assert_eq!(chunks.concat(), expected);
    }
}
