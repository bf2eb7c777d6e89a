//! The cluster's log writer: takes the records sessions submit (the same
//! [`crate::store::WriterHandle`] a single box uses) and publishes them to JetStream,
//! pipelined, answering each submitter once JetStream has acked the message holding its record
//! (stored on `cluster.replicas` servers). Answers go out in submission order, so a barrier
//! answers only after everything before it is stored.
//!
//! Group commit, as on a single box: every record waiting when the publisher wakes goes out at
//! once, one message per subject (fix batches of one partition share a message). Under load a
//! message thus carries many phones' batches, and JetStream's per-message cost (store, ack,
//! delivery to every gateway) is shared by all of them. A message holding one batch carries
//! the message id `driver:first-last`; a group carries `node@start:n`. Commands always travel
//! alone (a route may be large).
//!
//! A publish that fails (NATS down, a timeout) is refused: its seqs are unsettled through the
//! refused hook first, so the phone keeps and resends them. If it was in fact stored (only the
//! ack was lost), the resend is dropped by the fold's dedupe (and, for a lone batch within
//! two minutes, by JetStream's duplicate window).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_nats::jetstream::message::PublishMessage;
use futures_util::stream::{FuturesOrdered, StreamExt};

use crate::cluster::handover::Positions;
use crate::cluster::lease::Owned;
use crate::cluster::nats::Cluster;
use crate::cluster::seq::lsn_of;
use crate::store::writer::{Answer, Queued, RefusedHook, RequestQueue};
use crate::store::LogError;
use milepost_core::fleet::engine::FleetCore;
use milepost_core::store::record::partition_of_depot;
use milepost_core::store::LogRecord;

/// Messages in flight at most (JetStream acks pipeline; more only queues in NATS).
const MAX_IN_FLIGHT: usize = 4096;
/// Records in one message at most.
const GROUP_MAX: usize = 256;
/// Estimated bytes in one message at most (JetStream refuses more than 1 MiB by default).
const GROUP_BYTES: usize = 256 * 1024;

type Pending = Pin<Box<dyn Future<Output = Outcome> + Send>>;

/// The depot of a record that does not name it (a command about a route, a parcel or a
/// driver), from this gateway's fold: where a gateway that folds only the partitions it owns
/// publishes it. `None`: not held here.
pub type DepotResolver = Arc<dyn Fn(&LogRecord) -> Option<String> + Send + Sync>;

/// What the publisher of a gateway that folds only the partitions it owns uses: each record
/// goes to its partition's subject; a command about a partition not held here is refused
/// (its owner takes it); a record of a held partition is answered once folded here, one of
/// another partition once JetStream has it.
#[derive(Clone)]
pub struct OwnedFold {
    /// Depots of commands that do not name theirs.
    pub resolve: DepotResolver,
    /// The partitions held here.
    pub owned: Arc<Owned>,
    /// Each partition's position.
    pub positions: Arc<Positions>,
}
type Entry = (Arc<LogRecord>, Answer);

/// What became of one message (or barrier).
enum Outcome {
    /// Stored at this stream sequence; each answer with whether its result is in doubt.
    Stored(u64, Vec<(Answer, bool)>),
    Failed(Vec<Entry>, String),
    Barrier(Answer),
    /// Not published: its depot is not known here (see [`DepotResolver`]).
    NotOwned(Arc<LogRecord>, Answer, String),
}

/// What a record is about, for a refusal.
fn describe(rec: &LogRecord) -> String {
    match rec {
        LogRecord::RouteResequenced { route_id, .. }
        | LogRecord::RouteCancelled { route_id, .. } => {
            format!("route {route_id}")
        }
        LogRecord::OutcomeReported { driver, .. } => format!("a route of driver {driver}"),
        LogRecord::InstructionsSet { tracking, .. }
        | LogRecord::DeliveryChanged { tracking, .. }
        | LogRecord::MessagePosted { tracking, .. } => format!("parcel {tracking}"),
        LogRecord::RoutesArchived { .. } => "those routes".into(),
        _ => "the record's depot".into(),
    }
}

/// Records bound for one subject, in submission order.
struct Group {
    subject: String,
    /// Its partition, when gateways fold only what they own.
    partition: Option<u32>,
    entries: Vec<Entry>,
    bytes: usize,
}

/// Rough encoded size of a record, to keep messages under JetStream's payload limit.
fn estimate(rec: &LogRecord) -> usize {
    match rec {
        LogRecord::Batch { entries, .. } => 96 + entries.len() * 64,
        _ => GROUP_BYTES,
    }
}

struct Publisher {
    cluster: Cluster,
    /// Set when gateways fold only what they own (`cluster.fold = "owned"`).
    owned: Option<OwnedFold>,
    node: String,
    n: u64,
    records: u64,
    pending: FuturesOrdered<Pending>,
}

impl Publisher {
    /// Sends one batch of queued requests: groups by subject in order of first appearance;
    /// a barrier sends what came before it first.
    async fn dispatch(&mut self, batch: Vec<Queued>) {
        let partitions = self.cluster.cfg.partitions;
        let mut groups: Vec<Group> = Vec::new();
        for q in batch {
            match q {
                Queued::Barrier { done } => {
                    for g in groups.drain(..) {
                        self.send(g).await;
                    }
                    self.pending
                        .push_back(Box::pin(async move { Outcome::Barrier(done) }));
                }
                Queued::Append { record, done } => {
                    let (subject, partition) = match &self.owned {
                        None => (self.cluster.names.subject(&record, partitions), None),
                        Some(o) => {
                            let depot = match record.depot() {
                                Some(_) => None,
                                None => (o.resolve)(&record),
                            };
                            let p = match &*record {
                                LogRecord::DepotTick { partition, .. } => Some(*partition),
                                r => r
                                    .depot()
                                    .or(depot.as_deref())
                                    .map(|d| partition_of_depot(d, partitions)),
                            };
                            // Phones may land anywhere; everything else about a partition
                            // is done by the gateway that holds it.
                            let batch = matches!(*record, LogRecord::Batch { .. });
                            match p.filter(|&p| batch || o.owned.holds(p)) {
                                Some(p) => (self.cluster.names.partition_subject(p), Some(p)),
                                None => {
                                    let what = describe(&record);
                                    self.pending.push_back(Box::pin(async move {
                                        Outcome::NotOwned(record, done, what)
                                    }));
                                    continue;
                                }
                            }
                        }
                    };
                    let size = estimate(&record);
                    let alone =
                        !matches!(*record, LogRecord::Batch { .. } | LogRecord::Tick { .. });
                    let fits = |g: &Group| {
                        g.subject == subject
                            && g.entries.len() < GROUP_MAX
                            && g.bytes + size <= GROUP_BYTES
                    };
                    match groups.iter().position(fits) {
                        Some(i) if !alone => {
                            groups[i].entries.push((record, done));
                            groups[i].bytes += size;
                        }
                        _ => groups.push(Group {
                            subject,
                            partition,
                            entries: vec![(record, done)],
                            bytes: size,
                        }),
                    }
                }
            }
        }
        for g in groups {
            self.send(g).await;
        }
    }

    /// Publishes one group as one message.
    async fn send(&mut self, g: Group) {
        self.n += 1;
        self.records += g.entries.len() as u64;
        let id = match g.entries.as_slice() {
            [(only, _)] => self.cluster.names.message_id(only, &self.node, self.n),
            _ => format!("g:{}:{}", self.node, self.n),
        };
        let records: Vec<&LogRecord> = g.entries.iter().map(|(r, _)| &**r).collect();
        let payload = match milepost_proto::encode(&records) {
            Ok(p) => p,
            Err(e) => {
                let reason = format!("unencodable records: {e}");
                self.pending
                    .push_back(Box::pin(async move { Outcome::Failed(g.entries, reason) }));
                return;
            }
        };
        let publish = PublishMessage::build()
            .payload(payload.into())
            .message_id(id);
        // A record of a partition held here is answered once folded here.
        let fold = match (&self.owned, g.partition) {
            (Some(o), Some(p)) if o.owned.holds(p) => Some((o.clone(), p)),
            _ => None,
        };
        // A command checked as held when grouped but no longer held now: its result is not
        // this gateway's to know.
        let lost = self.owned.is_some() && g.partition.is_some() && fold.is_none();
        match self.cluster.js.send_publish(g.subject, publish).await {
            Ok(ack) => self.pending.push_back(Box::pin(async move {
                match ack.await {
                    Ok(a) => {
                        let mut in_doubt = lost;
                        if let Some((o, p)) = fold {
                            let last = lsn_of(a.sequence, g.entries.len().saturating_sub(1));
                            in_doubt = !o.positions.folded(p, last, || !o.owned.holds(p)).await;
                        }
                        // Stored, but the partition left this gateway before folding it: a
                        // phone's batch is stored all the same (its ack is true), a command's
                        // result is the new holder's and unknown here.
                        let answers = g
                            .entries
                            .into_iter()
                            .map(|(r, done)| {
                                let command = !matches!(
                                    *r,
                                    LogRecord::Batch { .. } | LogRecord::DepotTick { .. }
                                );
                                (done, in_doubt && command)
                            })
                            .collect();
                        Outcome::Stored(a.sequence, answers)
                    }
                    Err(e) => Outcome::Failed(g.entries, e.to_string()),
                }
            })),
            Err(e) => {
                let reason = e.to_string();
                self.pending
                    .push_back(Box::pin(async move { Outcome::Failed(g.entries, reason) }));
            }
        }
    }
}

/// Sleeps until `at` (forever when `None`; the caller disables the branch then).
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Runs until every handle is gone or a shutdown is asked for, then answers what is in flight.
pub async fn run_publisher(
    cluster: Cluster,
    owned: Option<OwnedFold>,
    mut queue: RequestQueue,
    on_refused: RefusedHook,
) {
    let started = chrono::Utc::now().timestamp_millis();
    let mut p = Publisher {
        owned,
        node: format!("{}@{started}", cluster.node),
        cluster,
        n: 0,
        records: 0,
        pending: FuturesOrdered::new(),
    };
    let linger = std::time::Duration::from_micros(p.cluster.cfg.group_linger_us);
    let mut last_lsn = 0u64;
    let mut closed = false;
    // Requests waiting to go out, and when they go: at once when nothing is in flight, else
    // after the linger (acks keep being answered meanwhile).
    let mut buf: Vec<Queued> = Vec::new();
    let mut flush_at: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            req = queue.next(),
                if !closed && buf.len() < GROUP_MAX && p.pending.len() < MAX_IN_FLIGHT =>
            {
                match req {
                    None => closed = true,
                    Some(q) => {
                        buf.push(q);
                        while buf.len() < GROUP_MAX {
                            match queue.try_next() {
                                Ok(Some(q)) => buf.push(q),
                                Ok(None) => break,
                                Err(()) => {
                                    closed = true;
                                    break;
                                }
                            }
                        }
                        if flush_at.is_none() {
                            let now = tokio::time::Instant::now();
                            let at_once = p.pending.is_empty() || linger.is_zero();
                            flush_at = Some(if at_once { now } else { now + linger });
                        }
                    }
                }
            }
            _ = sleep_until(flush_at), if flush_at.is_some() => {
                flush_at = None;
                p.dispatch(std::mem::take(&mut buf)).await;
            }
            Some(outcome) = p.pending.next(), if !p.pending.is_empty() => match outcome {
                Outcome::Stored(seq, answers) => {
                    for (i, (done, in_doubt)) in answers.into_iter().enumerate() {
                        let lsn = lsn_of(seq, i);
                        last_lsn = last_lsn.max(lsn);
                        done.send(match in_doubt {
                            false => Ok(lsn),
                            true => Err(LogError::InDoubt),
                        });
                    }
                }
                Outcome::Barrier(done) => done.send(Ok(last_lsn + 1)),
                Outcome::NotOwned(record, done, what) => {
                    on_refused(&record);
                    done.send(Err(LogError::NotOwned(what)));
                }
                Outcome::Failed(entries, reason) => {
                    tracing::warn!(error = %reason, records = entries.len(),
                        "JetStream publish failed; the phones will resend");
                    for (record, done) in entries {
                        on_refused(&record);
                        done.send(Err(LogError::Closed));
                    }
                }
            },
            else => {}
        }
        if !buf.is_empty() && (closed || buf.len() >= GROUP_MAX) {
            flush_at = None;
            p.dispatch(std::mem::take(&mut buf)).await;
        }
        if closed && buf.is_empty() && p.pending.is_empty() {
            break;
        }
    }
    tracing::info!(
        messages = p.n,
        records = p.records,
        "cluster publisher stopped"
    );
}

/// The [`DepotResolver`] of a gateway whose fold is `core`.
pub fn depot_resolver(core: Arc<std::sync::Mutex<FleetCore>>) -> DepotResolver {
    Arc::new(move |rec| {
        let core = crate::state::lock(&core);
        let depot = match rec {
            LogRecord::RouteResequenced { route_id, .. }
            | LogRecord::RouteCancelled { route_id, .. } => core.depot_of_route(route_id),
            LogRecord::OutcomeReported { driver, .. } => core.depot_of_driver(driver),
            LogRecord::InstructionsSet { tracking, .. }
            | LogRecord::DeliveryChanged { tracking, .. }
            | LogRecord::MessagePosted { tracking, .. } => core.depot_of_parcel(tracking),
            LogRecord::RoutesArchived { routes, .. } => {
                routes.first().and_then(|r| core.depot_of_route(r))
            }
            _ => None,
        };
        depot.map(|d| d.0.clone())
    })
}
