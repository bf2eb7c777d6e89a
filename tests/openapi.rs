//! The API's OpenAPI document checked by standard tools against a real gateway: a validator
//! (openapi-spec-validator) on the document it serves, then a short schemathesis run against
//! it, which sends generated requests to every operation and fails on any 5xx and any answer
//! that breaks the document's own schema.
//!
//! The tools come from the virtualenv named by `MILEPOST_OPENAPI_VENV` (made by
//! `tests/openapi/setup-venv.sh`; CI sets it). Without it the test prints "skipped: ..." and
//! passes, unless `MILEPOST_REQUIRE_OPENAPI=1`.

mod common;
mod web_support;

use std::path::PathBuf;
use std::process::Command;

use milepost::apikeys::{KeyFile, Scope, FILE};
use web_support::{request, World};

fn venv() -> Option<PathBuf> {
    let v = std::env::var_os("MILEPOST_OPENAPI_VENV").filter(|v| !v.is_empty());
    if v.is_none() && std::env::var("MILEPOST_REQUIRE_OPENAPI").as_deref() == Ok("1") {
        panic!("MILEPOST_REQUIRE_OPENAPI=1 but MILEPOST_OPENAPI_VENV is not set");
    }
    v.map(PathBuf::from)
}

/// Runs a tool off the async runtime; its output, and a failure with the output if it failed.
async fn run(mut cmd: Command) -> String {
    let shown = format!("{cmd:?}");
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{shown}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{shown} failed:\n{text}");
    text
}

#[tokio::test]
async fn the_document_validates_and_the_api_keeps_to_it_under_generated_requests() {
    let Some(venv) = venv() else {
        println!("skipped: MILEPOST_OPENAPI_VENV not set (tests/openapi/setup-venv.sh)");
        return;
    };
    let w = World::with_web(|c| {
        // Generated requests come fast: the rate limit is not what is under test here.
        c.web.api.rate_per_s = 100_000;
        c.web.api.burst = 100_000;
    })
    .await;
    let path = w.t.dir.path().join(FILE);
    let mut keys = KeyFile::read(&path).unwrap();
    let scopes = vec![Scope::parse("backoffice:north").unwrap()];
    let (_, key) = keys
        .create("schemathesis", "*", scopes, common::now_ms())
        .unwrap();
    keys.write(&path).unwrap();

    let doc = request(w.web(), "GET", "/api/v1/openapi.json", &[], None).await;
    assert_eq!(doc.status, 200);
    let file = w.t.dir.path().join("openapi.json");
    std::fs::write(&file, &doc.body).unwrap();

    let mut validate = Command::new(venv.join("bin/openapi-spec-validator"));
    validate.arg(&file);
    let out = run(validate).await;
    println!("{out}");

    let mut st = Command::new(venv.join("bin/schemathesis"));
    st.arg("run")
        .arg(&file)
        .args(["--url", &format!("http://{}", w.web())])
        .args(["--header", &format!("Authorization: Bearer {key}")])
        .args(["--checks", "not_a_server_error,response_schema_conformance"])
        .args(["--max-examples", "15", "--seed", "7"])
        .env("SCHEMATHESIS_HOOKS", "")
        .env("NO_COLOR", "1");
    let out = run(st).await;
    println!("{out}");
}
