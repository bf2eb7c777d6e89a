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
    /// When a cluster gateway folds only the partitions it owns (each read on its own): the
    /// partitions of depots the records belong to, each with its position after them, which
    /// the applier publishes once they are folded.
    pub positions: Vec<(u32, u64)>,
    /// Partitions of depots to forget before the records are folded, of how many: a cluster
    /// gateway that folds only what it owns lost their leases.
    pub release: Option<(Vec<u32>, u32)>,
    /// A partition's image to install after the release and before the records: a gateway
    /// taking a partition over starts from its newest snapshot.
    pub install: Option<Box<milepost_core::store::image::PartImage>>,
}

impl From<Vec<Committed>> for CommitGroup {
    fn from(records: Vec<Committed>) -> CommitGroup {
        CommitGroup {
            records,
            ..CommitGroup::default()
        }
    }
}

/// Submitters of a durable group, each answered with its record number by
/// [`Answers::complete`].
#[derive(Default)]
pub struct Answers(pub(super) Vec<Waiter>);

impl Answers {
    /// Adds `other`'s submitters to these.
    pub fn extend(&mut self, other: Answers) {
        self.0.extend(other.0);
    }

    /// One waiter, answered when the group it travels with is folded: someone who hands
    /// records to the applier itself (a cluster's consumer) learns when they are applied.
    pub fn waiter() -> (
        Answers,
        tokio::sync::oneshot::Receiver<Result<u64, crate::store::log::LogError>>,
    ) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        (Answers(vec![(tx, 0)]), rx)
    }

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
