//! API keys across a cluster: `milepost key create` writes to one gateway's key file; the
//! other gateways must take that key too. Once a second each gateway copies the keys of its
//! own file (their hashes, names, scopes and revocations; never a key itself) into the KV
//! bucket `PREFIX-state` (key `apikey.<id>`, kept like the file) and reads back every
//! gateway's keys ([`crate::apikeys::KeyStore::set_shared`]). Revoking a key also goes through
//! the deny list that [`crate::cluster::revoke`] shares.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::watch;

use crate::apikeys::{ApiKey, KeyStore};
use crate::cluster::nats::Cluster;

/// What sharing keys uses of the gateway.
pub struct KeyParts {
    /// The cluster (its shared KV bucket).
    pub cluster: Cluster,
    /// This gateway's keys.
    pub keys: Arc<KeyStore>,
}

/// Runs until `stop` fires.
pub async fn run(parts: KeyParts, mut stop: watch::Receiver<bool>) {
    let kv = parts.cluster.state_kv.clone();
    // What this gateway published, by id: republished when it changes (a revocation).
    let mut published: HashMap<String, ApiKey> = HashMap::new();
    let mut every = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stop.changed() => return,
        }
        for key in parts.keys.local() {
            if published.get(&key.id) == Some(&key) {
                continue;
            }
            let Ok(bytes) = serde_json::to_vec(&key) else {
                continue;
            };
            match kv.put(format!("apikey.{}", key.id), bytes.into()).await {
                Ok(_) => {
                    published.insert(key.id.clone(), key);
                }
                Err(e) => tracing::warn!(error = %e, "API key not shared yet; will retry"),
            }
        }
        let Ok(mut names) = kv.keys().await else {
            continue;
        };
        let mut all = Vec::new();
        while let Some(Ok(name)) = names.next().await {
            if !name.starts_with("apikey.") {
                continue;
            }
            if let Ok(Some(v)) = kv.get(&name).await {
                if let Ok(k) = serde_json::from_slice::<ApiKey>(&v) {
                    all.push(k);
                }
            }
        }
        parts.keys.set_shared(all);
    }
}
