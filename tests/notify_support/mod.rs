//! Helpers for the notification tests: a real SMTP server (aiosmtpd, `tests/smtp/server.py`,
//! STARTTLS and AUTH required) and a local HTTP server standing in for the two paid APIs,
//! checking every request against the provider's documented shape: Twilio's Messages API
//! (`POST /2010-04-01/Accounts/{sid}/Messages.json`, Basic auth, a form with `To`, `From` or
//! `MessagingServiceSid`, `Body`; `201` with a `sid`) and WhatsApp's Cloud API
//! (`POST /{version}/{phone_number_id}/messages`, Bearer auth, JSON with
//! `messaging_product: "whatsapp"`, `to`, and a `text` or `template`; `200` with
//! `messages[0].id`). Either can be told to answer errors, 429s or to hang.
#![allow(dead_code)]

use std::collections::{HashSet, VecDeque};
use std::io::BufRead;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{json, Value};

/// Twilio account SID, auth token and sender of the tests.
pub const SID: &str = "AC0123456789abcdef0123456789abcdef";
pub const TWILIO_TOKEN: &str = "twilio-test-token";
pub const SMS_FROM: &str = "+15005550006";
/// WhatsApp phone number id and token of the tests.
pub const PHONE_ID: &str = "109876543210";
pub const WA_TOKEN: &str = "wa-test-token";
/// SMTP user and password.
pub const SMTP_USER: &str = "milepost";
pub const SMTP_PASSWORD: &str = "smtp-test-password";

/// One request the fake providers got.
#[derive(Clone, Debug)]
pub struct Req {
    /// `sms` or `whatsapp` (or `unknown`).
    pub api: &'static str,
    /// Whether it had the provider's documented shape, or what was wrong.
    pub shape: Result<(), String>,
    /// The recipient (`To` / `to`).
    pub to: String,
    /// The text (`Body`, `text.body`, or the template's name and parameters).
    pub text: String,
    /// The status answered.
    pub status: u16,
}

/// How the next request of an API is answered.
#[derive(Clone, Debug)]
pub enum Answer {
    /// A status, a body and an optional Retry-After.
    Status(u16, &'static str, Option<u64>),
    /// Hang for this long, then answer normally.
    Hang(Duration),
}

/// What the fake providers do.
#[derive(Default)]
pub struct Script {
    /// Answers for the next SMS requests (then success).
    pub sms: VecDeque<Answer>,
    /// Answers for the next WhatsApp requests (then success).
    pub whatsapp: VecDeque<Answer>,
    /// Numbers refused with Twilio's 400 "invalid To" (code 21211).
    pub refuse: HashSet<String>,
    /// Every SMS answers 503 while set.
    pub sms_down: bool,
}

/// The fake Twilio + WhatsApp server.
#[derive(Clone)]
pub struct Providers {
    /// Its address.
    pub addr: SocketAddr,
    /// Every request.
    pub log: Arc<Mutex<Vec<Req>>>,
    /// What it does.
    pub script: Arc<Mutex<Script>>,
}

impl Providers {
    /// Starts one on 127.0.0.1:0.
    pub async fn start() -> Providers {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let p = Providers {
            addr: listener.local_addr().unwrap(),
            log: Default::default(),
            script: Default::default(),
        };
        let app = axum::Router::new().fallback(handle).with_state(p.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        p
    }

    /// Its base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests answered 2xx, of `api`.
    pub fn accepted(&self, api: &str) -> Vec<Req> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.api == api && (200..300).contains(&r.status))
            .cloned()
            .collect()
    }

    /// Every request, of `api`.
    pub fn all(&self, api: &str) -> Vec<Req> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.api == api)
            .cloned()
            .collect()
    }

    /// Panics if any request did not have its provider's shape.
    pub fn assert_shapes(&self) {
        for r in self.log.lock().unwrap().iter() {
            assert!(r.shape.is_ok(), "request with a bad shape: {r:?}");
        }
    }
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

fn twilio_shape(
    method: &Method,
    uri: &Uri,
    h: &HeaderMap,
    body: &str,
) -> (Result<(), String>, String, String) {
    let form: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let to = get("To").unwrap_or_default();
    let text = get("Body").unwrap_or_default();
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{SID}:{TWILIO_TOKEN}"))
    );
    let check = || -> Result<(), String> {
        if method != Method::POST {
            return Err(format!("method {method}"));
        }
        if uri.path() != format!("/2010-04-01/Accounts/{SID}/Messages.json") {
            return Err(format!("path {}", uri.path()));
        }
        if header(h, "authorization") != basic {
            return Err("authorization is not Basic SID:token".into());
        }
        if !header(h, "content-type").starts_with("application/x-www-form-urlencoded") {
            return Err("content-type is not a form".into());
        }
        if !to.starts_with('+') || to.len() < 9 {
            return Err(format!("To {to:?} is not E.164"));
        }
        if get("From").is_none() && get("MessagingServiceSid").is_none() {
            return Err("neither From nor MessagingServiceSid".into());
        }
        if text.is_empty() || text.chars().count() > 1600 {
            return Err("Body empty or over 1,600 characters".into());
        }
        Ok(())
    };
    (check(), to, text)
}

fn whatsapp_shape(
    method: &Method,
    uri: &Uri,
    h: &HeaderMap,
    body: &str,
) -> (Result<(), String>, String, String) {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let to = v["to"].as_str().unwrap_or("").to_owned();
    let text = match v["type"].as_str() {
        Some("text") => v["text"]["body"].as_str().unwrap_or("").to_owned(),
        Some("template") => format!(
            "template {} {}",
            v["template"]["name"], v["template"]["components"]
        ),
        _ => String::new(),
    };
    let check = || -> Result<(), String> {
        if method != Method::POST {
            return Err(format!("method {method}"));
        }
        if uri.path() != format!("/v21.0/{PHONE_ID}/messages") {
            return Err(format!("path {}", uri.path()));
        }
        if header(h, "authorization") != format!("Bearer {WA_TOKEN}") {
            return Err("authorization is not Bearer token".into());
        }
        if !header(h, "content-type").starts_with("application/json") {
            return Err("content-type is not JSON".into());
        }
        if v["messaging_product"] != "whatsapp" {
            return Err("messaging_product is not whatsapp".into());
        }
        if to.is_empty() || !to.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("to {to:?} is not a number's digits"));
        }
        match v["type"].as_str() {
            Some("text") if !text.is_empty() => Ok(()),
            Some("template")
                if v["template"]["name"].is_string()
                    && v["template"]["language"]["code"].is_string() =>
            {
                Ok(())
            }
            other => Err(format!("type {other:?} without its object")),
        }
    };
    (check(), to, text)
}

async fn handle(
    State(p): State<Providers>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = String::from_utf8_lossy(&body).to_string();
    let (api, (shape, to, text)) = if uri.path().starts_with("/2010-04-01/") {
        ("sms", twilio_shape(&method, &uri, &headers, &body))
    } else if uri.path().ends_with("/messages") {
        ("whatsapp", whatsapp_shape(&method, &uri, &headers, &body))
    } else {
        (
            "unknown",
            (
                Err(format!("unknown path {}", uri.path())),
                String::new(),
                String::new(),
            ),
        )
    };
    let answer = {
        let mut s = p.script.lock().unwrap();
        if api == "sms" && s.refuse.contains(&to) {
            Some(Answer::Status(
                400,
                r#"{"code":21211,"message":"The 'To' number is not a valid phone number.","more_info":"https://www.twilio.com/docs/errors/21211","status":400}"#,
                None,
            ))
        } else if api == "sms" && s.sms_down {
            Some(Answer::Status(503, "{}", None))
        } else if api == "sms" {
            s.sms.pop_front()
        } else {
            s.whatsapp.pop_front()
        }
    };
    if let Some(Answer::Hang(d)) = &answer {
        tokio::time::sleep(*d).await;
    }
    let resp: (u16, String, Option<u64>) = match (&shape, answer) {
        (Err(e), _) => (400, json!({"code": 21604, "message": e}).to_string(), None),
        (Ok(()), Some(Answer::Status(code, b, after))) => (code, b.to_owned(), after),
        (Ok(()), _) if api == "sms" => (
            201,
            json!({"sid": format!("SM{:032x}", p.log.lock().unwrap().len()), "status": "queued", "to": to}).to_string(),
            None,
        ),
        (Ok(()), _) => (
            200,
            json!({"messaging_product": "whatsapp", "contacts": [{"input": to, "wa_id": to}],
                   "messages": [{"id": format!("wamid.{}", p.log.lock().unwrap().len())}]})
            .to_string(),
            None,
        ),
    };
    p.log.lock().unwrap().push(Req {
        api,
        shape,
        to,
        text,
        status: resp.0,
    });
    let mut r = (
        StatusCode::from_u16(resp.0).unwrap(),
        [("content-type", "application/json")],
        resp.1,
    )
        .into_response();
    if let Some(s) = resp.2 {
        r.headers_mut()
            .insert("retry-after", s.to_string().parse().unwrap());
    }
    r
}

/// A real SMTP server (aiosmtpd) on 127.0.0.1, requiring STARTTLS and AUTH; killed on drop.
pub struct Smtp {
    child: std::process::Child,
    /// Its port.
    pub port: u16,
    /// The CA its certificate chains to.
    pub ca: std::path::PathBuf,
    /// Messages received (JSON lines of `tests/smtp/server.py`).
    pub got: Arc<Mutex<Vec<Value>>>,
    _certs: tempfile::TempDir,
}

impl Smtp {
    /// Starts one; `None` (after saying why) when no Python with aiosmtpd is set up
    /// (`MILEPOST_SMTP_PYTHON`), unless `MILEPOST_REQUIRE_SMTP` is set (CI), where that fails.
    pub fn start() -> Option<Smtp> {
        let python = match std::env::var("MILEPOST_SMTP_PYTHON") {
            Ok(p) => p,
            Err(_) => {
                let default = concat!(env!("CARGO_MANIFEST_DIR"), "/target/smtp-venv/bin/python");
                if std::path::Path::new(default).exists() {
                    default.to_owned()
                } else {
                    assert!(
                        std::env::var("MILEPOST_REQUIRE_SMTP").is_err(),
                        "MILEPOST_REQUIRE_SMTP is set but MILEPOST_SMTP_PYTHON is not"
                    );
                    eprintln!("skipped: no SMTP server (run tests/smtp/setup-venv.sh)");
                    return None;
                }
            }
        };
        let certs = tempfile::tempdir().unwrap();
        milepost::certs::load_or_create_dev(certs.path()).unwrap();
        let mut child = std::process::Command::new(python)
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/smtp/server.py"))
            .arg(certs.path().join("server.pem"))
            .arg(certs.path().join("server.key"))
            .arg(SMTP_USER)
            .arg(SMTP_PASSWORD)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start tests/smtp/server.py");
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let first: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
        let port = first["port"].as_u64().unwrap() as u16;
        let got: Arc<Mutex<Vec<Value>>> = Default::default();
        let sink = got.clone();
        std::thread::spawn(move || {
            for l in lines.map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str(&l) {
                    sink.lock().unwrap().push(v);
                }
            }
        });
        Some(Smtp {
            child,
            port,
            ca: certs.path().join("ca.pem"),
            got,
            _certs: certs,
        })
    }

    /// The messages received so far.
    pub fn messages(&self) -> Vec<Value> {
        self.got.lock().unwrap().clone()
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits up to 30 s for `f` to hold, polling every 50 ms.
pub async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..600 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Parcels of the example route and their recipients' phones (the crash tests').
pub const PHONES: [(&str, &str); 4] = [
    ("MP100000001", "+385911000001"),
    ("MP100000002", "+385911000002"),
    ("MP100000003", "+385911000003"),
    ("MP100000004", "+385911000004"),
];

/// The crash tests' day: driver `d` drives the example route, delivers S1 and S3 and fails S2
/// (recipient absent: parcel MP100000003's attempt fails).
pub async fn drive_the_day(d: &mut milepost::client::Session) {
    use milepost_proto::route::{FailureReason, Outcome};
    let mut seq = 1;
    let mut clock = crate::common::now_ms() - 3_000_000;
    for (i, stop) in ["S1", "S2", "S3"].iter().enumerate() {
        let fixes = crate::common::leg(
            crate::common::route_point(i),
            crate::common::route_point(i + 1),
            &mut clock,
            60,
        );
        crate::common::send_in_batches(d, &mut seq, &fixes, 8).await;
        let outcome = if *stop == "S2" {
            Outcome::Failed {
                reason: FailureReason::RecipientAbsent,
                note: String::new(),
            }
        } else {
            crate::common::delivered("cd")
        };
        crate::common::report(d, 2 + i as u32, stop, None, outcome)
            .await
            .unwrap();
    }
}

/// Waits until every phone of [`PHONES`] was tried at least once.
pub async fn every_phone_tried(providers: &Providers) {
    eventually("every message tried", || {
        let tried: HashSet<String> = providers.all("sms").into_iter().map(|r| r.to).collect();
        tried.len() == PHONES.len()
    })
    .await;
}

/// Checks that the provider accepted exactly one message per phone of [`PHONES`], the one its
/// parcel's milestone of [`drive_the_day`] calls for, and every request had Twilio's shape.
pub fn assert_one_message_each(providers: &Providers) {
    providers.assert_shapes();
    let accepted = providers.accepted("sms");
    for (t, phone) in PHONES {
        let got: Vec<&str> = accepted
            .iter()
            .filter(|r| r.to == phone)
            .map(|r| r.text.as_str())
            .collect();
        assert_eq!(got.len(), 1, "{t}: {got:?}");
        let expected = if t == "MP100000003" {
            "we could not deliver"
        } else {
            "delivered"
        };
        assert!(
            got[0].contains(expected) && got[0].contains(t),
            "{t}: {got:?}"
        );
    }
}

/// The `[notify]` section of the crash tests: SMS through the fake Twilio of `providers`, only
/// the milestones that never go stale (so none is dropped as superseded: every one must go),
/// quick retries without end.
pub fn crash_notify_toml(providers: &Providers) -> String {
    format!(
        r#"
[notify]
enabled = true
milestones = ["delivered", "attempt_failed", "returned"]
retry_base_ms = 200
retry_max_ms = 500
max_attempts = 1000
timeout_s = 2

[notify.sms]
adapter = "twilio"
base_url = "{}"
account_sid = "{SID}"
auth_token = "{TWILIO_TOKEN}"
from = "{SMS_FROM}"
"#,
        providers.url()
    )
}

/// A session of `role` as `sub`, of depot "north", on the gateway at `addr`.
pub async fn session(
    ep: &milepost::client::ClientEndpoint,
    addr: SocketAddr,
    role: milepost::auth::Role,
    sub: &str,
) -> milepost::client::Session {
    let conn = ep.connect(addr, "localhost").await.unwrap();
    milepost::client::Session::open(
        conn,
        &crate::common::token(role, sub, "north"),
        sub,
        Default::default(),
    )
    .await
    .unwrap()
}
