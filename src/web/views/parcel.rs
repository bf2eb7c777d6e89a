//! The recipient's views: a parcel's status in words ([`StatusView`]), its timeline of
//! milestones ([`MilestoneView`]), the driver card, the driver's position under the privacy
//! rule ([`visible_position`]), the recipient-driver thread ([`MessageView`]), and all of it
//! together for the tracking page ([`ParcelView`]).

use chrono_tz::Tz;
use milepost_core::present::{
    change_text, clock_text_in, event_kind, event_text, event_time, hhmm_in, reason_text,
    shown_outcome, status_line_at, visible_driver, zone_label, LocalClock,
};
use milepost_proto::route::{
    MessageFrom, ParcelEvent, ParcelState, ParcelStatus, ParcelUpdate, Point, ProofSummary,
    TimeWindow, TrackingNumber, Update,
};
use milepost_proto::DriverId;
use serde::Serialize;

use crate::server::shared::Shared;
use crate::state::lock;
use crate::web::views::common::{moment, run_of, PositionView};

/// Milestones shown in a parcel's timeline (the newest ones).
const TIMELINE_MAX: usize = 40;
/// Milestones scanned for the timeline (ETA updates are skipped, so scan more than shown).
const TIMELINE_SCAN: u64 = 400;

/// One entry of a parcel's timeline.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MilestoneView {
    /// Its feed offset (the SSE event id).
    pub offset: u64,
    /// The event's kind, e.g. `StopsAway` (for icons and styling).
    pub kind: &'static str,
    /// In words.
    pub text: String,
    /// When, UTC ms.
    pub at_ms: i64,
    /// When, `HH:MM` UTC.
    pub time: String,
    /// Shown in the timeline (ETA updates only refresh the status).
    pub milestone: bool,
}

impl MilestoneView {
    /// The view of milestone `offset`.
    pub fn of(offset: u64, p: &ParcelUpdate, zone: LocalClock) -> MilestoneView {
        let at_ms = event_time(p);
        let text = match &p.kind {
            // Said the way the status line says it ("1 stop away", "Next stop").
            ParcelEvent::StopsAway { n: 0 } => "Next stop".to_owned(),
            ParcelEvent::StopsAway { n: 1 } => "1 stop away".to_owned(),
            // The time is shown beside it.
            ParcelEvent::Delivered { .. } => "Delivered".to_owned(),
            other => event_text(other).trim().to_owned(),
        };
        MilestoneView {
            offset,
            kind: event_kind(&p.kind),
            text,
            at_ms,
            time: hhmm_in(at_ms, zone),
            // Messages are the thread's, beside the timeline.
            milestone: !matches!(
                p.kind,
                ParcelEvent::EtaChanged { .. } | ParcelEvent::Message { .. }
            ),
        }
    }
}

/// One message of a parcel's thread.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct MessageView {
    /// Its feed offset.
    pub offset: u64,
    /// `recipient` or `driver`.
    pub from: &'static str,
    /// The text.
    pub text: String,
    /// When, UTC ms.
    pub at_ms: i64,
    /// When, `HH:MM` UTC.
    pub time: String,
}

impl MessageView {
    /// The view of a feed entry, if it is a message.
    pub fn of(offset: u64, u: &Update, zone: LocalClock) -> Option<MessageView> {
        let Update::Parcel(ParcelUpdate {
            kind: ParcelEvent::Message { from, text, at_ms },
            ..
        }) = u
        else {
            return None;
        };
        Some(MessageView {
            offset,
            from: match from {
                MessageFrom::Recipient => "recipient",
                MessageFrom::Driver => "driver",
            },
            text: text.clone(),
            at_ms: *at_ms,
            time: hhmm_in(*at_ms, zone),
        })
    }
}

/// The messages among a parcel's feed entries, oldest first.
pub fn thread(entries: &[(u64, Update)], zone: LocalClock) -> Vec<MessageView> {
    entries
        .iter()
        .filter_map(|(o, u)| MessageView::of(*o, u, zone))
        .collect()
}

/// The zone a parcel's times are shown in: its depot's carrier's (the live route's depot,
/// else its history's; UTC for a parcel the gateway does not know).
pub fn zone_of_parcel(shared: &Shared, t: &TrackingNumber) -> LocalClock {
    let live = {
        let core = lock(&shared.state.core);
        core.parcel_status(t)
            .and_then(|s| core.run(&s.route_id).map(|r| r.plan.depot.0.clone()))
    };
    let depot = live.or_else(|| {
        let h = shared.state.history.as_ref()?.parcel(t).ok()??;
        Some(h.depot.0)
    });
    depot.map_or(Tz::UTC.into(), |d| shared.cfg.carriers.clock_of_depot(&d))
}

/// What a recipient is told about the driver (the profile set over the API, else
/// `web.drivers`; nothing when neither has one), once the driver is on the way to this stop.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DriverCard {
    /// First name.
    pub first_name: String,
    /// Vehicle.
    pub vehicle: Option<String>,
    /// Photo, `https://` (profiles only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub photo_url: Option<String>,
}

/// The parcel's current state, without the timeline (sent on every change).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StatusView {
    /// The parcel.
    pub tracking: String,
    /// Where it is.
    pub state: ParcelState,
    /// The one-line status, e.g. `3 stops away - arriving 14:05-14:15`.
    pub status_line: String,
    /// Stops before this one.
    pub stops_away: Option<u32>,
    /// Best estimate, UTC ms.
    pub eta_ms: Option<i64>,
    /// Earliest likely arrival, UTC ms.
    pub earliest_ms: Option<i64>,
    /// Latest likely arrival, UTC ms.
    pub latest_ms: Option<i64>,
    /// The promised window.
    pub window: Option<TimeWindow>,
    /// The promised window as `HH:MM-HH:MM` UTC.
    pub window_text: Option<String>,
    /// Proof of delivery, once delivered.
    pub proof: Option<ProofSummary>,
    /// Who took the parcel, when the driver took a name.
    pub received_by: Option<String>,
    /// Why the attempt failed, once failed.
    pub failure: Option<String>,
    /// The driver, when configured and the route has started.
    pub driver: Option<DriverCard>,
    /// The recipient's change to the delivery, in words ("Safe place: porch").
    pub change: Option<String>,
    /// The change took the parcel off its route (another slot, a pickup point): no window,
    /// no instructions, no thread on this route.
    pub withdrawn: bool,
    /// The IANA zone the times are in (the depot's carrier's), e.g. `Europe/Zagreb`.
    pub time_zone: String,
    /// Its short name now, e.g. `CET`, for "Times are CET".
    pub zone_label: String,
    /// Whether the carrier's locale writes times on a 12-hour clock (`2:05 PM`), for the
    /// page's own clock.
    pub hour12: bool,
}

/// Everything the tracking page shows.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ParcelView {
    /// The offset of the newest milestone: the page's event stream starts after it.
    pub offset: u64,
    /// The current state.
    pub status: StatusView,
    /// The newest milestones, oldest first.
    pub timeline: Vec<MilestoneView>,
    /// The delivery address (the recipient's own stop), for the map.
    pub destination: Option<Point>,
    /// The driver's position, only when the privacy rule allows it.
    pub position: Option<PositionView>,
    /// Instructions this recipient left, if any.
    pub instructions: Option<String>,
    /// The messages between recipient and driver, oldest first.
    pub messages: Vec<MessageView>,
}

/// The current status of a parcel, in words.
pub fn status_view(shared: &Shared, s: &ParcelStatus) -> StatusView {
    let (proof, failure) = shown_outcome(s);
    let received_by = proof.and_then(|d| d.received_by).map(str::to_owned);
    let proof = proof.map(|d| d.proof.clone());
    let failure = failure.map(|(reason, note)| match note.trim() {
        "" => reason_text(reason).to_owned(),
        note => format!("{}: {note}", reason_text(reason)),
    });
    let (driver, at, change, withdrawn) = {
        let core = lock(&shared.state.core);
        // Who the driver is shows once the driver is on the way to this stop (next, soon,
        // there) or has been (delivered, failed), not while serving other customers before.
        let on_the_way = match s.state {
            ParcelState::Planned => false,
            ParcelState::OutForDelivery => s.stops_away == Some(0),
            _ => true,
        };
        let driver = if on_the_way {
            core.route_view(&s.route_id)
                .and_then(|v| driver_card(shared, &v.driver))
        } else {
            None
        };
        let change = core.delivery_change(&s.tracking).map(|(c, _)| c.clone());
        let withdrawn = core.is_withdrawn(&s.tracking);
        (
            driver,
            moment(shared, &core, &s.route_id),
            change,
            withdrawn,
        )
    };
    // A parcel its recipient took off the route says where it went instead.
    let status_line = match &change {
        Some(c) if withdrawn => change_text(c),
        _ => status_line_at(s, &at),
    };
    StatusView {
        tracking: s.tracking.0.clone(),
        state: s.state,
        status_line,
        stops_away: s.stops_away,
        eta_ms: s.eta_ms,
        earliest_ms: s.earliest_ms,
        latest_ms: s.latest_ms,
        window: s.window,
        window_text: s.window.filter(|_| !withdrawn).map(|w| {
            format!(
                "{}-{}",
                clock_text_in(w.start_ms, at.now_ms, at.zone),
                hhmm_in(w.end_ms, at.zone)
            )
        }),
        proof,
        received_by,
        failure,
        driver,
        change: change.as_ref().map(change_text),
        withdrawn,
        time_zone: at.zone.zone.name().to_owned(),
        zone_label: zone_label(at.zone, at.now_ms),
        hour12: at.zone.hour12,
    }
}

/// The presentation of a driver: the profile set over the API, else `web.drivers`.
pub fn driver_card(shared: &Shared, d: &DriverId) -> Option<DriverCard> {
    if let Some(p) = shared.drivers.get(&d.0) {
        return Some(DriverCard {
            first_name: p.first_name,
            vehicle: p.vehicle,
            photo_url: p.photo_url,
        });
    }
    shared.cfg.web.drivers.get(&d.0).map(|c| DriverCard {
        first_name: c.first_name.clone(),
        vehicle: c.vehicle.clone(),
        photo_url: None,
    })
}

/// The position a recipient may see now, if any: the core's privacy rule
/// ([`visible_driver`]), the same the QUIC feed applies, then that driver's live position.
pub fn visible_position(shared: &Shared, s: &ParcelStatus) -> Option<(DriverId, PositionView)> {
    let driver = {
        let core = lock(&shared.state.core);
        visible_driver(&core, &shared.cfg.feed, s, shared.now_ms())
    }?;
    let p = lock(&shared.state.positions)
        .position_of(&driver)
        .map(|(_, p)| PositionView::of(&p))?;
    Some((driver, p))
}

/// The whole tracking-page view of parcel `t`, or `None` if it is unknown.
pub fn parcel_view(shared: &Shared, t: &TrackingNumber) -> Option<ParcelView> {
    // Offset first: a milestone racing with this read is then sent again by the event stream
    // rather than lost.
    let (offset, tail) = {
        let feed = lock(&shared.state.feed);
        let last = feed.parcel_last(t);
        let from = last.saturating_sub(TIMELINE_SCAN);
        (last, feed.parcel_after(t, from, TIMELINE_SCAN as usize))
    };
    let live = {
        let core = lock(&shared.state.core);
        core.parcel_status(t).map(|status| {
            let run = run_of(&core, &status.route_id);
            let destination = run
                .and_then(|r| r.plan.stops.iter().find(|s| s.id == status.stop))
                .map(|s| Point {
                    lat: s.lat,
                    lon: s.lon,
                });
            let instructions = run
                .and_then(|r| r.parcel(t))
                .and_then(|p| p.instructions.clone());
            let zone = run.map_or(Tz::UTC.into(), |r| {
                shared.cfg.carriers.clock_of_depot(&r.plan.depot.0)
            });
            (status, destination, instructions, zone)
        })
    };
    let Some((status, destination, instructions, zone)) = live else {
        return closed_parcel_view(shared, t, offset);
    };
    let mut timeline: Vec<MilestoneView> = tail
        .iter()
        .filter_map(|(o, u)| match u {
            Update::Parcel(p) => Some(MilestoneView::of(*o, p, zone)),
            _ => None,
        })
        .filter(|m| m.milestone)
        .collect();
    if timeline.len() > TIMELINE_MAX {
        timeline.drain(..timeline.len() - TIMELINE_MAX);
    }
    let position = visible_position(shared, &status).map(|(_, p)| p);
    Some(ParcelView {
        offset,
        status: status_view(shared, &status),
        timeline,
        destination,
        position,
        instructions,
        messages: thread(&tail, zone),
    })
}

/// The view of a parcel whose route has left the live state, from the history (for
/// `history.retention_days`): its final status and milestones, no map and no driver.
fn closed_parcel_view(shared: &Shared, t: &TrackingNumber, offset: u64) -> Option<ParcelView> {
    let h = shared.state.history.as_ref()?.parcel(t).ok()??;
    let zone = shared.cfg.carriers.clock_of_depot(&h.depot.0);
    let mut timeline: Vec<MilestoneView> = h
        .milestones
        .iter()
        .enumerate()
        .map(|(i, p)| MilestoneView::of(i as u64 + 1, p, zone))
        .filter(|m| m.milestone)
        .collect();
    if timeline.len() > TIMELINE_MAX {
        timeline.drain(..timeline.len() - TIMELINE_MAX);
    }
    let mut status = status_view(shared, &h.status);
    status.driver = None;
    Some(ParcelView {
        offset,
        status,
        timeline,
        destination: None,
        position: None,
        instructions: None,
        messages: thread(
            &h.milestones
                .iter()
                .enumerate()
                .map(|(i, p)| (i as u64 + 1, Update::Parcel(p.clone())))
                .collect::<Vec<_>>(),
            zone,
        ),
    })
}
