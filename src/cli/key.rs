//! `milepost key create|list|revoke`: API keys for back-office systems, in the data
//! directory's key file ([`milepost::apikeys`]). A running gateway picks changes up within a
//! second.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use milepost::apikeys::{KeyFile, Scope, FILE};
use milepost::config::Config;

#[derive(Subcommand)]
pub(crate) enum KeyCmd {
    /// Create a key and print it (once: only its hash is kept).
    Create(CreateArgs),
    /// List the keys: id, name, scopes, created, revoked.
    List(DirArgs),
    /// Revoke a key (refused within a second, on every gateway of a cluster).
    Revoke(RevokeKeyArgs),
}

#[derive(Args)]
pub(crate) struct DirArgs {
    /// Data directory of the gateway (default ./milepost-data).
    #[arg(long, env = "MILEPOST_DATA_DIR")]
    data_dir: Option<PathBuf>,
}

#[derive(Args)]
pub(crate) struct CreateArgs {
    /// What the key may do: `backoffice:DEPOT` or `dispatcher:DEPOT` (`*` for every depot),
    /// comma-separated or repeated.
    #[arg(long, value_delimiter = ',', required = true)]
    scope: Vec<String>,
    /// A name for people, e.g. the system that holds it.
    #[arg(long)]
    name: String,
    /// The carrier the key belongs to (`[carriers.<id>]`): its depots, `*` included, are that
    /// carrier's only. `*` makes a platform key (every carrier; a shipper key is one).
    #[arg(long, default_value = milepost::tenancy::DEFAULT_CARRIER)]
    carrier: String,
    /// The gateway's configuration file: when given, the carrier must be one of it and the
    /// key's depots that carrier's.
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(flatten)]
    dir: DirArgs,
}

#[derive(Args)]
pub(crate) struct RevokeKeyArgs {
    /// The key's id (8 hex digits, as `key list` shows).
    id: String,
    #[command(flatten)]
    dir: DirArgs,
}

/// The carrier is the configuration's, and every depot a scope names is that carrier's.
fn check_against(
    carriers: &milepost::tenancy::Carriers,
    carrier: &str,
    scopes: &[Scope],
) -> Result<()> {
    if carrier == "*" {
        for s in scopes.iter().filter(|s| s.depot != "*") {
            if s.role == milepost::apikeys::KeyRole::Shipper && !carriers.knows(&s.depot) {
                anyhow::bail!("scope {s}: no carrier {:?} in the configuration", s.depot);
            }
        }
        return Ok(());
    }
    if !carriers.knows(carrier) {
        anyhow::bail!("no carrier {carrier:?} in the configuration ([carriers.{carrier}])");
    }
    for s in scopes.iter().filter(|s| s.depot != "*") {
        let owner = carriers.carrier_of(&s.depot);
        if owner != carrier {
            anyhow::bail!(
                "scope {s}: depot {:?} belongs to carrier {owner:?}, not {carrier:?}",
                s.depot
            );
        }
    }
    Ok(())
}

fn data_dir(a: DirArgs) -> PathBuf {
    a.data_dir.unwrap_or_else(|| Config::default().data_dir)
}

/// Runs one `key` subcommand.
pub(crate) fn key(cmd: KeyCmd) -> Result<()> {
    let now = chrono::Utc::now().timestamp_millis();
    match cmd {
        KeyCmd::Create(a) => {
            let scopes = a
                .scope
                .iter()
                .map(|s| Scope::parse(s.trim()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(anyhow::Error::msg)?;
            if let Some(path) = &a.config {
                let cfg = Config::from_file(path)?;
                check_against(&cfg.carriers, &a.carrier, &scopes)?;
            }
            let dir = data_dir(a.dir);
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let path = dir.join(FILE);
            let mut file = KeyFile::read(&path)?;
            let (stored, key) = file.create(&a.name, &a.carrier, scopes, now)?;
            file.write(&path)?;
            eprintln!(
                "created key {} ({}, {}) in {}; it is shown once:",
                stored.id,
                stored.name,
                match a.carrier.as_str() {
                    "*" => "platform: every carrier".to_owned(),
                    c => format!("carrier {c}"),
                },
                path.display()
            );
            println!("{key}");
            Ok(())
        }
        KeyCmd::List(a) => {
            let file = KeyFile::read(&data_dir(a).join(FILE))?;
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "{:<8}  {:<20}  {:<12}  {:<32}  {:<20}  revoked",
                "id", "name", "carrier", "scopes", "created"
            )?;
            for k in &file.keys {
                let scopes: Vec<String> = k.scopes.iter().map(|s| s.to_string()).collect();
                let when = |ms: i64| {
                    chrono::DateTime::from_timestamp_millis(ms)
                        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                        .unwrap_or_default()
                };
                writeln!(
                    out,
                    "{:<8}  {:<20}  {:<12}  {:<32}  {:<20}  {}",
                    k.id,
                    k.name,
                    k.tenant().to_string(),
                    scopes.join(","),
                    when(k.created_ms),
                    k.revoked_ms.map(when).unwrap_or_else(|| "-".into())
                )?;
            }
            Ok(())
        }
        KeyCmd::Revoke(a) => {
            let dir = data_dir(a.dir);
            let path = dir.join(FILE);
            let mut file = KeyFile::read(&path)?;
            let entry = file.revoke(&a.id, now)?.deny_entry();
            file.write(&path)?;
            // The deny list is what the other gateways of a cluster share.
            let deny = dir.join("revoked.txt");
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&deny)
                .with_context(|| format!("opening {}", deny.display()))?;
            writeln!(f, "{entry}  # revoked {}", chrono::Utc::now().to_rfc3339())?;
            println!("revoked {entry}");
            Ok(())
        }
    }
}
