//! The notification outbox's durable state, in an embedded database
//! (`DATA_DIR/notify.redb`, [redb]): recipients' contacts, opt-outs (keyed hashes, no
//! addresses), the milestone cursor, the queue of messages not yet answered by a provider,
//! the once-keys that keep a milestone from going out twice, the dead letters, and each
//! parcel's message log.
//!
//! The outbox thread ([`crate::notify::outbox`]) is the only writer of the queue, the cursor
//! and the once-keys, and writes them in one transaction per round ([`Batch`]): a milestone is
//! either not yet read (the cursor is before it) or its messages are queued and its once-key
//! set, so a restart neither loses nor repeats one. The web API writes contacts and opt-outs.

use std::path::Path;

use redb::{Database, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use crate::notify::contact::{Channel, Contact};
use crate::notify::plan::Milestone;
use crate::notify::templates::Rendered;

const CONTACTS: TableDefinition<&str, &[u8]> = TableDefinition::new("contacts");
const OPTOUT: TableDefinition<&str, i64> = TableDefinition::new("optout");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const QUEUE: TableDefinition<u64, &[u8]> = TableDefinition::new("queue");
const ONCE: TableDefinition<&str, i64> = TableDefinition::new("once");
const DEAD: TableDefinition<u64, &[u8]> = TableDefinition::new("dead");
const MESSAGES: TableDefinition<&str, &[u8]> = TableDefinition::new("messages");

/// The META entry of the journal's sequence applied last.
const JOURNAL: &str = "journal";

/// Separates the parts of a key (never in an id: ids are printable).
const SEP: char = '\u{1}';

/// A failure of the notification database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed (boxed: redb's error is large).
    #[error("notification database: {0}")]
    Db(Box<redb::Error>),
    /// A stored record does not decode.
    #[error("notification record: {0}")]
    Decode(#[from] serde_json::Error),
    /// The gateway is stopping and closed the database.
    #[error("notification database closed (the gateway is stopping)")]
    Closed,
    /// A cluster's journal did not take or return the write in time.
    #[error("notification journal: {0}")]
    Journal(String),
}

macro_rules! db_errors {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Db(Box::new(e.into()))
            }
        }
    )*};
}
db_errors!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// A contact as stored, with what it belongs to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredContact {
    /// The details.
    pub contact: Contact,
    /// The parcel's depot (scopes the API).
    pub depot: String,
    /// When it was set, UTC ms.
    pub set_ms: i64,
    /// The newest milestone told (or the setting), UTC ms: the retention clock.
    pub touched_ms: i64,
}

/// A message waiting for a provider's answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Queued {
    /// Outbox id, in queueing order.
    pub id: u64,
    /// The parcel (recipients' messages).
    pub tracking: Option<String>,
    /// The depot.
    pub depot: String,
    /// The route.
    pub route: String,
    /// The milestone (recipients' messages).
    pub milestone: Option<Milestone>,
    /// The alert kind (dispatchers' messages).
    pub alert: Option<String>,
    /// The channel.
    pub channel: Channel,
    /// The address of a dispatcher's message (recipients' come from their contact at send
    /// time, so an erased contact is never written to).
    pub to: Option<String>,
    /// The message.
    pub rendered: Rendered,
    /// The opt-out link (an e-mail's `List-Unsubscribe`).
    #[serde(default)]
    pub unsubscribe: Option<String>,
    /// When the milestone was read, UTC ms.
    pub queued_ms: i64,
    /// Attempts so far.
    pub attempts: u32,
    /// Not before, UTC ms.
    pub next_ms: i64,
    /// The last failure.
    pub last_error: Option<String>,
    /// When what it tells of happened, UTC ms (a driver's message: when it was written; absent
    /// in queues written before it was kept).
    #[serde(default)]
    pub event_ms: Option<i64>,
}

impl Queued {
    /// Whether it goes stale (see [`Milestone::timely`]); alerts are.
    pub fn timely(&self) -> bool {
        self.milestone.is_none_or(Milestone::timely)
    }
}

/// A message given up on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Dead {
    /// The message (attempts and last error included).
    pub message: Queued,
    /// The address, masked.
    pub to_masked: String,
    /// When it was given up, UTC ms.
    pub at_ms: i64,
}

/// One line of a parcel's message log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MessageLog {
    /// Outbox id.
    pub id: u64,
    /// The milestone.
    pub milestone: Milestone,
    /// The channel.
    pub channel: Channel,
    /// `sent`, `dead`, or `dropped: <why>`.
    pub state: String,
    /// The provider's id of the message, when sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_id: Option<String>,
    /// When, UTC ms.
    pub at_ms: i64,
}

/// Everything one outbox round writes, in one transaction.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    /// New messages.
    pub enqueue: Vec<Queued>,
    /// Once-keys now taken, with their time.
    pub once: Vec<(String, i64)>,
    /// Cursors moved.
    pub cursors: Vec<(String, u64)>,
    /// Messages rescheduled (a failed attempt).
    pub retry: Vec<Queued>,
    /// Messages finished (sent, dropped), with their log line (parcels' messages).
    pub finished: Vec<(Queued, Option<MessageLog>)>,
    /// Messages given up on.
    pub dead: Vec<(Dead, Option<MessageLog>)>,
    /// Dead letters queued again.
    pub undead: Vec<u64>,
    /// The newest id handed out.
    pub next_id: Option<u64>,
    /// Message log lines carried over as they are (a store seeding a cluster's journal).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logs: Vec<(String, MessageLog)>,
}

impl Batch {
    /// True when there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.enqueue.is_empty()
            && self.once.is_empty()
            && self.cursors.is_empty()
            && self.retry.is_empty()
            && self.finished.is_empty()
            && self.dead.is_empty()
            && self.undead.is_empty()
            && self.next_id.is_none()
            && self.logs.is_empty()
    }
}

/// One write to the notification store, as a cluster's journal carries it
/// ([`crate::notify::journal`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Op {
    /// Parcels' contacts set (a route's, or one through the API): personal data.
    Contacts(Vec<(String, StoredContact)>),
    /// A parcel's contact, message log and dead letters erased.
    Erase(String),
    /// An address key (a keyed hash, no address) opted out, at UTC ms.
    OptOut {
        /// The key.
        key: String,
        /// When.
        at_ms: i64,
    },
    /// A dead letter dismissed.
    Dismiss(u64),
    /// A dead letter to queue again: the sending gateway's outbox does it.
    Retry(u64),
    /// One round of the sending gateway's outbox.
    Round(Batch),
    /// Providers' answers that came back to a gateway after it stopped leading (written
    /// outside the rounds: they are facts whoever leads).
    Answers(Batch),
    /// A gateway starts to lead (nothing is stored): written where rounds are, it fences off
    /// the rounds of the gateway that led before, and once applied here every earlier write is.
    Lead {
        /// The gateway.
        node: String,
    },
}

/// The notification database. Closed when the gateway stops ([`NotifyStore::close`]), so
/// the file can be opened again by the next gateway in the same process (tests, embedding).
pub struct NotifyStore {
    db: std::sync::RwLock<Option<Database>>,
}

fn msg_key(tracking: &str, id: u64) -> String {
    format!("{tracking}{SEP}{id:020}")
}

impl NotifyStore {
    /// Opens (or creates) `DATA_DIR/notify.redb` with every table.
    pub fn open(dir: &Path) -> Result<NotifyStore, StoreError> {
        let path = dir.join("notify.redb");
        // A reader of a store being closed may hold the file a moment: a few tries.
        let mut tries = 0;
        let db = loop {
            match Database::create(&path) {
                Ok(db) => break db,
                Err(e) if tries >= 40 => return Err(e.into()),
                Err(_) => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(25));
                }
            }
        };
        let tx = db.begin_write()?;
        tx.open_table(CONTACTS)?;
        tx.open_table(OPTOUT)?;
        tx.open_table(META)?;
        tx.open_table(QUEUE)?;
        tx.open_table(ONCE)?;
        tx.open_table(DEAD)?;
        tx.open_table(MESSAGES)?;
        tx.commit()?;
        Ok(NotifyStore {
            db: std::sync::RwLock::new(Some(db)),
        })
    }

    /// Closes the file; every later call answers [`StoreError::Closed`].
    pub fn close(&self) {
        let mut db = self.db.write().unwrap_or_else(|p| p.into_inner());
        db.take();
    }

    fn begin_write(&self) -> Result<redb::WriteTransaction, StoreError> {
        let db = self.db.read().unwrap_or_else(|p| p.into_inner());
        Ok(db.as_ref().ok_or(StoreError::Closed)?.begin_write()?)
    }

    fn begin_read(&self) -> Result<redb::ReadTransaction, StoreError> {
        let db = self.db.read().unwrap_or_else(|p| p.into_inner());
        Ok(db.as_ref().ok_or(StoreError::Closed)?.begin_read()?)
    }

    /// Sets a parcel's contact (contacts the API sets are [`Op::Contacts`]).
    pub fn set_contact(&self, tracking: &str, c: &StoredContact) -> Result<(), StoreError> {
        let tx = self.begin_write()?;
        put_contacts(&tx, std::iter::once((tracking, c)))?;
        tx.commit()?;
        Ok(())
    }

    /// A parcel's contact.
    pub fn contact(&self, tracking: &str) -> Result<Option<StoredContact>, StoreError> {
        let tx = self.begin_read()?;
        let t = tx.open_table(CONTACTS)?;
        Ok(match t.get(tracking)? {
            Some(v) => Some(serde_json::from_slice(v.value())?),
            None => None,
        })
    }

    /// Erases a parcel's contact, message log and dead letters; true if there was a contact.
    /// Its queued messages find no address and are dropped.
    pub fn erase(&self, tracking: &str) -> Result<bool, StoreError> {
        let tx = self.begin_write()?;
        let had = erase_in(&tx, tracking)?;
        tx.commit()?;
        Ok(had)
    }

    /// Erases contacts (and message logs) untouched since `before_ms`, and once-keys older;
    /// returns the contacts erased.
    pub fn sweep(&self, before_ms: i64) -> Result<usize, StoreError> {
        let old: Vec<String> = {
            let tx = self.begin_read()?;
            let t = tx.open_table(CONTACTS)?;
            let mut v = Vec::new();
            for r in t.iter()? {
                let (k, val) = r?;
                let c: StoredContact = serde_json::from_slice(val.value())?;
                if c.touched_ms < before_ms {
                    v.push(k.value().to_owned());
                }
            }
            v
        };
        for t in &old {
            self.erase(t)?;
        }
        let tx = self.begin_write()?;
        {
            let mut once = tx.open_table(ONCE)?;
            let stale: Vec<String> = once
                .iter()?
                .filter_map(|r| r.ok())
                .filter(|(_, at)| at.value() < before_ms)
                .map(|(k, _)| k.value().to_owned())
                .collect();
            for k in stale {
                once.remove(k.as_str())?;
            }
        }
        tx.commit()?;
        Ok(old.len())
    }

    /// Records an opt-out under its address key.
    pub fn opt_out(&self, key: &str, at_ms: i64) -> Result<(), StoreError> {
        self.set_opt_outs(&[(key.to_owned(), at_ms)])
    }

    /// Records opt-outs in one transaction (a cluster's, read from its state bucket).
    pub fn set_opt_outs(&self, keys: &[(String, i64)]) -> Result<(), StoreError> {
        let tx = self.begin_write()?;
        {
            let mut t = tx.open_table(OPTOUT)?;
            for (key, at_ms) in keys {
                t.insert(key.as_str(), *at_ms)?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Applies an operation of the cluster's journal (or of this gateway's API) in one
    /// transaction; `seq`, its place in the journal, is kept in the same transaction, so a
    /// restarted gateway reads the journal on from after it ([`NotifyStore::journal_seq`]).
    pub fn apply(&self, op: &Op, seq: Option<u64>) -> Result<(), StoreError> {
        let tx = self.begin_write()?;
        match op {
            Op::Contacts(c) => put_contacts(&tx, c.iter().map(|(t, c)| (t.as_str(), c)))?,
            Op::Erase(t) => {
                erase_in(&tx, t)?;
            }
            Op::OptOut { key, at_ms } => {
                tx.open_table(OPTOUT)?.insert(key.as_str(), *at_ms)?;
            }
            Op::Dismiss(id) => {
                tx.open_table(DEAD)?.remove(*id)?;
            }
            // The outbox's to do (`crate::notify::handle::Notify::apply`), and a marker:
            // nothing stored.
            Op::Retry(_) | Op::Lead { .. } => {}
            Op::Round(b) | Op::Answers(b) => commit_in(&tx, b)?,
        }
        if let Some(seq) = seq {
            tx.open_table(META)?.insert(JOURNAL, seq)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The journal's sequence number of the last operation applied (0: none).
    pub fn journal_seq(&self) -> Result<u64, StoreError> {
        Ok(self.cursor(JOURNAL)?.unwrap_or(0))
    }

    /// Whether an address key opted out.
    pub fn opted_out(&self, key: &str) -> Result<bool, StoreError> {
        let tx = self.begin_read()?;
        Ok(tx.open_table(OPTOUT)?.get(key)?.is_some())
    }

    /// A cursor (`None`: never saved).
    pub fn cursor(&self, name: &str) -> Result<Option<u64>, StoreError> {
        let tx = self.begin_read()?;
        Ok(tx.open_table(META)?.get(name)?.map(|v| v.value()))
    }

    /// Whether a once-key is taken.
    pub fn once_taken(&self, key: &str) -> Result<bool, StoreError> {
        let tx = self.begin_read()?;
        Ok(tx.open_table(ONCE)?.get(key)?.is_some())
    }

    /// Whether a message is queued (not yet answered for good).
    pub fn is_queued(&self, id: u64) -> Result<bool, StoreError> {
        let tx = self.begin_read()?;
        Ok(tx.open_table(QUEUE)?.get(id)?.is_some())
    }

    /// Every queued message, in id order.
    pub fn queued(&self) -> Result<Vec<Queued>, StoreError> {
        let tx = self.begin_read()?;
        let t = tx.open_table(QUEUE)?;
        let mut v = Vec::new();
        for r in t.iter()? {
            v.push(serde_json::from_slice(r?.1.value())?);
        }
        Ok(v)
    }

    /// Dead letters, oldest first.
    pub fn dead(&self) -> Result<Vec<Dead>, StoreError> {
        let tx = self.begin_read()?;
        let t = tx.open_table(DEAD)?;
        let mut v = Vec::new();
        for r in t.iter()? {
            v.push(serde_json::from_slice(r?.1.value())?);
        }
        Ok(v)
    }

    /// A parcel's message log, oldest first.
    pub fn messages(&self, tracking: &str) -> Result<Vec<MessageLog>, StoreError> {
        let tx = self.begin_read()?;
        let t = tx.open_table(MESSAGES)?;
        let from = format!("{tracking}{SEP}");
        let to = format!("{tracking}{}", char::from(2));
        let mut v = Vec::new();
        for r in t.range(from.as_str()..to.as_str())? {
            v.push(serde_json::from_slice(r?.1.value())?);
        }
        Ok(v)
    }

    /// The id after the newest handed out.
    pub fn next_id(&self) -> Result<u64, StoreError> {
        Ok(self.cursor("next_id")?.unwrap_or(1))
    }

    /// Writes one round, atomically and durably.
    pub fn commit(&self, b: &Batch) -> Result<(), StoreError> {
        let tx = self.begin_write()?;
        commit_in(&tx, b)?;
        tx.commit()?;
        Ok(())
    }
}

/// Sets contacts within `tx`.
fn put_contacts<'a>(
    tx: &WriteTransaction,
    contacts: impl Iterator<Item = (&'a str, &'a StoredContact)>,
) -> Result<(), StoreError> {
    let mut t = tx.open_table(CONTACTS)?;
    for (tracking, c) in contacts {
        t.insert(tracking, serde_json::to_vec(c)?.as_slice())?;
    }
    Ok(())
}

/// Erases a parcel's contact, message log and dead letters within `tx`; true if there was a
/// contact.
fn erase_in(tx: &WriteTransaction, tracking: &str) -> Result<bool, StoreError> {
    let had = tx.open_table(CONTACTS)?.remove(tracking)?.is_some();
    {
        // Dead letters hold the rendered text (a name, a tracking link): they go too.
        let mut dead = tx.open_table(DEAD)?;
        let mut ids = Vec::new();
        for r in dead.iter()? {
            let (k, v) = r?;
            let d: Dead = serde_json::from_slice(v.value())?;
            if d.message.tracking.as_deref() == Some(tracking) {
                ids.push(k.value());
            }
        }
        for id in ids {
            dead.remove(id)?;
        }
    }
    let mut m = tx.open_table(MESSAGES)?;
    let from = format!("{tracking}{SEP}");
    let to = format!("{tracking}{}", char::from(2));
    let keys: Vec<String> = m
        .range(from.as_str()..to.as_str())?
        .map(|r| r.map(|(k, _)| k.value().to_owned()))
        .collect::<Result<_, _>>()?;
    for k in keys {
        m.remove(k.as_str())?;
    }
    Ok(had)
}

/// Writes one round within `tx`. Writing the same round twice changes nothing the second
/// time: every message is keyed by its id.
fn commit_in(tx: &WriteTransaction, b: &Batch) -> Result<(), StoreError> {
    {
        let mut queue = tx.open_table(QUEUE)?;
        let mut once = tx.open_table(ONCE)?;
        let mut meta = tx.open_table(META)?;
        let mut dead = tx.open_table(DEAD)?;
        let mut msgs = tx.open_table(MESSAGES)?;
        for q in b.enqueue.iter().chain(&b.retry) {
            queue.insert(q.id, serde_json::to_vec(q)?.as_slice())?;
        }
        for (k, at) in &b.once {
            once.insert(k.as_str(), *at)?;
        }
        for (k, v) in &b.cursors {
            meta.insert(k.as_str(), *v)?;
        }
        if let Some(n) = b.next_id {
            meta.insert("next_id", n)?;
        }
        for id in &b.undead {
            dead.remove(*id)?;
        }
        for (q, log) in &b.finished {
            queue.remove(q.id)?;
            if let (Some(t), Some(log)) = (&q.tracking, log) {
                msgs.insert(
                    msg_key(t, q.id).as_str(),
                    serde_json::to_vec(log)?.as_slice(),
                )?;
            }
        }
        for (t, log) in &b.logs {
            msgs.insert(
                msg_key(t, log.id).as_str(),
                serde_json::to_vec(log)?.as_slice(),
            )?;
        }
        for (d, log) in &b.dead {
            queue.remove(d.message.id)?;
            dead.insert(d.message.id, serde_json::to_vec(d)?.as_slice())?;
            if let (Some(t), Some(log)) = (&d.message.tracking, log) {
                msgs.insert(
                    msg_key(t, d.message.id).as_str(),
                    serde_json::to_vec(log)?.as_slice(),
                )?;
            }
        }
    }
    Ok(())
}

mod export;
#[cfg(test)]
mod tests;
