//! What the client commands share: [`ConnectArgs`] (gateway address, certificate name, CA,
//! token), the client endpoint they make, and the claims read from a token without checking
//! its signature (the gateway checks it).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use milepost::auth::{Claims, Role};
use milepost::client::ClientEndpoint;
use milepost::config::Config;

#[derive(Args)]
pub(crate) struct ConnectArgs {
    /// Gateway address.
    #[arg(long, default_value = "127.0.0.1:4433")]
    pub(crate) server: SocketAddr,
    /// Name on the gateway's certificate.
    #[arg(long, default_value = "localhost")]
    pub(crate) server_name: String,
    /// CA certificate to trust (default: the dev CA in ./milepost-data/certs/ca.pem).
    #[arg(long)]
    pub(crate) ca: Option<PathBuf>,
    /// Token (from `milepost token`).
    #[arg(long, env = "MILEPOST_TOKEN")]
    pub(crate) token: String,
}

/// A client endpoint on any local port, trusting `--ca` (default: the dev CA of
/// `./milepost-data`).
pub(crate) fn endpoint(c: &ConnectArgs) -> Result<ClientEndpoint> {
    let ca =
        c.ca.clone()
            .unwrap_or_else(|| Config::default().data_dir.join("certs/ca.pem"));
    if !ca.exists() {
        bail!(
            "CA certificate {} not found: pass --ca (the gateway prints where its dev CA is)",
            ca.display()
        );
    }
    let bind: SocketAddr = if c.server.is_ipv6() {
        "[::]:0"
    } else {
        "0.0.0.0:0"
    }
    .parse()
    .context("bind address")?;
    Ok(ClientEndpoint::new(bind, &ca)?)
}

/// The token's role, read without checking the signature (the server checks it).
pub(crate) fn token_role(token: &str) -> Result<Role> {
    Ok(token_claims(token)?.role)
}

/// The token's subject, read without checking the signature (the server checks it).
pub(crate) fn token_subject(token: &str) -> Result<String> {
    Ok(token_claims(token)?.sub)
}

fn token_claims(token: &str) -> Result<Claims> {
    use base64::Engine;
    let payload = token
        .strip_prefix("mp1.")
        .and_then(|r| r.split('.').next())
        .context("not a milepost token")?;
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .context("token payload")?;
    let claims: Claims = serde_json::from_slice(&json).context("token claims")?;
    Ok(claims)
}
