//! The notification store's journal in a cluster ([`NatsJournal`]): a JetStream stream of its
//! own (`PREFIX_NOTIFY`, subjects `PREFIX-notify.>`) that every gateway reads in order and
//! applies to its copy of `notify.redb` ([`run_applier`]); see [`crate::notify::journal`].
//!
//! - `ROOT.ops`: contacts erased, opt-outs, dead letters dismissed or retried;
//! - `ROOT.c.HEX`: one parcel's contact (`HEX`: its tracking number in hex), so that erasing
//!   the contact also purges it from the stream, not only from every gateway's copy;
//! - `ROOT.round`: the leader's rounds and the `Lead` markers. Each is published with
//!   `Nats-Expected-Last-Subject-Sequence` set to the last one this gateway knows of, so only
//!   one gateway's rounds are ever accepted after a marker: a gateway that still thinks it
//!   leads (paused, partitioned) has its next round refused and stands down.
//!
//! A gateway leads while it holds the lease of partition 0 (it also sends the webhooks). To
//! start leading it writes a `Lead` marker and waits until its copy has applied it: its copy
//! then holds every round any leader wrote before. The stream keeps what it holds for
//! `history.retention_days` plus a day (contacts are erased after that anyway); a gateway that
//! restarts reads on from the sequence its copy records.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, DeliverPolicy};
use async_nats::jetstream::{self, stream};
use async_nats::HeaderMap;
use futures_util::StreamExt;
use tokio::sync::watch;

use crate::cluster::lease::Owned;
use crate::cluster::nats::{Cluster, ClusterError};
use crate::notify::handle::Notify;
use crate::notify::journal::{Journal, JournalFuture, Op, RoundError};
use crate::notify::store::{Batch, StoreError};
use crate::state::lock;

/// How long a write waits for the stream's acknowledgement and this gateway's copy.
const WAIT: Duration = Duration::from_secs(10);

/// The journal of a cluster's notification store.
pub struct NatsJournal {
    js: jetstream::Context,
    stream: String,
    root: String,
    node: String,
    owned: Arc<Owned>,
    /// The journal's sequence this gateway's copy has applied.
    applied: watch::Receiver<u64>,
    rt: tokio::runtime::Handle,
    lead: Mutex<Option<Lead>>,
    terms: AtomicU64,
}

/// A term of leading.
#[derive(Clone, Copy)]
struct Lead {
    term: u64,
    /// The sequence of the last round (or marker) on `ROOT.round`.
    last: u64,
    /// Rounds written in this term (the message ids' counter).
    rounds: u64,
}

/// Creates (or opens) the journal's stream; its messages are kept `max_age`.
pub async fn open_stream(cluster: &Cluster, max_age: Duration) -> Result<(), ClusterError> {
    let names = &cluster.names;
    cluster
        .js
        .get_or_create_stream(stream::Config {
            name: names.notify_stream.clone(),
            description: Some("milepost notification journal".into()),
            subjects: vec![format!("{}.>", names.notify_root)],
            storage: stream::StorageType::File,
            num_replicas: cluster.cfg.replicas,
            max_age,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        })
        .await
        .map(|_| ())
        .map_err(|e| ClusterError::Setup {
            what: format!("stream {}", names.notify_stream),
            reason: e.to_string(),
        })
}

impl NatsJournal {
    /// The journal of `cluster`, leading while `owned` holds partition 0, waiting on
    /// `applied` (fed by [`run_applier`]). Call from the runtime.
    pub fn new(cluster: &Cluster, owned: Arc<Owned>, applied: watch::Receiver<u64>) -> Self {
        NatsJournal {
            js: cluster.js.clone(),
            stream: cluster.names.notify_stream.clone(),
            root: cluster.names.notify_root.clone(),
            node: cluster.node.clone(),
            owned,
            applied,
            rt: tokio::runtime::Handle::current(),
            lead: Mutex::new(None),
            terms: AtomicU64::new(0),
        }
    }

    fn round_subject(&self) -> String {
        format!("{}.round", self.root)
    }

    fn subject_of(&self, op: &Op) -> String {
        match op {
            Op::Contacts(c) if c.len() == 1 => contact_subject(&self.root, &c[0].0),
            Op::Round(_) | Op::Lead { .. } => self.round_subject(),
            _ => format!("{}.ops", self.root),
        }
    }

    /// Publishes `op`; its sequence once the stream has it.
    async fn publish(&self, op: &Op, headers: Option<HeaderMap>) -> Result<u64, String> {
        let payload = serde_json::to_vec(op).map_err(|e| e.to_string())?;
        let subject = self.subject_of(op);
        let ack = match headers {
            Some(h) => {
                self.js
                    .publish_with_headers(subject, h, payload.into())
                    .await
            }
            None => self.js.publish(subject, payload.into()).await,
        }
        .map_err(|e| e.to_string())?;
        let ack = tokio::time::timeout(WAIT, ack)
            .await
            .map_err(|_| "no acknowledgement from JetStream".to_string())?;
        ack.map(|a| a.sequence).map_err(|e| e.to_string())
    }

    /// Waits until this gateway's copy has applied `seq`.
    async fn applied(&self, seq: u64) -> Result<(), String> {
        let mut rx = self.applied.clone();
        let reached = tokio::time::timeout(WAIT, rx.wait_for(|a| *a >= seq))
            .await
            .map(|r| r.is_ok());
        match reached {
            Ok(true) => Ok(()),
            Ok(false) => Err("the journal's reader stopped".into()),
            Err(_) => Err(format!("this gateway's copy did not reach {seq} in time")),
        }
    }

    /// Publishes on `ROOT.round` after `last` (refused if another gateway wrote there since)
    /// and waits until applied here; the new last sequence.
    async fn fenced(&self, op: &Op, last: u64, id: String) -> Result<u64, String> {
        let mut h = HeaderMap::new();
        h.insert(
            async_nats::header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE,
            last.to_string().as_str(),
        );
        // A resend of a round whose acknowledgement was lost is answered with the first
        // copy's sequence instead of being stored twice.
        h.insert(async_nats::header::NATS_MESSAGE_ID, id.as_str());
        let seq = self.publish(op, Some(h)).await?;
        self.applied(seq).await?;
        Ok(seq)
    }

    /// Becomes the leader: the last round's sequence, a marker after it, and the marker
    /// applied here.
    async fn start_lead(&self) -> Result<Lead, String> {
        let stream = self
            .js
            .get_stream_no_info(&self.stream)
            .await
            .map_err(|e| e.to_string())?;
        let last = match stream
            .get_last_raw_message_by_subject(&self.round_subject())
            .await
        {
            Ok(m) => m.sequence,
            Err(e)
                if e.kind()
                    == async_nats::jetstream::stream::LastRawMessageErrorKind::NoMessageFound =>
            {
                0
            }
            Err(e) => return Err(e.to_string()),
        };
        let term = self.terms.fetch_add(1, Ordering::Relaxed) + 1;
        let marker = Op::Lead {
            node: self.node.clone(),
        };
        let id = format!("{}:{}:{term}:lead", self.node, std::process::id());
        let last = self.fenced(&marker, last, id).await?;
        Ok(Lead {
            term,
            last,
            rounds: 0,
        })
    }
}

/// The secret opt-out links and address keys are signed with, the same on every gateway: the
/// first gateway's own `notify.key` (a gateway that was alone before keeps its opt-outs), kept
/// in the state bucket; every later gateway takes it from there.
pub async fn shared_secret(cluster: &Cluster, mine: &[u8]) -> Result<Vec<u8>, ClusterError> {
    let setup = |e: String| ClusterError::Setup {
        what: "notification key".into(),
        reason: e,
    };
    let hex: String = mine.iter().map(|b| format!("{b:02x}")).collect();
    if cluster
        .state_kv
        .create("notify-key", hex.into())
        .await
        .is_ok()
    {
        return Ok(mine.to_vec());
    }
    let theirs = cluster
        .state_kv
        .get("notify-key")
        .await
        .map_err(|e| setup(e.to_string()))?
        .ok_or_else(|| setup("the state bucket lost its notify-key".into()))?;
    let text = std::str::from_utf8(&theirs).map_err(|e| setup(e.to_string()))?;
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| setup("notify-key is not hex".into()))
        })
        .collect()
}

/// Seeds a new cluster's empty journal with what this gateway's store holds (a gateway that
/// ran alone, joining a cluster on its data directory), so the gateways that join after it hold
/// its contacts, opt-outs, queue, dead letters and message logs too. Does nothing when the
/// journal has anything or this store has read it before. Returns the operations written.
pub async fn seed(cluster: &Cluster, notify: &Arc<Notify>) -> Result<usize, ClusterError> {
    let setup = |e: String| ClusterError::Setup {
        what: format!("seeding {}", cluster.names.notify_stream),
        reason: e,
    };
    let n = notify.clone();
    let ops = tokio::task::spawn_blocking(move || -> Result<Vec<Op>, StoreError> {
        if n.store.journal_seq()? != 0 {
            return Ok(Vec::new());
        }
        n.store.export(PER_ROUND)
    })
    .await
    .map_err(|e| setup(e.to_string()))?
    .map_err(|e| setup(e.to_string()))?;
    if ops.is_empty() {
        return Ok(0);
    }
    let stream = cluster
        .js
        .get_stream_no_info(&cluster.names.notify_stream)
        .await
        .map_err(|e| setup(e.to_string()))?;
    let info = stream.get_info().await.map_err(|e| setup(e.to_string()))?;
    if info.state.last_sequence != 0 {
        tracing::warn!(
            "this gateway's notification store predates the cluster's journal, which holds \
             other gateways' already: it follows theirs (see docs/NOTIFY.md, upgrading)"
        );
        return Ok(0);
    }
    let root = &cluster.names.notify_root;
    let total = ops.len();
    let mut acks = Vec::new();
    let mut rounds = Vec::new();
    for op in ops {
        let subject = match &op {
            Op::Round(_) => {
                rounds.push(op);
                continue;
            }
            Op::Contacts(c) => contact_subject(root, &c[0].0),
            _ => format!("{root}.ops"),
        };
        let payload = serde_json::to_vec(&op).map_err(|e| setup(e.to_string()))?;
        let ack = cluster.js.publish(subject, payload.into()).await;
        acks.push(ack.map_err(|e| setup(e.to_string()))?);
        if acks.len() >= 1024 {
            for a in acks.drain(..) {
                a.await.map_err(|e| setup(e.to_string()))?;
            }
        }
    }
    for a in acks.drain(..) {
        a.await.map_err(|e| setup(e.to_string()))?;
    }
    // The rounds only where no round is yet: a gateway that already leads keeps its own.
    let mut last = 0;
    for (i, op) in rounds.into_iter().enumerate() {
        let mut h = HeaderMap::new();
        h.insert(
            async_nats::header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE,
            last.to_string().as_str(),
        );
        let payload = serde_json::to_vec(&op).map_err(|e| setup(e.to_string()))?;
        let ack = cluster
            .js
            .publish_with_headers(format!("{root}.round"), h, payload.into())
            .await
            .map_err(|e| setup(e.to_string()))?
            .await;
        match ack {
            Ok(a) => last = a.sequence,
            Err(e) if i == 0 => {
                tracing::warn!(error = %e, "another gateway leads already; outbox not seeded");
                return Ok(0);
            }
            Err(e) => return Err(setup(e.to_string())),
        }
    }
    Ok(total)
}

/// Messages (or log lines) per round of a seed, as the outbox's rounds.
const PER_ROUND: usize = 256;

/// The subject of a parcel's contact.
fn contact_subject(root: &str, tracking: &str) -> String {
    let hex: String = tracking.bytes().map(|b| format!("{b:02x}")).collect();
    format!("{root}.c.{hex}")
}

impl Journal for NatsJournal {
    fn write(&self, op: Op) -> JournalFuture<'_> {
        Box::pin(async move {
            let err = StoreError::Journal;
            let mut last = 0;
            match op {
                // One message per parcel: erasing one purges its own subject.
                Op::Contacts(contacts) => {
                    for c in contacts {
                        last = self
                            .publish(&Op::Contacts(vec![c]), None)
                            .await
                            .map_err(err)?;
                    }
                }
                Op::Erase(tracking) => {
                    let op = Op::Erase(tracking.clone());
                    last = self.publish(&op, None).await.map_err(err)?;
                    self.applied(last).await.map_err(err)?;
                    let stream = self
                        .js
                        .get_stream_no_info(&self.stream)
                        .await
                        .map_err(|e| err(e.to_string()))?;
                    stream
                        .purge()
                        .filter(contact_subject(&self.root, &tracking))
                        .await
                        .map_err(|e| err(e.to_string()))?;
                }
                op => last = self.publish(&op, None).await.map_err(err)?,
            }
            self.applied(last).await.map_err(err)
        })
    }

    fn lead(&self) -> Option<u64> {
        if !self.owned.is_leader() {
            lock(&self.lead).take();
            return None;
        }
        if let Some(l) = *lock(&self.lead) {
            return Some(l.term);
        }
        match self.rt.block_on(self.start_lead()) {
            Ok(l) => {
                *lock(&self.lead) = Some(l);
                Some(l.term)
            }
            Err(e) => {
                tracing::warn!(error = %e, "not leading the notification outbox yet");
                None
            }
        }
    }

    fn round(&self, b: &Batch) -> Result<(), RoundError> {
        let Some(mut l) = *lock(&self.lead) else {
            return Err(RoundError::Lost("not leading".into()));
        };
        l.rounds += 1;
        let id = format!(
            "{}:{}:{}:{}",
            self.node,
            std::process::id(),
            l.term,
            l.rounds
        );
        let op = Op::Round(b.clone());
        match self.rt.block_on(self.fenced(&op, l.last, id)) {
            Ok(seq) => {
                l.last = seq;
                *lock(&self.lead) = Some(l);
                Ok(())
            }
            Err(e) => {
                lock(&self.lead).take();
                Err(RoundError::Lost(e))
            }
        }
    }
}

/// Reads the journal from after the sequence `notify`'s store records, applies every
/// operation in order and publishes the sequence reached on `applied`. Runs until the store
/// is closed (the gateway stops); reopens its consumer after a failure.
pub async fn run_applier(cluster: Cluster, notify: Arc<Notify>, applied: watch::Sender<u64>) {
    loop {
        match read(&cluster, &notify, &applied).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, "notification journal reader failed; reopening");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// Reads until the store closes (`Ok`) or a failure (`Err`).
async fn read(
    cluster: &Cluster,
    notify: &Arc<Notify>,
    applied: &watch::Sender<u64>,
) -> Result<(), String> {
    let n = notify.clone();
    let from = match tokio::task::spawn_blocking(move || n.store.journal_seq()).await {
        Ok(Ok(s)) => s,
        Ok(Err(StoreError::Closed)) => return Ok(()),
        Ok(Err(e)) => return Err(e.to_string()),
        Err(e) => return Err(e.to_string()),
    };
    applied.send_if_modified(|a| {
        let moved = from > *a;
        *a = (*a).max(from);
        moved
    });
    let stream = cluster
        .js
        .get_stream(&cluster.names.notify_stream)
        .await
        .map_err(|e| e.to_string())?;
    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: from + 1,
            },
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    let mut messages = consumer.messages().await.map_err(|e| e.to_string())?;
    while let Some(m) = messages.next().await {
        let m = m.map_err(|e| e.to_string())?;
        let seq = m.info().map_err(|e| e.to_string())?.stream_sequence;
        if seq <= *applied.borrow() {
            continue;
        }
        match serde_json::from_slice::<Op>(&m.payload) {
            Ok(op) => {
                let n = notify.clone();
                let done = tokio::task::spawn_blocking(move || n.apply(&op, Some(seq)))
                    .await
                    .map_err(|e| e.to_string())?;
                match done {
                    Ok(()) => {}
                    Err(StoreError::Closed) => return Ok(()),
                    // Read again from the last applied one.
                    Err(e) => return Err(e.to_string()),
                }
            }
            // Every gateway skips it alike.
            Err(e) => tracing::error!(seq, error = %e, "undecodable notification journal entry"),
        }
        applied.send_replace(seq);
    }
    Err("the consumer ended".into())
}
