//! Embedding (`web.embed_origins`): the tracking page may be framed by the allowed origins
//! only (CSP `frame-ancestors`), its cookie then works in a frame (`SameSite=None; Secure`),
//! and the status widget answers those origins with CORS (and its preflight), others without;
//! a bad origin in the config stops the web listener's start with the key named.

mod common;
mod web_support;

use serde_json::Value;
use web_support::World;

const T: &str = "MP100000004";
const SHOP: &str = "https://shop.example";

fn embedding(c: &mut milepost::config::Config) {
    c.web.embed_origins = vec![SHOP.into(), "http://localhost:3000".into()];
    c.web.secure_cookies = true;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_origins_frame_the_page_and_read_the_widget() {
    let w = World::with_web(embedding).await;
    let token = World::recipient_token(T);
    let page = web_support::get(w.web(), &format!("/t/{T}?token={token}"), None).await;
    assert_eq!(page.status, 200);
    let csp = page.header("content-security-policy").unwrap();
    assert!(
        csp.ends_with("frame-ancestors https://shop.example http://localhost:3000"),
        "{csp}"
    );
    let cookie = page.header("set-cookie").unwrap();
    assert!(
        cookie.contains("SameSite=None") && cookie.contains("Secure"),
        "{cookie}"
    );
    // The dispatcher's page is never framed.
    let disp = World::dispatcher_token("north");
    let d = web_support::get(w.web(), &format!("/dispatch?token={disp}"), None).await;
    assert!(d
        .header("content-security-policy")
        .unwrap()
        .ends_with("frame-ancestors 'none'"));

    let widget = |origin: &'static str, token: Option<String>| {
        let w = &w;
        async move {
            let path = match &token {
                Some(t) => format!("/t/{T}/widget?token={t}"),
                None => format!("/t/{T}/widget"),
            };
            web_support::request(w.web(), "GET", &path, &[("Origin", origin)], None).await
        }
    };
    let r = widget(SHOP, Some(token.clone())).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("access-control-allow-origin"), Some(SHOP));
    assert_eq!(r.header("vary"), Some("Origin"));
    let v: Value = r.json();
    assert_eq!(v["tracking"], T);
    assert!(v["status_line"].is_string(), "{v}");
    // Another origin gets the answer without CORS (its page cannot read it).
    let r = widget("https://evil.example", Some(token.clone())).await;
    assert_eq!(r.header("access-control-allow-origin"), None);
    // No token, or another parcel's: refused, with CORS so the widget can say why.
    let r = widget(SHOP, None).await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.header("access-control-allow-origin"), Some(SHOP));
    let r = widget(SHOP, Some(World::recipient_token("MP100000001"))).await;
    assert_eq!(r.status, 403, "{}", r.text());

    // The preflight of a widget that sends the token as a bearer.
    let pre = |origin: &'static str| {
        let w = &w;
        async move {
            let h = [
                ("Origin", origin),
                ("Access-Control-Request-Method", "GET"),
                ("Access-Control-Request-Headers", "authorization"),
            ];
            web_support::request(w.web(), "OPTIONS", &format!("/t/{T}/widget"), &h, None).await
        }
    };
    let r = pre(SHOP).await;
    assert_eq!(r.status, 204);
    assert_eq!(r.header("access-control-allow-origin"), Some(SHOP));
    assert_eq!(
        r.header("access-control-allow-headers"),
        Some("Authorization")
    );
    let r = pre("https://evil.example").await;
    assert_eq!(r.header("access-control-allow-origin"), None);
    assert_eq!(r.header("access-control-allow-headers"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_origins_nothing_frames_the_page() {
    let w = World::with_web(|_| {}).await;
    let token = World::recipient_token(T);
    let page = web_support::get(w.web(), &format!("/t/{T}?token={token}"), None).await;
    assert!(page
        .header("content-security-policy")
        .unwrap()
        .ends_with("frame-ancestors 'none'"));
    assert!(page.header("set-cookie").unwrap().contains("SameSite=Lax"));
    let r = web_support::request(
        w.web(),
        "GET",
        &format!("/t/{T}/widget?token={token}"),
        &[("Origin", SHOP)],
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), None);
}

#[test]
fn bad_origins_stop_the_start_with_the_key_named() {
    for (origins, secure, want) in [
        (
            vec!["https://shop.example/track"],
            true,
            "web.embed_origins",
        ),
        (vec!["shop.example"], true, "web.embed_origins"),
        (
            vec!["https://shop.example:99999x"],
            true,
            "web.embed_origins",
        ),
        (vec!["https://shop.example"], false, "secure_cookies"),
    ] {
        let mut cfg = common::config(tempfile::tempdir().unwrap().path());
        cfg.web.embed_origins = origins.iter().map(|s| s.to_string()).collect();
        cfg.web.secure_cookies = secure;
        // What the web listener checks when it starts.
        let e = cfg.web.validate().unwrap_err();
        assert!(e.contains(want), "{origins:?}: {e}");
    }
}
