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
use milepost::client::ClientEndpoint;
use milepost::notify::contact::Contact;
use milepost::notify::store::{NotifyStore, StoredContact};
use milepost_proto::CommandKind;
use notify_support::{
    assert_one_message_each, crash_notify_toml, drive_the_day, eventually, every_phone_tried,
    session, Providers, PHONES,
};

fn spawn(dir: &Path, providers: &Providers) -> (Child, SocketAddr) {
    let config = dir.join("milepost.toml");
    let text = format!(
        "[web]\npublic_url = \"http://milepost.test\"\n\n{}",
        crash_notify_toml(providers)
    );
    std::fs::write(&config, text).unwrap();
    let config = config.to_string_lossy().to_string();
    common::spawn_binary(dir, "127.0.0.1:0", &["--config", &config])
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
    drive_the_day(&mut d).await;
    // Every parcel's message has been tried (and refused with 503) at least once: they are
    // queued. Kill the gateway.
    every_phone_tried(&providers).await;
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

    assert_one_message_each(&providers);
}
