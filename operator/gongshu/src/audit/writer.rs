//! The one task that writes segment files: batches appends into one `write(2)` per segment,
//! seals segments, syncs and publishes checkpoints.

use std::{
    collections::BTreeMap,
    fs::{File, OpenOptions},
    future::Future,
    io::Write,
    path::PathBuf,
    sync::Arc,
    time::Duration,
};

use jiff::Timestamp;
use tokio::{
    sync::{mpsc, oneshot, watch},
    task::JoinHandle,
    time::{Instant, MissedTickBehavior, interval, interval_at},
};

use super::{
    AuditError, Options, Record,
    checkpoint::{self, Checkpointer, DataPatch, SegmentHead, checkpoint_data},
    format::{self, ZERO_HASH},
    retention,
};

/// How often a changing log checkpoints its heads: records younger than this can be cut from
/// the open segment without the checkpoint showing it. One small ConfigMap write a second
/// while traffic flows (none when idle).
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// Most commands handled per batch.
const MAX_BATCH: usize = 4096;
/// How long shutdown waits for the last checkpoint write.
const CHECKPOINT_GRACE: Duration = Duration::from_secs(5);

/// What handles ask of the writer.
#[derive(Debug)]
pub(crate) enum Command {
    Append(Record, oneshot::Sender<Result<u64, AuditError>>),
    Head(oneshot::Sender<(u64, String)>),
    Checkpoint(oneshot::Sender<BTreeMap<String, String>>),
    Retire {
        keep_days: u32,
        now: Timestamp,
        reply: oneshot::Sender<Result<Vec<String>, AuditError>>,
    },
}

/// The segment being appended to.
#[derive(Debug)]
struct Segment {
    name: String,
    path: PathBuf,
    file: Arc<File>,
    first: u64,
    /// Bytes on disk.
    bytes: u64,
    /// Time of its first record, for `segment_max_age`.
    started: Timestamp,
}

#[derive(Debug)]
pub(crate) struct Writer {
    options: Options,
    /// Sequence number of the next record.
    next_seq: u64,
    /// Hash of the last record staged.
    head: [u8; 32],
    /// `(next_seq, head)` of the last record written to disk.
    written: (u64, [u8; 32]),
    open: Option<Segment>,
    sealed: Vec<SegmentHead>,
    retired: Vec<SegmentHead>,
    /// Lines staged for the open segment, and who waits for them.
    buffer: Vec<u8>,
    waiting: Vec<(u64, oneshot::Sender<Result<u64, AuditError>>)>,
    scratch: Vec<u8>,
    unsynced: bool,
    /// The fdatasync started by [`Writer::sync_behind`], if any.
    syncing: Option<JoinHandle<()>>,
    unpublished: bool,
    published: Option<watch::Sender<DataPatch>>,
}

/// Runs blocking file work off the runtime's worker threads.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => value,
        Err(join) => std::panic::resume_unwind(join.into_panic()),
    }
}

fn open_append(path: &std::path::Path) -> Result<File, AuditError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| AuditError::io(path, e))
}

impl Writer {
    /// Reads the chain head back from the directory, dropping a partial trailing line.
    pub(crate) async fn recover(options: Options) -> Result<Self, AuditError> {
        blocking(move || Self::recover_blocking(options)).await
    }

    fn recover_blocking(options: Options) -> Result<Self, AuditError> {
        let dir = &options.dir;
        std::fs::create_dir_all(dir).map_err(|e| AuditError::io(dir, e))?;
        let mut segments = format::list_segments(dir)?;
        let last = segments.pop();
        let mut sealed = Vec::with_capacity(segments.len());
        for (first, name) in segments {
            let tail = format::read_tail(&dir.join(&name))?;
            if let Some(line) = tail.last_line {
                let line = decode_last(&name, &line)?;
                sealed.push(SegmentHead {
                    name,
                    first,
                    last: line.seq,
                    head: hex::encode(line.hash),
                    sealed: true,
                });
            }
        }
        let (mut next_seq, mut head) = match sealed.last() {
            Some(s) => (
                s.last + 1,
                format::parse_hash(s.head.as_bytes()).unwrap_or(ZERO_HASH),
            ),
            None => (1, ZERO_HASH),
        };
        let mut open = None;
        if let Some((first, name)) = last {
            let path = dir.join(&name);
            let tail = format::read_tail(&path)?;
            if tail.partial > 0 {
                // A line cut short by a crash: it was never acknowledged, so it goes.
                tracing::warn!(file = %name, bytes = tail.partial, "dropping a partial audit record");
                let file = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(|e| AuditError::io(&path, e))?;
                file.set_len(tail.complete)
                    .and_then(|()| file.sync_data())
                    .map_err(|e| AuditError::io(&path, e))?;
            }
            match tail.last_line {
                Some(line) => {
                    let line = decode_last(&name, &line)?;
                    (next_seq, head) = (line.seq + 1, line.hash);
                    let started = format::read_first_line(&path)?
                        .and_then(|l| format::decode(&l).ok()?.timestamp())
                        .unwrap_or_else(Timestamp::now);
                    open = Some(Segment {
                        file: Arc::new(open_append(&path)?),
                        name,
                        path,
                        first,
                        bytes: tail.complete,
                        started,
                    });
                }
                None => {
                    // Created, but its first write never happened: it starts over.
                    std::fs::remove_file(&path).map_err(|e| AuditError::io(&path, e))?;
                }
            }
        }
        Ok(Self {
            options,
            next_seq,
            head,
            written: (next_seq, head),
            open,
            sealed,
            retired: Vec::new(),
            buffer: Vec::new(),
            waiting: Vec::new(),
            scratch: Vec::new(),
            unsynced: false,
            syncing: None,
            unpublished: false,
            published: None,
        })
    }

    /// Serves `commands` until `shutdown` or until every handle is gone, then syncs, writes a
    /// last checkpoint and drops the receiver (which [`super::AuditLog::closed`] waits for).
    pub(crate) async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        checkpointer: Option<Checkpointer>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) {
        let checkpoints: Option<JoinHandle<()>> = checkpointer.map(|checkpointer| {
            let (sender, receiver) = watch::channel(self.patch());
            self.published = Some(sender);
            tokio::spawn(checkpoint::run(
                checkpointer,
                receiver,
                self.options.metrics.clone(),
            ))
        });
        tokio::pin!(shutdown);
        let mut sync = interval(self.options.sync_every);
        sync.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut checkpoint = interval_at(Instant::now() + CHECKPOINT_EVERY, CHECKPOINT_EVERY);
        checkpoint.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut batch = Vec::with_capacity(MAX_BATCH);
        loop {
            // Timers first: under a steady stream of appends they would otherwise starve.
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                _ = sync.tick() => self.sync_behind(),
                _ = checkpoint.tick() => if self.unpublished { self.publish() },
                received = commands.recv_many(&mut batch, MAX_BATCH) => {
                    if received == 0 {
                        break;
                    }
                    self.handle(&mut batch).await;
                }
            }
        }
        commands.close();
        while commands.recv_many(&mut batch, MAX_BATCH).await > 0 {
            self.handle(&mut batch).await;
        }
        self.sync().await;
        self.publish();
        self.published = None;
        if let Some(task) = checkpoints
            && tokio::time::timeout(CHECKPOINT_GRACE, task).await.is_err()
        {
            tracing::warn!("last audit checkpoint not written before shutdown");
        }
        drop(commands);
    }

    async fn handle(&mut self, batch: &mut Vec<Command>) {
        for command in batch.drain(..) {
            match command {
                Command::Append(record, reply) => self.stage(record, reply).await,
                other => {
                    // Answers reflect every append before them.
                    self.flush().await;
                    self.answer(other).await;
                }
            }
        }
        self.flush().await;
    }

    async fn answer(&mut self, command: Command) {
        match command {
            Command::Append(record, reply) => self.stage(record, reply).await,
            Command::Head(reply) => {
                let _ = reply.send((self.written.0 - 1, hex::encode(self.written.1)));
            }
            Command::Checkpoint(reply) => {
                let _ = reply.send(checkpoint_data(&self.heads(), &self.retired));
            }
            Command::Retire {
                keep_days,
                now,
                reply,
            } => {
                let dir = self.options.dir.clone();
                let removed = blocking(move || retention::retire(&dir, keep_days, now)).await;
                if let Ok(names) = &removed {
                    let (gone, kept) = std::mem::take(&mut self.sealed)
                        .into_iter()
                        .partition(|s| names.contains(&s.name));
                    self.sealed = kept;
                    self.retired.extend::<Vec<_>>(gone);
                    self.publish();
                }
                let _ = reply.send(removed);
            }
        }
    }

    /// Adds the line of `record` to the buffer, sealing and starting segments as needed.
    async fn stage(&mut self, record: Record, reply: oneshot::Sender<Result<u64, AuditError>>) {
        let (now, time) = format::now();
        if let Some(open) = &self.open {
            let bytes = open.bytes + self.buffer.len() as u64;
            let age = now.duration_since(open.started).unsigned_abs();
            if bytes >= self.options.segment_max_bytes || age >= self.options.segment_max_age {
                self.flush().await;
                self.seal().await;
            }
        }
        if self.open.is_none()
            && let Err(error) = self.start(now).await
        {
            let _ = reply.send(Err(error));
            return;
        }
        let seq = self.next_seq;
        let line = format::encode(
            seq,
            &time,
            &self.head,
            &record,
            &mut self.scratch,
            &mut self.buffer,
        );
        match line {
            Ok(hash) => {
                self.head = hash;
                self.next_seq += 1;
                self.waiting.push((seq, reply));
            }
            Err(error) => {
                let _ = reply.send(Err(error));
            }
        }
    }

    /// Writes the buffer with one `write(2)`, then answers those waiting for it.
    ///
    /// The write runs on this task, not on a blocking thread: it copies into the page cache
    /// (microseconds), and handing it to the blocking pool cost a thread wake-up per batch,
    /// which the exchange's lookup benchmark showed as its largest single cost. What waits for
    /// the disk, fdatasync, stays on a blocking thread ([`Writer::sync_behind`]).
    async fn flush(&mut self) {
        let Some(open) = &mut self.open else { return };
        if self.buffer.is_empty() {
            return;
        }
        let buffer = std::mem::take(&mut self.buffer);
        let (file, path, length) = (&open.file, &open.path, open.bytes);
        let result = (&**file).write_all(&buffer).map_err(|e| {
            // Take back whatever part was written, so the next line starts clean.
            if let Err(undo) = file.set_len(length) {
                tracing::error!(path = %path.display(), error = %undo, "audit segment not truncated after a failed write");
            }
            AuditError::io(path, e)
        });
        match result {
            Ok(()) => {
                open.bytes += buffer.len() as u64;
                self.options.metrics.appended(self.waiting.len());
                self.written = (self.next_seq, self.head);
                for (seq, reply) in self.waiting.drain(..) {
                    let _ = reply.send(Ok(seq));
                }
                self.unsynced = true;
                self.unpublished = true;
            }
            Err(error) => {
                (self.next_seq, self.head) = self.written;
                tracing::error!(%error, "audit records not written");
                for (_, reply) in self.waiting.drain(..) {
                    let _ = reply.send(Err(AuditError::Io {
                        path: open.path.display().to_string(),
                        source: std::io::Error::other(error.to_string()),
                    }));
                }
            }
        }
        self.buffer = buffer;
        self.buffer.clear();
    }

    /// Creates the segment starting at the next sequence number.
    async fn start(&mut self, now: Timestamp) -> Result<(), AuditError> {
        let name = format::segment_name(self.next_seq);
        let path = self.options.dir.join(&name);
        let dir = self.options.dir.clone();
        let file = {
            let path = path.clone();
            blocking(move || {
                let file = open_append(&path)?;
                // The new name must survive a power loss as well as the records in it.
                File::open(&dir)
                    .and_then(|d| d.sync_all())
                    .map_err(|e| AuditError::io(&dir, e))?;
                Ok::<_, AuditError>(file)
            })
            .await?
        };
        self.open = Some(Segment {
            name,
            path,
            file: Arc::new(file),
            first: self.next_seq,
            bytes: 0,
            started: now,
        });
        Ok(())
    }

    /// Syncs and closes the open segment; it is never written again.
    async fn seal(&mut self) {
        self.sync().await;
        if let Some(open) = self.open.take() {
            self.sealed.push(SegmentHead {
                name: open.name,
                first: open.first,
                last: self.written.0 - 1,
                head: hex::encode(self.written.1),
                sealed: true,
            });
            self.publish();
        }
    }

    /// Starts an fdatasync of the open segment on a blocking thread without waiting for it:
    /// appends go on being written (to the page cache, which survives a crash of the process)
    /// while the disk catches up. One sync at a time.
    fn sync_behind(&mut self) {
        let Some(open) = &self.open else { return };
        if !self.unsynced || self.syncing.as_ref().is_some_and(|s| !s.is_finished()) {
            return;
        }
        let (file, path) = (open.file.clone(), open.path.clone());
        self.unsynced = false;
        self.syncing = Some(tokio::task::spawn_blocking(move || {
            if let Err(error) = file.sync_data() {
                tracing::warn!(path = %path.display(), %error, "audit segment not synced");
            }
        }));
    }

    /// Syncs the open segment and waits for it (seal, shutdown).
    async fn sync(&mut self) {
        if let Some(syncing) = self.syncing.take() {
            let _ = syncing.await;
        }
        let Some(open) = &self.open else { return };
        if !self.unsynced {
            return;
        }
        let (file, path) = (open.file.clone(), open.path.clone());
        if let Err(error) = blocking(move || file.sync_data()).await {
            tracing::warn!(path = %path.display(), %error, "audit segment not synced");
            return;
        }
        self.unsynced = false;
    }

    /// Every segment's head, the open one last.
    fn heads(&self) -> Vec<SegmentHead> {
        let mut heads = self.sealed.clone();
        if let Some(open) = &self.open
            && self.written.0 > open.first
        {
            heads.push(SegmentHead {
                name: open.name.clone(),
                first: open.first,
                last: self.written.0 - 1,
                head: hex::encode(self.written.1),
                sealed: false,
            });
        }
        heads
    }

    fn patch(&self) -> DataPatch {
        let data = checkpoint_data(&self.heads(), &self.retired);
        let mut patch: DataPatch = data.into_iter().map(|(k, v)| (k, Some(v))).collect();
        for retired in &self.retired {
            patch.insert(retired.name.clone(), None);
        }
        patch
    }

    fn publish(&mut self) {
        if let Some(published) = &self.published {
            published.send_replace(self.patch());
        }
        self.unpublished = false;
    }
}

fn decode_last<'a>(name: &str, line: &'a [u8]) -> Result<format::Line<'a>, AuditError> {
    format::decode(line).map_err(|reason| AuditError::Corrupt {
        file: name.to_owned(),
        reason: format!("last record: {reason}"),
    })
}
