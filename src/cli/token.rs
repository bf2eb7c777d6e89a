//! `milepost token` and `milepost revoke`: minting a token with the data directory's secret,
//! and revoking one (or every token of a subject) in the data directory's deny list.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use milepost::auth::{fingerprint, subject_key, Claims, Role, TokenKey};
use milepost::config::Config;

#[derive(Args)]
pub(crate) struct TokenArgs {
    /// What the token may do.
    #[arg(long, value_enum)]
    role: Role,
    /// Driver id, depot or tracking number.
    #[arg(long)]
    subject: String,
    /// Depot the holder belongs to (defaults to the subject for a dispatcher, else "default").
    #[arg(long)]
    depot: Option<String>,
    /// The depot's carrier (`[carriers.<id>]`), written into the token: a gateway refuses it
    /// once the depot belongs to another carrier. Without it the token names none.
    #[arg(long)]
    carrier: Option<String>,
    /// Lifetime, e.g. 12h, 30m, 7d.
    #[arg(long, default_value = "12h")]
    ttl: humantime::Duration,
    /// Data directory holding the secret (default ./milepost-data).
    #[arg(long, env = "MILEPOST_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Secret, instead of the data directory's.
    #[arg(long, env = "MILEPOST_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// A file holding the secret (a carrier's own `token_secret_file`), instead of the data
    /// directory's (and before `--secret`).
    #[arg(long)]
    secret_file: Option<PathBuf>,
}

#[derive(Args)]
pub(crate) struct RevokeArgs {
    /// Revoke this one token.
    #[arg(long, conflicts_with = "subject")]
    token: Option<String>,
    /// Revoke every token of this subject (with --role).
    #[arg(long, requires = "role")]
    subject: Option<String>,
    /// The subject's role.
    #[arg(long, value_enum)]
    role: Option<Role>,
    /// Data directory of the gateway (default ./milepost-data).
    #[arg(long, env = "MILEPOST_DATA_DIR")]
    data_dir: Option<PathBuf>,
}

/// Prints a token for `a`, signed with the given secret or the data directory's.
pub(crate) fn token(a: TokenArgs) -> Result<()> {
    if a.secret_file.is_some() && a.depot.is_none() && a.role != Role::Dispatcher {
        anyhow::bail!(
            "--secret-file signs the tokens of its carrier's depots only: name the depot (--depot)"
        );
    }
    let key = match (a.secret, a.secret_file) {
        (_, Some(f)) => {
            let bytes = std::fs::read(&f).with_context(|| format!("reading {}", f.display()))?;
            if bytes.len() < 32 {
                anyhow::bail!("{} holds fewer than 32 bytes", f.display());
            }
            TokenKey::new(&bytes)
        }
        (Some(s), None) => TokenKey::new(s.as_bytes()),
        (None, None) => {
            let dir = a.data_dir.unwrap_or_else(|| Config::default().data_dir);
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            TokenKey::load_or_create(&dir.join("secret.key")).context("token secret")?
        }
    };
    let now = chrono::Utc::now().timestamp();
    let ttl = Duration::from(a.ttl).as_secs() as i64;
    if ttl < 1 {
        anyhow::bail!("--ttl must be at least 1s: a token born expired opens nothing");
    }
    let depot = a.depot.unwrap_or_else(|| match a.role {
        Role::Dispatcher => a.subject.clone(),
        _ => "default".into(),
    });
    let claims = Claims {
        role: a.role,
        sub: a.subject,
        depot,
        exp: now + ttl,
        iat: now,
        carrier: a.carrier,
    };
    println!("{}", key.mint(&claims));
    Ok(())
}

/// Appends the token's fingerprint (or `role:subject`) to the data directory's deny list.
pub(crate) fn revoke(a: RevokeArgs) -> Result<()> {
    use std::io::Write;
    let entry = match (&a.token, &a.subject, a.role) {
        (Some(t), _, _) => fingerprint(t),
        (None, Some(s), Some(r)) => subject_key(r, s),
        _ => bail!("give --token, or --subject with --role"),
    };
    let dir = a.data_dir.unwrap_or_else(|| Config::default().data_dir);
    let path = dir.join("revoked.txt");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    writeln!(f, "{entry}  # revoked {}", chrono::Utc::now().to_rfc3339())?;
    println!("revoked {entry} (in {})", path.display());
    Ok(())
}
