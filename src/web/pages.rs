//! The HTML of the pages: the recipient's tracking page ([`render_tracking`]), the dispatcher
//! map ([`render_dispatch`]) and the branded error page ([`error_page`]), with the head every
//! page shares. Rendering only: the handlers that authorize and call these live with their
//! audience (`recipient`, `dispatch`).
//!
//! Pages are rendered on the server with the current state, so the status line is on screen
//! with the first response (no script needed to read it); the scripts in `web/` then keep them
//! live from the event stream. Every piece of text that did not come from this file (brand
//! name, tracking number, instructions, names, event texts) goes through [`escape`]; the state
//! handed to the scripts is JSON inside a non-executed `<script type="application/json">`, with
//! `<`, `>` and `&` escaped so it cannot close it.

use std::fmt::Write as _;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use milepost_proto::route::{ParcelState, ProofSummary};
use serde::Serialize;

use crate::tenancy::BrandConfig;
use crate::web::assets::{asset_version, logo_src};
use crate::web::config::MapConfig;
use crate::web::error::WebError;
use crate::web::respond::page_headers;
use crate::web::views::parcel::ParcelView;

/// Escapes text for HTML element content and double-quoted attributes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// JSON safe to embed in a `<script type="application/json">` block.
pub fn script_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v)
        .unwrap_or_else(|_| "null".into())
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// The page head and branded header.
pub fn head(out: &mut String, brand: &BrandConfig, title: &str, body_class: &str) {
    let v = asset_version();
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"referrer\" content=\"no-referrer\">\
         <title>{title} - {name}</title>\
         <link rel=\"icon\" href=\"data:,\">\
         <link rel=\"stylesheet\" href=\"/assets/style.css?v={v}\"><link rel=\"stylesheet\" href=\"/brand.css{of}\">\
         </head><body class=\"{body_class}\"><header class=\"brand\">",
        title = escape(title),
        name = escape(&brand.name),
        of = escape(&crate::web::assets::of_carrier(brand)),
    );
    if let Some(src) = logo_src(brand) {
        let _ = write!(
            out,
            "<img class=\"logo\" src=\"{}\" alt=\"\" width=\"32\" height=\"32\">",
            escape(&src)
        );
    }
    let _ = write!(
        out,
        "<span class=\"brand-name\">{}</span></header>",
        escape(&brand.name)
    );
}

/// An HTML answer with the page headers (and the token cookie, when the link carried one).
pub fn html(status: StatusCode, body: String, cookie: Option<HeaderValue>) -> Response {
    let mut r = (status, Html(body)).into_response();
    page_headers(r.headers_mut());
    if let Some(c) = cookie {
        r.headers_mut().insert(header::SET_COOKIE, c);
    }
    r
}

/// A branded error page with the error's status.
pub fn error_page(brand: Option<&BrandConfig>, e: &WebError) -> Response {
    let default = BrandConfig::default();
    let brand = brand.unwrap_or(&default);
    let (title, hint) = match e {
        WebError::NoToken | WebError::BadToken(_) => (
            "Link not valid",
            "Please open the latest link from your message, or ask the sender for a new one.",
        ),
        WebError::WrongRole(_) | WebError::OutOfScope(_) => (
            "Not available",
            "This link does not give access to this page.",
        ),
        WebError::NotFound(_) => ("Not found", "We could not find this page or parcel."),
        _ => ("Something went wrong", "Please try again in a minute."),
    };
    let mut out = String::with_capacity(2048);
    head(&mut out, brand, title, "error");
    let _ = write!(
        out,
        "<main class=\"card error-card\"><h1>{}</h1><p>{}</p><p class=\"muted\">{}</p></main></body></html>",
        escape(title),
        escape(hint),
        escape(&e.to_string())
    );
    html(e.status(), out, None)
}

/// A plain branded page: a title, a line of text, and optionally a form with one button that
/// POSTs to `action` (same origin).
pub fn notice_page(
    brand: &BrandConfig,
    title: &str,
    text: &str,
    button: Option<(&str, &str)>,
) -> String {
    let mut out = String::with_capacity(2048);
    head(&mut out, brand, title, "notice");
    let _ = write!(
        out,
        "<main class=\"card\"><h1>{}</h1><p>{}</p>",
        escape(title),
        escape(text)
    );
    if let Some((action, label)) = button {
        let _ = write!(
            out,
            "<form method=\"post\" action=\"{}\"><button type=\"submit\">{}</button></form>",
            escape(action),
            escape(label)
        );
    }
    out.push_str("</main></body></html>");
    out
}

/// The bootstrap state the tracking script starts from.
#[derive(Serialize)]
struct TrackingBoot<'a> {
    base: String,
    view: &'a ParcelView,
}

fn state_class(s: ParcelState) -> &'static str {
    match s {
        ParcelState::Planned => "planned",
        ParcelState::OutForDelivery => "out",
        ParcelState::ArrivingSoon => "soon",
        ParcelState::Arrived => "arrived",
        ParcelState::Delivered => "delivered",
        ParcelState::Failed => "failed",
        ParcelState::Returned => "returned",
    }
}

/// The tracking page's HTML.
pub fn render_tracking(
    brand: &BrandConfig,
    map_cfg: &MapConfig,
    tracking: &str,
    base: &str,
    view: &ParcelView,
) -> String {
    let s = &view.status;
    let mut out = String::with_capacity(8 * 1024);
    head(
        &mut out,
        brand,
        &format!("Parcel {tracking}"),
        &format!("track state-{}", state_class(s.state)),
    );
    let _ = write!(
        out,
        "<main class=\"track-main\">\
         <section class=\"card status-card\" aria-live=\"polite\">\
         <p class=\"tracking\">Parcel <strong id=\"tracking\">{t}</strong></p>\
         <h1 id=\"status-line\">{line}</h1>\
         <p id=\"window\" class=\"muted\"{wh}>Promised window: <span id=\"window-text\">{w}</span> (<span class=\"zone\">{z}</span>)</p>\
         <p id=\"conn\" class=\"conn\" hidden></p></section>",
        t = escape(tracking),
        line = escape(&s.status_line),
        w = escape(s.window_text.as_deref().unwrap_or("")),
        wh = if s.window_text.is_some() { "" } else { " hidden" },
        z = escape(&s.zone_label),
    );
    // The driver card.
    let (dn, dv) = match &s.driver {
        Some(d) => (
            escape(&d.first_name),
            escape(d.vehicle.as_deref().unwrap_or("")),
        ),
        None => (String::new(), String::new()),
    };
    // A profile's photo is an https URL (checked when set); the page's CSP allows https images.
    let photo = s.driver.as_ref().and_then(|d| d.photo_url.as_deref());
    let _ = write!(
        out,
        "<section id=\"driver\" class=\"card driver-card\"{h}><img id=\"driver-photo\" alt=\"\" src=\"{ph}\"{phh}>\
         <p>Your driver: <strong id=\"driver-name\">{dn}</strong>\
         <span id=\"driver-vehicle\" class=\"muted\">{dv}</span></p></section>",
        h = if s.driver.is_some() { "" } else { " hidden" },
        ph = escape(photo.unwrap_or("")),
        phh = if photo.is_some() { "" } else { " hidden" },
    );
    // The map: filled by the script, only with a position the privacy rule allows.
    let _ = write!(
        out,
        "<section id=\"map-card\" class=\"card map-card\"{h}><h2>Where is my driver?</h2>\
         <div id=\"map\" class=\"map small\" data-label=\"Map of the driver and your address\"{a}></div>\
         <p id=\"map-note\" class=\"muted\"></p></section>",
        h = if view.position.is_some() { "" } else { " hidden" },
        a = map_attributes(map_cfg),
    );
    // Proof of delivery.
    let mut proof_html = String::new();
    if let Some(p) = &s.proof {
        proof_items(&mut proof_html, p, s.received_by.as_deref());
    }
    let _ = write!(
        out,
        "<section id=\"proof\" class=\"card proof-card\"{h}><h2>Proof of delivery</h2><ul id=\"proof-list\">{proof_html}</ul></section>",
        h = if s.proof.is_some() { "" } else { " hidden" },
    );
    // Failure.
    let _ = write!(
        out,
        "<section id=\"failure\" class=\"card failure-card\"{h}><h2>Delivery attempt failed</h2><p id=\"failure-text\">{f}</p></section>",
        h = if s.failure.is_some() { "" } else { " hidden" },
        f = escape(s.failure.as_deref().unwrap_or("")),
    );
    // Timeline, newest first.
    let _ = write!(
        out,
        "<section class=\"card\"><h2>Progress</h2><ol id=\"timeline\" class=\"timeline\">"
    );
    for m in view.timeline.iter().rev() {
        let _ = write!(
            out,
            "<li class=\"ev-{k}\"><time>{time}</time> <span>{text}</span></li>",
            k = m.kind,
            time = escape(&m.time),
            text = escape(&m.text)
        );
    }
    if view.timeline.is_empty() {
        out.push_str(
            "<li class=\"empty muted\">Nothing yet: your parcel is planned for delivery.</li>",
        );
    }
    out.push_str("</ol></section>");
    // Instructions for the driver.
    let open = !matches!(
        s.state,
        ParcelState::Delivered | ParcelState::Failed | ParcelState::Returned
    ) && !s.withdrawn;
    let _ = write!(
        out,
        "<section id=\"instr\" class=\"card\"{h}><h2>Instructions for the driver</h2>\
         <form id=\"instr-form\"><label for=\"instr-text\" class=\"muted\">Gate code, safe place, \"call on arrival\"...</label>\
         <textarea id=\"instr-text\" name=\"text\" maxlength=\"1000\" rows=\"3\">{txt}</textarea>\
         <button type=\"submit\">Send to driver</button> <span id=\"instr-msg\" class=\"muted\" role=\"status\"></span></form></section>",
        h = if open { "" } else { " hidden" },
        txt = escape(view.instructions.as_deref().unwrap_or("")),
    );
    service_cards(&mut out, view, open);
    let boot = TrackingBoot {
        base: base.to_owned(),
        view,
    };
    let v = asset_version();
    let _ = write!(
        out,
        "</main><footer class=\"muted\">Times are <span class=\"zone\">{z}</span>.</footer>\
         <script id=\"boot\" type=\"application/json\">{}</script>{leaflet}\
         <script src=\"/assets/map.js?v={v}\"></script><script src=\"/assets/live.js?v={v}\"></script><script src=\"/assets/track.js?v={v}\"></script></body></html>",
        script_json(&boot),
        leaflet = map_head(map_cfg, v),
        z = escape(&s.zone_label),
    );
    out
}

/// The cards a recipient acts in beside instructions: change the delivery (the choices are
/// fetched by the page from `/delivery`) and the thread with the driver.
fn service_cards(out: &mut String, view: &ParcelView, open: bool) {
    let change = view.status.change.as_deref();
    // After a failed attempt the choice is the recipient's wish for the next one.
    let change_open = open || view.status.state == ParcelState::Failed;
    let _ = write!(
        out,
        "<section id=\"change\" class=\"card\"{h}><h2>Change the delivery</h2>\
         <p id=\"change-text\"{ch}>{c}</p>\
         <form id=\"change-form\"><label for=\"change-kind\" class=\"muted\">What would suit you better?</label>\
         <select id=\"change-kind\"><option value=\"\">Choose...</option></select>\
         <select id=\"change-slot\" hidden></select><select id=\"change-point\" hidden></select>\
         <input id=\"change-name\" maxlength=\"200\" placeholder=\"Neighbour's name\" hidden>\
         <input id=\"change-where\" maxlength=\"200\" placeholder=\"Where\" hidden>\
         <button type=\"submit\">Confirm</button> <span id=\"change-msg\" class=\"muted\" role=\"status\"></span></form></section>",
        h = if change_open { "" } else { " hidden" },
        ch = if change.is_some() { "" } else { " hidden" },
        c = escape(change.unwrap_or("")),
    );
    let _ = write!(
        out,
        "<section id=\"thread\" class=\"card\"{h}><h2>Messages with your driver</h2><ol id=\"messages\" class=\"thread\">",
        h = if open || !view.messages.is_empty() { "" } else { " hidden" },
    );
    for m in &view.messages {
        let _ = write!(
            out,
            "<li class=\"from-{f}\" data-offset=\"{o}\"><time>{t}</time> <span>{x}</span></li>",
            f = m.from,
            o = m.offset,
            t = escape(&m.time),
            x = escape(&m.text),
        );
    }
    let _ = write!(
        out,
        "</ol><form id=\"msg-form\"{h}><label for=\"msg-text\" class=\"muted\">Your number stays private.</label>\
         <input id=\"msg-text\" maxlength=\"500\" autocomplete=\"off\">\
         <button type=\"submit\">Send</button> <span id=\"msg-status\" class=\"muted\" role=\"status\"></span></form></section>",
        h = if open { "" } else { " hidden" },
    );
}

fn proof_items(out: &mut String, p: &ProofSummary, received_by: Option<&str>) {
    let digests = [
        ("Doorstep photo", &p.photo_sha256),
        ("Signature", &p.signature_sha256),
    ];
    for (what, d) in digests {
        if let Some(d) = d {
            let short: String = d.chars().take(12).collect();
            let _ = write!(
                out,
                "<li>{what} <code title=\"SHA-256 {}\">{}…</code></li>",
                escape(d),
                escape(&short)
            );
        }
    }
    if p.otp_verified {
        out.push_str("<li>Delivery code checked</li>");
    }
    if let Some(name) = received_by {
        let _ = write!(out, "<li>Received by {}</li>", escape(name));
    }
    if p.photo_sha256.is_none()
        && p.signature_sha256.is_none()
        && !p.otp_verified
        && received_by.is_none()
    {
        out.push_str("<li>Handed over</li>");
    }
}

/// The attributes of a page's map element that name the source to `web/map.js`
/// (empty without one). The attribution is text: Leaflet shows it as markup, so it is
/// escaped twice, once for the attribute and once for Leaflet.
fn map_attributes(map: &MapConfig) -> String {
    match &map.tiles {
        Some(url) => format!(
            " data-tiles=\"{}\" data-attribution=\"{}\" data-max-zoom=\"{}\"",
            escape(url),
            escape(&escape(&map.attribution)),
            map.max_zoom
        ),
        None => String::new(),
    }
}

/// The style sheet and script a page with a street map loads before `map.js`.
fn map_head(map: &MapConfig, version: &str) -> String {
    match map.tiles {
        Some(_) => format!(
            "<link rel=\"stylesheet\" href=\"/assets/leaflet.css?v={version}\">\
             <script src=\"/assets/leaflet.js?v={version}\"></script>"
        ),
        None => String::new(),
    }
}

/// The dispatcher page's HTML (the state is fetched by the script: it can be large).
pub fn render_dispatch(
    brand: &BrandConfig,
    map_cfg: &MapConfig,
    depot: &str,
    zone_label: &str,
) -> String {
    let mut out = String::with_capacity(4 * 1024);
    head(&mut out, brand, &format!("Depot {depot}"), "dispatch");
    let v = asset_version();
    let _ = write!(
        out,
        "<main class=\"dispatch-main\">\
         <section class=\"map-wrap\"><div class=\"map-bar\"><strong>Depot <span id=\"depot\">{d}</span></strong>\
         <span id=\"conn\" class=\"conn\">connecting…</span>\
         <label class=\"muted\">Near here: <select id=\"radius\"><option value=\"500\">500 m</option>\
         <option value=\"1000\" selected>1 km</option><option value=\"2000\">2 km</option><option value=\"5000\">5 km</option></select></label>\
         <form id=\"search-form\" role=\"search\" class=\"search\"><label for=\"search\" class=\"muted\">Find</label>\
         <input id=\"search\" type=\"search\" maxlength=\"64\" placeholder=\"Driver, route or parcel\" autocomplete=\"off\">\
         <button type=\"submit\">Search</button></form>\
         <span class=\"tools\"><button id=\"zoom-in\" type=\"button\" aria-label=\"Zoom in\">+</button>\
         <button id=\"zoom-out\" type=\"button\" aria-label=\"Zoom out\">−</button>\
         <button id=\"fit\" type=\"button\">Fit</button></span></div>\
         <div id=\"map\" class=\"map big\" data-label=\"Map of the depot's drivers and stops\"{a}></div>\
         <p id=\"map-note\" class=\"notice\" role=\"status\" hidden></p>\
         <p class=\"legend muted\"><i class=\"drv-key\"></i>driver <i class=\"st-pending\"></i>pending <i class=\"st-next\"></i>next <i class=\"st-arrived\"></i>at stop \
         <i class=\"st-departed\"></i>left, no outcome <i class=\"st-delivered\"></i>delivered <i class=\"st-failed\"></i>failed \
         <i class=\"st-passed\"></i>passed · click the map: who is near here</p></section>\
         <aside class=\"side\">\
         <section id=\"search-card\" class=\"card\" hidden><h2>Found</h2><ol id=\"search-results\" class=\"near\" aria-live=\"polite\"></ol></section>\
         <section class=\"card\"><h2>Alerts <span id=\"alert-count\" class=\"muted\"></span></h2><div id=\"alerts\" class=\"alert-groups\"><p class=\"muted empty\">No open alerts.</p></div></section>\
         <section id=\"exceptions-card\" class=\"card\" hidden><h2>Failed deliveries</h2><ol id=\"exceptions\" class=\"alerts\"></ol></section>\
         <section id=\"undelivered-card\" class=\"card\" hidden><h2>Messages not delivered</h2><ol id=\"undelivered\" class=\"alerts\"></ol></section>\
         <section class=\"card\"><h2>Drivers</h2><ul id=\"drivers\" class=\"drivers\"></ul></section>\
         <section id=\"route-card\" class=\"card\" hidden><h2>Route <span id=\"route-id\"></span></h2><p id=\"route-meta\" class=\"muted\"></p>\
         <div class=\"playback\"><button id=\"play\" type=\"button\">Play back the route</button>\
         <input id=\"play-pos\" type=\"range\" min=\"0\" max=\"0\" value=\"0\" aria-label=\"Playback position\" hidden>\
         <span id=\"play-time\" class=\"muted\" role=\"status\"></span></div>\
         <ol id=\"route-stops\" class=\"stops\"></ol></section>\
         <section id=\"near-card\" class=\"card\" hidden><h2>Near here</h2><ol id=\"near\" class=\"near\"></ol></section>\
         </aside></main><footer class=\"muted\">Times are {z}.</footer>{leaflet}\
         <script src=\"/assets/map.js?v={v}\"></script><script src=\"/assets/live.js?v={v}\"></script><script src=\"/assets/dispatch.js?v={v}\"></script></body></html>",
        d = escape(depot),
        a = map_attributes(map_cfg),
        leaflet = map_head(map_cfg, v),
        z = escape(zone_label),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape("<script>\"x\" & 'y'</script>"),
            "&lt;script&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/script&gt;"
        );
        assert_eq!(
            script_json(&"</script><b>"),
            "\"\\u003c/script\\u003e\\u003cb\\u003e\""
        );
    }

    #[test]
    fn attributes_are_escaped() {
        let mut c = MapConfig {
            tiles: Some("https://tile.example/{z}/{x}/{y}.png?a=1&b=2".into()),
            ..Default::default()
        };
        c.attribution = "<b>x</b>".into();
        let a = map_attributes(&c);
        assert!(a.contains("data-tiles=\"https://tile.example/{z}/{x}/{y}.png?a=1&amp;b=2\""));
        assert!(a.contains("data-attribution=\"&amp;lt;b&amp;gt;x&amp;lt;/b&amp;gt;\""));
    }
}
