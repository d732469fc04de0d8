//! The audit log end to end on real files: appends, tampering of every kind, crash recovery,
//! retention (SEC-2).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::Duration,
};

use jiff::{SignedDuration, Timestamp};
use tokio::sync::oneshot;

use super::*;

fn record(i: u64) -> Record {
    Record {
        caller: format!("system:serviceaccount:tax:reader-{i}"),
        grant: Some("tax/residents".into()),
        item: Some("residents".into()),
        fields: vec!["name".into(), "address".into()],
        mode: Some("api".into()),
        operation: "lookup".into(),
        rows: 1,
        status: 200,
        problem: None,
        latency_us: 1200,
        remote: Some("10.0.0.7:51234".into()),
    }
}

/// A log in `dir` with segments of about `max_bytes`, and the trigger that shuts it down.
async fn open(dir: &Path, max_bytes: u64) -> (AuditLog, oneshot::Sender<()>) {
    let (stop, stopped) = oneshot::channel::<()>();
    let options = Options {
        segment_max_bytes: max_bytes,
        ..Options::new(dir)
    };
    let log = AuditLog::open(options, None, async move {
        let _ = stopped.await;
    })
    .await
    .unwrap();
    (log, stop)
}

async fn close(log: AuditLog, stop: oneshot::Sender<()>) {
    stop.send(()).unwrap();
    log.closed().await;
}

/// `count` records appended through a log with small segments; returns its last checkpoint.
async fn filled(dir: &Path, count: u64) -> BTreeMap<String, String> {
    let (log, stop) = open(dir, 2000).await;
    for i in 1..=count {
        assert_eq!(log.append(record(i)).await.unwrap(), i);
    }
    let checkpoint = log.checkpoint().await.unwrap();
    close(log, stop).await;
    checkpoint
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

/// The file holding `seq` and that record's line index.
fn locate(dir: &Path, seq: u64) -> (PathBuf, usize) {
    for file in segment_files(dir) {
        let text = std::fs::read_to_string(&file).unwrap();
        let needle = format!(",\"seq\":{seq},");
        if let Some(index) = text.lines().position(|l| l.contains(&needle)) {
            return (file, index);
        }
    }
    panic!("seq {seq} not found");
}

/// Rewrites the lines of `file`.
fn edit_lines(file: &Path, edit: impl FnOnce(&mut Vec<String>)) {
    let text = std::fs::read_to_string(file).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    edit(&mut lines);
    let mut text = lines.join("\n");
    if !lines.is_empty() {
        text.push('\n');
    }
    std::fs::write(file, text).unwrap();
}

fn name(file: &Path) -> String {
    file.file_name().unwrap().to_str().unwrap().to_owned()
}

#[tokio::test]
async fn appends_across_segment_rotations_form_one_intact_chain() {
    let dir = tempfile::tempdir().unwrap();
    let (log, stop) = open(dir.path(), 2000).await;
    for i in 1..=100 {
        assert_eq!(log.append(record(i)).await.unwrap(), i);
    }
    let (seq, hash) = log.head().await.unwrap();
    let checkpoint = log.checkpoint().await.unwrap();
    close(log, stop).await;

    let report = verify(dir.path(), Some(&checkpoint)).unwrap();
    assert!(report.is_intact(), "{report}");
    assert_eq!(report.records, 100);
    assert_eq!(report.head, Some((100, hash.clone())));
    assert_eq!(seq, 100);
    let files = segment_files(dir.path());
    assert!(files.len() > 5, "only {} segments", files.len());
    assert_eq!(report.segments, files.len());
    assert_eq!(
        report.to_string(),
        format!(
            "audit chain intact: 100 records in {} segments, head 100 {hash}\n",
            files.len()
        )
    );

    // Each segment is named after its first record and continues the previous one's chain.
    let mut previous_head = "0".repeat(64);
    let mut next_seq = 1;
    for file in &files {
        assert_eq!(name(file), segment_name(next_seq));
        let text = std::fs::read_to_string(file).unwrap();
        let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(first["prev"], previous_head.as_str());
        let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
        previous_head = last["hash"].as_str().unwrap().to_owned();
        next_seq = last["seq"].as_u64().unwrap() + 1;
        let value = checkpoint.get(&name(file)).unwrap();
        let sealed = file != files.last().unwrap();
        let state = if sealed { "sealed" } else { "open" };
        assert_eq!(
            value,
            &format!(
                "{}:{}:{previous_head}:{state}",
                segment_name_seq(file),
                next_seq - 1
            )
        );
    }
}

fn segment_name_seq(file: &Path) -> u64 {
    format::parse_segment_name(&name(file)).unwrap()
}

#[tokio::test]
async fn an_edited_record_is_reported_at_its_seq() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path(), 40).await;
    let (file, index) = locate(dir.path(), 17);
    edit_lines(&file, |lines| {
        lines[index] = lines[index].replace("reader-17", "reader-71");
    });

    let report = verify(dir.path(), None).unwrap();
    assert_eq!(
        report.findings,
        vec![Finding::Edited {
            segment: name(&file),
            line: index + 1,
            seq: 17
        }]
    );
    assert_eq!(
        report.to_string(),
        format!(
            "{} line {} (seq 17): record edited: its hash does not match its content\n",
            name(&file),
            index + 1
        )
    );
}

#[tokio::test]
async fn an_edited_and_rehashed_record_breaks_the_next_link() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path(), 40).await;
    let (file, index) = locate(dir.path(), 17);
    edit_lines(&file, |lines| {
        let line = format::decode(lines[index].as_bytes()).unwrap();
        let body = String::from_utf8(line.body.to_vec())
            .unwrap()
            .replace("\"rows\":1", "\"rows\":0");
        let hash = format::chain_hash(&line.prev, body.as_bytes());
        lines[index] = format!("{{\"hash\":\"{}\",{body}", hex::encode(hash));
    });

    let report = verify(dir.path(), None).unwrap();
    assert!(
        matches!(&report.findings[..], [Finding::ChainBroken { seq: 18, .. }]),
        "{report}"
    );
}

#[tokio::test]
async fn a_deleted_record_is_reported_with_the_missing_seq() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path(), 40).await;
    // A record that is not the first of its segment, so the gap is inside one file.
    let (deleted, (file, index)) = (23..)
        .map(|seq| (seq, locate(dir.path(), seq)))
        .find(|(_, (_, index))| *index > 0)
        .unwrap();
    edit_lines(&file, |lines| {
        lines.remove(index);
    });

    let report = verify(dir.path(), None).unwrap();
    assert_eq!(
        report.findings,
        vec![Finding::Deleted {
            segment: name(&file),
            line: index + 1,
            seq: deleted + 1,
            missing: vec![(deleted, deleted)],
        }],
        "{report}"
    );
}

#[tokio::test]
async fn swapped_records_are_reported_as_reordered() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path(), 40).await;
    let (file, _) = locate(dir.path(), 20);
    let lines = std::fs::read_to_string(&file).unwrap().lines().count();
    assert!(lines >= 2);
    edit_lines(&file, |lines| lines.swap(0, 1));
    let first = segment_name_seq(&file);

    let report = verify(dir.path(), None).unwrap();
    assert_eq!(
        report.findings,
        vec![Finding::Reordered {
            segment: name(&file),
            line: 2,
            seq: first,
            after: first + 1,
        }],
        "{report}"
    );
}

#[tokio::test]
async fn a_deleted_middle_segment_breaks_the_chain_and_is_missing_from_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = filled(dir.path(), 40).await;
    let files = segment_files(dir.path());
    let victim = &files[2];
    let first = segment_name_seq(victim);
    let last = segment_name_seq(&files[3]) - 1;
    std::fs::remove_file(victim).unwrap();

    let report = verify(dir.path(), None).unwrap();
    assert_eq!(
        report.findings,
        vec![Finding::Deleted {
            segment: name(&files[3]),
            line: 1,
            seq: last + 1,
            missing: vec![(first, last)],
        }]
    );
    let report = verify(dir.path(), Some(&checkpoint)).unwrap();
    assert!(report.findings.contains(&Finding::SegmentMissing {
        segment: name(victim),
        first,
        last,
    }));
    assert_eq!(report.findings.len(), 2, "{report}");
}

#[tokio::test]
async fn a_truncated_open_segment_shows_against_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = filled(dir.path(), 40).await;
    let last_file = segment_files(dir.path()).pop().unwrap();
    let lines = std::fs::read_to_string(&last_file).unwrap().lines().count();
    assert!(lines >= 3, "{lines}");
    edit_lines(&last_file, |lines| lines.truncate(lines.len() - 2));

    // The files alone are consistent: only the checkpoint knows more.
    assert!(verify(dir.path(), None).unwrap().is_intact());
    let report = verify(dir.path(), Some(&checkpoint)).unwrap();
    assert_eq!(
        report.findings,
        vec![Finding::Truncated {
            segment: name(&last_file),
            line: lines - 2,
            seq: 38,
            checkpointed: 40,
        }]
    );
}

#[tokio::test]
async fn a_rewritten_tail_shows_against_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = filled(dir.path(), 40).await;
    let last_file = segment_files(dir.path()).pop().unwrap();
    edit_lines(&last_file, |lines| {
        lines.pop();
    });
    // Appending again yields a consistent chain with another record 40.
    let (log, stop) = open(dir.path(), 2000).await;
    assert_eq!(log.append(record(99)).await.unwrap(), 40);
    close(log, stop).await;

    assert!(verify(dir.path(), None).unwrap().is_intact());
    let report = verify(dir.path(), Some(&checkpoint)).unwrap();
    assert!(
        matches!(&report.findings[..], [Finding::Rewritten { seq: 40, .. }]),
        "{report}"
    );
}

#[tokio::test]
async fn a_partial_line_left_by_a_crash_is_dropped_and_the_chain_continues() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path(), 10).await;
    let last_file = segment_files(dir.path()).pop().unwrap();
    let mut bytes = std::fs::read(&last_file).unwrap();
    bytes.extend_from_slice(b"{\"hash\":\"00ab\",\"seq\":11,\"ti");
    std::fs::write(&last_file, &bytes).unwrap();
    assert!(!verify(dir.path(), None).unwrap().is_intact());

    let (log, stop) = open(dir.path(), 2000).await;
    assert_eq!(log.head().await.unwrap().0, 10);
    assert_eq!(log.append(record(11)).await.unwrap(), 11);
    assert_eq!(log.append(record(12)).await.unwrap(), 12);
    close(log, stop).await;

    let report = verify(dir.path(), None).unwrap();
    assert!(report.is_intact(), "{report}");
    assert_eq!(report.records, 12);
}

#[tokio::test]
async fn reopening_continues_the_open_segment_and_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path(), 3).await;
    let (log, stop) = open(dir.path(), 1 << 20).await;
    let head = log.head().await.unwrap();
    assert_eq!(head.0, 3);
    assert_eq!(log.append(record(4)).await.unwrap(), 4);
    close(log, stop).await;
    let report = verify(dir.path(), None).unwrap();
    assert!(report.is_intact(), "{report}");
    assert_eq!((report.records, report.segments), (4, 1));
}

#[tokio::test]
async fn a_closed_log_refuses_appends() {
    let dir = tempfile::tempdir().unwrap();
    let (log, stop) = open(dir.path(), 2000).await;
    log.append(record(1)).await.unwrap();
    let handle = log.clone();
    close(log, stop).await;
    assert!(matches!(
        handle.append(record(2)).await,
        Err(AuditError::Closed)
    ));
}

#[tokio::test]
async fn retention_refuses_less_than_1095_days_sec_2() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path(), 40).await;
    let before = segment_files(dir.path());
    let error = retire(dir.path(), 1000, Timestamp::now()).unwrap_err();
    assert!(matches!(error, AuditError::Retention { keep_days: 1000 }));
    assert!(
        error
            .to_string()
            .contains("SEC-2: audit records are kept at least 1095 days")
    );
    assert_eq!(segment_files(dir.path()), before);
}

#[tokio::test]
async fn retention_removes_only_sealed_segments_older_than_1095_days_sec_2() {
    let dir = tempfile::tempdir().unwrap();
    let (log, stop) = open(dir.path(), 2000).await;
    for i in 1..=20 {
        log.append(record(i)).await.unwrap();
    }
    // Distinct times, so "older than" separates the first segments from the rest.
    tokio::time::sleep(Duration::from_millis(5)).await;
    for i in 21..=40 {
        log.append(record(i)).await.unwrap();
    }
    let files = segment_files(dir.path());
    let (old_file, _) = locate(dir.path(), 20);
    let old_last = last_time(&old_file);
    let expected: Vec<String> = files
        .iter()
        .take_while(|f| last_time(f) <= old_last)
        .map(|f| name(f))
        .collect();

    // Nothing is 1095 days old yet.
    assert_eq!(
        log.retire(1095, Timestamp::now()).await.unwrap(),
        Vec::<String>::new()
    );
    // Everything is, later: still the open segment stays.
    let later = old_last + SignedDuration::from_hours(1095 * 24) + SignedDuration::from_micros(1);
    let removed = log.retire(1095, later).await.unwrap();
    assert!(!expected.is_empty());
    assert_eq!(removed, expected);
    assert!(segment_files(dir.path()).len() > 1);
    let much_later = later + SignedDuration::from_hours(24);
    log.retire(1095, much_later).await.unwrap();
    let remaining = segment_files(dir.path());
    assert_eq!(remaining, vec![files.last().unwrap().clone()]);

    log.append(record(41)).await.unwrap();
    let checkpoint = log.checkpoint().await.unwrap();
    close(log, stop).await;
    for file in &files[..files.len() - 1] {
        assert!(checkpoint.contains_key(&format!("{RETIRED_PREFIX}{}", name(file))));
        assert!(!checkpoint.contains_key(&name(file)));
    }
    let report = verify(dir.path(), Some(&checkpoint)).unwrap();
    assert!(report.is_intact(), "{report}");
    assert_eq!(report.anchored_at, None);
    // Without the checkpoint the chain is anchored at the oldest record kept.
    let report = verify(dir.path(), None).unwrap();
    assert!(report.is_intact(), "{report}");
    assert!(report.anchored_at.is_some());
}

fn last_time(file: &Path) -> Timestamp {
    let text = std::fs::read_to_string(file).unwrap();
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    last["time"].as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn the_first_segment_removed_without_retirement_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = filled(dir.path(), 40).await;
    let first = segment_files(dir.path()).remove(0);
    std::fs::remove_file(&first).unwrap();
    let report = verify(dir.path(), Some(&checkpoint)).unwrap();
    assert!(
        report.findings.iter().any(
            |f| matches!(f, Finding::SegmentMissing { segment, .. } if *segment == name(&first))
        ),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_get_contiguous_seqs_in_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    let (log, stop) = open(dir.path(), 256 * 1024).await;
    let tasks: Vec<_> = (0..8)
        .map(|task| {
            let log = log.clone();
            tokio::spawn(async move {
                let mut seqs = Vec::new();
                for i in 0..500 {
                    seqs.push(log.append(record(task * 1000 + i)).await.unwrap());
                }
                seqs
            })
        })
        .collect();
    let mut seqs = Vec::new();
    for task in tasks {
        seqs.extend(task.await.unwrap());
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=4000).collect::<Vec<_>>());
    let checkpoint = log.checkpoint().await.unwrap();
    close(log, stop).await;
    let report = verify(dir.path(), Some(&checkpoint)).unwrap();
    assert!(report.is_intact(), "{report}");
    assert_eq!(report.records, 4000);
    assert!(report.segments > 1);
}
