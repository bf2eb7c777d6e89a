//! The outbox thread: reads parcel milestones (and the alerts of configured depots) from the
//! feed store by cursor, has them composed, commits the new messages with the moved cursor
//! and their once-keys in one transaction, and hands due messages to the worker threads that
//! talk to providers; their answers come back here and are committed the same way (sent,
//! retried with backoff, or dead-lettered).
//!
//! Rules applied when a message falls due, in order: the recipient's contact still exists
//! and has the channel's address; the address has not opted out; a timely message
//! ([`Milestone::timely`]) is dropped when it failed before and a newer one for the same parcel
//! waits behind it, when older than `timely_max_age_s`, in quiet hours or past the rate limit, where the others
//! wait. Messages of one parcel and channel go out one at a time, in order.
//!
//! Nothing here blocks ingest: the feed store is read under its lock for a copy of a page of
//! milestones, and providers are only ever waited on by the workers.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

use crate::notify::adapters::provider::SendError;
use crate::notify::compose::Composer;
use crate::notify::contact::{address_key, mask, Channel};
use crate::notify::handle::{Command, Job, JobDone, Notify};
use crate::notify::plan::{backoff_ms, milestone_of, Quiet};
use crate::notify::store::{Batch, Dead, MessageLog, Queued};
use crate::state::lock;

/// Milestones visited per page (most are ETA refreshes, skipped without a copy).
const PAGE: usize = 20_000;
/// Longest sleep between rounds when nothing happens, ms.
const IDLE_MS: u64 = 50;
/// How long answers are gathered before a round commits them.
const GATHER: Duration = Duration::from_millis(5);
/// Cursor name of the parcel milestones.
const MILESTONES: &str = "milestones";

/// A parcel's (or a depot's alerts') messages on one channel go out in order.
type Lane = (String, Channel);

fn lane_of(q: &Queued) -> Lane {
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
    notify: Arc<Notify>,
    composer: Composer,
    quiet: Option<Quiet>,
    jobs: Option<SyncSender<Job>>,
    done: Receiver<JobDone>,
    items: BTreeMap<u64, Queued>,
    lanes: HashMap<Lane, VecDeque<u64>>,
    in_flight: HashSet<Lane>,
    /// Send times per address key in the last hour.
    rate: HashMap<String, VecDeque<i64>>,
    cursor: Option<u64>,
    depot_cursors: HashMap<String, u64>,
    next_id: u64,
    /// Written next round (drops decided while dispatching).
    carry: Batch,
    /// When contacts past their retention are next erased, UTC ms.
    next_sweep: i64,
}

impl Outbox {
    /// The outbox over the queue as stored (messages queued before a restart go out first).
    pub fn new(
        notify: Arc<Notify>,
        composer: Composer,
        jobs: SyncSender<Job>,
        done: Receiver<JobDone>,
    ) -> Result<Outbox, String> {
        let store = &notify.store;
        let err = |e: crate::notify::store::StoreError| e.to_string();
        let quiet = match &composer.cfg.quiet_hours {
            Some(q) => Some(Quiet::parse(&q.start, &q.end)?),
            None => None,
        };
        let mut o = Outbox {
            cursor: store.cursor(MILESTONES).map_err(err)?,
            next_id: store.next_id().map_err(err)?,
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
        };
        for a in &o.composer.cfg.alerts {
            if let Some(c) = store.cursor(&depot_cursor(&a.depot)).map_err(err)? {
                o.depot_cursors.insert(a.depot.clone(), c);
            }
        }
        for q in store.queued().map_err(err)? {
            o.insert(q);
        }
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
        self.commit(b);
    }

    /// One round; returns how long to wait for an answer before the next, ms.
    fn round(&mut self) -> u64 {
        while let Ok(d) = self.done.try_recv() {
            self.answered(d);
        }
        self.sweep();
        let mut b = std::mem::take(&mut self.carry);
        self.commands(&mut b);
        let more = self.read(&mut b);
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

    /// Commits a batch, retrying once a second while the gateway runs; false if it gave up
    /// (the gateway is stopping). Cursors move in memory only once written.
    fn commit(&mut self, b: Batch) -> bool {
        if b.is_empty() {
            return true;
        }
        loop {
            match self.notify.store.commit(&b) {
                Ok(()) => break,
                Err(e) => {
                    self.notify
                        .stats
                        .store_errors
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, "notification outbox not written; retrying");
                    if self.notify.stop.load(Ordering::Relaxed) {
                        // Kept for the last try at the end of `run`.
                        let mut b = b;
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

    fn commands(&mut self, b: &mut Batch) {
        let cmds: Vec<Command> = std::mem::take(&mut *lock(&self.notify.commands));
        for c in cmds {
            match c {
                Command::Retry(id) => {
                    let dead = match self.notify.store.dead() {
                        Ok(d) => d,
                        Err(e) => {
                            tracing::error!(error = %e, "dead letters not read; retry kept");
                            lock(&self.notify.commands).push(Command::Retry(id));
                            continue;
                        }
                    };
                    if let Some(d) = dead.into_iter().find(|d| d.message.id == id) {
                        let mut q = d.message;
                        q.attempts = 0;
                        q.next_ms = self.now();
                        // Retried by a person: news again from now.
                        q.queued_ms = q.next_ms;
                        q.last_error = None;
                        b.undead.push(id);
                        b.retry.push(q.clone());
                        self.insert(q);
                    }
                }
            }
        }
    }

    /// Reads milestones and alerts into `b`; true if more are waiting.
    fn read(&mut self, b: &mut Batch) -> bool {
        let state = self.composer.state.clone();
        let mut next_id = self.next_id;
        let mut taken = HashSet::new();
        let mut more = false;
        // Only milestones worth a message are copied out of the ring (most of it is ETA
        // refreshes), under the feed's lock for one page.
        let stops_away_at = self.composer.cfg.stops_away_at;
        let page = {
            let feed = lock(&state.feed);
            match self.cursor {
                // First start: from now on, never the past.
                None => Err(Some(feed.milestones_last())),
                Some(c) => {
                    let mut wanted = Vec::new();
                    let visited = feed.visit_milestones_after(c, PAGE, |off, u| {
                        if milestone_of(&u.kind, stops_away_at).is_some() {
                            wanted.push((off, u.clone()));
                        }
                    });
                    match visited {
                        Ok(last) => Ok((c, last, wanted)),
                        Err(_) => {
                            let first = feed.milestones_first();
                            let lost = first.saturating_sub(1).saturating_sub(c);
                            self.notify.stats.skipped.fetch_add(lost, Ordering::Relaxed);
                            tracing::error!(
                                lost,
                                "notification outbox fell behind the milestone ring; \
                                 milestones skipped (raise feed.milestones_kept)"
                            );
                            Err(Some(first.saturating_sub(1)))
                        }
                    }
                }
            }
        };
        match page {
            Err(Some(c)) => b.cursors.push((MILESTONES.into(), c)),
            Err(None) => {}
            Ok((from, last, wanted)) => {
                more = last - from == PAGE as u64;
                let mut done = last;
                for (off, u) in &wanted {
                    if let Err(e) = self.composer.parcel(u, &mut next_id, &mut taken, b) {
                        // Read again next round: the cursor stops before it.
                        tracing::error!(error = %e, "notification not composed; retrying");
                        more = false;
                        done = off - 1;
                        break;
                    }
                }
                if done > from {
                    b.cursors.push((MILESTONES.into(), done));
                }
            }
        }
        for a in self.composer.cfg.alerts.clone() {
            let depot = milepost_proto::route::DepotId(a.depot.clone());
            let page = {
                let feed = lock(&state.feed);
                match self.depot_cursors.get(&a.depot) {
                    None => Err(feed.depot_last(&depot)),
                    Some(c) => feed
                        .depot_after(&depot, *c, PAGE)
                        .map_err(|_| feed.depot_last(&depot)),
                }
            };
            match page {
                Err(c) => b.cursors.push((depot_cursor(&a.depot), c)),
                Ok(page) => {
                    more |= page.len() == PAGE;
                    for (off, u) in &page {
                        if let milepost_proto::route::Update::Dispatch(d) = u {
                            if let Err(e) = self.composer.alert(&a, d, &mut next_id, &mut taken, b)
                            {
                                tracing::error!(error = %e, "alert not composed");
                            }
                        }
                        b.cursors.retain(|(k, _)| *k != depot_cursor(&a.depot));
                        b.cursors.push((depot_cursor(&a.depot), *off));
                    }
                }
            }
        }
        if next_id != self.next_id {
            b.next_id = Some(next_id);
        }
        more
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
                    let Some(jobs) = &self.jobs else { break };
                    let mut q = q;
                    q.attempts += 1;
                    let job = Job {
                        message: q.clone(),
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

    fn decide(&mut self, q: &Queued, lane_len: usize, now: i64) -> Decision {
        let cfg = &self.composer.cfg;
        let (to, name) = match (&q.tracking, &q.to) {
            (_, Some(to)) => (to.clone(), None),
            (Some(t), None) => match self.notify.store.contact(t) {
                Ok(Some(c)) => match c.contact.address(q.channel) {
                    Some(a) => (a.to_owned(), c.contact.name.clone()),
                    None => return Decision::Drop("no address for the channel"),
                },
                Ok(None) => return Decision::Drop("no contact"),
                Err(e) => {
                    tracing::error!(error = %e, "contact not read");
                    return Decision::Wait(now + 1000);
                }
            },
            (None, None) => return Decision::Drop("no address"),
        };
        let key = address_key(self.notify.secret(), q.channel, &to);
        match self.notify.store.opted_out(&key) {
            Ok(true) => return Decision::Drop("opted out"),
            Ok(false) => {}
            Err(e) => {
                tracing::error!(error = %e, "opt-out not read");
                return Decision::Wait(now + 1000);
            }
        }
        if q.milestone.is_none() {
            // A dispatcher's alert: no quiet hours, no rate limit, never superseded.
            return Decision::Send { to, name, key };
        }
        let timely = q.timely();
        // News is not sent just before a newer outcome (delivered, failed, returned), nor late
        // over any newer news once it failed; fresh news goes in order, even in a burst.
        if timely && lane_len > 1 {
            let behind_final = self.lane_has_final(q);
            if behind_final || q.attempts > 0 {
                return Decision::Drop("superseded by a newer message");
            }
        }
        if timely && now - q.queued_ms > cfg.timely_max_age_s as i64 * 1000 {
            return Decision::Drop("too old to be news");
        }
        if let Some(end) = self
            .quiet
            .and_then(|qh| qh.ends_after(self.composer.tz, now))
        {
            return if timely {
                Decision::Drop("quiet hours")
            } else {
                Decision::Wait(end)
            };
        }
        let sent = self.rate.entry(key.clone()).or_default();
        while sent.front().is_some_and(|t| *t <= now - 3_600_000) {
            sent.pop_front();
        }
        if sent.len() >= cfg.rate_per_hour as usize {
            return if timely {
                Decision::Drop("rate limited")
            } else {
                Decision::Wait(sent.front().map_or(now, |t| t + 3_600_000))
            };
        }
        Decision::Send { to, name, key }
    }

    /// Whether a message that is not news (delivered, failed, returned) waits behind `q`.
    fn lane_has_final(&self, q: &Queued) -> bool {
        self.lanes.get(&lane_of(q)).is_some_and(|l| {
            l.iter()
                .filter(|id| **id != q.id)
                .filter_map(|id| self.items.get(id))
                .any(|m| !m.timely())
        })
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

enum Decision {
    Drop(&'static str),
    Wait(i64),
    Send {
        to: String,
        name: Option<String>,
        key: String,
    },
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

fn depot_cursor(depot: &str) -> String {
    format!("depot:{depot}")
}
