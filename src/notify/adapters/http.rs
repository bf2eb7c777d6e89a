//! The HTTP side of the HTTP providers (Twilio, WhatsApp): one [`ureq::Agent`] per adapter
//! that keeps a connection per worker and resolves a provider's name once a minute, not once
//! per message, and [`classify`], which sorts an answer into sent, retry or permanent.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

use crate::notify::adapters::provider::SendError;
use crate::notify::config::MAX_WORKERS;

/// An HTTP agent for a provider: errors as values (the status decides), a global timeout,
/// and an idle connection kept for every worker (`notify.workers`, at most 64). ureq keeps 3
/// per host by default: with 4 workers busy, each time all four answered one connection was
/// dropped and the next message opened a new one (with a real provider, a TLS handshake).
pub(crate) fn agent(timeout: Duration) -> ureq::Agent {
    // ureq's rustls needs a process-wide provider; ours is ring (an error means one is set).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .max_idle_connections(MAX_WORKERS)
        .max_idle_connections_per_host(MAX_WORKERS)
        .build();
    ureq::Agent::with_parts(
        config,
        DefaultConnector::default(),
        CachedResolver::default(),
    )
}

/// How long a resolved address is used before the name is looked up again.
const RESOLVED_FOR: Duration = Duration::from_secs(60);

/// ureq resolves the host before every request, pooled connection or not, and with a timeout
/// set does it on a new thread: a thread and a DNS lookup per message. This keeps each
/// answer of its [`DefaultResolver`] for [`RESOLVED_FOR`].
#[derive(Debug, Default)]
struct CachedResolver {
    inner: DefaultResolver,
    cache: Mutex<HashMap<String, (Instant, ResolvedSocketAddrs)>>,
}

impl Resolver for CachedResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        // The scheme too: it decides the port when the address names none.
        let key = uri
            .authority()
            .map(|a| format!("{}://{}", uri.scheme_str().unwrap_or(""), a.as_str()));
        let now = Instant::now();
        if let Some(k) = &key {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((at, addrs)) = cache.get(k) {
                if now.duration_since(*at) < RESOLVED_FOR {
                    return Ok(addrs.clone());
                }
            }
        }
        let addrs = self.inner.resolve(uri, config, timeout)?;
        if let Some(k) = key {
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            cache.insert(k, (now, addrs.clone()));
        }
        Ok(addrs)
    }
}

/// Sorts an HTTP answer: 2xx is the body, 408/429/5xx are worth retrying (after
/// `Retry-After` seconds if given), any other status is permanent. `what` names the
/// provider's error from the body.
pub(crate) fn classify(
    resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    what: fn(&str) -> String,
) -> Result<String, SendError> {
    let mut resp = resp.map_err(|e| SendError::Retry {
        error: e.to_string(),
        after_ms: None,
    })?;
    let status = resp.status().as_u16();
    let after_ms = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|s| s.min(3600) * 1000);
    let body = resp
        .body_mut()
        .with_config()
        .limit(64 * 1024)
        .read_to_string()
        .unwrap_or_default();
    if (200..300).contains(&status) {
        return Ok(body);
    }
    let error = format!("HTTP {status}: {}", what(&body));
    if status == 408 || status == 429 || status >= 500 {
        Err(SendError::Retry { error, after_ms })
    } else {
        Err(SendError::Permanent(error))
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Barrier};

    use super::*;

    /// A keep-alive HTTP/1.1 server that answers only once `n` requests are waiting, so `n`
    /// connections are in use at once every round; counts the connections it accepts.
    fn server(n: usize) -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let (count, all_in) = (accepted.clone(), Arc::new(Barrier::new(n)));
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                count.fetch_add(1, Ordering::SeqCst);
                let all_in = all_in.clone();
                std::thread::spawn(move || {
                    let mut w = conn.try_clone().unwrap();
                    let mut r = BufReader::new(conn);
                    loop {
                        let mut len = 0;
                        let mut line = String::new();
                        loop {
                            line.clear();
                            if r.read_line(&mut line).unwrap_or(0) == 0 {
                                return;
                            }
                            let l = line.trim_end().to_ascii_lowercase();
                            if let Some(v) = l.strip_prefix("content-length:") {
                                len = v.trim().parse().unwrap();
                            }
                            if l.is_empty() {
                                break;
                            }
                        }
                        let mut body = vec![0; len];
                        r.read_exact(&mut body).unwrap();
                        all_in.wait();
                        let ok = "HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nok";
                        w.write_all(ok.as_bytes()).unwrap();
                    }
                });
            }
        });
        (url, accepted)
    }

    #[test]
    fn every_worker_keeps_its_connection() {
        let (url, accepted) = server(4);
        let agent = agent(Duration::from_secs(10));
        let rounds = Arc::new(Barrier::new(4));
        let workers: Vec<_> = (0..4)
            .map(|_| {
                let (agent, url, rounds) = (agent.clone(), url.clone(), rounds.clone());
                std::thread::spawn(move || {
                    for _ in 0..5 {
                        let resp = agent.post(&url).send("To=%2B1".as_bytes());
                        assert_eq!(classify(resp, |b| b.to_owned()).unwrap(), "ok");
                        // All four back in the pool before the next round takes them.
                        rounds.wait();
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        // With ureq's default of 3 idle connections per host, each round opened one more.
        assert_eq!(accepted.load(Ordering::SeqCst), 4);
    }

    #[test]
    fn a_name_is_resolved_once_per_scheme_and_kept() {
        let r = CachedResolver::default();
        let config = Config::default();
        let at = |uri: &str| {
            let uri: Uri = uri.parse().unwrap();
            r.resolve(&uri, &config, NextTimeout::default()).unwrap()[0].port()
        };
        assert_eq!(at("http://localhost/a"), 80);
        assert_eq!(at("https://localhost/a"), 443);
        let first = r.cache.lock().unwrap()["https://localhost"].0;
        assert_eq!(at("https://localhost/b"), 443);
        // Served from the cache: the entry was not looked up (or stamped) again.
        assert_eq!(r.cache.lock().unwrap()["https://localhost"].0, first);
        assert_eq!(r.cache.lock().unwrap().len(), 2);
    }
}
