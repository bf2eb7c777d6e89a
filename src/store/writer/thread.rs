//! The group-commit writer thread: [`LogWriter`] owns the active segment file. It takes every
//! request waiting in its queue (up to a byte budget, after a short linger), writes them with one
//! `write`, makes them durable with one `fdatasync`, and only then completes them (or hands them
//! to the [`CommitSink`], whose consumer completes them once folded). After a write or fsync
//! failure it refuses every pending and future request; when the disk is full it refuses the
//! group and keeps serving.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::mpsc;

use crate::metrics::Histogram;
use crate::store::config::LogConfig;
use crate::store::log::{frame_record, list_segments, segment_name, LogError};
use crate::store::writer::commit::{
    Answers, CommitGroup, CommitSink, Committed, RefusedHook, Waiter,
};
use crate::store::writer::queue::{Request, WriterHandle};

/// Depth of the request queue.
const QUEUE_DEPTH: usize = 8192;

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
        for (_, p) in list_segments(dir)? {
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
                released: Arc::new(AtomicU64::new(0)),
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
                ..CommitGroup::default()
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
            let _ = done.send(Err(err_copy(&err)));
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
