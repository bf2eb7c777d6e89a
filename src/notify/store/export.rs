//! What a notification store holds, as the operations that rebuild it ([`NotifyStore::export`]):
//! how a gateway that ran alone seeds a new cluster's journal with its contacts, opt-outs,
//! queue, dead letters and message logs, so that the gateways that join it hold them too.

use redb::ReadableTable;

use super::{
    Batch, Dead, MessageLog, NotifyStore, Op, Queued, StoreError, StoredContact, CONTACTS, DEAD,
    JOURNAL, MESSAGES, META, ONCE, OPTOUT, QUEUE, SEP,
};

impl NotifyStore {
    /// Everything stored, as operations: one per contact, one per opt-out, then rounds of at
    /// most `per_round` once-keys, messages or log lines (the first also carries the cursors
    /// and the next id).
    pub fn export(&self, per_round: usize) -> Result<Vec<Op>, StoreError> {
        let per_round = per_round.max(1);
        let tx = self.begin_read()?;
        let mut ops = Vec::new();
        for r in tx.open_table(CONTACTS)?.iter()? {
            let (k, v) = r?;
            let c: StoredContact = serde_json::from_slice(v.value())?;
            ops.push(Op::Contacts(vec![(k.value().to_owned(), c)]));
        }
        for r in tx.open_table(OPTOUT)?.iter()? {
            let (k, v) = r?;
            ops.push(Op::OptOut {
                key: k.value().to_owned(),
                at_ms: v.value(),
            });
        }
        let mut first = Batch::default();
        for r in tx.open_table(META)?.iter()? {
            let (k, v) = r?;
            match k.value() {
                JOURNAL => {}
                "next_id" => first.next_id = Some(v.value()),
                name => first.cursors.push((name.to_owned(), v.value())),
            }
        }
        let mut rounds = vec![first];
        let room = |rounds: &mut Vec<Batch>| {
            let last = rounds.last().map_or(0, |b| {
                b.enqueue.len() + b.dead.len() + b.logs.len() + b.once.len()
            });
            if last >= per_round {
                rounds.push(Batch::default());
            }
            rounds.len() - 1
        };
        for r in tx.open_table(ONCE)?.iter()? {
            let (k, v) = r?;
            let i = room(&mut rounds);
            rounds[i].once.push((k.value().to_owned(), v.value()));
        }
        for r in tx.open_table(QUEUE)?.iter()? {
            let q: Queued = serde_json::from_slice(r?.1.value())?;
            let i = room(&mut rounds);
            rounds[i].enqueue.push(q);
        }
        for r in tx.open_table(DEAD)?.iter()? {
            let d: Dead = serde_json::from_slice(r?.1.value())?;
            let i = room(&mut rounds);
            rounds[i].dead.push((d, None));
        }
        for r in tx.open_table(MESSAGES)?.iter()? {
            let (k, v) = r?;
            let Some((tracking, _)) = k.value().split_once(SEP) else {
                continue;
            };
            let tracking = tracking.to_owned();
            let log: MessageLog = serde_json::from_slice(v.value())?;
            let i = room(&mut rounds);
            rounds[i].logs.push((tracking, log));
        }
        ops.extend(rounds.into_iter().filter(|b| !b.is_empty()).map(Op::Round));
        Ok(ops)
    }
}
