//! The submitting side of the log writer: [`WriterHandle`] (reserve a place, append, barrier),
//! the [`LogPermit`] that hands a record over synchronously, the [`Completion`] a submitter
//! awaits, and [`RequestQueue`], the receiving end for a log kept elsewhere than in local
//! segments. The queue is bounded: when the log falls behind, submitters wait.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::store::log::LogError;
use milepost_core::store::LogRecord;

/// Where a request's answer goes: its record number (or the next one, for a barrier).
pub(super) type Done = oneshot::Sender<Result<u64, LogError>>;

/// A request to the writer thread.
pub(super) enum Request {
    /// A record to make durable.
    Append { record: Arc<LogRecord>, done: Done },
    /// Answer once everything before is durable.
    Barrier { done: Done },
    /// Stop after what came before.
    Shutdown,
}

/// A cloneable handle for submitting records.
#[derive(Clone)]
pub struct WriterHandle {
    pub(super) tx: mpsc::Sender<Request>,
    pub(super) failed: Arc<AtomicBool>,
    pub(super) disk_bytes: Arc<AtomicU64>,
    /// Bytes retention deleted, in all.
    pub(super) released: Arc<AtomicU64>,
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

    /// Waits for the writer's answer without giving the completion up, so that a caller whose
    /// wait is cancelled can hand it on. Call it at most until it returns once.
    pub async fn wait_mut(&mut self) -> Result<u64, LogError> {
        (&mut self.0).await.map_err(|_| LogError::Closed)?
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
        self.released.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Bytes the log has grown by in all: what its segments hold, plus what retention deleted
    /// (so it only grows, as snapshots' pacing needs).
    pub fn appended_bytes(&self) -> u64 {
        self.disk_bytes() + self.released.load(Ordering::Relaxed)
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
pub struct Answer(Done);

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
            released: Arc::new(AtomicU64::new(0)),
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
