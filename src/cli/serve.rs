//! `milepost serve`: the gateway, from flags, environment and a TOML file, until SIGINT or
//! SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use milepost::config::Config;
use milepost::server::Gateway;

#[derive(Args)]
pub(crate) struct ServeArgs {
    /// TOML configuration file.
    #[arg(long, env = "MILEPOST_CONFIG")]
    config: Option<PathBuf>,
    /// UDP address to listen on (default 127.0.0.1:4433).
    #[arg(long, env = "MILEPOST_LISTEN")]
    listen: Option<SocketAddr>,
    /// Data directory (default ./milepost-data).
    #[arg(long, env = "MILEPOST_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// TCP address of the admin HTTP listener: /metrics, /healthz, /readyz
    /// (default 127.0.0.1:9464).
    #[arg(long, env = "MILEPOST_ADMIN_LISTEN")]
    admin_listen: Option<SocketAddr>,
    /// TCP address of the web listener: tracking pages and the dispatcher map
    /// (default: off).
    #[arg(long, env = "MILEPOST_WEB_LISTEN")]
    web_listen: Option<SocketAddr>,
    /// Token signing secret (default: generated in the data directory).
    #[arg(long, env = "MILEPOST_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// Run as one gateway of a cluster over NATS JetStream at this URL, e.g.
    /// nats://127.0.0.1:4222 (default: a single box with its own log).
    #[arg(long, env = "MILEPOST_CLUSTER")]
    cluster: Option<String>,
    /// This gateway's name in the cluster (default: host name and port).
    #[arg(long, env = "MILEPOST_NODE")]
    node: Option<String>,
}

/// Runs the gateway with `a` laid over the configuration file, until SIGINT or SIGTERM.
pub(crate) async fn serve(a: ServeArgs) -> Result<()> {
    let mut cfg = match &a.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    if let Some(l) = a.listen {
        cfg.listen = l;
    }
    if let Some(d) = a.data_dir {
        cfg.data_dir = d;
    }
    if let Some(s) = a.secret {
        cfg.secret = Some(s);
    }
    if let Some(l) = a.admin_listen {
        cfg.admin_listen = l;
    }
    if let Some(l) = a.web_listen {
        cfg.web.listen = Some(l);
    }
    if let Some(url) = a.cluster {
        cfg.cluster.url = Some(url);
    }
    if let Some(node) = a.node {
        cfg.cluster.node = Some(node);
    }
    // Listen for signals before anything else, so a SIGTERM during recovery is not lost.
    let stop = shutdown_signal()?;
    let gw = Gateway::start(cfg.clone())
        .await
        .context("starting the gateway")?;
    tracing::info!(addr = %gw.local_addr, data_dir = %cfg.data_dir.display(), "milepost gateway listening (QUIC, ALPN milepost/1)");
    if let Some(admin) = gw.admin_addr {
        tracing::info!(admin = %admin, "admin listener: /metrics /healthz /readyz");
    }
    if let Some(web) = gw.web_addr {
        tracing::info!(web = %web, "web listener: /t/{{tracking}}?token=... /dispatch?token=...");
    }
    if let Some(ca) = &gw.dev_ca {
        tracing::info!(ca = %ca.display(), "development CA: clients trust this file (see certs/README.md)");
    }
    gw.run_until(stop).await;
    Ok(())
}

/// A future that resolves on SIGINT or SIGTERM; the handlers are installed when this returns.
pub(crate) fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}
