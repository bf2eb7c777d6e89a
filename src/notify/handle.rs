//! The running notifications as the rest of the gateway holds them ([`Notify`]): the store
//! and how it is written (at once, or through a cluster's [`Journal`]), the counters, the
//! commands for the outbox thread, the stop flag and the threads; and what the outbox and its
//! workers pass each other ([`Job`], [`JobDone`]).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;

use crate::metrics::Histogram;
use crate::notify::adapters::provider::SendError;
use crate::notify::contact;
use crate::notify::journal::{Journal, Op};
use crate::notify::store::{NotifyStore, Queued, StoreError};
use crate::state::lock;

/// Counters per channel ([`contact::Channel::index`]).
#[derive(Debug, Default)]
pub struct NotifyStats {
    /// Messages a provider accepted.
    pub sent: [AtomicU64; 3],
    /// Failed attempts (retried or dead-lettered).
    pub failed: [AtomicU64; 3],
    /// Messages given up on.
    pub dead: [AtomicU64; 3],
    /// Messages dropped by a rule (opt-out, quiet hours, rate limit, superseded, too old).
    pub dropped: [AtomicU64; 3],
    /// From the milestone's reading to the provider's acceptance.
    pub latency: [Histogram; 3],
    /// Messages waiting now.
    pub queued: AtomicU64,
    /// Milestones lost because the outbox fell behind the feed store's ring.
    pub skipped: AtomicU64,
    /// Failed writes of the outbox (retried).
    pub store_errors: AtomicU64,
}

impl NotifyStats {
    /// Appends the counters, per channel, in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        use crate::metrics::{render_labelled, render_labelled_histograms, render_value};
        let per = |a: &[AtomicU64; 3]| -> Vec<(&'static str, u64)> {
            contact::Channel::ALL
                .iter()
                .map(|c| (c.name(), a[c.index()].load(Ordering::Relaxed)))
                .collect()
        };
        let families: [(&str, &str, &[AtomicU64; 3]); 4] = [
            ("milepost_notify_sent_total", "Messages a provider accepted", &self.sent),
            ("milepost_notify_failed_total", "Failed attempts (retried or dead-lettered)", &self.failed),
            ("milepost_notify_dead_total", "Messages given up on (dead letters)", &self.dead),
            ("milepost_notify_dropped_total", "Messages dropped by a rule (opt-out, quiet hours, rate limit, superseded, too old)", &self.dropped),
        ];
        for (name, help, a) in families {
            render_labelled(out, name, help, "channel", &per(a));
        }
        let lat: Vec<(&str, &Histogram)> = contact::Channel::ALL
            .iter()
            .map(|c| (c.name(), &self.latency[c.index()]))
            .collect();
        render_labelled_histograms(
            out,
            "milepost_notify_latency_seconds",
            "From a milestone's reading to the provider's acceptance of its message",
            "channel",
            &lat,
        );
        let one = |a: &AtomicU64| a.load(Ordering::Relaxed);
        render_value(
            out,
            "milepost_notify_queued",
            "gauge",
            "Messages waiting for a provider",
            one(&self.queued),
        );
        render_value(
            out,
            "milepost_notify_skipped_total",
            "counter",
            "Milestones lost: the outbox fell behind the feed store's ring",
            one(&self.skipped),
        );
        render_value(
            out,
            "milepost_notify_store_errors_total",
            "counter",
            "Failed writes of the outbox (retried)",
            one(&self.store_errors),
        );
    }
}

/// A message handed to a worker.
pub struct Job {
    /// The message.
    pub message: Queued,
    /// The outbox's epoch when it was handed out ([`Notify::epoch`]): a worker sends nothing
    /// for an older one.
    pub epoch: u64,
    /// The address.
    pub to: String,
    /// The recipient's name.
    pub name: Option<String>,
}

/// A worker's answer.
pub struct JobDone {
    /// The message.
    pub message: Queued,
    /// The address it went to.
    pub to: Option<String>,
    /// The provider's id, or why not.
    pub result: Result<String, SendError>,
    /// False when no provider was asked (the job's epoch had passed): nothing happened.
    pub tried: bool,
}

/// What the API asks of the outbox thread.
pub enum Command {
    /// Queue a dead letter again (by id).
    Retry(u64),
}

/// The running notifications: their store, counters and threads.
pub struct Notify {
    /// The database.
    pub store: Arc<NotifyStore>,
    /// Counters.
    pub stats: Arc<NotifyStats>,
    /// Commands for the outbox thread.
    pub commands: Mutex<Vec<Command>>,
    /// Set when the gateway stops.
    pub stop: Arc<AtomicBool>,
    secret: Vec<u8>,
    /// The outbox's and workers' threads (joined by [`Notify::shutdown`]).
    pub threads: Mutex<Vec<JoinHandle<()>>>,
    /// A cluster's journal (set once, before the outbox starts); none on a single gateway.
    journal: OnceLock<Arc<dyn Journal>>,
    /// Moves on when the outbox stops leading (a cluster): jobs of an earlier epoch still
    /// waiting for a worker are not sent, the gateway that leads now sends them.
    pub epoch: Arc<AtomicU64>,
}

impl Notify {
    /// The secret opt-out links and address keys are signed with.
    pub fn secret(&self) -> &[u8] {
        &self.secret
    }

    /// Opens the store only (notifications off, or before they start): the API still keeps
    /// contacts, so turning notifications on later finds them.
    pub fn open(data_dir: &std::path::Path, secret: &[u8]) -> Result<Notify, String> {
        Ok(Notify {
            store: Arc::new(NotifyStore::open(data_dir).map_err(|e| e.to_string())?),
            stats: Default::default(),
            commands: Mutex::new(Vec::new()),
            stop: Arc::new(AtomicBool::new(false)),
            secret: secret.to_vec(),
            threads: Mutex::new(Vec::new()),
            journal: OnceLock::new(),
            epoch: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Writes through `journal` from now on (a cluster); false if one was set already.
    pub fn set_journal(&self, journal: Arc<dyn Journal>) -> bool {
        self.journal.set(journal).is_ok()
    }

    /// The cluster's journal, if any.
    pub fn journal(&self) -> Option<&Arc<dyn Journal>> {
        self.journal.get()
    }

    /// Writes `op`: through the cluster's journal (every gateway applies it), or at once.
    /// Returns once this gateway's store holds it.
    pub async fn write(&self, op: Op) -> Result<(), StoreError> {
        match self.journal.get() {
            Some(j) => j.write(op).await,
            None => self.apply(&op, None),
        }
    }

    /// Applies `op` to this gateway's store (`seq`: its place in the cluster's journal); a
    /// dead letter to retry is handed to the outbox thread of the gateway that sends (in a
    /// cluster, one that does not lead now ignores it: asked again, the leader queues it).
    pub fn apply(&self, op: &Op, seq: Option<u64>) -> Result<(), StoreError> {
        self.store.apply(op, seq)?;
        if let Op::Retry(id) = op {
            if self.journal.get().is_none_or(|j| j.leads()) {
                lock(&self.commands).push(Command::Retry(*id));
            }
        }
        Ok(())
    }

    /// Stops the threads, letting messages in flight finish, waits for them, and closes the
    /// database.
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::Relaxed);
        let threads: Vec<JoinHandle<()>> = std::mem::take(&mut *lock(&self.threads));
        for t in threads {
            let _ = t.join();
        }
        self.store.close();
    }
}
