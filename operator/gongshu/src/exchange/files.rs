//! File sources (CSV with a header row, JSON lines, JSON arrays): read on a blocking thread,
//! record by record, so a download holds one chunk in memory whatever the file's size
//! (a JSON array is the exception: it is parsed whole).
//!
//! Keyed lookups, filters and verification scan the file: file items are the small, slowly
//! changing ones; large or hot data belongs in a table.

use std::{
    fs::File,
    io::{BufRead, BufReader},
    path::PathBuf,
};

use bytes::Bytes;
use gongshu_api::v1alpha1::{Field, FieldType, FileFormat};
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use super::postgres::{ByteStream, SourceError};

/// Bytes per chunk of a download.
const CHUNK: usize = 64 * 1024;

/// An item's file and the catalog's declaration of its fields.
#[derive(Clone, Debug)]
pub struct FileData {
    /// The file, as the exchange sees it.
    pub path: PathBuf,
    /// Its format.
    pub format: FileFormat,
    /// The item's declared fields (types for CSV cells).
    pub fields: Vec<Field>,
}

/// Output format of a download.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// CSV with a header row.
    Csv,
    /// One JSON object per line.
    Jsonl,
}

/// A value as text, the way verification and filters compare it (`None` for null).
pub fn text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

impl FileData {
    fn error(&self, what: impl std::fmt::Display) -> SourceError {
        SourceError::File(format!("file source {}: {what}", self.path.display()))
    }

    /// A CSV cell as the JSON value its declared type calls for; empty is null.
    fn typed(&self, name: &str, cell: &str) -> Value {
        if cell.is_empty() {
            return Value::Null;
        }
        let ty = self
            .fields
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.field_type);
        let parsed = match ty {
            Some(FieldType::Integer) => cell.parse::<i64>().ok().map(Value::from),
            Some(FieldType::Decimal) => cell.parse::<f64>().ok().map(Value::from),
            Some(FieldType::Boolean) => cell.parse::<bool>().ok().map(Value::from),
            Some(FieldType::Json) => serde_json::from_str(cell).ok(),
            _ => None,
        };
        parsed.unwrap_or_else(|| Value::String(cell.to_owned()))
    }

    /// Calls `visit` with each record until it returns false.
    fn each(&self, mut visit: impl FnMut(Map<String, Value>) -> bool) -> Result<(), SourceError> {
        let file = File::open(&self.path).map_err(|e| self.error(e))?;
        match self.format {
            FileFormat::Csv => {
                let mut reader = csv::Reader::from_reader(file);
                let headers = reader.headers().map_err(|e| self.error(e))?.clone();
                for record in reader.records() {
                    let record = record.map_err(|e| self.error(e))?;
                    let map = headers
                        .iter()
                        .zip(record.iter())
                        .map(|(h, cell)| (h.to_owned(), self.typed(h, cell)))
                        .collect();
                    if !visit(map) {
                        break;
                    }
                }
            }
            FileFormat::Jsonl => {
                for (n, line) in BufReader::new(file).lines().enumerate() {
                    let line = line.map_err(|e| self.error(e))?;
                    if line.trim().is_empty() {
                        continue;
                    }
                    let map = serde_json::from_str(&line)
                        .map_err(|e| self.error(format!("line {}: {e}", n + 1)))?;
                    if !visit(map) {
                        break;
                    }
                }
            }
            FileFormat::Json => {
                let all: Vec<Map<String, Value>> =
                    serde_json::from_reader(BufReader::new(file)).map_err(|e| self.error(e))?;
                for map in all {
                    if !visit(map) {
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    fn project(record: &Map<String, Value>, fields: &[String]) -> Map<String, Value> {
        fields
            .iter()
            .map(|f| (f.clone(), record.get(f).cloned().unwrap_or(Value::Null)))
            .collect()
    }

    fn matches(record: &Map<String, Value>, wanted: &[(String, String)]) -> bool {
        wanted
            .iter()
            .all(|(column, value)| record.get(column).and_then(text).as_deref() == Some(value))
    }

    /// Up to `limit` records matching `filters`, starting after record number `after`: each
    /// as (JSON object of `fields`, its record number).
    pub async fn page(
        self,
        fields: Vec<String>,
        filters: Vec<(String, String)>,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(String, u64)>, SourceError> {
        blocking(move || {
            let mut out = Vec::new();
            let mut n = 0u64;
            self.each(|record| {
                n += 1;
                if after.is_some_and(|a| n <= a) || !Self::matches(&record, &filters) {
                    return true;
                }
                let json = Value::Object(Self::project(&record, &fields)).to_string();
                out.push((json, n));
                out.len() < limit
            })?;
            Ok(out)
        })
        .await
    }

    /// For the first record whose `keys` equal `key`, whether each offered value equals the
    /// stored one; `None` when there is no such record.
    pub async fn verify(
        self,
        key: Vec<(String, String)>,
        offered: Vec<(String, Option<String>)>,
    ) -> Result<Option<Vec<bool>>, SourceError> {
        blocking(move || {
            let mut found = None;
            self.each(|record| {
                if !Self::matches(&record, &key) {
                    return true;
                }
                found = Some(
                    offered
                        .iter()
                        .map(|(c, v)| record.get(c).and_then(text) == *v)
                        .collect(),
                );
                false
            })?;
            Ok(found)
        })
        .await
    }

    /// Every record's `fields`, streamed in `output` format.
    pub fn download(self, fields: Vec<String>, output: Output) -> ByteStream {
        let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(4);
        tokio::task::spawn_blocking(move || {
            let mut buf = Vec::with_capacity(CHUNK + 4096);
            if output == Output::Csv {
                write_csv_row(&mut buf, fields.iter().map(String::as_str));
            }
            let mut open = true;
            let result = self.each(|record| {
                match output {
                    Output::Csv => {
                        let cells: Vec<String> = fields
                            .iter()
                            .map(|f| record.get(f).and_then(text).unwrap_or_default())
                            .collect();
                        write_csv_row(&mut buf, cells.iter().map(String::as_str));
                    }
                    Output::Jsonl => {
                        let line = Value::Object(Self::project(&record, &fields)).to_string();
                        buf.extend_from_slice(line.as_bytes());
                        buf.push(b'\n');
                    }
                }
                if buf.len() >= CHUNK {
                    open = tx
                        .blocking_send(Ok(Bytes::from(std::mem::take(&mut buf))))
                        .is_ok();
                }
                open
            });
            let last = match result {
                Ok(()) => Ok(Bytes::from(buf)),
                Err(error) => Err(std::io::Error::other(error.to_string())),
            };
            let _ = tx.blocking_send(last);
        });
        Box::pin(tokio_stream_from(rx))
    }
}

fn write_csv_row<'a>(buf: &mut Vec<u8>, cells: impl Iterator<Item = &'a str>) {
    let mut writer = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    let _ = writer.write_record(cells);
    if let Ok(bytes) = writer.into_inner() {
        buf.extend_from_slice(&bytes);
    }
}

fn tokio_stream_from(
    mut rx: mpsc::Receiver<Result<Bytes, std::io::Error>>,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, SourceError> + Send + 'static,
) -> Result<T, SourceError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| SourceError::File(format!("file reader stopped: {e}")))?
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use futures::StreamExt;

    use super::*;

    fn data(dir: &tempfile::TempDir, format: FileFormat, body: &str) -> FileData {
        let path = dir.path().join("data");
        std::fs::write(&path, body).unwrap();
        let fields = serde_json::from_value(serde_json::json!([
            {"name": "id", "type": "string"},
            {"name": "name", "type": "string"},
            {"name": "size", "type": "integer"}
        ]))
        .unwrap();
        FileData {
            path,
            format,
            fields,
        }
    }

    const CSV: &str = "id,name,size\n1,\"Li, Wei\",3\n2,Wang,\n3,Zhao,5\n";

    #[tokio::test]
    async fn a_csv_download_projects_the_granted_fields_and_keeps_quoting() {
        let dir = tempfile::tempdir().unwrap();
        let source = data(&dir, FileFormat::Csv, CSV);
        let mut out = Vec::new();
        let mut stream = source.clone().download(vec!["name".into()], Output::Csv);
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk.unwrap());
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "name\n\"Li, Wei\"\nWang\nZhao\n"
        );
        let mut json = Vec::new();
        let mut stream = source.download(vec!["id".into(), "size".into()], Output::Jsonl);
        while let Some(chunk) = stream.next().await {
            json.extend_from_slice(&chunk.unwrap());
        }
        assert_eq!(
            String::from_utf8(json).unwrap(),
            "{\"id\":\"1\",\"size\":3}\n{\"id\":\"2\",\"size\":null}\n{\"id\":\"3\",\"size\":5}\n"
        );
    }

    #[tokio::test]
    async fn pages_filter_and_continue_after_the_last_record() {
        let dir = tempfile::tempdir().unwrap();
        let source = data(
            &dir,
            FileFormat::Jsonl,
            "{\"id\":\"1\",\"name\":\"a\",\"size\":1}\n{\"id\":\"2\",\"name\":\"b\",\"size\":1}\n{\"id\":\"3\",\"name\":\"c\",\"size\":2}\n",
        );
        let page = source
            .clone()
            .page(
                vec!["name".into()],
                vec![("size".into(), "1".into())],
                None,
                1,
            )
            .await
            .unwrap();
        assert_eq!(page, vec![("{\"name\":\"a\"}".to_owned(), 1)]);
        let next = source
            .page(
                vec!["name".into()],
                vec![("size".into(), "1".into())],
                Some(1),
                10,
            )
            .await
            .unwrap();
        assert_eq!(next, vec![("{\"name\":\"b\"}".to_owned(), 2)]);
    }

    #[tokio::test]
    async fn verification_answers_flags_or_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let source = data(&dir, FileFormat::Csv, CSV);
        let flags = source
            .clone()
            .verify(
                vec![("id".into(), "1".into())],
                vec![
                    ("name".into(), Some("Li, Wei".into())),
                    ("size".into(), Some("4".into())),
                ],
            )
            .await
            .unwrap();
        assert_eq!(flags, Some(vec![true, false]));
        assert_eq!(
            source
                .verify(vec![("id".into(), "9".into())], vec![])
                .await
                .unwrap(),
            None
        );
    }
}
