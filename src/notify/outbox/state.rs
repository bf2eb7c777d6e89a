//! The outbox's state (queue in memory, lanes, rate windows, cursors) and the names its parts
//! share; [`super`] runs it, [`super::intake`] fills it, [`super::rules`] judges its messages.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::Arc;
use std::time::Duration;

use crate::notify::compose::Composer;
use crate::notify::contact::Channel;
use crate::notify::handle::{Job, JobDone, Notify};
use crate::notify::plan::Quiet;
use crate::notify::store::{Batch, Queued};

/// Milestones visited per page (most are ETA refreshes, skipped without a copy).
pub(super) const PAGE: usize = 2_000;
/// New messages per round at most, and their texts' bytes: a cluster's round is written with
/// its new messages in one message of the journal, well under NATS's 1 MiB payload limit.
const ROUND_MESSAGES: usize = 256;
const ROUND_TEXT_BYTES: usize = 256 * 1024;

/// True when a round holds as many new messages as one round takes.
pub(super) fn round_full(b: &Batch) -> bool {
    let text: usize = b
        .enqueue
        .iter()
        .map(|q| {
            let r = &q.rendered;
            // JSON escaping and the other fields: a generous allowance.
            2 * (r.text.len() + r.subject.as_ref().map_or(0, String::len)) + 512
        })
        .sum();
    b.enqueue.len() >= ROUND_MESSAGES || text >= ROUND_TEXT_BYTES
}
/// Longest sleep between rounds when nothing happens, ms.
pub(super) const IDLE_MS: u64 = 50;
/// How long answers are gathered before a round commits them.
pub(super) const GATHER: Duration = Duration::from_millis(5);
/// Cursor name of the parcel milestones.
pub(super) const MILESTONES: &str = "milestones";

/// A parcel's (or a depot's alerts') messages on one channel go out in order.
pub(super) type Lane = (String, Channel);

pub(super) fn lane_of(q: &Queued) -> Lane {
    let who = match &q.tracking {
        Some(t) => format!("p:{t}"),
        None => format!(
            "a:{}:{}:{}",
            q.depot,
            q.route,
            q.alert.as_deref().unwrap_or("")
        ),
    };
    (who, q.channel)
}

/// The outbox's state, owned by its thread.
pub struct Outbox {
    pub(super) notify: Arc<Notify>,
    pub(super) composer: Composer,
    pub(super) quiet: Option<Quiet>,
    pub(super) jobs: Option<SyncSender<Job>>,
    pub(super) done: Receiver<JobDone>,
    pub(super) items: BTreeMap<u64, Queued>,
    pub(super) lanes: HashMap<Lane, VecDeque<u64>>,
    pub(super) in_flight: HashSet<Lane>,
    /// Send times per address key in the last hour.
    pub(super) rate: HashMap<String, VecDeque<i64>>,
    pub(super) cursor: Option<u64>,
    pub(super) depot_cursors: HashMap<String, u64>,
    pub(super) next_id: u64,
    /// Written next round (drops decided while dispatching).
    pub(super) carry: Batch,
    /// When contacts past their retention are next erased, UTC ms.
    pub(super) next_sweep: i64,
    /// The term this gateway leads in (a cluster's; `None` on a single gateway).
    pub(super) term: Option<u64>,
    /// Where the milestones and each alerting depot's updates stood when the gateway started:
    /// where reading begins when the store has no cursor yet.
    pub(super) start: (u64, HashMap<String, u64>),
}

/// The cursor name of a depot's alerts.
pub(super) fn depot_cursor(depot: &str) -> String {
    format!("depot:{depot}")
}
