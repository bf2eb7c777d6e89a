//! The group-commit writer: one OS thread owns the active segment file. Sessions hand it
//! records and await a completion; the thread takes every request waiting in its queue (up to a
//! byte budget), writes them with one `write`, makes them durable with one `fdatasync`, and only
//! then completes them (or, when the records go on to a [`CommitSink`], has its consumer complete
//! them once it has folded them). One fsync (~140 us here) is thus shared by every fix that
//! arrived while the previous one ran, which is what lets durable acks keep up with thousands
//! of phones.
//!
//! A std thread and not a tokio task, because `fdatasync` blocks. The request queue is bounded:
//! when the disk falls behind, sessions wait, and QUIC flow control pushes back on the phones.
//! After a write or fsync failure the writer fails every pending and future request: nothing
//! that may not be on disk is ever acked.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot};

use crate::metrics::Histogram;
use crate::store::log::{frame_record, segment_name, LogError};
use crate::store::LogConfig;
use milepost_core::store::LogRecord;

/// Depth of the request queue.
const QUEUE_DEPTH: usize = 8192;

/// A record that is durable, handed in log order to whoever folds the log into state.
#[derive(Clone, Debug)]
pub struct Committed {
    /// Its record number.
    pub lsn: u64,
    /// The record.
    pub record: Arc<LogRecord>,
}

/// Records made durable together, in log order, with the submitters waiting on them. Whoever
/// folds the records answers the submitters once they are folded, so that a session waiting for
/// "durable and applied" is woken once, not once by the writer and again by the applier.
#[derive(Default)]
pub struct CommitGroup {
    /// The records, in log order.
    pub records: Vec<Committed>,
    /// The submitters of the group (appends and barriers).
    pub answers: Answers,
}

impl From<Vec<Committed>> for CommitGroup {
    fn from(records: Vec<Committed>) -> CommitGroup {
        CommitGroup {
            records,
            answers: Answers::default(),
        }
    }
}

/// Submitters of a durable group, each answered with its record number by
/// [`Answers::complete`].
#[derive(Default)]
pub struct Answers(Vec<Waiter>);

impl Answers {
    /// Tells every submitter its records are durable (and, when called by the consumer of a
    /// [`CommitSink`], folded).
    pub fn complete(self) {
        for (done, lsn) in self.0 {
            let _ = done.send(Ok(lsn));
        }
    }
}

/// Where committed records go, in log order (bounded: a slow consumer slows the writer).
pub type CommitSink = std::sync::mpsc::SyncSender<CommitGroup>;

/// Called with every record the writer refuses (disk full, or after a failure), before the
/// submitter hears of it: the gateway withdraws the settlement of its seqs there, so that no
/// seq is ever reported settled without being on disk, even when its session is gone.
pub type RefusedHook = Box<dyn Fn(&LogRecord) + Send>;

/// A request to the writer thread.
enum Request {
    Append {
        record: Arc<LogRecord>,
        done: oneshot::Sender<Result<u64, LogError>>,
    },
    Barrier {
        done: oneshot::Sender<Result<u64, LogError>>,
    },
    Shutdown,
}

/// A cloneable handle for submitting records.
#[derive(Clone)]
pub struct WriterHandle {
    tx: mpsc::Sender<Request>,
    failed: Arc<AtomicBool>,
    disk_bytes: Arc<AtomicU64>,
}

/// The writer thread and a handle to it.
pub struct LogWriter {
    handle: WriterHandle,
    join: Option<JoinHandle<()>>,
}

impl LogWriter {
    /// Starts the writer on `dir`, appending at record number `next_lsn` (from recovery) to a
    /// fresh segment.
    pub fn start(
        dir: &Path,
        cfg: &LogConfig,
        next_lsn: u64,
        sink: Option<CommitSink>,
        fsync_latency: Arc<Histogram>,
        on_refused: Option<RefusedHook>,
    ) -> Result<LogWriter, LogError> {
        std::fs::create_dir_all(dir).map_err(LogError::io(dir))?;
        let seg = Segment::create(dir, next_lsn)?;
        let mut bytes = 0;
        for (_, p) in crate::store::log::list_segments(dir)? {
            bytes += std::fs::metadata(&p).map_err(LogError::io(&p))?.len();
        }
        let disk_bytes = Arc::new(AtomicU64::new(bytes));
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let failed = Arc::new(AtomicBool::new(false));
        let mut thread = WriterThread {
            dir: dir.to_owned(),
            cfg: cfg.clone(),
            seg,
            next_lsn,
            rx,
            sink,
            failed: failed.clone(),
            fsync_latency,
            disk_bytes: disk_bytes.clone(),
            on_refused,
        };
        let join = std::thread::Builder::new()
            .name("milepost-log".into())
            .spawn(move || thread.run())
            .map_err(LogError::io(dir))?;
        Ok(LogWriter {
            handle: WriterHandle {
                tx,
                failed,
                disk_bytes,
            },
            join: Some(join),
        })
    }

    /// A handle for submitting records.
    pub fn handle(&self) -> WriterHandle {
        self.handle.clone()
    }

    /// Finishes what was submitted, syncs and stops the thread.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(join) = self.join.take() {
            let _ = self.handle.tx.blocking_send(Request::Shutdown);
            let _ = join.join();
        }
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        // Dropping inside a runtime cannot block_send; a best-effort message is enough there.
        if let Some(join) = self.join.take() {
            let _ = self.handle.tx.try_send(Request::Shutdown);
            drop(join);
        }
    }
}

/// A reserved place in the writer's queue. Taking it is the only step that may wait; sending
/// through it is synchronous, so a caller can reserve, then decide and submit under a lock
/// (admission does: a seq is marked settled only together with handing its record to the
/// writer, never before).
pub struct LogPermit(mpsc::OwnedPermit<Request>);

/// The answer to a submitted record or barrier.
pub struct Completion(oneshot::Receiver<Result<u64, LogError>>);

impl LogPermit {
    /// Submits a record; the completion resolves with its record number once it is durable.
    pub fn append(self, record: Arc<LogRecord>) -> Completion {
        let (done, rx) = oneshot::channel();
        self.0.send(Request::Append { record, done });
        Completion(rx)
    }

    /// Submits a barrier: resolves (with the next record number) once everything submitted
    /// before it is durable.
    pub fn barrier(self) -> Completion {
        let (done, rx) = oneshot::channel();
        self.0.send(Request::Barrier { done });
        Completion(rx)
    }
}

impl Completion {
    /// Waits for the writer's answer.
    ///
    /// # Cancel safety
    /// Cancelling the wait does not withdraw the record: it is still written (or refused).
    pub async fn wait(self) -> Result<u64, LogError> {
        self.0.await.map_err(|_| LogError::Closed)?
    }
}

impl WriterHandle {
    /// Reserves a place in the writer's queue, waiting while it is full (backpressure).
    pub async fn reserve(&self) -> Result<LogPermit, LogError> {
        if self.has_failed() {
            return Err(LogError::Closed);
        }
        self.tx
            .clone()
            .reserve_owned()
            .await
            .map(LogPermit)
            .map_err(|_| LogError::Closed)
    }

    /// Reserves a place without waiting; `None` when the queue is full or the writer failed.
    pub fn try_reserve(&self) -> Option<LogPermit> {
        if self.has_failed() {
            return None;
        }
        self.tx.clone().try_reserve_owned().ok().map(LogPermit)
    }

    /// Appends a record; resolves with its record number once it is durable.
    ///
    /// # Cancel safety
    /// Cancelling the future does not withdraw the record: it may still be written.
    pub async fn append(&self, record: Arc<LogRecord>) -> Result<u64, LogError> {
        let (done, rx) = oneshot::channel();
        self.submit(Request::Append { record, done }).await?;
        rx.await.map_err(|_| LogError::Closed)?
    }

    /// Resolves once everything submitted before it is durable.
    pub async fn barrier(&self) -> Result<u64, LogError> {
        let (done, rx) = oneshot::channel();
        self.submit(Request::Barrier { done }).await?;
        rx.await.map_err(|_| LogError::Closed)?
    }

    /// Bytes in the log's segments.
    pub fn disk_bytes(&self) -> u64 {
        self.disk_bytes.load(Ordering::Relaxed)
    }

    /// Records that retention deleted `bytes` of segments.
    pub fn released(&self, bytes: u64) {
        self.disk_bytes
            .fetch_sub(bytes.min(self.disk_bytes()), Ordering::Relaxed);
    }

    /// True once the writer has failed; nothing more will be acked.
    pub fn has_failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    async fn submit(&self, req: Request) -> Result<(), LogError> {
        if self.has_failed() {
            return Err(LogError::Closed);
        }
        self.tx.send(req).await.map_err(|_| LogError::Closed)
    }
}

/// The receiving end of a [`WriterHandle`] for a log kept elsewhere than in local segments
/// (the cluster's JetStream publisher): the same permits, completions and backpressure, with
/// the durability step done by the owner of this queue.
pub struct RequestQueue(mpsc::Receiver<Request>);

/// One request taken from a [`RequestQueue`].
pub enum Queued {
    /// A record to make durable; answer with its record number.
    Append {
        /// The record.
        record: Arc<LogRecord>,
        /// Where the answer goes.
        done: Answer,
    },
    /// Answer once everything taken before is durable, with the next record number.
    Barrier {
        /// Where the answer goes.
        done: Answer,
    },
}

/// The answer slot of one queued request.
pub struct Answer(oneshot::Sender<Result<u64, LogError>>);

impl Answer {
    /// Answers the submitter (who may have gone: then nothing happens).
    pub fn send(self, result: Result<u64, LogError>) {
        let _ = self.0.send(result);
    }
}

impl RequestQueue {
    /// A handle and its queue, `depth` requests deep.
    pub fn new(depth: usize) -> (WriterHandle, RequestQueue) {
        let (tx, rx) = mpsc::channel(depth);
        let handle = WriterHandle {
            tx,
            failed: Arc::new(AtomicBool::new(false)),
            disk_bytes: Arc::new(AtomicU64::new(0)),
        };
        (handle, RequestQueue(rx))
    }

    /// The next request; `None` once every handle is gone or a shutdown was asked for.
    pub async fn next(&mut self) -> Option<Queued> {
        match self.0.recv().await? {
            Request::Append { record, done } => Some(Queued::Append {
                record,
                done: Answer(done),
            }),
            Request::Barrier { done } => Some(Queued::Barrier { done: Answer(done) }),
            Request::Shutdown => None,
        }
    }

    /// A request already waiting: `Ok(None)` when none is, `Err(())` once the queue is closed
    /// (every handle gone, or a shutdown asked for).
    #[allow(clippy::result_unit_err)]
    pub fn try_next(&mut self) -> Result<Option<Queued>, ()> {
        match self.0.try_recv() {
            Ok(Request::Append { record, done }) => Ok(Some(Queued::Append {
                record,
                done: Answer(done),
            })),
            Ok(Request::Barrier { done }) => Ok(Some(Queued::Barrier { done: Answer(done) })),
            Ok(Request::Shutdown) => Err(()),
            Err(mpsc::error::TryRecvError::Empty) => Ok(None),
            Err(mpsc::error::TryRecvError::Disconnected) => Err(()),
        }
    }
}

impl WriterHandle {
    /// Marks the log failed: nothing more is accepted (the cluster publisher, on losing
    /// JetStream for good).
    pub fn set_failed(&self) {
        self.failed.store(true, Ordering::Relaxed);
    }

    /// Sets the bytes the log occupies (for metrics and the disk bound).
    pub fn set_disk_bytes(&self, bytes: u64) {
        self.disk_bytes.store(bytes, Ordering::Relaxed);
    }

    /// Asks the owner of the queue to stop after what was submitted before.
    pub async fn close(&self) {
        let _ = self.tx.send(Request::Shutdown).await;
    }
}

/// The two refusals a writer answers with (`LogError` is not `Clone`: it may hold an
/// `io::Error`).
fn err_copy(e: &LogError) -> LogError {
    match e {
        LogError::DiskFull => LogError::DiskFull,
        _ => LogError::Closed,
    }
}

/// The active segment file.
struct Segment {
    path: PathBuf,
    file: File,
    len: u64,
}

impl Segment {
    fn create(dir: &Path, first: u64) -> Result<Segment, LogError> {
        let path = dir.join(segment_name(first));
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(LogError::io(&path))?;
        let len = file.metadata().map_err(LogError::io(&path))?.len();
        // Make the new directory entry durable too.
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(LogError::io(dir))?;
        Ok(Segment { path, file, len })
    }
}

struct WriterThread {
    dir: PathBuf,
    cfg: LogConfig,
    seg: Segment,
    next_lsn: u64,
    rx: mpsc::Receiver<Request>,
    sink: Option<CommitSink>,
    failed: Arc<AtomicBool>,
    fsync_latency: Arc<Histogram>,
    /// Bytes in all segments (retention subtracts what it deletes).
    disk_bytes: Arc<AtomicU64>,
    on_refused: Option<RefusedHook>,
}

type Waiter = (oneshot::Sender<Result<u64, LogError>>, u64);

impl WriterThread {
    fn run(&mut self) {
        let mut buf = Vec::with_capacity(self.cfg.group_commit_bytes);
        let mut waiters: Vec<Waiter> = Vec::new();
        let mut committed: Vec<Committed> = Vec::new();
        let mut shutdown = false;
        while !shutdown {
            let Some(first) = self.rx.blocking_recv() else {
                break;
            };
            let group_start_lsn = self.next_lsn;
            shutdown |= self.take(first, &mut buf, &mut waiters, &mut committed);
            let linger = std::time::Duration::from_micros(self.cfg.group_commit_linger_us);
            let mut lingered = linger.is_zero();
            while buf.len() < self.cfg.group_commit_bytes && !shutdown {
                match self.rx.try_recv() {
                    Ok(req) => shutdown |= self.take(req, &mut buf, &mut waiters, &mut committed),
                    // Under load, waiting a moment for more records makes each fsync (the
                    // most expensive step per fix) serve many more of them.
                    Err(_) if !lingered => {
                        lingered = true;
                        std::thread::sleep(linger);
                    }
                    Err(_) => break,
                }
            }
            match self.commit(&buf) {
                Ok(()) => {}
                Err(LogError::DiskFull) => {
                    // Nothing of the group is on disk: refuse it, give its record numbers
                    // back, and keep serving (space may come back; acked data is untouched).
                    tracing::warn!(bytes = buf.len(), "log full: refusing a group of appends");
                    self.next_lsn = group_start_lsn;
                    self.refuse_group(&mut waiters, &mut committed, LogError::DiskFull);
                    buf.clear();
                    // Whatever is already queued was admitted while this group's seqs looked
                    // settled (a resend acked after a barrier, say): refuse it too.
                    // A shutdown among them still stops the thread (the gateway joins it).
                    while let Ok(req) = self.rx.try_recv() {
                        shutdown |= self.refuse(req, LogError::DiskFull);
                    }
                    continue;
                }
                Err(e) => {
                    tracing::error!(error = %e, "log write failed: refusing all further fixes");
                    self.failed.store(true, Ordering::Relaxed);
                    self.refuse_group(&mut waiters, &mut committed, LogError::Closed);
                    self.fail_forever();
                    return;
                }
            }
            buf.clear();
            let group = CommitGroup {
                records: std::mem::take(&mut committed),
                answers: Answers(std::mem::take(&mut waiters)),
            };
            match &self.sink {
                // The consumer answers the submitters once it has folded the records.
                Some(sink) => {
                    if let Err(std::sync::mpsc::SendError(group)) = sink.send(group) {
                        self.sink = None;
                        group.answers.complete();
                    }
                }
                None => group.answers.complete(),
            }
            if let Err(e) = self.maybe_roll() {
                tracing::error!(error = %e, "log segment roll failed");
                self.failed.store(true, Ordering::Relaxed);
                self.fail_forever();
                return;
            }
        }
    }

    /// Adds a request to the current group. Returns true on shutdown.
    fn take(
        &mut self,
        req: Request,
        buf: &mut Vec<u8>,
        waiters: &mut Vec<Waiter>,
        committed: &mut Vec<Committed>,
    ) -> bool {
        match req {
            Request::Append { record, done } => match milepost_proto::encode(&*record) {
                Ok(payload) => {
                    frame_record(&payload, buf);
                    let lsn = self.next_lsn;
                    self.next_lsn += 1;
                    waiters.push((done, lsn));
                    committed.push(Committed { lsn, record });
                }
                Err(e) => {
                    tracing::error!(error = %e, "unencodable log record");
                    let _ = done.send(Err(LogError::Closed));
                }
            },
            Request::Barrier { done } => waiters.push((done, self.next_lsn)),
            Request::Shutdown => return true,
        }
        false
    }

    fn commit(&mut self, buf: &[u8]) -> Result<(), LogError> {
        if buf.is_empty() {
            return Ok(());
        }
        let path = &self.seg.path;
        let size = self.disk_bytes.load(Ordering::Relaxed);
        if size + buf.len() as u64 > self.cfg.max_disk_bytes {
            return Err(LogError::DiskFull);
        }
        if let Err(e) = self.seg.file.write_all(buf) {
            // ENOSPC: cut whatever part of the group reached the file, so the segment ends on
            // a whole record, and refuse the group. Other errors poison the writer.
            if e.raw_os_error() == Some(28) {
                self.seg
                    .file
                    .set_len(self.seg.len)
                    .map_err(LogError::io(path))?;
                return Err(LogError::DiskFull);
            }
            return Err(LogError::Io {
                path: path.clone(),
                source: e,
            });
        }
        self.disk_bytes
            .fetch_add(buf.len() as u64, Ordering::Relaxed);
        if self.cfg.fsync {
            let t = std::time::Instant::now();
            self.seg.file.sync_data().map_err(LogError::io(path))?;
            self.fsync_latency.observe(t.elapsed());
        }
        self.seg.len += buf.len() as u64;
        Ok(())
    }

    fn maybe_roll(&mut self) -> Result<(), LogError> {
        if self.seg.len >= self.cfg.segment_bytes {
            self.seg = Segment::create(&self.dir, self.next_lsn)?;
        }
        Ok(())
    }

    fn fail_forever(&mut self) {
        while let Some(req) = self.rx.blocking_recv() {
            if self.refuse(req, LogError::Closed) {
                return;
            }
        }
    }

    /// Refuses the current group: the hook first (withdrawing settlements), then the answers.
    fn refuse_group(
        &mut self,
        waiters: &mut Vec<Waiter>,
        committed: &mut Vec<Committed>,
        err: LogError,
    ) {
        if let Some(hook) = &self.on_refused {
            for c in committed.iter() {
                hook(&c.record);
            }
        }
        committed.clear();
        for (done, _) in waiters.drain(..) {
            let _ = done.send(Err(match err {
                LogError::DiskFull => LogError::DiskFull,
                _ => LogError::Closed,
            }));
        }
    }

    /// Refuses one queued request. Returns true if it was the request to shut down, which
    /// is not refused but obeyed: the gateway waits for this thread to end.
    fn refuse(&mut self, req: Request, err: LogError) -> bool {
        match req {
            Request::Append { record, done } => {
                if let Some(hook) = &self.on_refused {
                    hook(&record);
                }
                let _ = done.send(Err(err_copy(&err)));
            }
            Request::Barrier { done } => {
                let _ = done.send(Err(err_copy(&err)));
            }
            Request::Shutdown => return true,
        }
        false
    }
}
