//! The outbox's intake: commands from the API (a dead letter queued again) and the reading of
//! milestones and configured depots' alerts from the feed store, composed into the round's
//! batch.

use std::collections::HashSet;
use std::sync::atomic::Ordering;

use super::state::{depot_cursor, round_full, Outbox, MILESTONES, PAGE};
use crate::notify::handle::Command;
use crate::notify::plan::milestone_of;
use crate::notify::store::Batch;
use crate::state::lock;

impl Outbox {
    pub(super) fn commands(&mut self, b: &mut Batch) {
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
    pub(super) fn read(&mut self, b: &mut Batch) -> bool {
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
                // First start: from this gateway's start on, never the past (in a cluster the
                // first gateway to lead may start to lead a while after it started).
                None => Err(Some(self.start.0)),
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
                    if round_full(b) {
                        // The rest next round (at once).
                        more = true;
                        done = *off;
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
                    None => Err(self
                        .start
                        .1
                        .get(&a.depot)
                        .copied()
                        .unwrap_or_else(|| feed.depot_last(&depot))),
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
}
