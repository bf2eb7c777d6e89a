//! How answers are dressed. Every header a web answer sets goes through the one helper here,
//! [`set_headers`] (or [`with_headers`], the same on a whole answer), with the sets built on it:
//! [`NO_STORE`] for anything per-user, [`NOSNIFF`], and [`page_headers`] for every HTML page.
//! [`json`] is a JSON answer that is never cached.

use axum::http::{header, HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

/// A header and its value, as the helpers below take them.
pub type HeaderPair = (HeaderName, &'static str);

/// Not to be cached: the answer carries per-user state.
pub const NO_STORE: HeaderPair = (header::CACHE_CONTROL, "no-store");

/// The browser must not guess another content type than the one given.
pub const NOSNIFF: HeaderPair = (header::X_CONTENT_TYPE_OPTIONS, "nosniff");

/// The content security policy of every page: scripts and styles only from this listener, no
/// inline script, no framing.
const PAGE_CSP: &str =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' https: data:; \
     connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Sets each header of `pairs` on `h`, in order, replacing what was there.
pub fn set_headers(h: &mut HeaderMap, pairs: &[HeaderPair]) {
    for (name, value) in pairs {
        h.insert(name, HeaderValue::from_static(value));
    }
}

/// `r` as a response with `pairs` set on it.
pub fn with_headers(r: impl IntoResponse, pairs: &[HeaderPair]) -> Response {
    let mut r = r.into_response();
    set_headers(r.headers_mut(), pairs);
    r
}

/// Marks a response as not to be cached (it carries per-user state).
pub fn no_store(h: &mut HeaderMap) {
    set_headers(h, &[NO_STORE]);
}

/// The headers every page gets: a strict content security policy, no referrer (the URL may
/// hold a token), no content sniffing, no caching.
pub fn page_headers(h: &mut HeaderMap) {
    set_headers(
        h,
        &[
            (header::CONTENT_SECURITY_POLICY, PAGE_CSP),
            (header::REFERRER_POLICY, "no-referrer"),
            NOSNIFF,
            NO_STORE,
        ],
    );
}

/// A JSON answer that must not be cached.
pub fn json<T: Serialize>(v: T) -> Response {
    with_headers(Json(v), &[NO_STORE])
}
