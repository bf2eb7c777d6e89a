//! Notifications end to end, in-process over real QUIC and HTTP on loopback: recipients'
//! contacts set through the API, a route driven, and the messages checked where they land:
//! a real SMTP server (aiosmtpd, STARTTLS and AUTH) and a local HTTP server checking each
//! request against Twilio's and WhatsApp's documented shapes. Each milestone is told once per
//! channel; links work (the tracking page opens, the opt-out stops later messages); provider
//! errors are retried, dead-lettered and retried again from the API; a hanging provider holds
//! up no ack; bad contacts and bad templates get clear errors.

mod common;
mod notify_support;
mod web_support;

use std::time::Duration;

use milepost::config::Config;
use milepost::notify::config::{EmailConfig, SmsConfig, WhatsappConfig};
use milepost_proto::route::{FailureReason, Outcome};
use notify_support::{
    eventually, Answer, Providers, Smtp, PHONE_ID, SID, SMS_FROM, SMTP_PASSWORD, SMTP_USER,
    TWILIO_TOKEN, WA_TOKEN,
};
use serde_json::{json, Value};
use web_support::{request, Resp, World};

const PUBLIC: &str = "http://milepost.test";

fn notify_cfg(c: &mut Config, p: &Providers, smtp: Option<&Smtp>) {
    c.web.public_url = Some(PUBLIC.into());
    let n = &mut c.notify;
    n.enabled = true;
    n.carrier = Some("Acme Parcels".into());
    n.retry_base_ms = 100;
    n.retry_max_ms = 1000;
    n.max_attempts = 3;
    n.timeout_s = 2;
    n.sms = Some(SmsConfig::Twilio {
        base_url: p.url(),
        account_sid: SID.into(),
        auth_token: TWILIO_TOKEN.into(),
        from: Some(SMS_FROM.into()),
        messaging_service_sid: None,
    });
    n.whatsapp = Some(WhatsappConfig::Cloud {
        base_url: p.url(),
        api_version: "v21.0".into(),
        phone_number_id: PHONE_ID.into(),
        access_token: WA_TOKEN.into(),
    });
    n.email = Some(match smtp {
        Some(s) => EmailConfig::Smtp {
            host: "localhost".into(),
            port: s.port,
            tls: "starttls".into(),
            username: Some(SMTP_USER.into()),
            password: Some(SMTP_PASSWORD.into()),
            from: "Acme Parcels <noreply@acme.example>".into(),
            ca_file: Some(s.ca.clone()),
        },
        None => EmailConfig::Log,
    });
}

fn key(w: &World) -> String {
    w.backoffice_key()
}

async fn call(w: &World, method: &str, path: &str, key: &str, body: Option<&Value>) -> Resp {
    web_support::api(w, method, path, key, body).await
}

async fn set_contact(w: &World, key: &str, tracking: &str, c: Value) {
    let path = format!("/api/v1/parcels/{tracking}/recipient");
    let r = call(w, "PUT", &path, key, Some(&c)).await;
    assert_eq!(r.status, 200, "{}", r.text());
}

/// A parcel's message log from the API: (milestone, channel, state).
async fn log(w: &World, key: &str, tracking: &str) -> Vec<(String, String, String)> {
    let r = call(
        w,
        "GET",
        &format!("/api/v1/parcels/{tracking}/notifications"),
        key,
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let s = |k: &str| m[k].as_str().unwrap_or("").to_owned();
            (s("milestone"), s("channel"), s("state"))
        })
        .collect()
}

/// Polls a parcel's log until `f` holds.
async fn log_until(
    w: &World,
    key: &str,
    tracking: &str,
    what: &str,
    f: impl Fn(&[(String, String, String)]) -> bool,
) -> Vec<(String, String, String)> {
    for _ in 0..600 {
        let l = log(w, key, tracking).await;
        if f(&l) {
            return l;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "{tracking}: timed out waiting for {what}: {:?}",
        log(w, key, tracking).await
    );
}

fn has(l: &[(String, String, String)], m: &str, c: &str, state: &str) -> bool {
    l.iter()
        .any(|(a, b, s)| a == m && b == c && s.starts_with(state))
}

/// No milestone went out twice on a channel.
fn once_each(tracking: &str, l: &[(String, String, String)]) {
    let sent: Vec<_> = l.iter().filter(|(_, _, s)| s == "sent").collect();
    for (i, a) in sent.iter().enumerate() {
        for b in &sent[i + 1..] {
            assert!(
                !(a.0 == b.0 && a.1 == b.1),
                "{tracking}: {} on {} sent twice: {l:?}",
                a.0,
                a.1
            );
        }
    }
}

/// The path and query of one of our links, to request from the test's web listener.
fn local(link: &str) -> String {
    link.strip_prefix(PUBLIC)
        .unwrap_or_else(|| panic!("{link} is not under {PUBLIC}"))
        .to_owned()
}

fn link_in(text: &str, prefix: &str) -> String {
    let at = text
        .find(prefix)
        .unwrap_or_else(|| panic!("no {prefix} in {text}"));
    text[at..]
        .split(|c: char| c.is_whitespace() || c == '>')
        .next()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recipients_are_told_each_milestone_once_on_the_channels_they_chose() {
    let smtp = Smtp::start();
    let p = Providers::start().await;
    let mut w = World::with_web(|c| {
        notify_cfg(c, &p, smtp.as_ref());
        // The depot's operations mailbox hears of failed attempts.
        c.notify.alerts = vec![milepost::notify::config::AlertRoute {
            depot: "north".into(),
            email: "ops@acme.example".into(),
            kinds: vec!["attempt_failed".into()],
        }];
    })
    .await;
    let k = key(&w);
    set_contact(
        &w,
        &k,
        "MP100000001",
        json!({"name": "Ana Horvat", "email": "ana@example.com",
        "phone": "+385911234567", "channels": ["email", "sms"]}),
    )
    .await;
    set_contact(
        &w,
        &k,
        "MP100000002",
        json!({"phone": "+385921234567", "channels": ["whatsapp"]}),
    )
    .await;
    set_contact(&w, &k, "MP100000003", json!({"phone": "+385931234567"})).await;
    set_contact(
        &w,
        &k,
        "MP100000004",
        json!({"email": "ivo@example.com", "locale": "hr"}),
    )
    .await;
    // The contact reads back; no address is in the gateway's log records.
    let r = call(&w, "GET", "/api/v1/parcels/MP100000001/recipient", &k, None).await;
    assert_eq!(r.json()["email"], "ana@example.com");

    // Out for delivery: everyone is told on their channel.
    w.drive(0, 1, 0).await;
    let l4 = log_until(&w, &k, "MP100000004", "out for delivery", |l| {
        has(l, "out_for_delivery", "email", "sent")
    })
    .await;
    assert!(has(&l4, "out_for_delivery", "email", "sent"));

    // Ivo opts out of e-mail from his first message's link: GET shows a button and changes
    // nothing, POST (what the button and a mail client's one-click do) stops e-mail.
    if let Some(s) = &smtp {
        let mail = s
            .messages()
            .into_iter()
            .find(|m| m["rcpt_tos"][0] == "ivo@example.com")
            .expect("Ivo's e-mail");
        let h = &mail["headers"];
        assert!(mail["tls"].as_bool().unwrap() && mail["authenticated"].as_bool().unwrap());
        assert_eq!(h["from"], "Acme Parcels <noreply@acme.example>");
        assert_eq!(h["list-unsubscribe-post"], "List-Unsubscribe=One-Click");
        assert!(h["message-id"]
            .as_str()
            .unwrap()
            .ends_with("@acme.example>"));
        let optout = h["list-unsubscribe"]
            .as_str()
            .unwrap()
            .trim_matches(|c| c == '<' || c == '>')
            .to_owned();
        assert!(mail["body"].as_str().unwrap().contains(&optout), "{mail}");
        let page = request(w.web(), "GET", &local(&optout), &[], None).await;
        assert_eq!(page.status, 200);
        assert!(page.text().contains("<form method=\"post\""));
        let done = request(
            w.web(),
            "POST",
            &local(&optout),
            &[("Content-Type", "application/x-www-form-urlencoded")],
            Some("List-Unsubscribe=One-Click"),
        )
        .await;
        assert_eq!(done.status, 200, "{}", done.text());
        assert!(done.text().contains("no more email messages"));
        // A forged token changes nothing.
        let forged = request(w.web(), "POST", "/n/optout/ZW1haWw6TVAx.AAAA", &[], None).await;
        assert_eq!(forged.status, 404);
    } else {
        let t = milepost::notify::optout::token(
            w.t.gw.shared().notify.secret(),
            milepost::notify::contact::Channel::Email,
            "MP100000004",
        );
        let done = request(w.web(), "POST", &format!("/n/optout/{t}"), &[], None).await;
        assert_eq!(done.status, 200);
    }

    // The day goes on: S1 delivered, S2 failed, S3 delivered.
    let stand = common::leg(
        common::route_point(1),
        common::route_point(1),
        &mut w.clock,
        90,
    );
    w.send(stand).await;
    w.deliver("S1").await;
    w.drive(1, 2, 90).await;
    common::report(
        &mut w.driver,
        3,
        "S2",
        None,
        Outcome::Failed {
            reason: FailureReason::RecipientAbsent,
            note: String::new(),
        },
    )
    .await
    .unwrap();
    w.drive(2, 3, 90).await;
    w.deliver("S3").await;

    let l1 = log_until(&w, &k, "MP100000001", "delivered on both channels", |l| {
        has(l, "delivered", "sms", "sent") && has(l, "delivered", "email", "sent")
    })
    .await;
    let l2 = log_until(&w, &k, "MP100000002", "delivered on WhatsApp", |l| {
        has(l, "delivered", "whatsapp", "sent")
    })
    .await;
    let l3 = log_until(&w, &k, "MP100000003", "the failed attempt", |l| {
        has(l, "attempt_failed", "sms", "sent")
    })
    .await;
    let l4 = log_until(&w, &k, "MP100000004", "the delivery dropped", |l| {
        has(l, "delivered", "email", "dropped: opted out")
    })
    .await;
    for (t, l) in [
        ("MP100000001", &l1),
        ("MP100000002", &l2),
        ("MP100000003", &l3),
        ("MP100000004", &l4),
    ] {
        once_each(t, l);
        assert!(
            has(l, "out_for_delivery", "", "") || l.iter().any(|m| m.0 == "out_for_delivery"),
            "{t}: {l:?}"
        );
    }
    assert!(has(&l1, "arriving_soon", "sms", "sent"), "{l1:?}");
    // After the opt-out, nothing more reached Ivo by e-mail.
    assert!(
        l4.iter()
            .filter(|m| m.2 == "sent")
            .all(|m| m.0 == "out_for_delivery" || m.0 == "stops_away"),
        "{l4:?}"
    );

    // What the providers got: their documented shapes, one message per milestone.
    p.assert_shapes();
    let sms = p.accepted("sms");
    let to_ana: Vec<&str> = sms
        .iter()
        .filter(|r| r.to == "+385911234567")
        .map(|r| r.text.as_str())
        .collect();
    assert!(
        to_ana
            .iter()
            .any(|t| t.starts_with("Acme Parcels: parcel MP100000001 is out for delivery")),
        "{to_ana:?}"
    );
    assert!(to_ana.iter().any(|t| t.contains("delivered")), "{to_ana:?}");
    let failed: Vec<&str> = sms
        .iter()
        .filter(|r| r.to == "+385931234567")
        .map(|r| r.text.as_str())
        .collect();
    assert!(
        failed
            .iter()
            .any(|t| t.contains("(recipient absent). We will try again on the next delivery day.")),
        "{failed:?}"
    );
    let wa = p.accepted("whatsapp");
    assert!(wa.iter().all(|r| r.to == "385921234567"), "{wa:?}");
    assert!(
        wa.iter().any(|r| r.text.contains("out for delivery")),
        "{wa:?}"
    );

    // The tracking link in a message opens the recipient's page.
    let link = link_in(to_ana[0], PUBLIC);
    let page = request(w.web(), "GET", &local(&link), &[], None).await;
    assert_eq!(page.status, 200, "{link}");

    if let Some(s) = &smtp {
        let to_ana: Vec<Value> = s
            .messages()
            .into_iter()
            .filter(|m| m["rcpt_tos"][0] == "ana@example.com")
            .collect();
        let subjects: Vec<&str> = to_ana
            .iter()
            .map(|m| m["headers"]["subject"].as_str().unwrap())
            .collect();
        assert!(
            subjects.contains(&"Your Acme Parcels parcel MP100000001 was delivered"),
            "{subjects:?}"
        );
        let mut sorted = subjects.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(
            sorted.len(),
            subjects.len(),
            "a subject twice: {subjects:?}"
        );
        assert_eq!(to_ana[0]["headers"]["to"], "Ana Horvat <ana@example.com>");
        // The dispatcher's alert: one e-mail for the failed attempt, nothing else.
        eventually("the dispatcher's alert", || {
            s.messages()
                .iter()
                .any(|m| m["rcpt_tos"][0] == "ops@acme.example")
        })
        .await;
        let ops: Vec<Value> = s
            .messages()
            .into_iter()
            .filter(|m| m["rcpt_tos"][0] == "ops@acme.example")
            .collect();
        assert_eq!(ops.len(), 1, "{ops:?}");
        let subject = ops[0]["headers"]["subject"].as_str().unwrap();
        assert!(subject.contains("north R-2026-02-16-017"), "{subject}");
    }
    let stats = &w.t.gw.shared().notify.stats;
    assert!(stats.sent[1].load(std::sync::atomic::Ordering::Relaxed) >= 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_errors_are_retried_then_dead_lettered_and_retried_from_the_api() {
    let p = Providers::start().await;
    {
        let mut s = p.script.lock().unwrap();
        s.sms.push_back(Answer::Status(
            429,
            r#"{"code":20429,"message":"Too Many Requests","status":429}"#,
            Some(1),
        ));
        s.refuse.insert("+15005550001".into());
    }
    let mut w = World::with_web(|c| {
        notify_cfg(c, &p, None);
        // Only the first milestone: a retried "out for delivery" is not overtaken by newer news.
        c.notify.milestones = vec![milepost::notify::plan::Milestone::OutForDelivery];
    })
    .await;
    let k = key(&w);
    set_contact(&w, &k, "MP100000001", json!({"phone": "+385911234567"})).await;
    set_contact(&w, &k, "MP100000002", json!({"phone": "+15005550001"})).await;
    w.drive(0, 1, 0).await;
    // The 429 is retried after its Retry-After, and the message goes once.
    log_until(&w, &k, "MP100000001", "the retried message", |l| {
        has(l, "out_for_delivery", "sms", "sent")
    })
    .await;
    let ana: Vec<_> = p
        .all("sms")
        .into_iter()
        .filter(|r| r.to == "+385911234567")
        .collect();
    assert_eq!(ana.iter().filter(|r| r.status == 201).count(), 1, "{ana:?}");
    assert_eq!(ana[0].status, 429);
    // The refused number is a dead letter at once (a 400 is permanent), shown masked.
    log_until(&w, &k, "MP100000002", "the dead letter", |l| {
        has(l, "out_for_delivery", "sms", "dead")
    })
    .await;
    let dead = call(
        &w,
        "GET",
        "/api/v1/depots/north/notifications/dead",
        &k,
        None,
    )
    .await;
    assert_eq!(dead.status, 200);
    let d = dead.json()[0].clone();
    assert_eq!(d["tracking"], "MP100000002");
    assert_eq!(d["to"], "+150****0001");
    assert!(d["error"].as_str().unwrap().contains("21211"), "{d}");
    assert!(!dead.text().contains("+15005550001"));
    // The dispatcher's page lists it too, masked; another depot's does not.
    let auth = format!("Bearer {}", World::dispatcher_token("north"));
    let st = request(
        w.web(),
        "GET",
        "/dispatch/state",
        &[("Authorization", auth.as_str())],
        None,
    )
    .await;
    assert_eq!(st.status, 200);
    let undelivered = &st.json()["undelivered"][0];
    assert_eq!(undelivered["about"], "MP100000002: out for delivery");
    assert_eq!(undelivered["to"], "+150****0001");
    let auth = format!("Bearer {}", World::dispatcher_token("south"));
    let st = request(
        w.web(),
        "GET",
        "/dispatch/state",
        &[("Authorization", auth.as_str())],
        None,
    )
    .await;
    assert_eq!(st.json()["undelivered"], json!([]));
    // Fixed at the provider, retried from the API: it goes.
    p.script.lock().unwrap().refuse.clear();
    let id = d["id"].as_u64().unwrap();
    let r = call(
        &w,
        "POST",
        &format!("/api/v1/depots/north/notifications/dead/{id}/retry"),
        &k,
        None,
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text());
    log_until(&w, &k, "MP100000002", "the retried dead letter", |l| {
        has(l, "out_for_delivery", "sms", "sent")
    })
    .await;
    let dead = call(
        &w,
        "GET",
        "/api/v1/depots/north/notifications/dead",
        &k,
        None,
    )
    .await;
    assert_eq!(dead.json(), json!([]));
    // Another depot's dispatcher sees nothing of it.
    let r = call(
        &w,
        "POST",
        &format!("/api/v1/depots/south/notifications/dead/{id}/retry"),
        &k,
        None,
    )
    .await;
    assert_eq!(r.status, 403);
    p.assert_shapes();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_provider_holds_up_no_ack_and_bad_contacts_change_nothing() {
    let p = Providers::start().await;
    for _ in 0..4 {
        p.script
            .lock()
            .unwrap()
            .sms
            .push_back(Answer::Hang(Duration::from_secs(30)));
    }
    let mut w = World::with_web(|c| notify_cfg(c, &p, None)).await;
    let k = key(&w);
    set_contact(&w, &k, "MP100000001", json!({"phone": "+385911234567"})).await;
    // Every fix of the whole route is acked while the provider hangs (send waits for acks).
    w.drive(0, 1, 60).await;
    w.drive(1, 2, 60).await;
    w.drive(2, 3, 60).await;
    // The hung request timed out and was retried.
    let stats = w.t.gw.shared().notify.stats.clone();
    eventually("a failed attempt after the timeout", || {
        stats.failed[1].load(std::sync::atomic::Ordering::Relaxed) >= 1
    })
    .await;

    // Bad contacts: a clear error naming the field, nothing stored.
    for (body, field) in [
        (
            json!({"email": "ana@example.com\r\nBcc: x@evil.example"}),
            "email",
        ),
        (json!({"phone": "0911234567"}), "phone"),
        (
            json!({"name": "Ana\nBcc: x", "email": "a@b.example"}),
            "name",
        ),
        (
            json!({"email": "a@b.example", "channels": ["sms"]}),
            "channels",
        ),
        (json!({"email": "a@b.example", "fax": "1"}), ""),
    ] {
        let r = call(
            &w,
            "PUT",
            "/api/v1/parcels/MP100000003/recipient",
            &k,
            Some(&body),
        )
        .await;
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        if !field.is_empty() {
            assert_eq!(r.json()["field"], field, "{}", r.text());
        }
    }
    let r = call(&w, "GET", "/api/v1/parcels/MP100000003/recipient", &k, None).await;
    assert_eq!(r.status, 404);
    let r = call(
        &w,
        "PUT",
        "/api/v1/parcels/NOPE1/recipient",
        &k,
        Some(&json!({"phone": "+385911234567"})),
    )
    .await;
    assert_eq!(r.status, 404);
    // Erasure removes the contact and the message log.
    let r = call(
        &w,
        "DELETE",
        "/api/v1/parcels/MP100000001/recipient",
        &k,
        None,
    )
    .await;
    assert_eq!(r.status, 204);
    assert_eq!(
        call(&w, "GET", "/api/v1/parcels/MP100000001/recipient", &k, None)
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn template_errors_stop_the_start_with_the_template_and_line() {
    let mut cfg = common::config(tempfile::tempdir().unwrap().path());
    cfg.web.public_url = Some(PUBLIC.into());
    cfg.notify.enabled = true;
    cfg.notify.sms = Some(SmsConfig::Log);
    cfg.notify.templates.entry("hr".into()).or_default().insert(
        milepost::notify::plan::Milestone::ArrivingSoon,
        milepost::notify::config::TemplateSet {
            sms: Some("Dostavljač\n{{ driver_firstname }} stiže".into()),
            ..Default::default()
        },
    );
    let e = cfg.validate().unwrap_err().to_string();
    assert!(e.contains("hr.arriving_soon.sms line 2"), "{e}");
    assert!(e.contains("undefined"), "{e}");
    // Without a base URL for links, notifications refuse to start.
    let mut cfg = common::config(tempfile::tempdir().unwrap().path());
    cfg.notify.enabled = true;
    let e = cfg.validate().unwrap_err().to_string();
    assert!(e.contains("public_url"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_brings_its_recipients_and_a_bad_one_refuses_the_route() {
    let p = Providers::start().await;
    let w = World::with_web(|c| notify_cfg(c, &p, None)).await;
    let k = key(&w);
    let mut route = common::example_route();
    route.id = "R-CONTACTS".into();
    route.driver = "D7".into();
    for (i, s) in route.stops.iter_mut().enumerate() {
        for (j, parcel) in s.parcels.iter_mut().enumerate() {
            parcel.tracking = format!("RC{i}{j}").as_str().into();
        }
    }
    let mut body = serde_json::to_value(&route).unwrap();
    // A contact for a parcel not on the route: 400 naming it, no route assigned.
    body["recipients"] = json!({"NOT-ON-ROUTE": {"email": "a@b.example"}});
    let r = call(&w, "POST", "/api/v1/routes", &k, Some(&body)).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["field"], "recipients.NOT-ON-ROUTE");
    // A malformed one: the field path inside it.
    body["recipients"] = json!({"RC00": {"email": "a@b.example", "phone": "12"}});
    let r = call(&w, "POST", "/api/v1/routes", &k, Some(&body)).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["field"], "recipients.RC00.phone");
    body["recipients"] = json!({"RC00": {"email": 7}});
    let r = call(&w, "POST", "/api/v1/routes", &k, Some(&body)).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["field"], "recipients.RC00.email");
    assert_eq!(
        call(&w, "GET", "/api/v1/routes/R-CONTACTS", &k, None)
            .await
            .status,
        404
    );
    // A good one: the route and its contacts.
    body["recipients"] =
        json!({"RC00": {"email": "ana@example.com"}, "RC10": {"phone": "+385911234567"}});
    let r = call(&w, "POST", "/api/v1/routes", &k, Some(&body)).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let c = call(&w, "GET", "/api/v1/parcels/RC10/recipient", &k, None).await;
    assert_eq!(c.json(), json!({"phone": "+385911234567"}));
    // The contacts are in no log record.
    let log = std::fs::read_dir(w.t.dir.path().join("log")).map(|d| {
        d.filter_map(|e| e.ok())
            .map(|e| std::fs::read(e.path()).unwrap_or_default())
            .any(|b| b.windows(15).any(|x| x == b"ana@example.com"))
    });
    assert!(!log.unwrap_or(false), "a contact reached the log");
}

/// The carrier `kx`, Kolkata Express (zone Asia/Kolkata), owning depot north.
fn kolkata_express(c: &mut Config) {
    c.carriers.0.insert(
        "kx".into(),
        milepost::tenancy::CarrierConfig {
            name: "Kolkata Express".into(),
            time_zone: "Asia/Kolkata".into(),
            depots: vec!["north".into()],
            ..Default::default()
        },
    );
}

/// A depot that a carrier lists (`[carriers.<id>]`) is spoken for in the carrier's name, with
/// times in the carrier's zone and the carrier's own templates
/// (`notify.carrier_templates.<id>`); `[notify]`'s name and zone stay for the other depots.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_carriers_depot_is_told_in_its_name_and_zone() {
    let p = Providers::start().await;
    let mut w = World::with_web(|c| {
        notify_cfg(c, &p, None);
        kolkata_express(c);
        let own = milepost::notify::config::TemplateSet {
            sms: Some(
                "{{ carrier }} (its own words): {{ tracking }} delivered at {{ delivered_at }}"
                    .into(),
            ),
            ..Default::default()
        };
        c.notify
            .carrier_templates
            .entry("kx".into())
            .or_default()
            .entry("en".into())
            .or_default()
            .insert(milepost::notify::plan::Milestone::Delivered, own);
    })
    .await;
    let k = key(&w);
    set_contact(&w, &k, "MP100000001", json!({"phone": "+385911234567"})).await;
    w.drive(0, 1, 30).await;
    w.deliver("S1").await;
    let delivered = |p: &Providers| {
        p.accepted("sms")
            .into_iter()
            .find(|r| r.text.contains("delivered at"))
    };
    eventually("the delivered SMS", || delivered(&p).is_some()).await;
    let sms = delivered(&p).unwrap();
    assert!(
        sms.text.starts_with("Kolkata Express (its own words): "),
        "{}",
        sms.text
    );
    let detail = call(&w, "GET", "/api/v1/parcels/MP100000001", &k, None)
        .await
        .json();
    let at = detail["milestones"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["kind"] == "Delivered")
        .and_then(|m| m["at_ms"].as_i64())
        .expect("the delivery's time");
    let ist = milepost_core::present::clock_text_in(at, common::now_ms(), chrono_tz::Asia::Kolkata);
    assert!(
        sms.text.contains(&format!("delivered at {ist}")),
        "{} (expected {ist}, IST)",
        sms.text
    );
    p.assert_shapes();
}

/// An opt-out from a carrier's message stops that carrier's messages to the address, not
/// another carrier's; the page speaks in the carrier's name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opt_out_stops_the_carriers_messages_only() {
    use milepost::notify::contact::{address_key, carrier_key, Channel};
    let p = Providers::start().await;
    let mut w = World::with_web(|c| {
        notify_cfg(c, &p, None);
        kolkata_express(c);
    })
    .await;
    let k = key(&w);
    let phone = "+385911234567";
    set_contact(&w, &k, "MP100000001", json!({"phone": phone})).await;
    let shared = w.t.gw.shared();
    let t = milepost::notify::optout::token(shared.notify.secret(), Channel::Sms, "MP100000001");
    let page = request(w.web(), "GET", &format!("/n/optout/{t}"), &[], None).await;
    assert!(page.text().contains("Kolkata Express"), "{}", page.text());
    let done = request(w.web(), "POST", &format!("/n/optout/{t}"), &[], None).await;
    assert_eq!(done.status, 200, "{}", done.text());
    assert!(
        done.text()
            .contains("no more sms messages from Kolkata Express"),
        "{}",
        done.text()
    );
    let plain = address_key(shared.notify.secret(), Channel::Sms, phone);
    let store = &shared.notify.store;
    assert!(store.opted_out(&carrier_key(&plain, "kx")).unwrap());
    assert!(
        !store.opted_out(&plain).unwrap(),
        "every carrier's messages stopped"
    );
    // Kolkata Express's next message to that number is dropped.
    w.drive(0, 1, 30).await;
    w.deliver("S1").await;
    log_until(&w, &k, "MP100000001", "the delivery dropped", |l| {
        has(l, "delivered", "sms", "dropped: opted out")
    })
    .await;
    p.assert_shapes();
}

#[tokio::test]
async fn a_drivers_message_goes_out_unless_the_recipient_answered_it_on_the_page() {
    use milepost::notify::config::Milestone;
    use milepost_proto::{CommandKind, ServerMsg};
    let p = Providers::start().await;
    let mut w = World::with_web(|c| {
        notify_cfg(c, &p, None);
        // Opt-in; and a short wait (60 s by default) for the recipient to answer on the page.
        c.notify.milestones.push(Milestone::DriverMessage);
        c.notify.driver_message_delay_s = 5;
    })
    .await;
    let k = key(&w);
    set_contact(&w, &k, "MP100000003", json!({"phone": "+385931234567"})).await;
    set_contact(&w, &k, "MP100000004", json!({"phone": "+385941234567"})).await;
    for (id, tracking, text) in [
        (1, "MP100000003", "At the gate: which floor?"),
        (2, "MP100000004", "Parking behind the van"),
    ] {
        let c = CommandKind::SendMessage {
            tracking: tracking.into(),
            text: text.into(),
        };
        let done = w.driver.command(id, c).await.unwrap();
        assert_eq!(done, ServerMsg::Done { id }, "{tracking}");
    }
    // The recipient of MP100000004 has the page open and answers there.
    let r = web_support::api(
        &w,
        "POST",
        "/t/MP100000004/messages",
        &World::recipient_token("MP100000004"),
        Some(&json!({"text": "Coming down"})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());

    // The other one hears of it by SMS, with the text and the way to answer.
    log_until(&w, &k, "MP100000003", "the driver's message sent", |l| {
        has(l, "driver_message", "sms", "sent")
    })
    .await;
    let sms = p.accepted("sms");
    let sms = sms.iter().find(|r| r.to == "+385931234567").unwrap();
    assert!(
        sms.text.contains("At the gate: which floor?"),
        "{}",
        sms.text
    );
    assert!(
        sms.text.contains("wrote about parcel MP100000003"),
        "{}",
        sms.text
    );
    assert!(
        sms.text.contains(&format!("{PUBLIC}/t/MP100000003?token=")),
        "{}",
        sms.text
    );
    // The one who answered gets nothing, and the log says why.
    log_until(&w, &k, "MP100000004", "the answered message dropped", |l| {
        has(
            l,
            "driver_message",
            "sms",
            "dropped: answered on the tracking page",
        )
    })
    .await;
    assert!(
        !p.all("sms")
            .iter()
            .any(|r| r.text.contains("Parking behind")),
        "a message answered on the page went by SMS too"
    );
    p.assert_shapes();
}
