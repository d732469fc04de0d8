//! The on-disk format: segment names, one record per line, the hash chain.
//!
//! A line is `{"hash":"<64 hex>",` followed by BODY and `\n`, where BODY is the JSON object
//! `{"seq":…,"time":…,"prev":…,<record fields>}` without its leading `{`, and
//! `hash = sha256(prev as 32 bytes || BODY)`. Verification hashes the bytes as found, so it
//! never depends on serialising the same way twice.

use std::{
    fs::File,
    io::{BufRead, BufReader, Read, Seek, SeekFrom},
    path::Path,
};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{AuditError, Record};

/// `prev` of the first record ever.
pub(crate) const ZERO_HASH: [u8; 32] = [0; 32];
const PREFIX: &str = "audit-";
const SUFFIX: &str = ".jsonl";
const HASH_OPEN: &[u8] = b"{\"hash\":\"";
const HASH_CLOSE: &[u8] = b"\",";
/// Where BODY starts in a line.
const BODY_START: usize = HASH_OPEN.len() + 64 + HASH_CLOSE.len();

/// File name of the segment whose first record has sequence number `first_seq`.
pub fn segment_name(first_seq: u64) -> String {
    format!("{PREFIX}{first_seq:020}{SUFFIX}")
}

/// The first sequence number a segment file name stands for; `None` for other files.
pub(crate) fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The segment files in `dir` as `(first seq, name)`, oldest first.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<(u64, String)>, AuditError> {
    let entries = std::fs::read_dir(dir).map_err(|e| AuditError::io(dir, e))?;
    let mut segments = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| AuditError::io(dir, e))?;
        if let Some(name) = entry.file_name().to_str()
            && let Some(first) = parse_segment_name(name)
        {
            segments.push((first, name.to_owned()));
        }
    }
    segments.sort();
    Ok(segments)
}

/// Now, to the microsecond, as written in records.
pub(crate) fn now() -> (Timestamp, String) {
    let now = Timestamp::now();
    let now = Timestamp::from_microsecond(now.as_microsecond()).unwrap_or(now);
    (now, format_time(now))
}

/// RFC 3339 UTC with microseconds.
pub(crate) fn format_time(time: Timestamp) -> String {
    time.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// `sha256(prev || body)`.
pub(crate) fn chain_hash(prev: &[u8; 32], body: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(prev);
    hasher.update(body);
    let mut hash = [0; 32];
    hash.copy_from_slice(&hasher.finalize());
    hash
}

#[derive(Serialize)]
struct Body<'a> {
    seq: u64,
    time: &'a str,
    prev: &'a str,
    #[serde(flatten)]
    record: &'a Record,
}

/// Appends the line of `record` to `out` (using `scratch` for the body); returns its hash.
pub(crate) fn encode(
    seq: u64,
    time: &str,
    prev: &[u8; 32],
    record: &Record,
    scratch: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> Result<[u8; 32], AuditError> {
    scratch.clear();
    let prev_hex = hex::encode(prev);
    let body = Body {
        seq,
        time,
        prev: &prev_hex,
        record,
    };
    serde_json::to_writer(&mut *scratch, &body)
        .map_err(|source| AuditError::Serialize { seq, source })?;
    // Without its leading `{`.
    let body = scratch.get(1..).unwrap_or_default();
    let hash = chain_hash(prev, body);
    out.extend_from_slice(HASH_OPEN);
    out.extend_from_slice(hex::encode(hash).as_bytes());
    out.extend_from_slice(HASH_CLOSE);
    out.extend_from_slice(body);
    out.push(b'\n');
    Ok(hash)
}

/// A line read back: the stored hash, the hashed bytes and the chain fields.
#[derive(Debug)]
pub(crate) struct Line<'a> {
    pub hash: [u8; 32],
    pub body: &'a [u8],
    pub seq: u64,
    pub prev: [u8; 32],
    pub time: String,
}

impl Line<'_> {
    /// Whether the stored hash is the hash of the content.
    pub fn hash_matches(&self) -> bool {
        chain_hash(&self.prev, self.body) == self.hash
    }

    /// The record's time.
    pub fn timestamp(&self) -> Option<Timestamp> {
        self.time.parse().ok()
    }
}

#[derive(Deserialize)]
struct Head {
    seq: u64,
    time: String,
    prev: String,
}

/// Parses one line (without its `\n`); the error says what is wrong.
pub(crate) fn decode(line: &[u8]) -> Result<Line<'_>, String> {
    let (Some(open), Some(hash_hex), Some(close), Some(body)) = (
        line.get(..HASH_OPEN.len()),
        line.get(HASH_OPEN.len()..HASH_OPEN.len() + 64),
        line.get(HASH_OPEN.len() + 64..BODY_START),
        line.get(BODY_START..),
    ) else {
        return Err("line too short for a record".into());
    };
    if open != HASH_OPEN || close != HASH_CLOSE {
        return Err("line does not start with the record hash".into());
    }
    let hash = parse_hash(hash_hex).ok_or("the record hash is not 64 lowercase hex digits")?;
    // The whole line is one JSON object; only the chain fields are needed here.
    let head: Head = serde_json::from_slice(line).map_err(|e| format!("not a record: {e}"))?;
    let prev = parse_hash(head.prev.as_bytes()).ok_or("prev is not 64 lowercase hex digits")?;
    Ok(Line {
        hash,
        body,
        seq: head.seq,
        prev,
        time: head.time,
    })
}

/// 64 lowercase hex digits as 32 bytes.
pub(crate) fn parse_hash(hex_digits: &[u8]) -> Option<[u8; 32]> {
    if hex_digits.len() != 64
        || !hex_digits
            .iter()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return None;
    }
    let mut hash = [0; 32];
    hex::decode_to_slice(hex_digits, &mut hash).ok()?;
    Some(hash)
}

/// The end of a segment file: its last complete line and what follows it.
#[derive(Debug)]
pub(crate) struct Tail {
    /// Length up to and including the last `\n`.
    pub complete: u64,
    /// Bytes after the last `\n` (a partial line left by a crash).
    pub partial: u64,
    /// The last complete line, without `\n`.
    pub last_line: Option<Vec<u8>>,
}

/// Reads the end of `path`, reading more of the file only when the last line is long.
pub(crate) fn read_tail(path: &Path) -> Result<Tail, AuditError> {
    let io = |e| AuditError::io(path, e);
    let mut file = File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let mut window: u64 = 64 * 1024;
    loop {
        let start = len.saturating_sub(window);
        file.seek(SeekFrom::Start(start)).map_err(io)?;
        let mut buf = Vec::new();
        file.by_ref()
            .take(len - start)
            .read_to_end(&mut buf)
            .map_err(io)?;
        let Some(end) = buf.iter().rposition(|&b| b == b'\n') else {
            if start == 0 {
                return Ok(Tail {
                    complete: 0,
                    partial: len,
                    last_line: None,
                });
            }
            window *= 4;
            continue;
        };
        let begin = match buf
            .get(..end)
            .and_then(|b| b.iter().rposition(|&b| b == b'\n'))
        {
            Some(newline) => newline + 1,
            None if start == 0 => 0,
            None => {
                window *= 4;
                continue;
            }
        };
        let complete = start + end as u64 + 1;
        return Ok(Tail {
            complete,
            partial: len - complete,
            last_line: buf.get(begin..end).map(<[u8]>::to_vec),
        });
    }
}

/// The first complete line of `path`, if any.
pub(crate) fn read_first_line(path: &Path) -> Result<Option<Vec<u8>>, AuditError> {
    let file = File::open(path).map_err(|e| AuditError::io(path, e))?;
    let mut line = Vec::new();
    BufReader::new(file)
        .read_until(b'\n', &mut line)
        .map_err(|e| AuditError::io(path, e))?;
    Ok(line.pop().filter(|&b| b == b'\n').map(|_| line))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn segment_names_sort_by_first_seq() {
        assert_eq!(segment_name(17), "audit-00000000000000000017.jsonl");
        assert_eq!(parse_segment_name(&segment_name(17)), Some(17));
        assert_eq!(parse_segment_name("audit-17.jsonl"), None);
        assert!(segment_name(9) < segment_name(10));
    }

    #[test]
    fn a_line_is_the_hash_then_the_body_it_hashes() {
        let record = Record {
            caller: "anonymous".into(),
            operation: "lookup".into(),
            ..Record::default()
        };
        let (mut scratch, mut out) = (Vec::new(), Vec::new());
        let time = "2025-01-02T03:04:05.000006Z";
        let hash = encode(1, time, &ZERO_HASH, &record, &mut scratch, &mut out).unwrap();
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.starts_with(&format!("{{\"hash\":\"{}\",\"seq\":1,", hex::encode(hash))));
        assert!(text.contains("\"latencyUs\":0"));
        let line = decode(out.strip_suffix(b"\n").unwrap()).unwrap();
        assert_eq!((line.seq, line.prev, line.hash), (1, ZERO_HASH, hash));
        assert!(line.hash_matches());
        assert_eq!(
            line.timestamp().unwrap().to_string(),
            "2025-01-02T03:04:05.000006Z"
        );
        let back: Record = serde_json::from_slice(&out).unwrap();
        assert_eq!(back, record);
    }

    #[test]
    fn times_have_microseconds() {
        let time: Timestamp = "2025-01-02T03:04:05Z".parse().unwrap();
        assert_eq!(format_time(time), "2025-01-02T03:04:05.000000Z");
    }
}
