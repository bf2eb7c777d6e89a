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

use redb::{Database, ReadableTable, TableDefinition};
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
#[derive(Debug, Default)]
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
    }
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

    /// Sets a parcel's contact.
    pub fn set_contact(&self, tracking: &str, c: &StoredContact) -> Result<(), StoreError> {
        self.set_contacts(&[(tracking, c)])
    }

    /// Sets parcels' contacts, in one transaction (a route's, for one fsync).
    pub fn set_contacts(&self, contacts: &[(&str, &StoredContact)]) -> Result<(), StoreError> {
        let tx = self.begin_write()?;
        {
            let mut t = tx.open_table(CONTACTS)?;
            for (tracking, c) in contacts {
                t.insert(*tracking, serde_json::to_vec(c)?.as_slice())?;
            }
        }
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
        {
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
        }
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
        let tx = self.begin_write()?;
        tx.open_table(OPTOUT)?.insert(key, at_ms)?;
        tx.commit()?;
        Ok(())
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

    /// Takes a dead letter off the list (to retry it or dismiss it).
    pub fn take_dead(&self, id: u64) -> Result<Option<Dead>, StoreError> {
        let tx = self.begin_write()?;
        let d = match tx.open_table(DEAD)?.remove(id)? {
            Some(v) => Some(serde_json::from_slice(v.value())?),
            None => None,
        };
        tx.commit()?;
        Ok(d)
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
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(id: u64, tracking: &str) -> Queued {
        Queued {
            id,
            tracking: Some(tracking.into()),
            depot: "D".into(),
            route: "R".into(),
            milestone: Some(Milestone::ArrivingSoon),
            alert: None,
            channel: Channel::Sms,
            to: None,
            rendered: Rendered {
                subject: None,
                text: "hi".into(),
                whatsapp: None,
            },
            unsubscribe: None,
            queued_ms: 1,
            attempts: 0,
            next_ms: 1,
            last_error: None,
            event_ms: None,
        }
    }

    fn log(id: u64, state: &str) -> MessageLog {
        MessageLog {
            id,
            milestone: Milestone::ArrivingSoon,
            channel: Channel::Sms,
            state: state.into(),
            provider_id: None,
            at_ms: 2,
        }
    }

    #[test]
    fn a_round_is_atomic_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = NotifyStore::open(dir.path()).unwrap();
            let b = Batch {
                enqueue: vec![q(1, "T1"), q(2, "T2")],
                once: vec![("k1".into(), 5)],
                cursors: vec![("milestones".into(), 42)],
                next_id: Some(3),
                ..Batch::default()
            };
            s.commit(&b).unwrap();
            let done = Batch {
                finished: vec![(q(1, "T1"), Some(log(1, "sent")))],
                ..Batch::default()
            };
            s.commit(&done).unwrap();
        }
        let s = NotifyStore::open(dir.path()).unwrap();
        assert_eq!(s.queued().unwrap(), vec![q(2, "T2")]);
        assert!(s.once_taken("k1").unwrap());
        assert!(!s.once_taken("k2").unwrap());
        assert_eq!(s.cursor("milestones").unwrap(), Some(42));
        assert_eq!(s.next_id().unwrap(), 3);
        assert_eq!(s.messages("T1").unwrap(), vec![log(1, "sent")]);
        assert!(s.messages("T2").unwrap().is_empty());
    }

    #[test]
    fn erasing_and_sweeping_remove_personal_data() {
        let dir = tempfile::tempdir().unwrap();
        let s = NotifyStore::open(dir.path()).unwrap();
        let c = |touched_ms| StoredContact {
            contact: Contact {
                email: Some("a@b.example".into()),
                ..Contact::default()
            },
            depot: "D".into(),
            set_ms: 0,
            touched_ms,
        };
        s.set_contact("OLD", &c(10)).unwrap();
        s.set_contact("NEW", &c(1000)).unwrap();
        s.commit(&Batch {
            finished: vec![(q(1, "OLD"), Some(log(1, "sent")))],
            dead: vec![(
                Dead {
                    message: q(2, "OLD"),
                    to_masked: "+385*****4567".into(),
                    at_ms: 10,
                },
                Some(log(2, "dead")),
            )],
            once: vec![("old-key".into(), 10), ("new-key".into(), 1000)],
            ..Batch::default()
        })
        .unwrap();
        assert_eq!(s.dead().unwrap().len(), 1);
        assert_eq!(s.sweep(500).unwrap(), 1);
        assert!(
            s.dead().unwrap().is_empty(),
            "dead letters hold personal data too"
        );
        assert!(s.contact("OLD").unwrap().is_none());
        assert!(s.messages("OLD").unwrap().is_empty());
        assert!(s.contact("NEW").unwrap().is_some());
        assert!(!s.once_taken("old-key").unwrap());
        assert!(s.once_taken("new-key").unwrap());
        assert!(s.erase("NEW").unwrap());
        assert!(!s.erase("NEW").unwrap());
    }
}
