//! Helpers for the web tests: the [`World`] of `common` (the example route assigned, a driver
//! that drives it) with its web listener on 127.0.0.1:0, and a minimal HTTP/1.0 client (plain
//! tokio, so the tests see the exact bytes: status, headers, and event-stream frames as they
//! arrive).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use milepost::auth::Role;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common;

pub use crate::common::World;

/// The web side of a [`World`].
impl World {
    /// A world with the web listener on (127.0.0.1:0) and the test configuration edited by
    /// `edit`.
    pub async fn with_web(edit: impl FnOnce(&mut milepost::config::Config)) -> World {
        World::with(|cfg| {
            cfg.web.listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
            edit(cfg);
        })
        .await
    }

    /// The web listener's address.
    pub fn web(&self) -> SocketAddr {
        self.t.gw.web_addr.expect("web listener on")
    }

    /// A recipient token for `tracking`.
    pub fn recipient_token(tracking: &str) -> String {
        common::token(Role::Recipient, tracking, "north")
    }

    /// A new API key with a back-office scope on depot "north", written to the gateway's key
    /// file (picked up within a second).
    pub fn backoffice_key(&self) -> String {
        self.key_with("orders", &["backoffice:north"])
    }

    /// A new API key named `name` with `scopes` (`backoffice:north`, `dispatcher:*`), written
    /// to the gateway's key file (picked up within a second).
    pub fn key_with(&self, name: &str, scopes: &[&str]) -> String {
        self.key_of("*", name, scopes)
    }

    /// A new API key of carrier `carrier` (`*`: the platform) named `name` with `scopes`,
    /// written to the gateway's key file.
    pub fn key_of(&self, carrier: &str, name: &str, scopes: &[&str]) -> String {
        use milepost::apikeys::{KeyFile, Scope, FILE};
        let path = self.t.dir.path().join(FILE);
        let mut f = KeyFile::read(&path).unwrap();
        let scopes = scopes.iter().map(|s| Scope::parse(s).unwrap()).collect();
        let (_, key) = f.create(name, carrier, scopes, common::now_ms()).unwrap();
        f.write(&path).unwrap();
        key
    }

    /// A dispatcher token for `depot`.
    pub fn dispatcher_token(depot: &str) -> String {
        common::token(Role::Dispatcher, depot, depot)
    }
}

/// An API call to `w`'s web listener with `key` as the bearer, and a JSON body if given.
pub async fn api(
    w: &World,
    method: &str,
    path: &str,
    key: &str,
    body: Option<&serde_json::Value>,
) -> Resp {
    let auth = format!("Bearer {key}");
    let text = body.map(|b| b.to_string());
    let mut headers = vec![("Authorization", auth.as_str())];
    if text.is_some() {
        headers.push(("Content-Type", "application/json"));
    }
    request(w.web(), method, path, &headers, text.as_deref()).await
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Resp {
    /// Status code.
    pub status: u16,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Resp {
    /// The first header named `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

fn request_bytes(
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Vec<u8> {
    let mut req = format!("{method} {path} HTTP/1.0\r\nHost: localhost\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    req.push_str("\r\n");
    if let Some(b) = body {
        req.push_str(b);
    }
    req.into_bytes()
}

/// Response headers, names lower-cased.
pub type Headers = Vec<(String, String)>;

/// Where the body starts, the status and the headers, once the head is complete.
fn parse_head(buf: &[u8]) -> Option<(usize, u16, Headers)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..end]);
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Some((end + 4, status, headers))
}

/// One request; the whole answer (the connection closes after it: HTTP/1.0).
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Resp {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&request_bytes(method, path, headers, body))
        .await
        .unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("answer in time")
        .unwrap();
    let (at, status, headers) = parse_head(&buf).expect("an HTTP head");
    Resp {
        status,
        headers,
        body: buf[at..].to_vec(),
    }
}

/// `GET path` with a bearer token.
pub async fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> Resp {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| vec![("Authorization", a)])
        .unwrap_or_default();
    request(addr, "GET", path, &headers, None).await
}

/// The status of `GET path` with a bearer token.
pub async fn get_status(addr: SocketAddr, path: &str, token: Option<&str>) -> u16 {
    get(addr, path, token).await.status
}

/// `GET /t/{tracking}/status` with the parcel's recipient token, as JSON.
pub async fn recipient_status(addr: SocketAddr, tracking: &str) -> serde_json::Value {
    let path = format!("/t/{tracking}/status");
    get(addr, &path, Some(&World::recipient_token(tracking)))
        .await
        .json()
}

/// `POST /t/{tracking}/instructions` with `body` as `content_type`, and `cookie` if any.
pub async fn post_instructions(
    addr: SocketAddr,
    tracking: &str,
    cookie: Option<&str>,
    content_type: &str,
    body: &str,
) -> Resp {
    let mut headers = vec![("Content-Type", content_type)];
    if let Some(c) = cookie {
        headers.insert(0, ("Cookie", c));
    }
    let path = format!("/t/{tracking}/instructions");
    request(addr, "POST", &path, &headers, Some(body)).await
}

/// One server-sent event.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SseEvent {
    /// `id:`, if any.
    pub id: Option<String>,
    /// `event:` (default `message`).
    pub event: String,
    /// `data:` lines joined by `\n`.
    pub data: String,
}

impl SseEvent {
    /// The data as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.data).unwrap_or(serde_json::Value::Null)
    }

    /// The id as a number.
    pub fn offset(&self) -> Option<u64> {
        self.id.as_deref().and_then(|i| i.parse().ok())
    }
}

/// An open event stream.
pub struct Sse {
    /// Status of the answer.
    pub status: u16,
    /// Headers of the answer.
    pub headers: Vec<(String, String)>,
    stream: TcpStream,
    buf: Vec<u8>,
    /// The stream ended (the server closed it).
    pub ended: bool,
}

impl Sse {
    /// Opens `path` as an event stream with extra headers.
    pub async fn open(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Sse {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let mut h = vec![("Accept", "text/event-stream")];
        h.extend_from_slice(headers);
        stream
            .write_all(&request_bytes("GET", path, &h, None))
            .await
            .unwrap();
        let mut buf = Vec::new();
        loop {
            if let Some((at, status, headers)) = parse_head(&buf) {
                buf.drain(..at);
                return Sse {
                    status,
                    headers,
                    stream,
                    buf,
                    ended: false,
                };
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk))
                .await
                .expect("head in time")
                .unwrap();
            assert!(n > 0, "closed before the head");
            buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// The next event (comments and retry-only frames skipped), or `None` after `timeout` or
    /// at the end of the stream.
    pub async fn next(&mut self, timeout: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            while let Some(end) = self.buf.windows(2).position(|w| w == b"\n\n") {
                let frame = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                self.buf.drain(..end + 2);
                let mut ev = SseEvent {
                    event: "message".into(),
                    ..Default::default()
                };
                let mut data: Vec<String> = Vec::new();
                for line in frame.lines() {
                    let (k, v) = line.split_once(':').unwrap_or((line, ""));
                    let v = v.strip_prefix(' ').unwrap_or(v);
                    match k {
                        "id" => ev.id = Some(v.to_owned()),
                        "event" => ev.event = v.to_owned(),
                        "data" => data.push(v.to_owned()),
                        _ => {}
                    }
                }
                if !data.is_empty() || ev.id.is_some() {
                    ev.data = data.join("\n");
                    return Some(ev);
                }
            }
            if self.ended {
                return None;
            }
            let mut chunk = [0u8; 8192];
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Err(_) => return None,
                Ok(Ok(0)) | Ok(Err(_)) => self.ended = true,
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Every event that arrives within `ms` of quiet.
    pub async fn drain(&mut self, ms: u64) -> Vec<SseEvent> {
        let mut v = Vec::new();
        while let Some(e) = self.next(Duration::from_millis(ms)).await {
            v.push(e);
        }
        v
    }

    /// Events until one satisfies `pred` (included), or panics after `timeout`.
    pub async fn until(
        &mut self,
        timeout: Duration,
        pred: impl Fn(&SseEvent) -> bool,
    ) -> Vec<SseEvent> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut v = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let e = self
                .next(left)
                .await
                .unwrap_or_else(|| panic!("no matching event in time; got {v:#?}"));
            let done = pred(&e);
            v.push(e);
            if done {
                return v;
            }
        }
    }
}

/// What a webhook receiver got: the secret to check with, and each body with whether its
/// signature matched.
pub type Hooked = std::sync::Arc<std::sync::Mutex<(String, Vec<(bool, String)>)>>;

/// A webhook receiver on 127.0.0.1:0 answering 200; the bodies it got with whether their
/// signature matched `secret` (set once known).
pub async fn hook_receiver(got: Hooked) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let got = got.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let n = s.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    let Some(end) = text.find("\r\n\r\n") else {
                        continue;
                    };
                    let head = text[..end].to_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    if buf.len() < end + 4 + len {
                        continue;
                    }
                    let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).to_string();
                    let sig = head
                        .lines()
                        .find_map(|l| l.strip_prefix("x-milepost-signature:"))
                        .unwrap_or("")
                        .trim()
                        .to_owned();
                    {
                        let mut g = got.lock().unwrap();
                        let ok = sig
                            == milepost::feed::webhook::signature(g.0.as_bytes(), body.as_bytes());
                        g.1.push((ok, body));
                    }
                    let _ = s
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                        .await;
                    buf.clear();
                }
            });
        }
    });
    format!("http://{addr}/hook")
}
