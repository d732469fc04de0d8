//! Verification: walks the segments in order, recomputes every hash, checks sequence numbers
//! and `prev` links, and compares segment heads with the checkpoint.

use std::{
    collections::BTreeMap,
    fmt,
    fs::File,
    io::{BufRead, BufReader},
    path::Path,
};

use super::{
    AuditError,
    checkpoint::Checkpoint,
    format::{self, ZERO_HASH},
};

/// One sign of tampering (or damage), with where it was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finding {
    /// The record's hash does not match its content.
    Edited {
        /// Segment file name.
        segment: String,
        /// Line number, from 1.
        line: usize,
        /// The record's sequence number.
        seq: u64,
    },
    /// The record's `prev` is not the hash of the record before it, although the sequence
    /// numbers are contiguous: a record was rewritten with a new hash.
    ChainBroken {
        /// Segment file name.
        segment: String,
        /// Line number, from 1.
        line: usize,
        /// The record's sequence number.
        seq: u64,
    },
    /// Records are missing before this one (and appear nowhere else).
    Deleted {
        /// Segment file name.
        segment: String,
        /// Line number of the record after the gap.
        line: usize,
        /// Sequence number of the record after the gap.
        seq: u64,
        /// The missing sequence numbers, as inclusive ranges.
        missing: Vec<(u64, u64)>,
    },
    /// The record's sequence number goes backwards: records were moved.
    Reordered {
        /// Segment file name.
        segment: String,
        /// Line number, from 1.
        line: usize,
        /// The record's sequence number.
        seq: u64,
        /// Sequence number of the record it follows.
        after: u64,
    },
    /// The segment ends before the last record the checkpoint saw in it.
    Truncated {
        /// Segment file name.
        segment: String,
        /// Its last line.
        line: usize,
        /// Its last sequence number (0 when it holds none).
        seq: u64,
        /// The last sequence number the checkpoint recorded.
        checkpointed: u64,
    },
    /// A segment the checkpoint recorded (and that was not retired) is not on disk.
    SegmentMissing {
        /// Segment file name.
        segment: String,
        /// First sequence number the checkpoint recorded in it.
        first: u64,
        /// Last sequence number the checkpoint recorded in it.
        last: u64,
    },
    /// The line is not a record.
    Unparseable {
        /// Segment file name.
        segment: String,
        /// Line number, from 1.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// The record the checkpoint names as a segment's head has another hash: the segment was
    /// rewritten from there on, hashes included.
    Rewritten {
        /// Segment file name.
        segment: String,
        /// Line number, from 1.
        line: usize,
        /// The record's sequence number.
        seq: u64,
        /// The hash the checkpoint recorded.
        checkpointed: String,
    },
}

impl Finding {
    /// The segment file it concerns.
    pub fn segment(&self) -> &str {
        match self {
            Self::Edited { segment, .. }
            | Self::ChainBroken { segment, .. }
            | Self::Deleted { segment, .. }
            | Self::Reordered { segment, .. }
            | Self::Truncated { segment, .. }
            | Self::SegmentMissing { segment, .. }
            | Self::Unparseable { segment, .. }
            | Self::Rewritten { segment, .. } => segment,
        }
    }

    /// The line it concerns (0 for a whole missing file).
    pub fn line(&self) -> usize {
        match self {
            Self::Edited { line, .. }
            | Self::ChainBroken { line, .. }
            | Self::Deleted { line, .. }
            | Self::Reordered { line, .. }
            | Self::Truncated { line, .. }
            | Self::Unparseable { line, .. }
            | Self::Rewritten { line, .. } => *line,
            Self::SegmentMissing { .. } => 0,
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Edited { segment, line, seq } => write!(
                f,
                "{segment} line {line} (seq {seq}): record edited: its hash does not match its content"
            ),
            Self::ChainBroken { segment, line, seq } => write!(
                f,
                "{segment} line {line} (seq {seq}): chain broken: its prev is not the hash of the \
                 record before it (that record was rewritten)"
            ),
            Self::Deleted {
                segment,
                line,
                seq,
                missing,
            } => {
                write!(
                    f,
                    "{segment} line {line} (seq {seq}): records deleted before it: seq "
                )?;
                for (i, (from, to)) in missing.iter().enumerate() {
                    let sep = if i == 0 { "" } else { ", " };
                    if from == to {
                        write!(f, "{sep}{from}")?;
                    } else {
                        write!(f, "{sep}{from}-{to}")?;
                    }
                }
                Ok(())
            }
            Self::Reordered {
                segment,
                line,
                seq,
                after,
            } => write!(
                f,
                "{segment} line {line} (seq {seq}): record out of order: it follows seq {after}"
            ),
            Self::Truncated {
                segment,
                line,
                seq,
                checkpointed,
            } => write!(
                f,
                "{segment} line {line} (seq {seq}): segment truncated: the checkpoint recorded it \
                 up to seq {checkpointed}"
            ),
            Self::SegmentMissing {
                segment,
                first,
                last,
            } => write!(
                f,
                "{segment}: segment file missing: the checkpoint recorded seq {first}-{last} in it"
            ),
            Self::Unparseable {
                segment,
                line,
                reason,
            } => write!(f, "{segment} line {line}: not a record: {reason}"),
            Self::Rewritten {
                segment,
                line,
                seq,
                checkpointed,
            } => write!(
                f,
                "{segment} line {line} (seq {seq}): segment rewritten: the checkpoint recorded its \
                 head as {checkpointed}"
            ),
        }
    }
}

/// What [`verify`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Records read.
    pub records: u64,
    /// Segment files read.
    pub segments: usize,
    /// The last record: sequence number and hash.
    pub head: Option<(u64, String)>,
    /// The oldest record's sequence number, when older ones were retired and no checkpoint
    /// vouches for its `prev`.
    pub anchored_at: Option<u64>,
    /// Everything wrong, by file and line.
    pub findings: Vec<Finding>,
}

impl Report {
    /// Whether nothing was found.
    pub fn is_intact(&self) -> bool {
        self.findings.is_empty()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.is_intact() {
            for finding in &self.findings {
                writeln!(f, "{finding}")?;
            }
            return Ok(());
        }
        let (seq, hash) = self
            .head
            .clone()
            .unwrap_or_else(|| (0, hex::encode(ZERO_HASH)));
        write!(
            f,
            "audit chain intact: {} records in {} segments, head {seq} {hash}",
            self.records, self.segments
        )?;
        if let Some(anchor) = self.anchored_at {
            write!(f, " (records before seq {anchor} retired)")?;
        }
        writeln!(f)
    }
}

/// The record before the one being read.
struct Previous {
    seq: u64,
    hash: [u8; 32],
}

/// A gap in sequence numbers, until the missing records turn up later (reordered).
struct Gap {
    segment: String,
    line: usize,
    seq: u64,
    missing: Vec<(u64, u64)>,
}

impl Gap {
    /// Removes `seq` from the missing ranges; whether it was there.
    fn found(&mut self, seq: u64) -> bool {
        let Some(i) = self.missing.iter().position(|&(a, b)| a <= seq && seq <= b) else {
            return false;
        };
        let (a, b) = self.missing.remove(i);
        if seq < b {
            self.missing.insert(i, (seq + 1, b));
        }
        if a < seq {
            self.missing.insert(i, (a, seq - 1));
        }
        true
    }
}

#[derive(Default)]
struct Walk {
    report: Report,
    previous: Option<Previous>,
    highest: u64,
    /// Unreadable lines since the last record.
    skipped: u64,
    gaps: Vec<Gap>,
}

/// Checks the audit chain in `dir` end to end, and against `checkpoint` (the ConfigMap data)
/// when given. Errors only when files cannot be read; tampering is in the [`Report`].
pub fn verify(
    dir: &Path,
    checkpoint: Option<&BTreeMap<String, String>>,
) -> Result<Report, AuditError> {
    walk(dir, checkpoint, false)
}

/// [`verify`]; `live` when a writer may be appending meanwhile, so that the newest segment's
/// last line may be a write in progress rather than a write cut short.
pub(crate) fn walk(
    dir: &Path,
    checkpoint: Option<&BTreeMap<String, String>>,
    live: bool,
) -> Result<Report, AuditError> {
    let checkpoint = checkpoint.map(Checkpoint::parse).transpose()?;
    let segments = format::list_segments(dir)?;
    let mut walk = Walk::default();
    let mut line_buffer = Vec::new();
    for (index, (_, name)) in segments.iter().enumerate() {
        let newest = index + 1 == segments.len();
        let path = dir.join(name);
        let mut reader = BufReader::new(File::open(&path).map_err(|e| AuditError::io(&path, e))?);
        let expected = checkpoint.as_ref().and_then(|c| c.segments.get(name));
        let (mut line_no, mut last_seq) = (0, 0);
        let mut checkpointed_head = None;
        loop {
            line_buffer.clear();
            let read = reader
                .read_until(b'\n', &mut line_buffer)
                .map_err(|e| AuditError::io(&path, e))?;
            if read == 0 {
                break;
            }
            line_no += 1;
            let complete = line_buffer.pop_if(|b| *b == b'\n').is_some();
            if !complete && live && newest {
                // Being written as we read: the next verification reads it whole.
                break;
            }
            let line = if complete {
                format::decode(&line_buffer)
            } else {
                Err("incomplete last line (a write cut short)".into())
            };
            let line = match line {
                Ok(line) => line,
                Err(reason) => {
                    walk.report.findings.push(Finding::Unparseable {
                        segment: name.clone(),
                        line: line_no,
                        reason,
                    });
                    walk.skipped += 1;
                    continue;
                }
            };
            last_seq = last_seq.max(line.seq);
            if expected.is_some_and(|e| e.last == line.seq) {
                checkpointed_head = Some((line_no, hex::encode(line.hash)));
            }
            walk.record(name, line_no, &line, checkpoint.as_ref());
        }
        walk.report.segments += 1;
        if let Some(expected) = expected {
            match checkpointed_head {
                _ if last_seq < expected.last => walk.report.findings.push(Finding::Truncated {
                    segment: name.clone(),
                    line: line_no,
                    seq: last_seq,
                    checkpointed: expected.last,
                }),
                Some((line, hash)) if hash != expected.head => {
                    walk.report.findings.push(Finding::Rewritten {
                        segment: name.clone(),
                        line,
                        seq: expected.last,
                        checkpointed: expected.head.clone(),
                    });
                }
                // Missing within the segment: a gap reports it.
                _ => {}
            }
        }
    }
    if let Some(checkpoint) = &checkpoint {
        for (name, expected) in &checkpoint.segments {
            if !segments.iter().any(|(_, present)| present == name) {
                walk.report.findings.push(Finding::SegmentMissing {
                    segment: name.clone(),
                    first: expected.first,
                    last: expected.last,
                });
            }
        }
    }
    Ok(walk.finish())
}

impl Walk {
    fn record(
        &mut self,
        segment: &str,
        line_no: usize,
        line: &format::Line<'_>,
        checkpoint: Option<&Checkpoint>,
    ) {
        let at = |finding: fn(String, usize, u64) -> Finding| {
            finding(segment.to_owned(), line_no, line.seq)
        };
        let findings = &mut self.report.findings;
        if !line.hash_matches() {
            findings.push(at(|segment, line, seq| Finding::Edited {
                segment,
                line,
                seq,
            }));
        }
        let broken = at(|segment, line, seq| Finding::ChainBroken { segment, line, seq });
        match &self.previous {
            None => {
                let retired =
                    checkpoint.and_then(|c| c.retired.values().find(|r| r.last + 1 == line.seq));
                if line.seq == 1 {
                    if line.prev != ZERO_HASH {
                        findings.push(broken);
                    }
                } else if let Some(retired) = retired {
                    if hex::encode(line.prev) != retired.head {
                        findings.push(broken);
                    }
                } else if checkpoint.is_some() {
                    self.gap(segment, line_no, line.seq, 1);
                } else {
                    // Older segments were retired; without a checkpoint, nothing vouches for
                    // this record's `prev`.
                    self.report.anchored_at = Some(line.seq);
                }
            }
            Some(previous) if line.seq == previous.seq + 1 => {
                if line.prev != previous.hash {
                    findings.push(broken);
                }
            }
            Some(previous) if line.seq > previous.seq => {
                let from = previous.seq.max(self.highest) + 1;
                if line.seq > from && line.seq - from > self.skipped {
                    self.gap(segment, line_no, line.seq, from);
                }
            }
            Some(previous) => {
                let after = previous.seq;
                for gap in &mut self.gaps {
                    if gap.found(line.seq) {
                        break;
                    }
                }
                self.report.findings.push(Finding::Reordered {
                    segment: segment.to_owned(),
                    line: line_no,
                    seq: line.seq,
                    after,
                });
            }
        }
        self.previous = Some(Previous {
            seq: line.seq,
            hash: line.hash,
        });
        self.highest = self.highest.max(line.seq);
        self.skipped = 0;
        self.report.records += 1;
        self.report.head = Some((line.seq, hex::encode(line.hash)));
    }

    fn gap(&mut self, segment: &str, line: usize, seq: u64, from: u64) {
        self.gaps.push(Gap {
            segment: segment.to_owned(),
            line,
            seq,
            missing: vec![(from, seq - 1)],
        });
    }

    fn finish(mut self) -> Report {
        for gap in self.gaps {
            if !gap.missing.is_empty() {
                self.report.findings.push(Finding::Deleted {
                    segment: gap.segment,
                    line: gap.line,
                    seq: gap.seq,
                    missing: gap.missing,
                });
            }
        }
        let findings = &mut self.report.findings;
        findings.sort_by(|a, b| (a.segment(), a.line()).cmp(&(b.segment(), b.line())));
        self.report
    }
}
