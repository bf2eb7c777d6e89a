//! Who may see what. A request's token comes from `Authorization: Bearer` or, for a page and
//! its own API calls, from the cookie the page's link set ([`request_token`], [`page_auth`],
//! [`token_cookie`]); it is checked like a QUIC Hello ([`verify`]) and, by long-lived event
//! streams, again on every wake-up ([`still_valid`]). Then the audience's rule: a parcel is
//! followed by its recipient or a dispatcher of its depot ([`authorize_parcel`],
//! [`check_parcel`]); the depot map is a dispatcher's ([`authorize_dispatcher`],
//! [`check_dispatcher`]). A tracking number in a path is checked ([`check_tracking`]) before it
//! reaches a lookup, a cookie path or a page.

use axum::http::{header, HeaderMap, HeaderValue};
use serde::Deserialize;

use crate::auth::{AuthError, Claims, Role};
use crate::server::shared::Shared;
use crate::state::lock;
use crate::web::config::WebConfig;
use crate::web::error::WebError;
use crate::web::state::WebState;

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
    let (claims, signer) = shared
        .keys
        .verify_signed(token, shared.now_ms().div_euclid(1000))
        .map_err(|e| match e {
            AuthError::Expired => WebError::BadToken("this link has expired"),
            _ => WebError::BadToken("this link is not valid"),
        })?;
    if signer.is_some_and(|c| !shared.subject_is_carriers(&claims, &c)) {
        return Err(WebError::BadToken("this link is not valid"));
    }
    if shared.deny.denies(&claims, token) {
        return Err(WebError::BadToken("this link was revoked"));
    }
    if !shared
        .cfg
        .carriers
        .token_fits(claims.carrier.as_deref(), &claims.depot)
    {
        return Err(WebError::BadToken("this link is not valid"));
    }
    Ok(claims)
}

/// Whether a token checked earlier is still good (expiry and deny list; the signature does not
/// change). Long-lived event streams ask this on every wake-up.
pub fn still_valid(shared: &Shared, claims: &Claims, token: &str) -> bool {
    claims.exp > shared.now_ms().div_euclid(1000) && !shared.deny.denies(claims, token)
}

/// The request's token and its verified claims.
/// On a cluster whose gateways fold only what they own, the token's depot must be held here.
fn authenticate(shared: &Shared, headers: &HeaderMap) -> Result<(Claims, String), WebError> {
    let token = request_token(headers).ok_or(WebError::NoToken)?;
    let claims = verify(shared, &token)?;
    shared
        .serves(&claims.depot)
        .map_err(WebError::HeldElsewhere)?;
    Ok((claims, token))
}

/// The claims of the request's token, which must allow following parcel `tracking`: its
/// recipient, or a dispatcher of the depot its route belongs to (customer support).
pub fn authorize_parcel(
    shared: &Shared,
    headers: &HeaderMap,
    tracking: &str,
) -> Result<(Claims, String), WebError> {
    let (claims, token) = authenticate(shared, headers)?;
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
            let status = lock(&shared.state.core).parcel_status(&t);
            let status =
                status.ok_or_else(|| WebError::NotFound(format!("no parcel {tracking}")))?;
            let feed = lock(&shared.state.feed);
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
    let (claims, token) = authenticate(shared, headers)?;
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

/// [`valid_tracking`] as the error every parcel path answers with (404, before any lookup).
pub fn check_tracking(t: &str) -> Result<(), WebError> {
    if valid_tracking(t) {
        Ok(())
    } else {
        Err(WebError::NotFound("no such parcel".into()))
    }
}

/// The `Set-Cookie` value storing `token` for pages under `path`, expiring with the token.
pub fn token_cookie(
    cfg: &WebConfig,
    token: &str,
    path: &str,
    max_age_s: i64,
) -> Option<HeaderValue> {
    let secure = if cfg.secure_cookies { "; Secure" } else { "" };
    // A tracking page framed by an allowed origin reads its cookie in a third-party context.
    let same_site = match path.starts_with("/t/") && !cfg.embed_origins.is_empty() {
        true => "None",
        false => "Lax",
    };
    HeaderValue::from_str(&format!(
        "{COOKIE}={token}; Path={path}; Max-Age={}; HttpOnly; SameSite={same_site}{secure}",
        max_age_s.max(0)
    ))
    .ok()
}

/// The query of a page link.
#[derive(Debug, Deserialize)]
pub struct PageQuery {
    /// The token, on the first visit from a link.
    pub token: Option<String>,
}

/// Who a page is for, and the cookie to set when the token came in the link.
pub struct PageAuth {
    /// The verified claims.
    pub claims: Claims,
    /// `Set-Cookie` for the page's path, when the token came in the link.
    pub cookie: Option<HeaderValue>,
}

/// Authenticates a page request: a token in the link (stored in a cookie for the page's
/// path) or the cookie of an earlier visit.
pub fn page_auth(
    st: &WebState,
    headers: &HeaderMap,
    q: &PageQuery,
    path: &str,
) -> Result<PageAuth, WebError> {
    if let Some(t) = q.token.as_deref().filter(|t| !t.is_empty()) {
        let claims = verify(&st.shared, t)?;
        let max_age = claims.exp - st.shared.now_ms().div_euclid(1000);
        let cookie = token_cookie(st.cfg(), t, path, max_age);
        return Ok(PageAuth { claims, cookie });
    }
    let (claims, _) = authenticate(&st.shared, headers)?;
    Ok(PageAuth {
        claims,
        cookie: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(check_tracking("a b").is_err());
    }
}
