//! Everything a parcel's recipient calls, under `/t/{tracking}`: the tracking page, the
//! parcel's status as JSON, instructions for the driver, the proof-of-delivery files where the
//! configuration shows them, and the parcel's event stream
//! ([`ParcelStream`]: milestones, status and, when the privacy rule allows, the driver's
//! position). Each handler checks the tracking number and the token, then builds its answer
//! from `views::parcel` and `pages`.

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;
use milepost_core::feed::{FeedKey, TooOld};
use milepost_core::present::is_stale;
use milepost_proto::route::{ParcelState, TrackingNumber, Update};
use milepost_proto::{Command, CommandKind, DriverId, ServerMsg};
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::feed::{LagTarget, Mailbox};
use crate::server::shared::Shared;
use crate::state::lock;
use crate::web::auth::{authorize_parcel, check_parcel, check_tracking, page_auth, PageQuery};
use crate::web::error::WebError;
use crate::web::pages::{error_page, html, render_tracking};
use crate::web::respond::{json, with_headers, NOSNIFF, NO_STORE};
use crate::web::sse::{
    self, data, send, start_cursor, Audience, End, Ev, Named, Next, StreamQuery,
};
use crate::web::state::WebState;
use crate::web::views::common::moment;
use crate::web::views::parcel::{
    parcel_view, status_view, visible_position, zone_of_parcel, MessageView, MilestoneView,
};

/// `GET /t/{tracking}`: the recipient's tracking page.
pub async fn tracking(
    State(st): State<Arc<WebState>>,
    Path(tracking): Path<String>,
    headers: HeaderMap,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Response {
    let brand = &st.cfg().brand;
    if let Err(e) = check_tracking(&tracking) {
        return error_page(Some(brand), &e);
    }
    let Ok(Query(q)) = q else {
        return error_page(Some(brand), &WebError::BadRequest("bad link".into()));
    };
    let base = format!("/t/{tracking}");
    let auth = match page_auth(&st, &headers, &q, &base)
        .and_then(|a| check_parcel(&st.shared, &a.claims, &tracking).map(|_| a))
    {
        Ok(a) => a,
        Err(e) => return error_page(Some(brand), &e),
    };
    // The page wears the brand of the parcel's carrier.
    let brand = &st.brand_of_depot(&auth.claims.depot);
    let Some(view) = parcel_view(&st.shared, &TrackingNumber(tracking.clone())) else {
        return error_page(
            Some(brand),
            &WebError::NotFound(format!("no parcel {tracking}")),
        );
    };
    let mut page = html(
        StatusCode::OK,
        render_tracking(brand, &st.cfg().map, &tracking, &base, &view),
        auth.cookie,
    );
    // Origins the carrier allows may frame it (`web.embed_origins`); tiles come from the map's
    // source.
    if let Some(csp) = crate::web::embed::tracking_csp(st.cfg()) {
        page.headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    page
}

/// `GET /t/{tracking}/status`: the parcel view.
pub async fn parcel_status(
    State(st): State<Arc<WebState>>,
    Path(tracking): Path<String>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    check_tracking(&tracking)?;
    authorize_parcel(&st.shared, &headers, &tracking)?;
    let view = parcel_view(&st.shared, &TrackingNumber(tracking.clone()))
        .ok_or_else(|| WebError::NotFound(format!("no parcel {tracking}")))?;
    Ok(json(view))
}

/// `GET /t/{tracking}/proof/{sha256}`: the delivery photo or signature of this parcel, when
/// `web.api.proofs_to_recipient` allows it and the parcel's proof of delivery names the file.
pub async fn parcel_proof(
    State(st): State<Arc<WebState>>,
    Path((tracking, sha256)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    check_tracking(&tracking)?;
    authorize_parcel(&st.shared, &headers, &tracking)?;
    let no = || WebError::NotFound("no such proof".into());
    if !st.cfg().api.proofs_to_recipient {
        return Err(no());
    }
    let view = parcel_view(&st.shared, &TrackingNumber(tracking)).ok_or_else(no)?;
    let named = view.status.proof.as_ref().is_some_and(|p| {
        p.photo_sha256.as_deref() == Some(sha256.as_str())
            || p.signature_sha256.as_deref() == Some(sha256.as_str())
    });
    if !named {
        return Err(no());
    }
    let store = st.shared.proofs.clone();
    let bytes = tokio::task::spawn_blocking(move || store.get(&sha256))
        .await
        .map_err(|e| WebError::Internal(e.to_string()))?
        .map_err(|_| no())?
        .ok_or_else(no)?;
    let mime = crate::web::api::proofs::sniff(&bytes);
    Ok(with_headers(
        ([(header::CONTENT_TYPE, mime)], bytes),
        &[NO_STORE, NOSNIFF],
    ))
}

/// The body of `POST /t/{tracking}/instructions`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstructionsBody {
    /// The text for the driver (at most 1,000 bytes; empty clears).
    pub text: String,
}

/// `POST /t/{tracking}/instructions`: leaves instructions for the driver. Logged and applied
/// through the same command path as over QUIC; answered once applied.
pub async fn instructions(
    State(st): State<Arc<WebState>>,
    Path(tracking): Path<String>,
    headers: HeaderMap,
    body: Result<Json<InstructionsBody>, JsonRejection>,
) -> Result<Response, WebError> {
    check_tracking(&tracking)?;
    let (claims, _) = authorize_parcel(&st.shared, &headers, &tracking)?;
    // Authorization before the body: an outsider learns nothing from the body's errors.
    let Json(body) = body.map_err(|e| WebError::BadRequest(e.body_text()))?;
    // Control characters (other than line breaks) have no place in a note for a driver.
    let text: String = body
        .text
        .trim()
        .chars()
        .filter(|c| !c.is_control() || *c == '\n')
        .collect();
    let cmd = Command {
        id: 0,
        kind: CommandKind::SetInstructions {
            tracking: TrackingNumber(tracking),
            text: text.clone(),
        },
    };
    match crate::server::commands::handle(&claims, &st.shared, cmd).await {
        ServerMsg::Done { .. } => Ok(json(serde_json::json!({ "instructions": text }))),
        ServerMsg::Error(e) => Err(WebError::from_code(e.code, e.message)),
        other => Err(WebError::Internal(format!("unexpected answer {other:?}"))),
    }
}

/// `GET /t/{tracking}/events`: a parcel's milestones, status and (when the privacy rule allows)
/// the driver's position.
pub async fn parcel_events(
    State(st): State<Arc<WebState>>,
    Path(tracking): Path<String>,
    headers: HeaderMap,
    q: Result<Query<StreamQuery>, QueryRejection>,
    up: sse::Upgrade,
) -> Result<Response, WebError> {
    check_tracking(&tracking)?;
    let (claims, token) = authorize_parcel(&st.shared, &headers, &tracking)?;
    let t = TrackingNumber(tracking);
    let after = start_cursor(&headers, q)?;
    let live = lock(&st.shared.state.core).parcel_status(&t).is_some();
    // A parcel of a closed route still has its page (from the history): its stream stays
    // open and quiet rather than failing the page's reconnects.
    let closed = || {
        st.shared
            .state
            .history
            .as_ref()
            .is_some_and(|h| matches!(h.parcel(&t), Ok(Some(_))))
    };
    if !live && !closed() {
        return Err(WebError::NotFound(format!("no parcel {t}")));
    }
    sse::open(st, claims, token, after, ParcelStream::new(t), up, &headers)
}

/// What a parcel stream last told the browser about the driver's position.
#[derive(PartialEq)]
enum Shown {
    Nothing,
    Hidden,
    /// The position of the fix taken at this time, UTC ms.
    At(i64),
}

/// A parcel's event stream: every milestone (id = offset), the status after any of them, and
/// the driver's position while the privacy rule shows it (`null` once it does not).
pub struct ParcelStream {
    t: TrackingNumber,
    /// The driver whose moves also wake the stream (registered once visible).
    driver_key: Option<DriverId>,
    shown: Shown,
    /// At most one position per `feed.recipient_position_ms`.
    pace: milepost_core::feed::PositionPace,
    status_due: bool,
    /// What the status last sent said, in short (state, stops away, driver quiet): a change
    /// without an event (the driver went quiet, or spoke again) is sent too, within the
    /// stream's one-second look. ETA refreshes come as events, under the core's threshold.
    last_sent: Option<(ParcelState, Option<u32>, bool)>,
    /// The zone of the parcel's times, looked up at its first event.
    zone: Option<milepost_core::present::LocalClock>,
}

impl ParcelStream {
    /// The stream of parcel `t`.
    pub fn new(t: TrackingNumber) -> ParcelStream {
        ParcelStream {
            t,
            driver_key: None,
            shown: Shown::Nothing,
            pace: Default::default(),
            status_due: true,
            last_sent: None,
            zone: None,
        }
    }
}

impl Audience for ParcelStream {
    fn keys(&self) -> Vec<FeedKey> {
        vec![FeedKey::Parcel(self.t.clone())]
    }

    fn lag_target(&self) -> LagTarget {
        LagTarget::Parcel(self.t.clone())
    }

    fn last(&self, shared: &Shared) -> u64 {
        lock(&shared.state.feed).parcel_last(&self.t)
    }

    fn read(&self, shared: &Shared, cursor: u64, max: usize) -> Result<Vec<(u64, Update)>, TooOld> {
        Ok(lock(&shared.state.feed).parcel_after(&self.t, cursor, max))
    }

    /// A parcel's feed is kept whole: a browser that lost its place is sent all of it.
    fn start_over(&mut self, _last: u64) -> (u64, Option<Ev>) {
        (0, None)
    }

    fn event(&mut self, shared: &Shared, offset: u64, u: &Update) -> Option<Named> {
        let Update::Parcel(p) = u else {
            return None;
        };
        self.status_due = true;
        let t = &self.t;
        let zone = *self.zone.get_or_insert_with(|| zone_of_parcel(shared, t));
        if let Some(m) = MessageView::of(offset, u, zone) {
            return Some(("message", data(&m)));
        }
        Some(("milestone", data(&MilestoneView::of(offset, p, zone))))
    }

    async fn state(
        &mut self,
        shared: &Shared,
        tx: &mpsc::Sender<Ev>,
        mailbox: &Arc<Mailbox>,
    ) -> Result<Next, End> {
        let (status, key) = {
            let core = lock(&shared.state.core);
            let status = core.parcel_status(&self.t);
            let key = status.as_ref().map(|s| {
                let at = moment(shared, &core, &s.route_id);
                (s.state, s.stops_away, is_stale(s, &at))
            });
            (status, key)
        };
        if let Some(s) = &status {
            if self.status_due || self.last_sent != key {
                self.last_sent = key;
                let v = status_view(shared, s);
                send(tx, Ev::new("status", data(&v))).await?;
            }
        }
        self.status_due = false;
        // The driver's position, under the same privacy rule as the QUIC feed.
        let visible = status.as_ref().and_then(|s| visible_position(shared, s));
        match visible {
            Some((driver, pos)) => {
                if self.driver_key.as_ref() != Some(&driver) {
                    shared
                        .hub
                        .register(FeedKey::Driver(driver.clone()), mailbox);
                    self.driver_key = Some(driver.clone());
                }
                // Known by its fix time (a driver's positions only move forward in time),
                // read with the view itself: a fix landing in between cannot make the stream
                // believe it sent a newer position than it did.
                let fix_ms = pos.t_ms;
                let now = Shown::At(fix_ms);
                // The newest position at most once per `feed.recipient_position_ms` (one
                // withheld now goes out at a later look: at least one a second).
                let (clock, every) = (shared.now_ms(), shared.cfg.feed.recipient_position_ms);
                let first = matches!(self.shown, Shown::Nothing | Shown::Hidden);
                let due = first || self.pace.due(fix_ms, clock, every);
                if now != self.shown && due {
                    send(tx, Ev::new("position", data(&pos))).await?;
                    self.pace.sent(fix_ms, clock);
                    self.shown = now;
                }
            }
            None if self.shown != Shown::Hidden => {
                send(tx, Ev::new("position", "null")).await?;
                self.shown = Shown::Hidden;
            }
            None => {}
        }
        Ok(Next::Wait)
    }
}
