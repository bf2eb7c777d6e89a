//! The outbox thread: reads parcel milestones (and the alerts of configured depots) from the
//! feed store by cursor ([`intake`]), has them composed, commits the new messages with the
//! moved cursor and their once-keys in one transaction, and hands due messages that pass the
//! rules ([`rules`]) to the worker threads that talk to providers; their answers come back here
//! and are committed the same way (sent, retried with backoff, or dead-lettered). Messages of
//! one parcel and channel go out one at a time, in order.
//!
//! Nothing here blocks ingest: the feed store is read under its lock for one page of
//! milestones, and providers are only ever waited on by the workers.
//!
//! In a cluster every gateway runs this thread, but only the one that leads
//! ([`crate::notify::journal::Journal::lead`]) reads milestones and sends; its rounds go
//! through the journal, which every gateway applies to its copy of the store. A gateway that
//! starts to lead reads the queue, the cursors and the next id from its copy, which then holds
//! every round the last leader wrote; one that stops leading forgets what it held in memory.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

use crate::notify::adapters::provider::SendError;
use crate::notify::compose::Composer;
use crate::notify::contact::mask;
use crate::notify::handle::{Job, JobDone, Notify};
use crate::notify::plan::{backoff_ms, Quiet};
use crate::notify::store::{Batch, Dead, MessageLog, Queued};
mod intake;
mod lead;
mod rules;
mod state;

use rules::Decision;
pub use state::Outbox;
use state::{lane_of, Lane, GATHER, IDLE_MS, MILESTONES};

impl Outbox {
    /// The outbox over the queue as stored (messages queued before a restart go out first).
    pub fn new(
        notify: Arc<Notify>,
        composer: Composer,
        jobs: SyncSender<Job>,
        done: Receiver<JobDone>,
    ) -> Result<Outbox, String> {
        let err = |e: crate::notify::store::StoreError| e.to_string();
        let quiet = match &composer.cfg.quiet_hours {
            Some(q) => Some(Quiet::parse(&q.start, &q.end)?),
            None => None,
        };
        let mut o = Outbox {
            cursor: None,
            next_id: 1,
            depot_cursors: HashMap::new(),
            notify: notify.clone(),
            composer,
            quiet,
            jobs: Some(jobs),
            done,
            items: BTreeMap::new(),
            lanes: HashMap::new(),
            in_flight: HashSet::new(),
            rate: HashMap::new(),
            carry: Batch::default(),
            next_sweep: 0,
            term: None,
            start: (0, HashMap::new()),
        };
        {
            let feed = crate::state::lock(&o.composer.state.feed);
            o.start.0 = feed.milestones_last();
            for a in &o.composer.cfg.alerts {
                let depot = milepost_proto::route::DepotId(a.depot.clone());
                o.start.1.insert(a.depot.clone(), feed.depot_last(&depot));
            }
        }
        o.load().map_err(err)?;
        Ok(o)
    }

    fn insert(&mut self, q: Queued) {
        self.lanes.entry(lane_of(&q)).or_default().push_back(q.id);
        self.items.insert(q.id, q);
    }

    fn remove(&mut self, q: &Queued) {
        let lane = lane_of(q);
        if let Some(l) = self.lanes.get_mut(&lane) {
            l.retain(|id| *id != q.id);
            if l.is_empty() {
                self.lanes.remove(&lane);
            }
        }
        self.items.remove(&q.id);
    }

    fn now(&self) -> i64 {
        (self.composer.clock)()
    }

    /// Runs rounds until the gateway stops, then waits (up to the provider timeout) for the
    /// answers of messages in flight and commits them, so a clean stop repeats nothing.
    pub fn run(mut self) {
        let stop = self.notify.stop.clone();
        while !stop.load(Ordering::Relaxed) {
            let wait = self.round();
            match self.done.recv_timeout(Duration::from_millis(wait)) {
                Ok(d) => {
                    self.answered(d);
                    // Answers come one by one: gather those of the next few milliseconds, so
                    // one commit (one fsync) records many.
                    let until = std::time::Instant::now() + GATHER;
                    while let Some(left) = until.checked_duration_since(std::time::Instant::now()) {
                        match self.done.recv_timeout(left) {
                            Ok(d) => self.answered(d),
                            Err(_) => break,
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        self.jobs = None;
        let deadline =
            std::time::Instant::now() + Duration::from_secs(self.composer.cfg.timeout_s + 1);
        while !self.in_flight.is_empty() && std::time::Instant::now() < deadline {
            match self.done.recv_timeout(Duration::from_millis(100)) {
                Ok(d) => self.answered(d),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        let b = std::mem::take(&mut self.carry);
        let Some(journal) = self.notify.journal().cloned() else {
            self.commit(b);
            return;
        };
        // A cluster's gateway writes its last answers in a round while it leads (a round
        // refused puts them back in `carry`), else as they are, so that the gateway that sends
        // next does not send those messages again.
        let late = if self.term.is_some() {
            self.commit(b);
            std::mem::take(&mut self.carry)
        } else {
            b
        };
        if !late.is_empty() {
            if let Err(e) = journal.answers(&late) {
                tracing::warn!(error = %e, "last answers not written");
            }
        }
    }

    /// One round; returns how long to wait for an answer before the next, ms.
    fn round(&mut self) -> u64 {
        while let Ok(d) = self.done.try_recv() {
            self.answered(d);
        }
        self.sweep();
        if !self.leading() {
            return 4 * IDLE_MS;
        }
        let mut b = std::mem::take(&mut self.carry);
        self.commands(&mut b);
        // In a cluster, a contact set through another gateway just before its parcel's
        // milestone must be in this copy before the milestone is read.
        let fresh = self.notify.journal().is_none_or(|j| j.caught_up());
        let more = fresh && self.read(&mut b);
        let enqueued = b.enqueue.clone();
        if !self.commit(b) {
            // Not written: read the same milestones again next round.
            return 1000;
        }
        for q in enqueued {
            self.insert(q);
        }
        self.notify
            .stats
            .queued
            .store(self.items.len() as u64, Ordering::Relaxed);
        let next_due = self.dispatch();
        if more {
            return 0;
        }
        let now = self.now();
        next_due.map_or(IDLE_MS, |t| (t - now).clamp(0, IDLE_MS as i64) as u64)
    }

    /// Once an hour: erases contacts (and message logs) older than the history's retention,
    /// and once-keys as old.
    fn sweep(&mut self) {
        let now = self.now();
        if now < self.next_sweep {
            return;
        }
        self.next_sweep = now + 3_600_000;
        self.rate
            .retain(|_, sent| sent.back().is_some_and(|t| *t > now - 3_600_000));
        match self.notify.store.sweep(now - self.composer.retention_ms) {
            Ok(0) => {}
            Ok(n) => tracing::info!(contacts = n, "contacts past their retention erased"),
            Err(e) => tracing::error!(error = %e, "contacts not swept"),
        }
    }

    /// Commits a batch: through the journal in a cluster (on failure this gateway stops
    /// leading), else to the store, retrying once a second while the gateway runs; false if
    /// not written. Cursors move in memory only once written.
    fn commit(&mut self, b: Batch) -> bool {
        if b.is_empty() {
            return true;
        }
        let written = match self.notify.journal().cloned() {
            Some(journal) => match journal.round(&b) {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(error = %e, "notification round not written");
                    self.keep_answers(b);
                    self.stand_down();
                    return false;
                }
            },
            None => self.commit_here(&b),
        };
        if !written {
            return false;
        }
        for (k, v) in &b.cursors {
            if k == MILESTONES {
                self.cursor = Some(*v);
            } else if let Some(d) = k.strip_prefix("depot:") {
                self.depot_cursors.insert(d.to_owned(), *v);
            }
        }
        if let Some(n) = b.next_id {
            self.next_id = n;
        }
        true
    }

    /// Commits to this gateway's store, retrying once a second while the gateway runs; false
    /// if it gave up (the gateway is stopping: the answers are kept for the last try).
    fn commit_here(&mut self, b: &Batch) -> bool {
        loop {
            match self.notify.store.commit(b) {
                Ok(()) => return true,
                Err(e) => {
                    self.notify
                        .stats
                        .store_errors
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, "notification outbox not written; retrying");
                    if self.notify.stop.load(Ordering::Relaxed) {
                        // Kept for the last try at the end of `run`.
                        let mut b = b.clone();
                        let later = std::mem::take(&mut self.carry);
                        b.retry.extend(later.retry);
                        b.finished.extend(later.finished);
                        b.dead.extend(later.dead);
                        b.undead.extend(later.undead);
                        b.enqueue.clear();
                        b.once.clear();
                        b.cursors.clear();
                        b.next_id = None;
                        self.carry = b;
                        return false;
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
    }

    /// Hands due messages to the workers; returns the next due time of those waiting.
    fn dispatch(&mut self) -> Option<i64> {
        let now = self.now();
        let mut next_due: Option<i64> = None;
        let heads: Vec<(Lane, u64, usize)> = self
            .lanes
            .iter()
            .filter(|(l, _)| !self.in_flight.contains(*l))
            .filter_map(|(l, q)| q.front().map(|id| (l.clone(), *id, q.len())))
            .collect();
        for (lane, id, len) in heads {
            let Some(q) = self.items.get(&id).cloned() else {
                continue;
            };
            if q.next_ms > now {
                next_due = Some(next_due.map_or(q.next_ms, |t| t.min(q.next_ms)));
                continue;
            }
            match self.decide(&q, len, now) {
                Decision::Drop(why) => self.finish(q, format!("dropped: {why}"), None, now),
                Decision::Wait(until) => {
                    let mut q = q;
                    q.next_ms = until;
                    next_due = Some(next_due.map_or(until, |t| t.min(until)));
                    self.carry.retry.push(q.clone());
                    self.items.insert(q.id, q);
                }
                Decision::Send { to, name, key } => {
                    if self.notify.journal().is_some()
                        && !self.notify.store.is_queued(q.id).unwrap_or(true)
                    {
                        // Answered on the gateway that led before, after this one took over.
                        self.remove(&q);
                        continue;
                    }
                    let Some(jobs) = &self.jobs else { break };
                    let mut q = q;
                    q.attempts += 1;
                    let job = Job {
                        message: q.clone(),
                        epoch: self.notify.epoch.load(Ordering::Relaxed),
                        to,
                        name,
                    };
                    match jobs.try_send(job) {
                        Ok(()) => {
                            self.rate.entry(key).or_default().push_back(now);
                            self.in_flight.insert(lane);
                            self.items.insert(q.id, q);
                        }
                        Err(TrySendError::Full(_)) => break,
                        Err(TrySendError::Disconnected(_)) => break,
                    }
                }
            }
        }
        next_due
    }

    fn finish(&mut self, q: Queued, state: String, provider_id: Option<String>, now: i64) {
        if state.starts_with("dropped") {
            self.notify.stats.dropped[q.channel.index()].fetch_add(1, Ordering::Relaxed);
        }
        let log = log_of(&q, state, provider_id, now);
        self.remove(&q);
        self.carry.finished.push((q, log));
    }

    fn answered(&mut self, d: JobDone) {
        let now = self.now();
        let q = d.message;
        self.in_flight.remove(&lane_of(&q));
        if !d.tried {
            // No provider was asked (the lead changed): the message stays queued as it was.
            return;
        }
        let c = q.channel.index();
        let stats = &self.notify.stats;
        match d.result {
            Ok(provider_id) => {
                stats.sent[c].fetch_add(1, Ordering::Relaxed);
                stats.latency[c].observe(Duration::from_millis((now - q.queued_ms).max(0) as u64));
                self.finish(q, "sent".into(), Some(provider_id), now);
            }
            Err(e) => {
                stats.failed[c].fetch_add(1, Ordering::Relaxed);
                let mut q = q;
                // Providers quote the address in their errors: masked before it is kept.
                let mut text = e.text().to_owned();
                if let Some(to) = &d.to {
                    for form in [to.as_str(), to.trim_start_matches('+')] {
                        text = text.replace(form, &mask(form));
                    }
                }
                q.last_error = Some(text.clone());
                let cfg = &self.composer.cfg;
                let retry_after = match &e {
                    SendError::Retry { after_ms, .. } if q.attempts < cfg.max_attempts => {
                        Some(after_ms.unwrap_or(0).max(backoff_ms(
                            q.attempts,
                            cfg.retry_base_ms,
                            cfg.retry_max_ms,
                        )))
                    }
                    _ => None,
                };
                match retry_after {
                    Some(wait) => {
                        q.next_ms = now + wait as i64;
                        self.carry.retry.push(q.clone());
                        self.items.insert(q.id, q);
                    }
                    None => {
                        stats.dead[c].fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(
                            id = q.id,
                            channel = q.channel.name(),
                            error = %text,
                            "notification dead-lettered"
                        );
                        let to_masked = d.to.as_deref().map(mask).unwrap_or_default();
                        let log = log_of(&q, "dead".into(), None, now);
                        self.remove(&q);
                        self.carry.dead.push((
                            Dead {
                                message: q,
                                to_masked,
                                at_ms: now,
                            },
                            log,
                        ));
                    }
                }
            }
        }
    }
}

/// The line a parcel's message log gets (alerts keep none).
fn log_of(
    q: &Queued,
    state: String,
    provider_id: Option<String>,
    at_ms: i64,
) -> Option<MessageLog> {
    Some(MessageLog {
        id: q.id,
        milestone: q.milestone?,
        channel: q.channel,
        state,
        provider_id,
        at_ms,
    })
}
