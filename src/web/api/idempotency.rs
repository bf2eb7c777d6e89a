//! `Idempotency-Key` on writes: an order system that retries after a timeout gets the first
//! answer again and changes nothing twice.
//!
//! Per caller and key, the first request's answer is kept for `web.api.idempotency_ttl_s`
//! with a digest of its method, path and body. The same key again with the same request
//! replays that answer (with `Idempotent-Replayed: true`); with another request it is refused
//! (422); while the first is still running, 409. Answers of 5xx and 429 are not kept (a retry
//! should run again). Kept in memory: a gateway restart forgets them, and the writes
//! themselves are idempotent by content where they can be (replacing a route with the same
//! route, cancelling a cancelled route answers 404 rather than cancelling twice).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::state::lock;
use crate::web::api::error::ApiError;
use crate::web::respond::{with_headers, NO_STORE};

/// The request header.
pub const HEADER: &str = "idempotency-key";
/// Set on a replayed answer.
pub const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

enum Slot {
    InFlight,
    Done {
        digest: [u8; 32],
        status: StatusCode,
        body: Bytes,
        at: Instant,
    },
}

/// The answers kept for idempotency keys.
pub struct Idempotency {
    ttl: Duration,
    max: usize,
    slots: Arc<Mutex<HashMap<(String, String), Slot>>>,
}

type Slots = Arc<Mutex<HashMap<(String, String), Slot>>>;

/// What a write should do.
enum Begin {
    /// Answer this (kept from the first request).
    Replay(Response),
    /// Run, then keep the answer with the ticket (none when no key was sent).
    Run(Option<Ticket>),
}

/// A running write's claim on its key; dropped unfinished (an error answer not kept, a
/// cancelled request), it frees the key.
struct Ticket {
    slots: Slots,
    key: (String, String),
    digest: [u8; 32],
    finished: bool,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.finished {
            lock(&self.slots).remove(&self.key);
        }
    }
}

impl Ticket {
    fn finish(mut self, status: StatusCode, body: Bytes) {
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            return; // dropped: the key is free again
        }
        self.finished = true;
        let slot = Slot::Done {
            digest: self.digest,
            status,
            body,
            at: Instant::now(),
        };
        lock(&self.slots).insert(self.key.clone(), slot);
    }
}

fn json_response(status: StatusCode, body: Bytes) -> Response {
    with_headers(
        (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        ),
        &[NO_STORE],
    )
}

impl Idempotency {
    /// Answers kept `ttl`, at most `max` of them (the oldest go first).
    pub fn new(ttl: Duration, max: usize) -> Idempotency {
        Idempotency {
            ttl,
            max: max.max(1),
            slots: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    fn begin(
        &self,
        caller: &str,
        headers: &HeaderMap,
        digest: [u8; 32],
    ) -> Result<Begin, ApiError> {
        let Some(v) = headers.get(HEADER) else {
            return Ok(Begin::Run(None));
        };
        let key = v
            .to_str()
            .ok()
            .filter(|k| !k.is_empty() && k.len() <= 255)
            .ok_or_else(|| {
                ApiError::bad_request("Idempotency-Key must be 1-255 visible ASCII characters")
                    .field("Idempotency-Key")
            })?;
        let key = (caller.to_owned(), key.to_owned());
        let mut slots = lock(&self.slots);
        let now = Instant::now();
        match slots.get(&key) {
            Some(Slot::Done {
                digest: d,
                status,
                body,
                at,
            }) if now.duration_since(*at) < self.ttl => {
                if *d != digest {
                    return Err(ApiError::unprocessable(
                        "this Idempotency-Key was used with another request",
                    )
                    .field("Idempotency-Key"));
                }
                let mut r = json_response(*status, body.clone());
                r.headers_mut()
                    .insert(REPLAYED, HeaderValue::from_static("true"));
                return Ok(Begin::Replay(r));
            }
            Some(Slot::InFlight) => {
                return Err(ApiError::conflict(
                    "a request with this Idempotency-Key is still running",
                )
                .field("Idempotency-Key"));
            }
            _ => {}
        }
        if slots.len() >= self.max {
            let ttl = self.ttl;
            slots.retain(|_, s| match s {
                Slot::Done { at, .. } => now.duration_since(*at) < ttl,
                Slot::InFlight => true,
            });
            // Still full: forget the oldest answers.
            while slots.len() >= self.max {
                let oldest = slots
                    .iter()
                    .filter_map(|(k, s)| match s {
                        Slot::Done { at, .. } => Some((*at, k.clone())),
                        Slot::InFlight => None,
                    })
                    .min();
                match oldest {
                    Some((_, k)) => {
                        slots.remove(&k);
                    }
                    None => break,
                }
            }
        }
        slots.insert(key.clone(), Slot::InFlight);
        Ok(Begin::Run(Some(Ticket {
            slots: self.slots.clone(),
            key,
            digest,
            finished: false,
        })))
    }

    /// Runs the write `f` of `caller` (its id) under the request's `Idempotency-Key`, if any.
    /// `what` names the operation (method and path) and `body` is the digest of the request
    /// body: together they are what a repeated key must match.
    ///
    /// The write runs in a task of its own: a client that gives up (the timeout the key is
    /// for) does not cancel it half-way, and its answer is still kept for the retry.
    pub async fn run<F, Fut>(
        &self,
        caller: &str,
        headers: &HeaderMap,
        what: &str,
        body: [u8; 32],
        f: F,
    ) -> Response
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(StatusCode, serde_json::Value), ApiError>> + Send + 'static,
    {
        let digest: [u8; 32] = Sha256::new()
            .chain_update(what.as_bytes())
            .chain_update([0])
            .chain_update(body)
            .finalize()
            .into();
        let ticket = match self.begin(caller, headers, digest) {
            Ok(Begin::Replay(r)) => return r,
            Ok(Begin::Run(t)) => t,
            Err(e) => return e.into_response(),
        };
        let fut = f();
        let task = tokio::spawn(async move {
            let answer = match fut.await {
                Ok((status, v)) => serde_json::to_vec(&v)
                    .map(|b| (status, Bytes::from(b)))
                    .map_err(|e| ApiError::internal(e.to_string())),
                Err(e) => Err(e),
            };
            if let Some(t) = ticket {
                match &answer {
                    Ok((status, bytes)) => t.finish(*status, bytes.clone()),
                    Err(e) => {
                        if let Ok(b) = serde_json::to_vec(&e.body) {
                            t.finish(e.status, Bytes::from(b));
                        }
                    }
                }
            }
            answer
        });
        match task.await {
            Ok(Ok((status, bytes))) => json_response(status, bytes),
            Ok(Err(e)) => e.into_response(),
            Err(e) => ApiError::internal(format!("the write failed: {e}")).into_response(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn with_key(k: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(HEADER, HeaderValue::from_str(k).unwrap());
        h
    }

    async fn body(r: Response) -> (StatusCode, Option<String>, String) {
        let status = r.status();
        let replayed = r
            .headers()
            .get(REPLAYED)
            .map(|v| v.to_str().unwrap().to_owned());
        let b = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        (status, replayed, String::from_utf8(b.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn a_retried_write_runs_once_and_a_reused_key_is_refused() {
        let idem = Idempotency::new(Duration::from_secs(60), 100);
        static RUNS: AtomicUsize = AtomicUsize::new(0);
        let runs = &RUNS;
        let write = || async {
            let n = RUNS.fetch_add(1, Ordering::SeqCst);
            Ok((StatusCode::CREATED, serde_json::json!({ "run": n })))
        };
        let (c, h) = ("k1", with_key("order-77"));
        let first = body(idem.run(c, &h, "PUT /r/1", [1; 32], write).await).await;
        let again = body(idem.run(c, &h, "PUT /r/1", [1; 32], write).await).await;
        assert_eq!(first, (StatusCode::CREATED, None, r#"{"run":0}"#.into()));
        assert_eq!(
            again,
            (
                StatusCode::CREATED,
                Some("true".into()),
                r#"{"run":0}"#.into()
            )
        );
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        // The same key with another body, or on another path: refused, nothing runs.
        let other = body(idem.run(c, &h, "PUT /r/1", [2; 32], write).await).await;
        assert_eq!(other.0, StatusCode::UNPROCESSABLE_ENTITY);
        // Another caller's same key is its own.
        let mine = body(idem.run("k2", &h, "PUT /r/1", [2; 32], write).await).await;
        assert_eq!(mine.0, StatusCode::CREATED);
        // No key: runs every time.
        idem.run(c, &HeaderMap::new(), "PUT /r/1", [1; 32], write)
            .await;
        assert_eq!(runs.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn server_errors_are_not_kept_and_bad_keys_are_refused() {
        let idem = Idempotency::new(Duration::from_secs(60), 100);
        static RUNS: AtomicUsize = AtomicUsize::new(0);
        let runs = &RUNS;
        let failing = || async {
            RUNS.fetch_add(1, Ordering::SeqCst);
            Err(ApiError::busy("log full"))
        };
        let (c, h) = ("k1", with_key("a"));
        for _ in 0..2 {
            let r = idem.run(c, &h, "POST /x", [0; 32], failing).await;
            assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        // A 4xx answer is kept like a 2xx one.
        let refused = || async { Err(ApiError::conflict("driver busy")) };
        let h = with_key("b");
        let a = body(idem.run(c, &h, "POST /x", [0; 32], refused).await).await;
        let b = body(idem.run(c, &h, "POST /x", [0; 32], failing).await).await;
        assert_eq!((a.0, b.0), (StatusCode::CONFLICT, StatusCode::CONFLICT));
        assert_eq!(b.1.as_deref(), Some("true"));
        let long = "x".repeat(300);
        let r = idem
            .run(c, &with_key(&long), "POST /x", [0; 32], failing)
            .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn the_oldest_answers_go_when_full() {
        let idem = Idempotency::new(Duration::from_secs(60), 2);
        let ok = || async { Ok((StatusCode::OK, serde_json::json!({}))) };
        let c = "k";
        for k in ["a", "b", "c"] {
            idem.run(c, &with_key(k), "POST /x", [0; 32], ok).await;
        }
        assert_eq!(lock(&idem.slots).len(), 2);
    }

    #[tokio::test]
    async fn a_write_whose_client_gave_up_still_finishes_and_its_retry_replays_it() {
        static RUNS: AtomicUsize = AtomicUsize::new(0);
        let idem = Idempotency::new(Duration::from_secs(60), 100);
        let slow = || async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let n = RUNS.fetch_add(1, Ordering::SeqCst);
            Ok((StatusCode::CREATED, serde_json::json!({ "run": n })))
        };
        let h = with_key("order-9");
        // The client times out before the write is done: its request future is dropped.
        let gave_up = tokio::time::timeout(
            Duration::from_millis(20),
            idem.run("k", &h, "POST /x", [0; 32], slow),
        )
        .await;
        assert!(gave_up.is_err());
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(RUNS.load(Ordering::SeqCst), 1, "the write went on");
        let retry = body(idem.run("k", &h, "POST /x", [0; 32], slow).await).await;
        assert_eq!(
            retry,
            (
                StatusCode::CREATED,
                Some("true".into()),
                r#"{"run":0}"#.into()
            )
        );
        assert_eq!(RUNS.load(Ordering::SeqCst), 1);
    }
}
