//! `milepost outcome` and `milepost route cancel`: what a dispatcher does from a terminal,
//! through the back-office API (`/api/v1`, the same paths and log records as any back-office
//! system), with an API key.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use serde_json::{json, Value};

/// Where the API is and the key to use.
#[derive(Args, Clone)]
pub(crate) struct ApiArgs {
    /// The gateway's web listener.
    #[arg(long, env = "MILEPOST_API", default_value = "http://127.0.0.1:8080")]
    api: String,
    /// An API key with a backoffice scope (`milepost key create`).
    #[arg(long, env = "MILEPOST_API_KEY", hide_env_values = true)]
    key: String,
}

/// What happened at the door.
#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Kind {
    /// Handed over.
    Delivered,
    /// The attempt failed.
    Failed,
    /// Going back to the sender.
    Returned,
}

/// Failure reason codes.
#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Reason {
    /// Nobody there.
    RecipientAbsent,
    /// Address not found.
    AddressNotFound,
    /// No access.
    AccessProblem,
    /// Refused.
    Refused,
    /// Damaged.
    Damaged,
    /// Anything else (say what with --note).
    Other,
}

#[derive(Args)]
pub(crate) struct OutcomeArgs {
    /// Delivered, failed or returned.
    #[arg(value_enum)]
    kind: Kind,
    /// The parcel's tracking number.
    tracking: String,
    /// Delivery photo: uploaded, and its SHA-256 recorded.
    #[arg(long)]
    photo: Option<PathBuf>,
    /// Signature image: uploaded, and its SHA-256 recorded.
    #[arg(long)]
    signature: Option<PathBuf>,
    /// The one-time code the recipient gave.
    #[arg(long)]
    otp: Option<String>,
    /// Why it failed.
    #[arg(long, value_enum)]
    reason: Option<Reason>,
    /// A note with a failed attempt or a return.
    #[arg(long)]
    note: Option<String>,
    #[command(flatten)]
    api: ApiArgs,
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .http_status_as_error(false)
        .build()
        .into()
}

/// Sends one request; the answer's JSON, or the API's error as a message.
fn send(a: &ApiArgs, method: &str, path: &str, content_type: &str, body: &[u8]) -> Result<Value> {
    let url = format!("{}{path}", a.api.trim_end_matches('/'));
    let auth = format!("Bearer {}", a.key);
    let agent = agent();
    let req = match method {
        "PUT" => agent.put(&url),
        _ => agent.post(&url),
    };
    let mut resp = req
        .header("authorization", &auth)
        .header("content-type", content_type)
        .send(body)
        .with_context(|| format!("{method} {url}"))?;
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    if !(200..300).contains(&status) {
        let msg = v["message"].as_str().unwrap_or("");
        let field = v["field"]
            .as_str()
            .map(|f| format!(" ({f})"))
            .unwrap_or_default();
        bail!(
            "HTTP {status} {}: {msg}{field}",
            v["code"].as_str().unwrap_or("")
        );
    }
    Ok(v)
}

/// Uploads a proof file; its SHA-256.
fn upload(a: &ApiArgs, file: &PathBuf) -> Result<String> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let sha = milepost::proofs::sha256_hex(&bytes);
    send(
        a,
        "PUT",
        &format!("/api/v1/proofs/{sha}"),
        "application/octet-stream",
        &bytes,
    )?;
    Ok(sha)
}

/// `milepost outcome`.
pub(crate) fn outcome(o: OutcomeArgs) -> Result<()> {
    let body = match o.kind {
        Kind::Delivered => {
            if o.reason.is_some() || o.note.is_some() {
                bail!("--reason and --note go with a failed outcome");
            }
            let photo = o.photo.as_ref().map(|f| upload(&o.api, f)).transpose()?;
            let signature = o
                .signature
                .as_ref()
                .map(|f| upload(&o.api, f))
                .transpose()?;
            json!({"outcome": "delivered", "photo_sha256": photo, "signature_sha256": signature, "otp": o.otp})
        }
        Kind::Returned => {
            if o.reason.is_some() {
                bail!("--reason goes with a failed outcome");
            }
            json!({"outcome": "returned", "note": o.note})
        }
        Kind::Failed => {
            let Some(reason) = o.reason else {
                bail!("a failed outcome needs --reason");
            };
            let reason = reason
                .to_possible_value()
                .map(|v| v.get_name().replace('-', "_"))
                .unwrap_or_default();
            json!({"outcome": "failed", "reason": reason, "note": o.note})
        }
    };
    let path = format!("/api/v1/parcels/{}/outcome", o.tracking);
    let v = send(
        &o.api,
        "POST",
        &path,
        "application/json",
        body.to_string().as_bytes(),
    )?;
    println!(
        "{}: {}",
        o.tracking,
        v["status_line"].as_str().unwrap_or("recorded")
    );
    Ok(())
}

/// `milepost route cancel`.
pub(crate) fn cancel(api: &ApiArgs, route: &str) -> Result<()> {
    let v = send(
        api,
        "POST",
        &format!("/api/v1/routes/{route}/cancel"),
        "application/json",
        b"",
    )?;
    println!("{route}: {}", v["state"].as_str().unwrap_or("cancelled"));
    Ok(())
}
