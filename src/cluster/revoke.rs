//! Revocation across a cluster: `milepost revoke` writes to one gateway's deny list file; the
//! other gateways must refuse that token too. Once a second each gateway copies the entries
//! of its own file into the KV bucket `PREFIX-state` (key `revoked.<digest of the entry>`, kept
//! forever, like the file) and reads back every gateway's entries; new ones take effect at once
//! and close the live sessions they deny.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::watch;

use crate::auth::{short_digest, DenyList};
use crate::cluster::nats::Cluster;

/// Closes the live sessions a deny set now denies; returns how many it closed.
pub type CloseDenied = Box<dyn Fn(&HashSet<String>) -> usize + Send + Sync>;

/// What revocation across the cluster uses of the gateway (the server builds it when it starts
/// the cluster parts).
pub struct RevokeParts {
    /// The cluster (its shared KV bucket).
    pub cluster: Cluster,
    /// This gateway's deny list.
    pub deny: Arc<DenyList>,
    /// Closes (and counts) the sessions a new deny set denies.
    pub close_denied: CloseDenied,
}

fn key(entry: &str) -> String {
    format!("revoked.{}", short_digest(entry))
}

/// Runs until `stop` fires.
pub async fn run(parts: RevokeParts, mut stop: watch::Receiver<bool>) {
    let kv = parts.cluster.state_kv.clone();
    let mut published: HashSet<String> = HashSet::new();
    let mut known: HashMap<String, String> = HashMap::new();
    let mut every = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stop.changed() => return,
        }
        for entry in parts.deny.local() {
            if published.contains(&entry) {
                continue;
            }
            match kv.put(key(&entry), entry.clone().into()).await {
                Ok(_) => {
                    published.insert(entry);
                }
                Err(e) => tracing::warn!(error = %e, "revocation not shared yet; will retry"),
            }
        }
        let Ok(mut keys) = kv.keys().await else {
            continue;
        };
        while let Some(Ok(k)) = keys.next().await {
            if !k.starts_with("revoked.") || known.contains_key(&k) {
                continue;
            }
            if let Ok(Some(v)) = kv.get(&k).await {
                if let Ok(entry) = String::from_utf8(v.to_vec()) {
                    known.insert(k, entry);
                }
            }
        }
        let all: HashSet<String> = known.values().cloned().collect();
        if let Some(deny) = parts.deny.set_shared(all) {
            let n = (parts.close_denied)(&deny);
            if n > 0 {
                tracing::info!(
                    closed = n,
                    "closed sessions of tokens revoked in the cluster"
                );
            }
        }
    }
}
