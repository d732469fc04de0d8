//! The SQL the exchange sends, built from identifiers only; every value travels as a bind
//! parameter.
//!
//! Table and column names cannot be bind parameters in PostgreSQL, so statements are put
//! together here from the catalog's names: field names are checked by the CRD schema
//! (`^[a-zA-Z_][a-zA-Z0-9_]*$`) and every identifier is quoted by [`ident`] anyway. Values are
//! always `$n` parameters sent as text and cast to the column's own type in SQL
//! (`$1::text::int4`), so the comparison is on the column's type and its index is used.
//! Projection happens here: a statement names the granted columns and no others (SH-5).

use std::fmt::Write;

/// A quoted identifier: `"name"`, with embedded quotes doubled.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A source table and the types of its columns, as PostgreSQL described them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table {
    /// `"schema"."table"`.
    pub qualified: String,
    /// Key columns, in the catalog's order (lookups, ordering, cursors, verification).
    pub keys: Vec<String>,
    /// Column name → its type, qualified and quoted (`"pg_catalog"."int4"`).
    pub types: std::collections::HashMap<String, String>,
}

impl Table {
    /// `$n::text::<type of column>`: a text parameter cast to the column's type.
    fn param(&self, n: usize, column: &str) -> String {
        match self.types.get(column) {
            Some(ty) => format!("${n}::text::{ty}"),
            None => format!("${n}::text"),
        }
    }

    fn columns(&self, alias: &str, fields: &[String]) -> String {
        fields
            .iter()
            .map(|f| format!("{alias}{}", ident(f)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn key_order(&self) -> String {
        self.columns("t.", &self.keys)
    }

    /// The probe that checks the table has every column the catalog declares and reads their
    /// types: no rows.
    pub fn describe(qualified: &str, columns: &[String]) -> String {
        let cols = columns
            .iter()
            .map(|c| ident(c))
            .collect::<Vec<_>>()
            .join(", ");
        format!("SELECT {cols} FROM {qualified} LIMIT 0")
    }

    /// One record by its full key, as a JSON object of the granted `fields`. Parameters: the
    /// key values, in key order.
    pub fn lookup(&self, fields: &[String]) -> String {
        let mut sql = format!(
            "SELECT row_to_json(r)::text FROM (SELECT {} FROM {} t WHERE ",
            self.columns("t.", fields),
            self.qualified
        );
        for (i, key) in self.keys.iter().enumerate() {
            if i > 0 {
                sql.push_str(" AND ");
            }
            let _ = write!(sql, "t.{} = {}", ident(key), self.param(i + 1, key));
        }
        sql.push_str(" LIMIT 1) r");
        sql
    }

    /// A page of records in key order: each row is (granted fields as a JSON object, key
    /// values as a JSON array for the next cursor). Parameters: one per `filters` column
    /// (equality), then one per key column when `after` (keyset pagination), then the limit
    /// (`int8`).
    pub fn page(&self, fields: &[String], filters: &[String], after: bool) -> String {
        let mut sql = format!(
            "SELECT (SELECT row_to_json(x) FROM (SELECT {}) x)::text, json_build_array({})::text FROM {} t",
            self.columns("t.", fields),
            self.key_order(),
            self.qualified
        );
        let mut n = 0;
        let mut conditions = Vec::new();
        for column in filters {
            n += 1;
            conditions.push(format!("t.{} = {}", ident(column), self.param(n, column)));
        }
        if after {
            let params = self
                .keys
                .iter()
                .map(|k| {
                    n += 1;
                    self.param(n, k)
                })
                .collect::<Vec<_>>()
                .join(", ");
            conditions.push(format!("({}) > ({params})", self.key_order()));
        }
        if !conditions.is_empty() {
            let _ = write!(sql, " WHERE {}", conditions.join(" AND "));
        }
        let _ = write!(sql, " ORDER BY {} LIMIT ${}", self.key_order(), n + 1);
        sql
    }

    /// Verification (SH-7): for the record with the given key, one boolean per `compared`
    /// column, true where the stored value equals the offered one; no row when the key is
    /// unknown. Nothing stored leaves the database. Parameters: the key values, then one per
    /// compared column.
    pub fn verify(&self, compared: &[String]) -> String {
        let mut n = self.keys.len();
        let flags = if compared.is_empty() {
            "true".to_owned()
        } else {
            compared
                .iter()
                .map(|c| {
                    n += 1;
                    format!("(t.{} IS NOT DISTINCT FROM {})", ident(c), self.param(n, c))
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let keys = self
            .keys
            .iter()
            .enumerate()
            .map(|(i, k)| format!("t.{} = {}", ident(k), self.param(i + 1, k)))
            .collect::<Vec<_>>()
            .join(" AND ");
        format!(
            "SELECT {flags} FROM {} t WHERE {keys} LIMIT 1",
            self.qualified
        )
    }

    /// Bulk download as CSV with a header row, through `COPY` (the server streams; nothing is
    /// sorted or buffered).
    pub fn copy_csv(&self, fields: &[String]) -> String {
        format!(
            "COPY (SELECT {} FROM {} t) TO STDOUT WITH (FORMAT csv, HEADER true)",
            self.columns("t.", fields),
            self.qualified
        )
    }

    /// The granted `fields` of every row as CSV without a header, for replication (`table`
    /// mode).
    pub fn copy_rows(&self, fields: &[String]) -> String {
        format!(
            "COPY (SELECT {} FROM {} t) TO STDOUT WITH (FORMAT csv)",
            self.columns("t.", fields),
            self.qualified
        )
    }

    /// The replica's definition in the consumer's database: the granted columns with the
    /// source's types, nothing else (no keys or constraints that would reveal more).
    pub fn replica_ddl(&self, target: &str, fields: &[String]) -> String {
        let columns = fields
            .iter()
            .map(|f| {
                let ty = self.types.get(f).map_or("text", String::as_str);
                format!("{} {ty}", ident(f))
            })
            .collect::<Vec<_>>()
            .join(", ");
        format!("CREATE TABLE {} ({columns})", ident(target))
    }

    /// Bulk download as JSON lines: one JSON object of the granted fields per row.
    pub fn scan_json(&self, fields: &[String]) -> String {
        format!(
            "SELECT row_to_json(r)::text FROM (SELECT {} FROM {} t) r",
            self.columns("t.", fields),
            self.qualified
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn table() -> Table {
        Table {
            qualified: format!("{}.{}", ident("public"), ident("house\"holds")),
            keys: vec!["id".into(), "region".into()],
            types: [
                ("id", "\"pg_catalog\".\"int8\""),
                ("region", "\"pg_catalog\".\"text\""),
                ("name", "\"pg_catalog\".\"text\""),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        }
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn identifiers_are_quoted_and_embedded_quotes_doubled() {
        assert_eq!(ident("a"), "\"a\"");
        assert_eq!(
            ident("x\"; DROP TABLE t; --"),
            "\"x\"\"; DROP TABLE t; --\""
        );
    }

    #[test]
    fn a_lookup_selects_only_the_granted_fields_and_binds_the_key_with_its_type() {
        assert_eq!(
            table().lookup(&names(&["name"])),
            "SELECT row_to_json(r)::text FROM (SELECT t.\"name\" FROM \"public\".\"house\"\"holds\" t \
             WHERE t.\"id\" = $1::text::\"pg_catalog\".\"int8\" AND t.\"region\" = $2::text::\"pg_catalog\".\"text\" LIMIT 1) r"
        );
    }

    #[test]
    fn a_page_filters_then_seeks_after_the_cursor_then_limits() {
        let sql = table().page(&names(&["name"]), &names(&["name"]), true);
        assert!(sql.contains("WHERE t.\"name\" = $1::text::\"pg_catalog\".\"text\" AND (t.\"id\", t.\"region\") > ($2::text::\"pg_catalog\".\"int8\", $3::text::\"pg_catalog\".\"text\")"), "{sql}");
        assert!(
            sql.ends_with("ORDER BY t.\"id\", t.\"region\" LIMIT $4"),
            "{sql}"
        );
        let first = table().page(&names(&["name"]), &[], false);
        assert!(!first.contains("WHERE"), "{first}");
        assert!(first.ends_with("LIMIT $1"), "{first}");
    }

    #[test]
    fn verification_compares_in_the_database_and_returns_flags_only() {
        let sql = table().verify(&names(&["name"]));
        assert_eq!(
            sql,
            "SELECT (t.\"name\" IS NOT DISTINCT FROM $3::text::\"pg_catalog\".\"text\") FROM \"public\".\"house\"\"holds\" t \
             WHERE t.\"id\" = $1::text::\"pg_catalog\".\"int8\" AND t.\"region\" = $2::text::\"pg_catalog\".\"text\" LIMIT 1"
        );
        assert!(table().verify(&[]).starts_with("SELECT true FROM"));
    }

    #[test]
    fn a_replica_has_the_granted_columns_with_the_source_types() {
        assert_eq!(
            table().replica_ddl("copy", &names(&["id", "name"])),
            "CREATE TABLE \"copy\" (\"id\" \"pg_catalog\".\"int8\", \"name\" \"pg_catalog\".\"text\")"
        );
        assert_eq!(
            table().copy_rows(&names(&["name"])),
            "COPY (SELECT t.\"name\" FROM \"public\".\"house\"\"holds\" t) TO STDOUT WITH (FORMAT csv)"
        );
    }

    #[test]
    fn bulk_statements_name_the_granted_columns_only() {
        let copy = table().copy_csv(&names(&["name", "id"]));
        assert_eq!(
            copy,
            "COPY (SELECT t.\"name\", t.\"id\" FROM \"public\".\"house\"\"holds\" t) TO STDOUT WITH (FORMAT csv, HEADER true)"
        );
        assert!(
            table()
                .scan_json(&names(&["name"]))
                .starts_with("SELECT row_to_json(r)::text FROM (SELECT t.\"name\" FROM")
        );
    }
}
