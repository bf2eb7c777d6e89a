//! The rules a due message meets before it goes out, in order: the recipient's contact still
//! exists and has the channel's address; the address has not opted out; a driver's message
//! the recipient answered on the page is not sent; then, for recipients'
//! messages (alerts skip these), a timely one ([`crate::notify::plan::Milestone::timely`]) is
//! dropped when an outcome waits behind it or when it failed before and anything newer waits,
//! when older than `timely_max_age_s`, in quiet hours or past the rate limit, where the others
//! wait.

use super::state::{lane_of, Outbox};
use crate::notify::config::Milestone;
use crate::notify::contact::{address_key, carrier_key};
use crate::notify::store::Queued;

/// What happens to a due message.
pub(super) enum Decision {
    Drop(&'static str),
    Wait(i64),
    Send {
        to: String,
        name: Option<String>,
        key: String,
    },
}

impl Outbox {
    pub(super) fn decide(&mut self, q: &Queued, lane_len: usize, now: i64) -> Decision {
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
        // Out of every carrier's messages, or of this parcel's carrier's.
        let carrier = self.composer.carriers.carrier_of(&q.depot);
        let scoped = carrier_key(&key, carrier);
        let opted = self.notify.store.opted_out(&key).and_then(|all| match all {
            true => Ok(true),
            false => self.notify.store.opted_out(&scoped),
        });
        match opted {
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
        if q.milestone == Some(Milestone::DriverMessage) {
            if let Some(t) = &q.tracking {
                let t: milepost_proto::route::TrackingNumber = t.as_str().into();
                // Since the driver wrote it (or, in a queue from before that was kept, read it).
                let since = q.event_ms.unwrap_or(q.queued_ms);
                if self.composer.recipient_wrote_since(&t, since) {
                    return Decision::Drop("answered on the tracking page");
                }
            }
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

    /// Whether an outcome (delivered, failed, returned) waits behind `q`. A driver's message
    /// is not one: news before it still goes.
    pub(super) fn lane_has_final(&self, q: &Queued) -> bool {
        self.lanes.get(&lane_of(q)).is_some_and(|l| {
            l.iter()
                .filter(|id| **id != q.id)
                .filter_map(|id| self.items.get(id))
                .any(|m| m.milestone.is_some_and(Milestone::is_outcome))
        })
    }
}
