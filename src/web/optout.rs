//! The opt-out page of notification messages, `/n/optout/{token}` (the token from
//! [`crate::notify::optout`]): `GET` shows what will stop and a button (mail scanners follow
//! links, so a `GET` changes nothing); `POST`, from that button or a mail client's one-click
//! `List-Unsubscribe-Post`, stops that channel for the parcel's address on every later parcel
//! of the parcel's carrier (whose brand the page wears). Where the parcel's depot is no longer
//! known, or on a gateway of one carrier, it stops every carrier's.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;

use crate::notify::contact::{address_key, carrier_key};
use crate::notify::optout;
use crate::tenancy::BrandConfig;
use crate::web::pages::{html, notice_page};
use crate::web::state::WebState;

fn page(
    brand: &BrandConfig,
    status: StatusCode,
    title: &str,
    text: &str,
    button: Option<(&str, &str)>,
) -> Response {
    html(status, notice_page(brand, title, text, button), None)
}

/// The parcel's carrier (none when its depot is no longer known) and the brand it speaks in.
fn whose(st: &WebState, tracking: &str) -> (Option<String>, BrandConfig) {
    let t = milepost_proto::route::TrackingNumber(tracking.to_owned());
    match st.shared.state.depot_of_parcel(&t) {
        Ok(Some(d)) => (
            Some(st.shared.cfg.carriers.carrier_of(&d.0).to_owned()),
            st.brand_of_depot(&d.0),
        ),
        _ => (None, st.cfg().brand.clone()),
    }
}

fn invalid(st: &WebState) -> Response {
    page(
        &st.cfg().brand,
        StatusCode::NOT_FOUND,
        "Link not valid",
        "This opt-out link is not valid. Please use the link from your latest message.",
        None,
    )
}

/// `GET /n/optout/{token}`: what will stop, and the button.
pub async fn show(State(st): State<Arc<WebState>>, Path(token): Path<String>) -> Response {
    let Some((channel, tracking)) = optout::verify(st.shared.notify.secret(), &token) else {
        return invalid(&st);
    };
    let action = format!("/n/optout/{token}");
    let (_, brand) = whose(&st, &tracking);
    page(
        &brand,
        StatusCode::OK,
        "Stop messages",
        &format!(
            "Stop {} messages from {} about your deliveries (this parcel: {tracking})?",
            channel.name(),
            brand.name
        ),
        Some((&action, "Stop these messages")),
    )
}

/// `POST /n/optout/{token}`: opts the address out.
pub async fn confirm(State(st): State<Arc<WebState>>, Path(token): Path<String>) -> Response {
    let notify = &st.shared.notify;
    let Some((channel, tracking)) = optout::verify(notify.secret(), &token) else {
        return invalid(&st);
    };
    let (carrier, brand) = whose(&st, &tracking);
    let address = match notify.store.contact(&tracking) {
        Ok(Some(c)) => c.contact.address(channel).map(str::to_owned),
        Ok(None) => None,
        Err(e) => {
            tracing::error!(error = %e, "opt-out: contact not read");
            return page(
                &brand,
                StatusCode::SERVICE_UNAVAILABLE,
                "Please try again",
                "We could not record this just now. Please try again in a minute.",
                None,
            );
        }
    };
    let Some(address) = address else {
        return page(
            &brand,
            StatusCode::OK,
            "Nothing to stop",
            "We no longer hold contact details for this parcel, so no more messages will be sent about it.",
            None,
        );
    };
    let key = address_key(notify.secret(), channel, &address);
    let key = match &carrier {
        Some(c) => carrier_key(&key, c),
        None => key,
    };
    let op = crate::notify::journal::Op::OptOut {
        key,
        at_ms: st.shared.now_ms(),
    };
    if let Err(e) = notify.write(op).await {
        tracing::error!(error = %e, "opt-out not recorded");
        return page(
            &brand,
            StatusCode::SERVICE_UNAVAILABLE,
            "Please try again",
            "We could not record this just now. Please try again in a minute.",
            None,
        );
    }
    page(
        &brand,
        StatusCode::OK,
        "Messages stopped",
        &format!(
            "You will get no more {} messages from {}.",
            channel.name(),
            brand.name
        ),
        None,
    )
}
