//! Composing messages: a parcel milestone read from the feed store becomes one message per
//! channel the recipient wants (rendered now, with the window, stops and driver as they are at
//! the milestone; a driver's message after `driver_message_delay_s`), and a dispatcher alert
//! becomes one e-mail. Reads the fleet state and the store; writes nothing (the outbox commits
//! what this returns).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use milepost_core::present::{dispatch_text, next_step_text, reason_text};
use milepost_proto::route::{
    DispatchEvent, DispatchUpdate, NextStep, ParcelEvent, ParcelStatus, ParcelUpdate,
};

use crate::auth::{Claims, Role, TokenKeys};
use crate::notify::config::{AlertRoute, NotifyConfig};
use crate::notify::contact::Channel;
use crate::notify::optout;
use crate::notify::plan::{local_time, milestone_of, once_key, Milestone};
use crate::notify::store::{Batch, NotifyStore, Queued, StoreError};
use crate::notify::templates::{Rendered, Templates, Vars};
use crate::state::{lock, FleetState};

/// The clock notifications read, UTC ms.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// What composing needs, fixed for the gateway's life.
pub struct Composer {
    /// The `[notify]` section.
    pub cfg: NotifyConfig,
    /// Compiled templates.
    pub templates: Templates,
    /// The time zone of messages (`notify.time_zone`), for depots no carrier lists.
    pub tz: chrono_tz::Tz,
    /// The carrier's name (`notify.carrier`, else the brand's), for depots no carrier lists.
    pub carrier: String,
    /// The carriers (`[carriers]`): a listed depot's messages carry its carrier's name and
    /// times in its carrier's zone.
    pub carriers: crate::tenancy::Carriers,
    /// Base URL of links, no trailing slash.
    pub public_url: String,
    /// Drivers' first names from `[web.drivers]`, by driver id (the fallback).
    pub drivers: BTreeMap<String, String>,
    /// Drivers' profiles set over the API (first).
    pub profiles: Arc<crate::drivers::DriverProfiles>,
    /// Signs tracking links.
    pub keys: TokenKeys,
    /// Signs opt-out links (the notifications' own secret, [`crate::notify::Notify::secret`]).
    pub optout_secret: Vec<u8>,
    /// The fleet state.
    pub state: Arc<FleetState>,
    /// The store (contacts, once-keys).
    pub store: Arc<NotifyStore>,
    /// The clock.
    pub clock: Clock,
    /// How long a contact is kept after it was set, ms (`history.retention_days`).
    pub retention_ms: i64,
}

/// The route, depot and driver of a parcel, and its status, as the state has them now.
struct Where {
    route: String,
    depot: String,
    driver: Option<String>,
    status: Option<ParcelStatus>,
}

impl Composer {
    fn now(&self) -> i64 {
        (self.clock)()
    }

    fn locate(&self, tracking: &milepost_proto::route::TrackingNumber) -> Option<Where> {
        let core = lock(&self.state.core);
        if let Some(status) = core.parcel_status(tracking) {
            let run = core.run(&status.route_id);
            return Some(Where {
                route: status.route_id.0.clone(),
                depot: run.map(|r| r.plan.depot.0.clone()).unwrap_or_default(),
                driver: run.map(|r| r.plan.driver.0.clone()),
                status: Some(status),
            });
        }
        drop(core);
        let h = self.state.history.as_ref()?.parcel(tracking).ok()??;
        Some(Where {
            route: h.status.route_id.0.clone(),
            depot: h.depot.0.clone(),
            driver: None,
            status: None,
        })
    }

    fn link(&self, tracking: &str, depot: &str) -> String {
        let now_s = self.now().div_euclid(1000);
        let claims = Claims {
            role: Role::Recipient,
            sub: tracking.to_owned(),
            depot: depot.to_owned(),
            exp: now_s + i64::from(self.cfg.link_ttl_days) * 86_400,
            iat: now_s,
            carrier: Some(self.carriers.carrier_of(depot).to_owned()),
        };
        format!(
            "{}/t/{tracking}?token={}",
            self.public_url,
            self.keys.mint(&claims)
        )
    }

    /// The clock (zone and locale) and the name messages about `depot` use: its carrier's
    /// when `[carriers]` lists it, else the `[notify]` section's zone.
    fn voice(&self, depot: &str) -> (milepost_core::present::LocalClock, String) {
        let id = self.carriers.carrier_of(depot);
        match self.carriers.0.get(id) {
            Some(c) => (
                self.carriers.clock_of_depot(depot),
                if c.name.is_empty() {
                    self.carrier.clone()
                } else {
                    c.name.clone()
                },
            ),
            None => (self.tz.into(), self.carrier.clone()),
        }
    }

    fn vars(&self, u: &ParcelUpdate, m: Milestone, w: &Where) -> Vars {
        let now = self.now();
        let (tz, carrier) = self.voice(&w.depot);
        let t = |ms: i64| local_time(tz, ms, now);
        let s = w.status.as_ref();
        let window = match s.map(|s| (s.earliest_ms, s.latest_ms, s.window)) {
            Some((Some(a), Some(b), _)) => Some(format!("{}-{}", t(a), t(b))),
            Some((_, _, Some(win))) => Some(format!("{}-{}", t(win.start_ms), t(win.end_ms))),
            _ => None,
        };
        let on_the_way = matches!(
            m,
            Milestone::StopsAway | Milestone::ArrivingSoon | Milestone::Delivered
        );
        let mut v = Vars {
            carrier,
            tracking: u.tracking.0.clone(),
            tracking_link: self.link(&u.tracking.0, &w.depot),
            window,
            eta: s.and_then(|s| s.eta_ms).map(t),
            stops_away: s.and_then(|s| s.stops_away),
            driver_first_name: w.driver.as_ref().filter(|_| on_the_way).and_then(|d| {
                self.profiles
                    .get(d)
                    .map(|p| p.first_name)
                    .or_else(|| self.drivers.get(d).cloned())
            }),
            ..Vars::default()
        };
        match &u.kind {
            ParcelEvent::StopsAway { n } => v.stops_away = Some(*n),
            ParcelEvent::Delivered { at_ms, .. } => v.delivered_at = Some(t(*at_ms)),
            ParcelEvent::DeliveredTo {
                at_ms, received_by, ..
            } => {
                v.delivered_at = Some(t(*at_ms));
                v.received_by = Some(received_by.clone());
            }
            ParcelEvent::NextStep {
                reason,
                attempt,
                next,
            } => {
                v.reason = Some(reason_text(*reason).to_owned());
                let (action, place) = match next {
                    NextStep::Reattempt => ("reattempt", ""),
                    NextStep::Hold { place } => ("hold", place.as_str()),
                    NextStep::Return => ("return", ""),
                };
                v.next_step = Some(match self.cfg.next_step.get(action) {
                    Some(text) => text.replace("{place}", place),
                    None => format!("{}.", next_step_text(next, *attempt)),
                });
            }
            ParcelEvent::Delayed { eta_ms, .. } => v.eta = Some(t(*eta_ms)),
            ParcelEvent::Message { text, .. } => v.message = Some(text.clone()),
            _ => {}
        }
        v
    }

    /// Whether any of the parcel's events kept in the feed store matches `f`.
    fn any_event(
        &self,
        t: &milepost_proto::route::TrackingNumber,
        f: impl Fn(&ParcelEvent) -> bool,
    ) -> bool {
        lock(&self.state.feed)
            .parcel_after(t, 0, usize::MAX)
            .iter()
            .any(|(_, u)| matches!(u, milepost_proto::route::Update::Parcel(p) if f(&p.kind)))
    }

    /// Whether the parcel's failed-attempt decision already said it goes back to the sender.
    fn told_returning(&self, t: &milepost_proto::route::TrackingNumber) -> bool {
        self.any_event(t, |e| {
            matches!(
                e,
                ParcelEvent::NextStep {
                    next: NextStep::Return,
                    ..
                }
            )
        })
    }

    /// Queues the messages of one parcel update, if it is a milestone the recipient is told
    /// of and was not told yet. `taken` holds the once-keys of this round.
    pub fn parcel(
        &self,
        u: &ParcelUpdate,
        next_id: &mut u64,
        taken: &mut HashSet<String>,
        b: &mut Batch,
    ) -> Result<(), StoreError> {
        let Some(m) = milestone_of(&u.kind, self.cfg.stops_away_at) else {
            return Ok(());
        };
        if !self.cfg.milestones.contains(&m) {
            return Ok(());
        }
        let Some(contact) = self.store.contact(&u.tracking.0)? else {
            return Ok(());
        };
        let Some(w) = self.locate(&u.tracking) else {
            return Ok(());
        };
        if m == Milestone::Returned && self.told_returning(&u.tracking) {
            // The failed attempt's message said so already.
            return Ok(());
        }
        let key = once_key(&u.tracking.0, &w.route, m, &u.kind, u.fix_t_ms);
        if taken.contains(&key) || self.store.once_taken(&key)? {
            return Ok(());
        }
        let now = self.now();
        // A driver's message waits: answered on the page meanwhile, it is not sent.
        let due = match m {
            Milestone::DriverMessage => now + self.cfg.driver_message_delay_s as i64 * 1000,
            _ => now,
        };
        taken.insert(key.clone());
        b.once.push((key, now));
        let mut vars = self.vars(u, m, &w);
        vars.recipient_name = contact.contact.name.clone();
        let templates = self.templates.of(self.carriers.carrier_of(&w.depot));
        let locale = templates
            .locale(contact.contact.locale.as_deref(), &self.cfg.default_locale)
            .to_owned();
        for c in contact.contact.channels() {
            if !self.cfg.has(c) {
                continue;
            }
            let unsubscribe = format!(
                "{}/n/optout/{}",
                self.public_url,
                optout::token(&self.optout_secret, c, &u.tracking.0)
            );
            vars.optout_link = unsubscribe.clone();
            let rendered = match templates.render(&locale, m, c, &vars) {
                Ok(r) => r,
                Err(e) => {
                    // Every template was rendered at start-up; a failure here is a bug.
                    tracing::error!(error = %e, "notification not rendered");
                    continue;
                }
            };
            b.enqueue.push(Queued {
                id: *next_id,
                tracking: Some(u.tracking.0.clone()),
                depot: w.depot.clone(),
                route: w.route.clone(),
                milestone: Some(m),
                alert: None,
                channel: c,
                to: None,
                rendered,
                unsubscribe: Some(unsubscribe),
                queued_ms: now,
                attempts: 0,
                next_ms: due,
                last_error: None,
                event_ms: Some(u.fix_t_ms),
            });
            *next_id += 1;
        }
        Ok(())
    }

    /// Whether the recipient wrote in the parcel's thread at or after `since_ms` (so they saw
    /// the driver's message on the page).
    pub fn recipient_wrote_since(
        &self,
        tracking: &milepost_proto::route::TrackingNumber,
        since_ms: i64,
    ) -> bool {
        self.any_event(tracking, |e| {
            matches!(
                e,
                ParcelEvent::Message {
                    from: milepost_proto::route::MessageFrom::Recipient,
                    at_ms,
                    ..
                } if *at_ms >= since_ms
            )
        })
    }

    /// Queues the e-mail of one dispatcher alert, if `a` asks for its kind (a running-late
    /// alert once per route and stop).
    pub fn alert(
        &self,
        a: &AlertRoute,
        d: &DispatchUpdate,
        next_id: &mut u64,
        taken: &mut HashSet<String>,
        b: &mut Batch,
    ) -> Result<(), StoreError> {
        let kind = match &d.kind {
            DispatchEvent::DriverStalled { .. } => "stalled",
            DispatchEvent::RunningLate { .. } => "running_late",
            DispatchEvent::OffRoute { .. } => "off_route",
            DispatchEvent::AttemptFailed { .. } => "attempt_failed",
            _ => return Ok(()),
        };
        if !a.kinds.iter().any(|k| k == kind) {
            return Ok(());
        }
        let now = self.now();
        if let DispatchEvent::RunningLate { stop, .. } = &d.kind {
            let key = format!("a\u{1}{}\u{1}{}\u{1}late\u{1}{}", a.depot, d.route_id, stop);
            if taken.contains(&key) || self.store.once_taken(&key)? {
                return Ok(());
            }
            taken.insert(key.clone());
            b.once.push((key, now));
        }
        let (_, text, _) = dispatch_text(&d.kind);
        let link = format!("{}/dispatch", self.public_url);
        b.enqueue.push(Queued {
            id: *next_id,
            tracking: None,
            depot: a.depot.clone(),
            route: d.route_id.0.clone(),
            milestone: None,
            alert: Some(kind.to_owned()),
            channel: Channel::Email,
            to: Some(a.email.clone()),
            rendered: Rendered {
                subject: Some(format!(
                    "[{}] {} {}: {text}",
                    self.carrier, a.depot, d.route_id
                )),
                text: format!(
                    "Route {} of depot {}: {text}.\n\nThe live map: {link}\n",
                    d.route_id, a.depot
                ),
                whatsapp: None,
            },
            unsubscribe: None,
            queued_ms: now,
            attempts: 0,
            next_ms: now,
            last_error: None,
            event_ms: Some(d.fix_t_ms),
        });
        *next_id += 1;
        Ok(())
    }
}
