//! The notification crash test: the real `milepost` binary is killed with SIGKILL while
//! messages are queued (the SMS provider answering 503), restarted on the same data directory
//! with the provider back, and every milestone's message must reach the provider exactly once.

mod common;
mod notify_support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Child;
use std::time::Duration;

use milepost::auth::Role;
use milepost::client::{ClientEndpoint, Session};
use milepost::notify::contact::Contact;
use milepost::notify::store::{NotifyStore, StoredContact};
use milepost_proto::route::{FailureReason, Outcome};
use milepost_proto::CommandKind;
use notify_support::{eventually, Providers, SID, SMS_FROM, TWILIO_TOKEN};

/// Parcels of the example route and their recipients' phones.
const PHONES: [(&str, &str); 4] = [
    ("MP100000001", "+385911000001"),
    ("MP100000002", "+385911000002"),
    ("MP100000003", "+385911000003"),
    ("MP100000004", "+385911000004"),
];

fn spawn(dir: &Path, providers: &Providers) -> (Child, SocketAddr) {
    let config = dir.join("milepost.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[web]
public_url = "http://milepost.test"

[notify]
enabled = true
# The milestones that never go stale, so none is dropped as superseded: every one must go.
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
        ),
    )
    .unwrap();
    let config = config.to_string_lossy().to_string();
    common::spawn_binary(dir, "127.0.0.1:0", &["--config", &config])
}

async fn session(ep: &ClientEndpoint, addr: SocketAddr, role: Role, sub: &str) -> Session {
    let conn = ep.connect(addr, "localhost").await.unwrap();
    Session::open(
        conn,
        &common::token(role, sub, "north"),
        sub,
        Default::default(),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_with_messages_queued_sends_each_milestone_exactly_once_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    // The back office gave the recipients' phones (written as the API would).
    {
        let store = NotifyStore::open(dir.path()).unwrap();
        for (t, phone) in PHONES {
            let contact = Contact {
                phone: Some(phone.into()),
                ..Contact::default()
            };
            let now = common::now_ms();
            let c = StoredContact {
                contact,
                depot: "north".into(),
                set_ms: now,
                touched_ms: now,
            };
            store.set_contact(t, &c).unwrap();
        }
    }
    let providers = Providers::start().await;
    providers.script.lock().unwrap().sms_down = true;
    let (mut child, addr) = spawn(dir.path(), &providers);
    let ca = dir.path().join("certs/ca.pem");
    let ep = ClientEndpoint::new("127.0.0.1:0".parse().unwrap(), &ca).unwrap();

    let mut dispatch = session(&ep, addr, Role::Dispatcher, "north").await;
    dispatch
        .command(1, CommandKind::AssignRoute(common::example_route()))
        .await
        .unwrap();
    let mut d = session(&ep, addr, Role::Driver, "D1").await;
    let mut seq = 1;
    let mut clock = common::now_ms() - 3_000_000;
    let stops = ["S1", "S2", "S3"];
    for (i, stop) in stops.iter().enumerate() {
        let fixes = common::leg(
            common::route_point(i),
            common::route_point(i + 1),
            &mut clock,
            60,
        );
        common::send_in_batches(&mut d, &mut seq, &fixes, 8).await;
        let outcome = if *stop == "S2" {
            Outcome::Failed {
                reason: FailureReason::RecipientAbsent,
                note: String::new(),
            }
        } else {
            common::delivered("cd")
        };
        common::report(&mut d, 2 + i as u32, stop, None, outcome)
            .await
            .unwrap();
    }
    // Every parcel's message has been tried (and refused with 503) at least once: they are
    // queued. Kill the gateway.
    eventually("every message tried", || {
        let tried: std::collections::HashSet<String> =
            providers.all("sms").into_iter().map(|r| r.to).collect();
        tried.len() == PHONES.len()
    })
    .await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(providers.accepted("sms").is_empty());

    // The provider is back; the gateway restarts on the same directory.
    providers.script.lock().unwrap().sms_down = false;
    let (mut child, _addr) = spawn(dir.path(), &providers);
    eventually("every message sent", || {
        providers.accepted("sms").len() >= PHONES.len()
    })
    .await;
    // Give a repeat the time to show itself (several retry periods).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = child.kill();
    let _ = child.wait();

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
