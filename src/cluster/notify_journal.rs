//! The notification store's journal in a cluster ([`NatsJournal`]): a JetStream stream of its
//! own (`PREFIX_NOTIFY`, subjects `PREFIX-notify.>`) that every gateway reads in order and
//! applies to its copy of `notify.redb` ([`crate::cluster::notify_apply`]); see
//! [`crate::notify::journal`].
//!
//! - `ROOT.ops`: contacts erased, opt-outs (also kept for good in the state bucket:
//!   [`crate::cluster::notify_seed`]), dead letters dismissed or retried, late answers;
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

use async_nats::jetstream::{self, stream};
use async_nats::HeaderMap;

use crate::cluster::lease::Owned;
use crate::cluster::nats::{after_on_subject, Cluster, ClusterError};
use crate::cluster::notify_apply::Progress;
use crate::notify::journal::{Journal, JournalFuture, Op, RoundError};
use crate::notify::store::{Batch, StoreError};
use crate::state::lock;

/// How long a write waits for the stream's acknowledgement and this gateway's copy.
const WAIT: Duration = Duration::from_secs(10);
/// How long the outbox waits for its copy to catch up before it reads milestones.
const CATCH_UP: Duration = Duration::from_secs(2);
/// A round larger than this, serialized, is written in parts (NATS takes 1 MiB at most).
const ROUND_BYTES: usize = 768 * 1024;
/// Answers per part of a round written in parts.
const PART: usize = 128;

/// The journal of a cluster's notification store.
pub struct NatsJournal {
    cluster: Cluster,
    owned: Arc<Owned>,
    progress: Arc<Progress>,
    rt: tokio::runtime::Handle,
    lead: Mutex<Option<Lead>>,
    terms: AtomicU64,
    /// This process's own, in every message id it writes: a restarted gateway of the same name
    /// (and, in a container, the same pid) never collides with its last life's ids.
    nonce: u64,
}

/// A term of leading.
#[derive(Clone, Copy)]
struct Lead {
    term: u64,
    /// The sequence of the last round (or marker) on `ROOT.round`.
    last: u64,
    /// Messages written in this term (the message ids' counter).
    written: u64,
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

/// A round as the journal carries it: a finished message needs only its id and parcel (its
/// log line says the rest), so its text and links are left out (they were half a round's
/// bytes).
fn slim(b: &Batch) -> Batch {
    let mut b = b.clone();
    for (q, _) in &mut b.finished {
        q.rendered = Default::default();
        q.unsubscribe = None;
    }
    b
}

/// A round as the parts it is written in: itself when small enough, else its answers in parts
/// of [`PART`] (each stands on its own), then the rest (at most the outbox's cap of new
/// messages, their once-keys and the cursors: one part, so the cursor never moves without
/// its messages).
fn parts(b: &Batch) -> Vec<Batch> {
    let size = serde_json::to_vec(b).map_or(usize::MAX, |v| v.len());
    if size <= ROUND_BYTES {
        return vec![b.clone()];
    }
    fn chunked<T: Clone>(out: &mut Vec<Batch>, items: &[T], part: impl Fn(Vec<T>) -> Batch) {
        out.extend(items.chunks(PART).map(|c| part(c.to_vec())));
    }
    let mut out = Vec::new();
    chunked(&mut out, &b.retry, |retry| Batch {
        retry,
        ..Batch::default()
    });
    chunked(&mut out, &b.finished, |finished| Batch {
        finished,
        ..Batch::default()
    });
    chunked(&mut out, &b.dead, |dead| Batch {
        dead,
        ..Batch::default()
    });
    chunked(&mut out, &b.logs, |logs| Batch {
        logs,
        ..Batch::default()
    });
    out.push(Batch {
        enqueue: b.enqueue.clone(),
        once: b.once.clone(),
        cursors: b.cursors.clone(),
        undead: b.undead.clone(),
        next_id: b.next_id,
        ..Batch::default()
    });
    out.retain(|p| !p.is_empty());
    out
}

impl NatsJournal {
    /// The journal of `cluster`, leading while `owned` holds partition 0, waiting on
    /// `progress` (fed by [`crate::cluster::notify_apply::run_applier`]). Call from the
    /// runtime.
    pub fn new(cluster: &Cluster, owned: Arc<Owned>, progress: Arc<Progress>) -> Self {
        NatsJournal {
            cluster: cluster.clone(),
            owned,
            progress,
            rt: tokio::runtime::Handle::current(),
            lead: Mutex::new(None),
            terms: AtomicU64::new(0),
            nonce: rand::random(),
        }
    }

    fn round_subject(&self) -> String {
        format!("{}.round", self.cluster.names.notify_root)
    }

    /// The journal's stream (no request: its info is asked for where needed).
    async fn stream(&self) -> Result<stream::Stream<()>, String> {
        self.cluster
            .js
            .get_stream_no_info(&self.cluster.names.notify_stream)
            .await
            .map_err(|e| e.to_string())
    }

    /// Sends `op`; the acknowledgement to wait on.
    async fn send(
        &self,
        op: &Op,
        headers: Option<HeaderMap>,
    ) -> Result<jetstream::context::PublishAckFuture, String> {
        let payload = serde_json::to_vec(op).map_err(|e| e.to_string())?;
        let subject = self.cluster.names.notify_subject(op);
        let js = &self.cluster.js;
        match headers {
            Some(h) => js.publish_with_headers(subject, h, payload.into()).await,
            None => js.publish(subject, payload.into()).await,
        }
        .map_err(|e| e.to_string())
    }

    /// The sequence the stream gave a message (a duplicate of one stored before is refused:
    /// what it was meant to say may not be what was stored).
    async fn acked(ack: jetstream::context::PublishAckFuture) -> Result<u64, String> {
        let ack = tokio::time::timeout(WAIT, std::future::IntoFuture::into_future(ack))
            .await
            .map_err(|_| "no acknowledgement from JetStream".to_string())?
            .map_err(|e| e.to_string())?;
        if ack.duplicate {
            return Err(format!("message taken for a duplicate of {}", ack.sequence));
        }
        Ok(ack.sequence)
    }

    /// Waits until this gateway's copy has applied `seq`.
    async fn applied(&self, seq: u64, wait: Duration) -> Result<(), String> {
        let mut rx = self.progress.applied.subscribe();
        let reached = tokio::time::timeout(wait, rx.wait_for(|a| *a >= seq))
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
    async fn fenced(&self, op: &Op, last: u64, n: u64, term: u64) -> Result<u64, String> {
        let mut h = after_on_subject(last);
        let id = format!("{}:{:016x}:{term}:{n}", self.cluster.node, self.nonce);
        h.insert(async_nats::header::NATS_MESSAGE_ID, id.as_str());
        let seq = Self::acked(self.send(op, Some(h)).await?).await?;
        self.applied(seq, WAIT).await?;
        Ok(seq)
    }

    /// Becomes the leader: the last round's sequence, a marker after it, and the marker
    /// applied here.
    async fn start_lead(&self) -> Result<Lead, String> {
        let stream = self.stream().await?;
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
            node: self.cluster.node.clone(),
        };
        let last = self.fenced(&marker, last, 0, term).await?;
        Ok(Lead {
            term,
            last,
            written: 0,
        })
    }

    /// Writes `op` (unfenced) and waits until applied here.
    async fn write_one(&self, op: &Op) -> Result<(), String> {
        let seq = Self::acked(self.send(op, None).await?).await?;
        self.applied(seq, WAIT).await
    }

    async fn write_op(&self, op: Op) -> Result<(), String> {
        match op {
            // One message per parcel (erasing one purges its subject), sent all at once.
            Op::Contacts(contacts) => {
                let mut acks = Vec::with_capacity(contacts.len());
                for c in contacts {
                    acks.push(self.send(&Op::Contacts(vec![c]), None).await?);
                }
                let mut last = 0;
                for a in acks {
                    last = last.max(Self::acked(a).await?);
                }
                self.applied(last, WAIT).await
            }
            Op::Erase(tracking) => {
                let op = Op::Erase(tracking.clone());
                let seq = Self::acked(self.send(&op, None).await?).await?;
                self.applied(seq, WAIT).await?;
                // What was on the parcel's subject before the erasure (a contact set again
                // after it stays).
                self.stream()
                    .await?
                    .purge()
                    .filter(self.cluster.names.notify_contact_subject(&tracking))
                    .sequence(seq)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
            Op::OptOut { key, at_ms } => {
                crate::cluster::notify_seed::remember_opt_out(&self.cluster, &key, at_ms).await?;
                self.write_one(&Op::OptOut { key, at_ms }).await
            }
            op => self.write_one(&op).await,
        }
    }
}

impl Journal for NatsJournal {
    fn write(&self, op: Op) -> JournalFuture<'_> {
        Box::pin(async move { self.write_op(op).await.map_err(StoreError::Journal) })
    }

    fn lead(&self) -> Option<u64> {
        if !self.owned.is_leader() || self.progress.gap.load(Ordering::Relaxed) {
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

    fn leads(&self) -> bool {
        lock(&self.lead).is_some() && self.owned.is_leader()
    }

    fn caught_up(&self) -> bool {
        let reached = self.rt.block_on(async {
            let last = self
                .stream()
                .await?
                .get_info()
                .await
                .map_err(|e| e.to_string())?
                .state
                .last_sequence;
            self.applied(last, CATCH_UP).await
        });
        reached.is_ok()
    }

    fn round(&self, b: &Batch) -> Result<(), RoundError> {
        let Some(mut l) = *lock(&self.lead) else {
            return Err(RoundError::Lost("not leading".into()));
        };
        for part in parts(&slim(b)) {
            l.written += 1;
            let op = Op::Round(part);
            match self
                .rt
                .block_on(self.fenced(&op, l.last, l.written, l.term))
            {
                Ok(seq) => {
                    l.last = seq;
                    *lock(&self.lead) = Some(l);
                }
                Err(e) => {
                    lock(&self.lead).take();
                    return Err(RoundError::Lost(e));
                }
            }
        }
        Ok(())
    }

    fn answers(&self, b: &Batch) -> Result<(), StoreError> {
        self.rt
            .block_on(async {
                for part in parts(&slim(b)) {
                    self.write_one(&Op::Answers(part)).await?;
                }
                Ok(())
            })
            .map_err(StoreError::Journal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::contact::Channel;
    use crate::notify::plan::Milestone;
    use crate::notify::store::{MessageLog, Queued};
    use crate::notify::templates::Rendered;

    fn q(id: u64) -> Queued {
        Queued {
            id,
            tracking: Some(format!("T{id}")),
            depot: "D".into(),
            route: "R".into(),
            milestone: Some(Milestone::Delivered),
            alert: None,
            channel: Channel::Sms,
            to: None,
            rendered: Rendered {
                subject: None,
                text: "x".repeat(2_000),
                whatsapp: None,
            },
            unsubscribe: None,
            queued_ms: 1,
            attempts: 1,
            next_ms: 1,
            last_error: None,
            event_ms: None,
        }
    }

    #[test]
    fn a_large_round_is_written_in_parts_each_under_the_limit_with_nothing_lost() {
        let log = |id| MessageLog {
            id,
            milestone: Milestone::Delivered,
            channel: Channel::Sms,
            state: "dropped: too old".into(),
            provider_id: None,
            at_ms: 2,
        };
        let b = Batch {
            enqueue: (1..=256).map(q).collect(),
            once: (1..=256).map(|i| (format!("k{i}"), 1)).collect(),
            cursors: vec![("milestones".into(), 99)],
            next_id: Some(3_000),
            finished: (1_000..2_000).map(|i| (q(i), Some(log(i)))).collect(),
            retry: (2_000..2_300).map(q).collect(),
            ..Batch::default()
        };
        let small = Batch {
            enqueue: vec![q(1)],
            ..Batch::default()
        };
        assert_eq!(parts(&small), vec![small.clone()]);
        let p = parts(&b);
        assert!(p.len() > 2);
        for part in &p {
            let size = serde_json::to_vec(part).unwrap().len();
            assert!(size <= ROUND_BYTES, "a part of {size} bytes");
        }
        // The messages and the cursor that moved with them are one part, the last.
        let last = p.last().unwrap();
        assert_eq!(last.enqueue.len(), 256);
        assert_eq!(last.cursors, b.cursors);
        assert_eq!(last.next_id, b.next_id);
        // The journal carries a finished message without its text; the others whole.
        let slimmed = slim(&b);
        assert!(slimmed
            .finished
            .iter()
            .all(|(q, _)| q.rendered.text.is_empty()));
        assert_eq!(slimmed.retry, b.retry);
        assert_eq!(slimmed.enqueue, b.enqueue);
        let finished: usize = p.iter().map(|x| x.finished.len()).sum();
        let retry: usize = p.iter().map(|x| x.retry.len()).sum();
        assert_eq!((finished, retry), (1_000, 300));
    }
}
