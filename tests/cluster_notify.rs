//! Notifications in a cluster: two real `milepost serve --cluster` binaries over a real
//! `nats-server -js`, notifications on, the SMS provider a local fake checked against Twilio's
//! documented request. Recipients' contacts are set through one gateway's API and read back
//! through the other's (the journal carries them). The provider answers 503 while the driver
//! delivers, so the messages are queued on the gateway that sends; that gateway is killed with
//! SIGKILL, the provider comes back, and the survivor, once it holds the lease, must send every
//! milestone's message exactly once and show each parcel's message log.
//!
//! Without nats-server this prints SKIPPED and passes, unless `MILEPOST_REQUIRE_NATS` is set.

mod common;
mod notify_support;
mod web_support;

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use milepost::apikeys::{KeyFile, Scope, FILE};
use milepost::auth::Role;
use milepost::client::ClientEndpoint;
use milepost_proto::CommandKind;
use notify_support::{
    assert_one_message_each, crash_notify_toml, drive_the_day, eventually, every_phone_tried,
    session, Providers, PHONES,
};
use serde_json::json;

/// A gateway of the test: its process, addresses, and whether it said it sends.
struct Gateway {
    child: Child,
    quic: SocketAddr,
    web: SocketAddr,
    sends: Arc<AtomicBool>,
}

fn config(dir: &Path, providers: &Providers, cert_from: Option<&Path>) -> String {
    let certs = cert_from
        .map(|c| {
            format!(
                "cert = {:?}\nkey = {:?}\n",
                c.join("server.pem"),
                c.join("server.key")
            )
        })
        .unwrap_or_default();
    let text = format!(
        r#"{certs}
[web]
public_url = "http://milepost.test"

[cluster]
prefix = "notify"
partitions = 4
lease_ttl_s = 2

{}"#,
        crash_notify_toml(providers)
    );
    let path = dir.join("milepost.toml");
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

fn spawn(dir: &Path, cfg: &str, nats: &str, node: &str) -> Gateway {
    let mut child = Command::new(env!("CARGO_BIN_EXE_milepost"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--web-listen",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(dir)
        .args(["--config", cfg, "--cluster", nats, "--node", node])
        .env("MILEPOST_SECRET", common::SECRET)
        .env("MILEPOST_ADMIN_LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "milepost=info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn milepost");
    let log = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let sends = Arc::new(AtomicBool::new(false));
    let flag = sends.clone();
    let name = node.to_owned();
    // Reads the log to its end (so the gateway never blocks on a full pipe).
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(log).lines().map_while(Result::ok) {
            for marker in [" addr=", " web="] {
                if let Some(rest) = line.split(marker).nth(1) {
                    let word = rest.split_whitespace().next().unwrap_or("").to_owned();
                    let _ = tx.send((marker, word));
                }
            }
            // Shown with a failing test's output.
            if line.contains("WARN") || line.contains("ERROR") || line.contains("notification") {
                eprintln!("{name}: {line}");
            }
            if line.contains("this gateway now sends the notifications") {
                flag.store(true, Ordering::SeqCst);
            }
            if line.contains("this gateway no longer sends the notifications") {
                flag.store(false, Ordering::SeqCst);
            }
        }
    });
    let (mut quic, mut web) = (None, None);
    while quic.is_none() || web.is_none() {
        let (marker, word) = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("gateway addresses");
        match marker {
            " addr=" => quic = word.parse().ok(),
            _ => web = word.parse().ok(),
        }
    }
    Gateway {
        child,
        quic: quic.unwrap(),
        web: web.unwrap(),
        sends,
    }
}

async fn call(
    web: SocketAddr,
    method: &str,
    path: &str,
    key: &str,
    body: Option<serde_json::Value>,
) -> web_support::Resp {
    let auth = format!("Bearer {key}");
    let text = body.map(|b| b.to_string());
    let mut headers = vec![("Authorization", auth.as_str())];
    if text.is_some() {
        headers.push(("Content-Type", "application/json"));
    }
    web_support::request(web, method, path, &headers, text.as_deref()).await
}

/// Two gateways of one cluster on `nats`, the example route assigned, its recipients' phones
/// set through g1's API (and read back through g0's), and the day driven while the provider
/// answers 503: every milestone's message is queued on the gateway that sends.
struct QueuedDay {
    g: Vec<Gateway>,
    key: String,
    sender: usize,
    _dirs: Vec<tempfile::TempDir>,
}

async fn queued_day(nats: &common::Nats, providers: &Providers) -> QueuedDay {
    providers.script.lock().unwrap().sms_down = true;
    let dirs: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    // One back-office key, known to both gateways.
    let mut keys = KeyFile::default();
    let scopes = vec![Scope::parse("backoffice:north").unwrap()];
    let (_, key) = keys
        .create("office", "*", scopes, common::now_ms())
        .unwrap();
    for d in &dirs {
        keys.write(&d.path().join(FILE)).unwrap();
    }
    let cfg0 = config(dirs[0].path(), providers, None);
    let mut g = vec![spawn(dirs[0].path(), &cfg0, &nats.url, "g0")];
    let certs = dirs[0].path().join("certs");
    let cfg1 = config(dirs[1].path(), providers, Some(&certs));
    g.push(spawn(dirs[1].path(), &cfg1, &nats.url, "g1"));
    let ep = ClientEndpoint::new("127.0.0.1:0".parse().unwrap(), &certs.join("ca.pem")).unwrap();

    let mut dispatch = session(&ep, g[0].quic, Role::Dispatcher, "north").await;
    dispatch
        .command(1, CommandKind::AssignRoute(common::example_route()))
        .await
        .unwrap();
    // The contacts go in through g1's API once g1 has folded the route, and g0 reads them.
    for (t, phone) in PHONES {
        let path = format!("/api/v1/parcels/{t}/recipient");
        let body = json!({ "phone": phone, "channels": ["sms"] });
        let mut status = 0;
        for _ in 0..100 {
            status = call(g[1].web, "PUT", &path, &key, Some(body.clone()))
                .await
                .status;
            if status != 404 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(status, 200, "{t}");
        // Read back at once where it was written.
        let here = call(g[1].web, "GET", &path, &key, None).await;
        assert_eq!(here.status, 200);
        assert_eq!(here.json()["phone"], phone);
    }
    for (t, phone) in PHONES {
        let path = format!("/api/v1/parcels/{t}/recipient");
        let mut got = None;
        for _ in 0..100 {
            let r = call(g[0].web, "GET", &path, &key, None).await;
            if r.status == 200 {
                got = Some(r.json());
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let got = got.unwrap_or_else(|| panic!("{t}: the contact never reached g0"));
        assert_eq!(got["phone"], phone, "{t}");
    }

    let mut d = session(&ep, g[1].quic, Role::Driver, "D1").await;
    drive_the_day(&mut d).await;
    // Every parcel's message has been tried (and refused with 503): they are queued on the
    // gateway that sends. Kill it.
    every_phone_tried(providers).await;
    let sender = g
        .iter()
        .position(|g| g.sends.load(Ordering::SeqCst))
        .expect("one gateway said it sends");
    assert!(!g[1 - sender].sends.load(Ordering::SeqCst));
    QueuedDay {
        g,
        key,
        sender,
        _dirs: dirs,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_survivor_sends_each_queued_milestone_once_after_the_sender_is_killed() {
    let Some(nats) = common::Nats::start() else {
        return;
    };
    let providers = Providers::start().await;
    let QueuedDay {
        mut g,
        key,
        sender,
        _dirs,
    } = queued_day(&nats, &providers).await;
    let survivor = 1 - sender;
    g[sender].child.kill().unwrap(); // SIGKILL
    g[sender].child.wait().unwrap();
    assert!(providers.accepted("sms").is_empty());

    // The provider is back; the survivor takes the lease and sends what was queued.
    providers.script.lock().unwrap().sms_down = false;
    eventually("every message sent", || {
        providers.accepted("sms").len() >= PHONES.len()
    })
    .await;
    assert!(g[survivor].sends.load(Ordering::SeqCst));
    // Give a repeat the time to show itself (several retry periods).
    tokio::time::sleep(Duration::from_secs(2)).await;

    assert_one_message_each(&providers);
    for (t, _) in PHONES {
        // The parcel's message log, as the survivor keeps it.
        let log = call(
            g[survivor].web,
            "GET",
            &format!("/api/v1/parcels/{t}/notifications"),
            &key,
            None,
        )
        .await;
        assert_eq!(log.status, 200, "{}", log.text());
        let log = log.json();
        let states: Vec<&str> = log
            .as_array()
            .unwrap_or_else(|| panic!("{t}: {log}"))
            .iter()
            .filter_map(|m| m["state"].as_str())
            .collect();
        assert_eq!(states, ["sent"], "{t}: {log}");
    }
    // Erasing a contact removes it from the journal's stream too, not only from the copies.
    let (t, _) = PHONES[0];
    let subject = format!(
        "notify-notify.c.{}",
        t.bytes().map(|b| format!("{b:02x}")).collect::<String>()
    );
    let client = async_nats::connect(nats.url.as_str()).await.unwrap();
    let stream = async_nats::jetstream::new(client)
        .get_stream("NOTIFY_NOTIFY")
        .await
        .unwrap();
    assert!(stream
        .get_last_raw_message_by_subject(&subject)
        .await
        .is_ok());
    let path = format!("/api/v1/parcels/{t}/recipient");
    let erased = call(g[survivor].web, "DELETE", &path, &key, None).await;
    assert_eq!(erased.status, 204, "{}", erased.text());
    assert_eq!(
        call(g[survivor].web, "GET", &path, &key, None).await.status,
        404
    );
    assert!(
        stream
            .get_last_raw_message_by_subject(&subject)
            .await
            .is_err(),
        "the erased contact is still in the journal's stream"
    );
    let _ = g[survivor].child.kill();
    let _ = g[survivor].child.wait();
}

/// A clean stop (SIGTERM) of the sender with requests in flight: it waits for their answers
/// and writes them while it still holds the lease, so the gateway that takes over sends
/// nothing again, and what was still queued goes out once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_stop_of_the_sender_repeats_nothing() {
    let Some(nats) = common::Nats::start() else {
        return;
    };
    let providers = Providers::start().await;
    let QueuedDay {
        mut g,
        sender,
        _dirs,
        ..
    } = queued_day(&nats, &providers).await;
    // The provider is back but slow: the next two requests hang 1.5 s (in flight), then it
    // answers at once.
    {
        let mut script = providers.script.lock().unwrap();
        script.sms = (0..2)
            .map(|_| notify_support::Answer::Hang(Duration::from_millis(1_500)))
            .collect();
        script.sms_down = false;
    }
    eventually("two requests in flight", || {
        providers.script.lock().unwrap().sms.is_empty()
    })
    .await;
    let status = Command::new("kill")
        .args(["-TERM", &g[sender].child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(g[sender].child.wait().unwrap().success());
    // Both hung requests were answered before the sender exited.
    assert!(providers.accepted("sms").len() >= 2);
    eventually("every message sent", || {
        providers.accepted("sms").len() >= PHONES.len()
    })
    .await;
    let taken_over = g[1 - sender].sends.clone();
    eventually("the survivor sends", || taken_over.load(Ordering::SeqCst)).await;
    // Give a repeat the time to show itself (several retry periods).
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_one_message_each(&providers);
    let survivor = &mut g[1 - sender].child;
    let _ = survivor.kill();
    let _ = survivor.wait();
}

/// A message of the fencing test.
fn queued(id: u64) -> milepost::notify::store::Queued {
    milepost::notify::store::Queued {
        id,
        tracking: Some(format!("T{id}")),
        depot: "north".into(),
        route: "R1".into(),
        milestone: Some(milepost::notify::plan::Milestone::Delivered),
        alert: None,
        channel: milepost::notify::contact::Channel::Sms,
        to: None,
        rendered: milepost::notify::templates::Rendered {
            subject: None,
            text: format!("message {id}"),
            whatsapp: None,
        },
        unsubscribe: None,
        queued_ms: 1,
        attempts: 0,
        next_ms: 1,
        last_error: None,
        event_ms: None,
    }
}

/// Two journals over a real nats-server, both holding partition 0 (as two gateways may for a
/// moment, one paused past its lease): once the second starts to lead, the first one's rounds
/// are refused and it learns it lost, and neither gateway's copy ever holds the refused round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_that_lost_the_lead_has_its_rounds_refused() {
    use milepost::cluster::config::ClusterConfig;
    use milepost::cluster::lease::Owned;
    use milepost::cluster::notify_apply::{run_applier, Progress};
    use milepost::cluster::notify_journal::{open_stream, NatsJournal};
    use milepost::cluster::Cluster;
    use milepost::notify::journal::{Journal, RoundError};
    use milepost::notify::store::Batch;
    use milepost::notify::Notify;

    let Some(nats) = common::Nats::start() else {
        return;
    };
    let cfg = ClusterConfig {
        url: Some(nats.url.clone()),
        prefix: "fence".into(),
        ..ClusterConfig::default()
    };
    let dirs: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut journals = Vec::new();
    let mut notifies = Vec::new();
    for (i, dir) in dirs.iter().enumerate() {
        let cluster = Cluster::connect(&cfg, format!("n{i}")).await.unwrap();
        open_stream(&cluster, Duration::from_secs(3600))
            .await
            .unwrap();
        let notify = Arc::new(Notify::open(dir.path(), b"secret").unwrap());
        let progress = Progress::new();
        tokio::spawn(run_applier(
            cluster.clone(),
            notify.clone(),
            progress.clone(),
        ));
        let owned = Arc::new(Owned::all(cfg.partitions));
        journals.push(Arc::new(NatsJournal::new(&cluster, owned, progress)));
        notifies.push(notify);
    }
    let round = |ids: &[u64]| Batch {
        enqueue: ids.iter().map(|&id| queued(id)).collect(),
        next_id: Some(ids.iter().max().unwrap() + 1),
        ..Batch::default()
    };
    let blocking = |j: Arc<NatsJournal>, b: Option<Batch>| {
        tokio::task::spawn_blocking(move || match b {
            None => j.lead().map(|_| ()).ok_or_else(|| "no lead".to_string()),
            Some(b) => j.round(&b).map_err(|RoundError::Lost(e)| e),
        })
    };
    let (a, b) = (journals[0].clone(), journals[1].clone());
    blocking(a.clone(), None).await.unwrap().expect("a leads");
    blocking(a.clone(), Some(round(&[1])))
        .await
        .unwrap()
        .expect("a's first round");
    // b starts to lead: its copy holds a's round once it does.
    blocking(b.clone(), None).await.unwrap().expect("b leads");
    let ids = |n: &Notify| -> Vec<u64> { n.store.queued().unwrap().iter().map(|q| q.id).collect() };
    assert_eq!(ids(&notifies[1]), [1]);
    // a still thinks it leads; its next round is refused.
    let refused = blocking(a.clone(), Some(round(&[2]))).await.unwrap();
    assert!(refused.is_err(), "a's round after b's marker was accepted");
    blocking(b.clone(), Some(round(&[3])))
        .await
        .unwrap()
        .expect("b's round");
    eventually("a's copy follows b", || ids(&notifies[0]) == [1, 3]).await;
    assert_eq!(ids(&notifies[1]), [1, 3]);
    for n in &notifies {
        n.shutdown();
    }
}

/// A gateway that ran alone joins a new cluster on its data directory: its contacts,
/// opt-outs, queue, cursors and message logs seed the journal, and a gateway that joins after
/// it holds them all (so it can take over the sending without losing the queue).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_that_ran_alone_seeds_the_journal_for_those_that_join() {
    use milepost::cluster::config::ClusterConfig;
    use milepost::cluster::notify_apply::{run_applier, Progress};
    use milepost::cluster::notify_journal::open_stream;
    use milepost::cluster::notify_seed::{import_opt_outs, seed};
    use milepost::cluster::Cluster;
    use milepost::notify::contact::{Channel, Contact};
    use milepost::notify::store::{Batch, MessageLog, StoredContact};
    use milepost::notify::Notify;

    let Some(nats) = common::Nats::start() else {
        return;
    };
    let cfg = ClusterConfig {
        url: Some(nats.url.clone()),
        prefix: "seed".into(),
        ..ClusterConfig::default()
    };
    let alone = tempfile::tempdir().unwrap();
    let joiner = tempfile::tempdir().unwrap();
    let old = Arc::new(Notify::open(alone.path(), b"secret").unwrap());
    let contact = StoredContact {
        contact: Contact {
            phone: Some("+385911000001".into()),
            ..Contact::default()
        },
        depot: "north".into(),
        set_ms: 1,
        touched_ms: 1,
    };
    old.store.set_contact("T1", &contact).unwrap();
    old.store.opt_out("addr-key", 5).unwrap();
    let sent = MessageLog {
        id: 1,
        milestone: milepost::notify::plan::Milestone::Delivered,
        channel: Channel::Sms,
        state: "sent".into(),
        provider_id: Some("SM1".into()),
        at_ms: 3,
    };
    old.store
        .commit(&Batch {
            enqueue: (1..=300).map(queued).collect(),
            cursors: vec![("milestones".into(), 77)],
            once: vec![("k".into(), 2)],
            next_id: Some(301),
            ..Batch::default()
        })
        .unwrap();
    old.store
        .commit(&Batch {
            finished: vec![(queued(1), Some(sent.clone()))],
            ..Batch::default()
        })
        .unwrap();

    let cluster = Cluster::connect(&cfg, "old".into()).await.unwrap();
    open_stream(&cluster, Duration::from_secs(3600))
        .await
        .unwrap();
    let written = seed(&cluster, &old, true).await.unwrap();
    // The contact, the opt-out, and the outbox in two rounds (299 messages and a log line).
    assert_eq!(written, 4);
    // Seeding twice writes nothing more: the journal is not empty now.
    assert_eq!(seed(&cluster, &old, true).await.unwrap(), 0);

    let new = Arc::new(Notify::open(joiner.path(), b"secret").unwrap());
    let progress = Progress::new();
    let mut applied = progress.applied.subscribe();
    tokio::spawn(run_applier(cluster.clone(), new.clone(), progress.clone()));
    tokio::time::timeout(Duration::from_secs(10), applied.wait_for(|a| *a >= 4))
        .await
        .expect("the joiner read the seed")
        .unwrap();
    let s = &new.store;
    assert_eq!(s.contact("T1").unwrap(), Some(contact));
    assert!(s.opted_out("addr-key").unwrap());
    assert_eq!(s.cursor("milestones").unwrap(), Some(77));
    assert!(s.once_taken("k").unwrap());
    assert_eq!(s.next_id().unwrap(), 301);
    assert_eq!(s.queued().unwrap(), old.store.queued().unwrap());
    assert_eq!(s.queued().unwrap().len(), 299);
    assert_eq!(s.messages("T1").unwrap(), vec![sent]);
    // Opt-outs are also kept for good in the state bucket, which outlives the journal's
    // retention: a gateway that starts later reads them from there.
    let later = tempfile::tempdir().unwrap();
    let third = Arc::new(Notify::open(later.path(), b"secret").unwrap());
    assert_eq!(import_opt_outs(&cluster, &third).await.unwrap(), 1);
    assert!(third.store.opted_out("addr-key").unwrap());
    for n in [new, old, third] {
        n.shutdown();
    }
}
