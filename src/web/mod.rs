//! The web listener: what a browser gets, since a browser cannot speak the raw QUIC protocol.
//! One axum router on its own TCP address (`web.listen`), in the same process as the QUIC
//! endpoint and fed by the same state: the feed store, the fleet core, the live positions and
//! the feed hub's wake-ups. Nothing here keeps a second copy of the truth, and instructions go
//! through [`crate::server::commands::handle`] and the log exactly like the QUIC path.
//!
//! - [`pages`]: the HTML of the recipient's tracking page and the dispatcher map (rendered on
//!   the server with the current state, so the status shows before any script runs).
//! - [`api`]: JSON views and commands (status, instructions, depot state, route progress,
//!   "who is near here").
//! - [`sse`]: live updates as server-sent events; an event's id is its feed offset, so a
//!   browser that lost its connection resumes (`Last-Event-ID`) with exactly what it missed.
//!
//! # Routes
//!
//! | method and path | who | what |
//! | --- | --- | --- |
//! | `GET /t/{tracking}?token=T` | recipient | stores T in an HttpOnly cookie, renders the page |
//! | `GET /t/{tracking}` | recipient | the tracking page |
//! | `GET /t/{tracking}/status` | recipient | the parcel view as JSON |
//! | `GET /t/{tracking}/events?after=N` | recipient | SSE: `status`, `milestone` (id = offset), `position` |
//! | `POST /t/{tracking}/instructions` | recipient | `{"text": ...}` for the driver (logged) |
//! | `GET /dispatch?token=T`, `GET /dispatch` | dispatcher | the depot map |
//! | `GET /dispatch/state` | dispatcher | drivers, routes and stops, recent alerts, feed offset |
//! | `GET /dispatch/routes/{route}` | dispatcher | one route's progress and ETAs |
//! | `GET /dispatch/nearby?lat=&lon=&radius_m=` | dispatcher | drivers near a point |
//! | `GET /dispatch/events?after=N` | dispatcher | SSE: `dispatch` (id = offset), `route`, `positions`, `resync` |
//! | `GET /assets/{file}`, `/brand.css`, `/brand/logo.svg` | anyone | static files, branding |
//!
//! # Tokens
//!
//! A link carries the token once (`?token=`, as sent by SMS or e-mail). The page then keeps it
//! in an HttpOnly, `SameSite=Lax` cookie scoped to the page's own path (`/t/{tracking}` or
//! `/dispatch`), removes it from the address bar, and every API call and event stream of that
//! page is authenticated by the cookie: scripts never see the token. API clients may send
//! `Authorization: Bearer T` instead. Commands also require a JSON body, which a cross-site
//! form cannot send, so the cookie cannot be used for cross-site request forgery.

pub mod api;
pub mod config;
pub mod pages;
pub mod sse;

pub use config::{BrandConfig, DriverDisplay, WebConfig};

use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, OnceLock};

use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use milepost_proto::ErrorCode;
use tokio::sync::watch;

use crate::auth::{Claims, Role};
use crate::server::Shared;

/// Largest request body accepted (instructions are at most 1,000 bytes of text).
const MAX_BODY: usize = 16 * 1024;

/// Everything the handlers share.
pub struct WebState {
    /// The gateway's shared state.
    pub shared: Arc<Shared>,
    /// Fires when the gateway shuts down (event streams end then).
    pub stop: watch::Receiver<bool>,
    /// Event streams open now.
    pub streams: AtomicUsize,
}

impl WebState {
    /// The web configuration.
    pub fn cfg(&self) -> &WebConfig {
        &self.shared.cfg.web
    }
}

/// Binds `addr` and serves the pages until `stop` fires; returns the bound address.
pub async fn start(
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
) -> std::io::Result<SocketAddr> {
    shared
        .cfg
        .web
        .validate()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local_addr = listener.local_addr()?;
    let state = Arc::new(WebState {
        shared,
        stop: stop.clone(),
        streams: AtomicUsize::new(0),
    });
    let app = router(state);
    let mut stop = stop;
    tokio::spawn(async move {
        let shutdown = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, "web listener failed");
        }
    });
    Ok(local_addr)
}

/// The router (public for tests that want to serve it themselves).
pub fn router(state: Arc<WebState>) -> Router {
    Router::new()
        .route("/t/{tracking}", get(pages::tracking))
        .route("/t/{tracking}/status", get(api::parcel_status))
        .route("/t/{tracking}/events", get(sse::parcel_events))
        .route("/t/{tracking}/instructions", post(api::instructions))
        .route("/dispatch", get(pages::dispatch))
        .route("/dispatch/state", get(api::depot_state))
        .route("/dispatch/routes/{route}", get(api::route_detail))
        .route("/dispatch/nearby", get(api::nearby))
        .route("/dispatch/events", get(sse::depot_events))
        .route("/assets/{file}", get(asset))
        .route("/brand.css", get(brand_css))
        .route("/brand/logo.svg", get(brand_logo))
        .fallback(|| async { pages::error_page(None, &WebError::NotFound("no such page".into())) })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// A refused or failed request, mapped to an HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// No token was presented.
    #[error("this link needs a token")]
    NoToken,
    /// The token is malformed, badly signed, expired or revoked.
    #[error("{0}")]
    BadToken(&'static str),
    /// The token's role may not do this.
    #[error("{0}")]
    WrongRole(String),
    /// The token covers another parcel or depot.
    #[error("{0}")]
    OutOfScope(String),
    /// The parcel, route or page does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// The core refused the command (the attempt is logged).
    #[error("{0}")]
    Refused(String),
    /// Too many event streams, or the log cannot take more now.
    #[error("{0}")]
    Busy(String),
    /// Storage failed.
    #[error("{0}")]
    Internal(String),
}

impl WebError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            WebError::NoToken | WebError::BadToken(_) => StatusCode::UNAUTHORIZED,
            WebError::WrongRole(_) | WebError::OutOfScope(_) => StatusCode::FORBIDDEN,
            WebError::NotFound(_) => StatusCode::NOT_FOUND,
            WebError::BadRequest(_) => StatusCode::BAD_REQUEST,
            WebError::Refused(_) => StatusCode::UNPROCESSABLE_ENTITY,
            WebError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            WebError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A short machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            WebError::NoToken => "no_token",
            WebError::BadToken(_) => "bad_token",
            WebError::WrongRole(_) => "wrong_role",
            WebError::OutOfScope(_) => "out_of_scope",
            WebError::NotFound(_) => "not_found",
            WebError::BadRequest(_) => "bad_request",
            WebError::Refused(_) => "refused",
            WebError::Busy(_) => "busy",
            WebError::Internal(_) => "internal",
        }
    }

    /// The web error for a protocol error code from the command path.
    pub fn from_code(code: ErrorCode, message: String) -> WebError {
        match code {
            ErrorCode::TokenInvalid | ErrorCode::TokenExpired | ErrorCode::TokenRevoked => {
                WebError::BadToken("token refused")
            }
            ErrorCode::WrongRole => WebError::WrongRole(message),
            ErrorCode::OutOfScope => WebError::OutOfScope(message),
            ErrorCode::NotFound => WebError::NotFound(message),
            ErrorCode::OutcomeRefused | ErrorCode::RouteRefused => WebError::Refused(message),
            ErrorCode::BadQuery | ErrorCode::FrameTooLarge => WebError::BadRequest(message),
            ErrorCode::DiskFull
            | ErrorCode::ServerBusy
            | ErrorCode::RateLimited
            | ErrorCode::ShuttingDown => WebError::Busy(message),
            _ => WebError::Internal(message),
        }
    }
}

impl IntoResponse for WebError {
    /// JSON `{"error": code, "message": text}` with the status; pages render their own.
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.code(), "message": self.to_string() });
        let mut r = (self.status(), axum::Json(body)).into_response();
        if matches!(self, WebError::NoToken | WebError::BadToken(_)) {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        no_store(r.headers_mut());
        r
    }
}

/// The name of the token cookie (scoped by path to one page and its API).
pub const COOKIE: &str = "mp_token";

/// A token presented with a request: `Authorization: Bearer` first, then the cookie.
pub fn request_token(headers: &HeaderMap) -> Option<String> {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        if let Some(t) = v.strip_prefix("Bearer ") {
            return Some(t.trim().to_owned());
        }
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_owned())
}

/// Checks a token's signature, expiry and the deny list, like a QUIC Hello.
pub fn verify(shared: &Shared, token: &str) -> Result<Claims, WebError> {
    // Tokens are a few hundred bytes; refuse to hash anything absurd.
    if token.len() > 4096 {
        return Err(WebError::BadToken("malformed token"));
    }
    let claims = shared
        .keys
        .verify(token, shared.now_ms().div_euclid(1000))
        .map_err(|e| match e {
            crate::auth::AuthError::Expired => WebError::BadToken("this link has expired"),
            _ => WebError::BadToken("this link is not valid"),
        })?;
    if shared.deny.denies(&claims, token) {
        return Err(WebError::BadToken("this link was revoked"));
    }
    Ok(claims)
}

/// Whether a token checked earlier is still good (expiry and deny list; the signature does not
/// change). Long-lived event streams ask this on every wake-up.
pub fn still_valid(shared: &Shared, claims: &Claims, token: &str) -> bool {
    claims.exp > shared.now_ms().div_euclid(1000) && !shared.deny.denies(claims, token)
}

/// The claims of the request's token, which must allow following parcel `tracking`: its
/// recipient, or a dispatcher of the depot its route belongs to (customer support).
pub fn authorize_parcel(
    shared: &Shared,
    headers: &HeaderMap,
    tracking: &str,
) -> Result<(Claims, String), WebError> {
    let token = request_token(headers).ok_or(WebError::NoToken)?;
    let claims = verify(shared, &token)?;
    check_parcel(shared, &claims, tracking)?;
    Ok((claims, token))
}

/// Checks `claims` may follow parcel `tracking`.
pub fn check_parcel(shared: &Shared, claims: &Claims, tracking: &str) -> Result<(), WebError> {
    match claims.role {
        Role::Recipient if claims.sub == tracking => Ok(()),
        Role::Recipient => Err(WebError::OutOfScope(
            "this link is for another parcel".into(),
        )),
        Role::Dispatcher => {
            let t = milepost_proto::route::TrackingNumber(tracking.to_owned());
            let status = crate::state::lock(&shared.state.core).parcel_status(&t);
            let status =
                status.ok_or_else(|| WebError::NotFound(format!("no parcel {tracking}")))?;
            let feed = crate::state::lock(&shared.state.feed);
            match feed.depot_of(&status.route_id) {
                Some(d) if d.0 == claims.depot => Ok(()),
                _ => Err(WebError::OutOfScope(
                    "the parcel belongs to another depot".into(),
                )),
            }
        }
        Role::Driver => Err(WebError::WrongRole(
            "a driver token cannot open a tracking page".into(),
        )),
    }
}

/// The claims of the request's token, which must be a dispatcher's; returns them and the token.
pub fn authorize_dispatcher(
    shared: &Shared,
    headers: &HeaderMap,
) -> Result<(Claims, String), WebError> {
    let token = request_token(headers).ok_or(WebError::NoToken)?;
    let claims = verify(shared, &token)?;
    check_dispatcher(&claims)?;
    Ok((claims, token))
}

/// Checks `claims` are a dispatcher's.
pub fn check_dispatcher(claims: &Claims) -> Result<(), WebError> {
    match claims.role {
        Role::Dispatcher => Ok(()),
        _ => Err(WebError::WrongRole(
            "the dispatcher map needs a dispatcher token".into(),
        )),
    }
}

/// A tracking number as it may appear in a page path: the characters tracking numbers are
/// made of. Anything else is refused before it reaches a cookie path or a page.
pub fn valid_tracking(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 64
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// The `Set-Cookie` value storing `token` for pages under `path`, expiring with the token.
pub fn token_cookie(
    cfg: &WebConfig,
    token: &str,
    path: &str,
    max_age_s: i64,
) -> Option<HeaderValue> {
    let secure = if cfg.secure_cookies { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={token}; Path={path}; Max-Age={}; HttpOnly; SameSite=Lax{secure}",
        max_age_s.max(0)
    ))
    .ok()
}

/// Marks a response as not to be cached (it carries per-user state).
pub fn no_store(h: &mut HeaderMap) {
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// The headers every page gets: a strict content security policy (scripts and styles only from
/// this listener, no inline script, no framing), no referrer (the URL may hold a token), no
/// caching.
pub fn page_headers(h: &mut HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' https: data:; \
             connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    no_store(h);
}

/// A static file embedded in the binary, with its gzip form made once.
struct Asset {
    name: &'static str,
    mime: &'static str,
    body: &'static str,
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "style.css",
        mime: "text/css; charset=utf-8",
        body: include_str!("../../web/style.css"),
    },
    Asset {
        name: "track.js",
        mime: "text/javascript; charset=utf-8",
        body: include_str!("../../web/track.js"),
    },
    Asset {
        name: "dispatch.js",
        mime: "text/javascript; charset=utf-8",
        body: include_str!("../../web/dispatch.js"),
    },
    Asset {
        name: "map.js",
        mime: "text/javascript; charset=utf-8",
        body: include_str!("../../web/map.js"),
    },
];

/// Version tag of the embedded assets (a hash of their bytes): pages link `?v=TAG`, so assets
/// can be cached for a year and a new build is fetched at once.
pub fn asset_version() -> &'static str {
    static V: OnceLock<String> = OnceLock::new();
    V.get_or_init(|| {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for a in ASSETS {
            for b in a.body.bytes() {
                h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
            }
        }
        format!("{:012x}", h & 0xffff_ffff_ffff)
    })
}

fn gzipped(i: usize) -> &'static [u8] {
    static Z: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    let all = Z.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                use std::io::Write;
                let mut enc =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
                // Writing to a Vec cannot fail.
                let _ = enc.write_all(a.body.as_bytes());
                enc.finish().unwrap_or_default()
            })
            .collect()
    });
    all.get(i).map(Vec::as_slice).unwrap_or_default()
}

fn accepts_gzip(h: &HeaderMap) -> bool {
    h.get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',')
                .any(|e| e.trim().split(';').next() == Some("gzip"))
        })
}

async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    let Some(i) = ASSETS.iter().position(|a| a.name == file) else {
        return WebError::NotFound("no such file".into()).into_response();
    };
    let a = &ASSETS[i];
    let gz = accepts_gzip(&headers) && !gzipped(i).is_empty();
    let mut r = if gz {
        (StatusCode::OK, gzipped(i)).into_response()
    } else {
        (StatusCode::OK, a.body).into_response()
    };
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(a.mime));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if gz {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    r
}

/// The brand colours as CSS custom properties (validated at start, so nothing can escape).
pub fn brand_css_text(b: &BrandConfig) -> String {
    format!(
        ":root{{--brand:{};--on-brand:{};--bg:{};--ink:{}}}\n",
        b.primary, b.on_primary, b.background, b.text
    )
}

async fn brand_css(State(st): State<Arc<WebState>>) -> Response {
    let mut r = brand_css_text(&st.cfg().brand).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    r
}

async fn brand_logo(State(st): State<Arc<WebState>>) -> Response {
    let Some(svg) = st.cfg().brand.logo_svg.clone() else {
        return WebError::NotFound("no logo".into()).into_response();
    };
    let mut r = svg.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("image/svg+xml"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    // Opened directly, the SVG still may not run anything.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// The URL of the brand logo, if any (already validated).
pub fn logo_src(b: &BrandConfig) -> Option<String> {
    match (&b.logo_url, &b.logo_svg) {
        (Some(u), _) => Some(u.clone()),
        (None, Some(_)) => Some("/brand/logo.svg".into()),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_and_logo_urls_are_checked() {
        let mut c = WebConfig::default();
        c.validate().unwrap();
        c.brand.primary = "red;}body{display:none".into();
        assert!(c.validate().is_err());
        c.brand.primary = "#abc".into();
        c.brand.logo_url = Some("javascript:alert(1)".into());
        assert!(c.validate().is_err());
        c.brand.logo_url = Some("//evil.example/x.png".into());
        assert!(c.validate().is_err());
        c.brand.logo_url = Some("https://cdn.example/logo.png".into());
        c.validate().unwrap();
    }

    #[test]
    fn token_comes_from_bearer_then_cookie() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=b; mp_token=mp1.x.y; c=d"),
        );
        assert_eq!(request_token(&h).as_deref(), Some("mp1.x.y"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer mp1.z.w"),
        );
        assert_eq!(request_token(&h).as_deref(), Some("mp1.z.w"));
    }

    #[test]
    fn tracking_numbers_in_paths() {
        assert!(valid_tracking("MP100000004"));
        assert!(!valid_tracking("MP1/../x"));
        assert!(!valid_tracking(""));
        assert!(!valid_tracking("a b"));
    }

    #[test]
    fn config_round_trips_as_toml() {
        let mut c = WebConfig {
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 8080))),
            ..Default::default()
        };
        c.drivers.insert(
            "D1".into(),
            DriverDisplay {
                first_name: "Ana".into(),
                vehicle: Some("white van".into()),
            },
        );
        let text = toml::to_string_pretty(&c).unwrap();
        let back: WebConfig = toml::from_str(&text).unwrap();
        assert_eq!(back, c);
    }
}
