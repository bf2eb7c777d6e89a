//! What a group commit hands on: the [`Committed`] records of a [`CommitGroup`] with the
//! [`Answers`] of their submitters, where they go ([`CommitSink`]) and the hook called with a
//! refused record ([`RefusedHook`]).

use std::sync::Arc;

use crate::store::writer::queue::Done;
use milepost_core::store::LogRecord;

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
pub struct Answers(pub(super) Vec<Waiter>);

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

/// A submitter waiting on a group, with the record number it is answered with.
pub(super) type Waiter = (Done, u64);
