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

/// A ping this often keeps proxies and NATs from closing a quiet connection.
const PING_EVERY: Duration = Duration::from_secs(20);

/// Refuses a handshake from a page of another site: its `Origin` must name this listener's
/// host (as the request's `Host` header does). A handshake without `Origin` is not a
/// browser's: the token decides.
pub fn check_origin(headers: &HeaderMap) -> Result<(), WebError> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, h)| h);
    match (origin_host, host) {
        (Some(o), Some(h)) if o.eq_ignore_ascii_case(h) => Ok(()),
        _ => Err(WebError::OutOfScope(
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
    loop {
        tokio::select! {
            ev = rx.recv() => {
                let Some(ev) = ev else { break };
                if socket.send(Message::Text(ev.json().into())).await.is_err() {
                    break;
                }
            }
            msg = socket.recv() => match msg {
                // The page sends nothing: anything but a close (or a pong) is ignored.
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
            _ = ping.tick() => {
                if socket.send(Message::Ping(Default::default())).await.is_err() {
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
        check_origin(&h).unwrap();
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://track.example:8080"),
        );
        check_origin(&h).unwrap();
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(check_origin(&h).is_err());
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(check_origin(&h).is_err());
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
