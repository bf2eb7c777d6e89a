//! The live streams over a WebSocket: the same producer as the server-sent events
//! (`sse::run`, one per stream), its events sent as text messages
//! (`{"event": name, "id": offset or null, "data": ...}`, [`crate::web::event::Ev::json`]).
//!
//! The pages use this transport: a WebSocket does not hold a page's load open, where an
//! `EventSource` does (headless Chromium's `--virtual-time-budget` waits for every pending
//! fetch, so screenshot tools and link previewers never finished loading the pages). A page
//! that cannot open one (a proxy that refuses the upgrade) falls back to the event stream.
//!
//! The browser sends the page's cookie with the handshake, and a WebSocket is not bound by
//! CORS: a handshake whose `Origin` is another site's is refused (403), so a page elsewhere
//! cannot read a recipient's or a dispatcher's stream with their cookie.

use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use tokio::sync::mpsc;

use crate::web::error::WebError;
use crate::web::event::Ev;

/// A ping and a `keepalive` message this often keep proxies and NATs from closing a quiet
/// connection; the page takes a connection silent for much longer for dead and opens another.
const PING_EVERY: Duration = Duration::from_secs(20);
/// A peer that has answered nothing (not even a pong) for this long is gone: its stream ends
/// and frees its slot.
const DEAD_AFTER: Duration = Duration::from_secs(60);

/// Refuses a handshake from a page of another site: its `Origin` must name this listener's
/// host (as the request's `Host` header does) or be the origin of `web.public_url` (a proxy
/// in front may rewrite `Host`). A handshake without `Origin` is not a browser's: the token
/// decides.
pub fn check_origin(headers: &HeaderMap, public_url: Option<&str>) -> Result<(), WebError> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or("");
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let same_host = origin
        .split_once("://")
        .zip(host)
        .is_some_and(|((_, o), h)| o.eq_ignore_ascii_case(h));
    let public = public_url.is_some_and(|u| {
        let end = u.find("://").map_or(0, |i| i + 3);
        let u_origin = u[end..].find('/').map_or(u, |i| &u[..end + i]);
        !origin.is_empty() && u_origin.eq_ignore_ascii_case(origin)
    });
    match same_host || public {
        true => Ok(()),
        false => Err(WebError::OutOfScope(
            "a live connection from another site".into(),
        )),
    }
}

/// Answers the handshake; once upgraded, the producer's events (`rx`) go out as messages
/// until either side leaves. `guard` counts the stream as open meanwhile.
pub fn respond<G: Send + 'static>(
    up: WebSocketUpgrade,
    rx: mpsc::Receiver<Ev>,
    guard: G,
) -> Response {
    up.on_upgrade(move |socket| async move {
        pump(socket, rx).await;
        drop(guard);
    })
    .into_response()
}

async fn pump(mut socket: WebSocket, mut rx: mpsc::Receiver<Ev>) {
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    let mut heard = tokio::time::Instant::now();
    // The application-level keep-alive (browsers do not show pings to the page).
    let keepalive = Ev::new("keepalive", "{}").json();
    loop {
        tokio::select! {
            ev = rx.recv() => {
                let Some(ev) = ev else { break };
                if socket.send(Message::Text(ev.json().into())).await.is_err() {
                    break;
                }
            }
            msg = socket.recv() => match msg {
                // The page sends nothing: anything but a close (a pong) only shows it is there.
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => heard = tokio::time::Instant::now(),
            },
            _ = ping.tick() => {
                if heard.elapsed() > DEAD_AFTER {
                    break;
                }
                let ping = socket.send(Message::Ping(Default::default())).await;
                let alive = socket.send(Message::Text(keepalive.as_str().into())).await;
                if ping.is_err() || alive.is_err() {
                    break;
                }
            }
        }
    }
    let _ = socket.send(Message::Close(None)).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn only_the_listeners_own_pages_may_open_one() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("track.example:8080"));
        check_origin(&h, None).unwrap();
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://track.example:8080"),
        );
        check_origin(&h, None).unwrap();
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(check_origin(&h, None).is_err());
        assert!(check_origin(&h, Some("https://track.example/base")).is_err());
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(check_origin(&h, None).is_err());
        // Behind a proxy that rewrites Host, the public URL's origin is the page's.
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://track.example"),
        );
        assert!(check_origin(&h, None).is_err());
        check_origin(&h, Some("https://track.example/base")).unwrap();
        check_origin(&h, Some("https://track.example")).unwrap();
    }

    #[test]
    fn events_are_json_messages() {
        let e = Ev::new("milestone", "{\"a\":1}").id(7);
        assert_eq!(
            e.json(),
            "{\"event\":\"milestone\",\"id\":7,\"data\":{\"a\":1}}"
        );
        let v: serde_json::Value = serde_json::from_str(&Ev::new("status", "null").json()).unwrap();
        assert_eq!(v["id"], serde_json::Value::Null);
    }
}
