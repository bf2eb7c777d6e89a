//! Webhook endpoints added at run time, across a cluster: each gateway shares the endpoints
//! of its own file through the KV bucket `PREFIX-state` (key `webhook-ep.<id>`, with the
//! signing secret: the bucket is the cluster's own) and adopts the others'; an endpoint removed
//! on one gateway becomes a tombstone there, which every gateway follows. Deliveries stay the
//! leader's ([`crate::feed::webhook::Cursors::active`]), so every gateway runs every endpoint
//! and only one delivers.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::watch;

use crate::cluster::nats::Cluster;
use crate::feed::registry::{SharedHook, Webhooks};

/// What sharing webhooks uses of the gateway.
pub struct HookParts {
    /// The cluster (its shared KV bucket).
    pub cluster: Cluster,
    /// This gateway's endpoints.
    pub hooks: Arc<Webhooks>,
}

fn key(id: &str) -> String {
    format!("webhook-ep.{id}")
}

/// Runs until `stop` fires.
pub async fn run(parts: HookParts, mut stop: watch::Receiver<bool>) {
    let kv = parts.cluster.state_kv.clone();
    let mut tombstoned: HashSet<String> = HashSet::new();
    let mut every = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stop.changed() => return,
        }
        // Removals here first, so that nothing removed is published again below.
        for id in parts.hooks.removed_here() {
            if tombstoned.contains(&id) {
                continue;
            }
            let stone = SharedHook {
                id: id.clone(),
                url: String::new(),
                secret: String::new(),
                created_ms: 0,
                carrier: None,
                removed: true,
            };
            let Ok(bytes) = serde_json::to_vec(&stone) else {
                continue;
            };
            if kv.put(key(&id), bytes.into()).await.is_ok() {
                tombstoned.insert(id);
            }
        }
        // What every gateway shared: adopt it (a tombstone removes it here too).
        let Ok(mut names) = kv.keys().await else {
            continue;
        };
        let mut seen = HashSet::new();
        while let Some(Ok(name)) = names.next().await {
            let Some(id) = name.strip_prefix("webhook-ep.") else {
                continue;
            };
            seen.insert(id.to_owned());
            let Ok(Some(v)) = kv.get(&name).await else {
                continue;
            };
            let Ok(h) = serde_json::from_slice::<SharedHook>(&v) else {
                continue;
            };
            let hooks = parts.hooks.clone();
            let adopted = tokio::task::spawn_blocking(move || hooks.adopt(&h)).await;
            if let Ok(Err(e)) = adopted {
                tracing::warn!(error = %e, "shared webhook not adopted; will retry");
            }
        }
        // This gateway's own endpoints that the bucket does not hold yet.
        let hooks = parts.hooks.clone();
        let Ok(Ok(added)) = tokio::task::spawn_blocking(move || hooks.added()).await else {
            continue;
        };
        for h in added.into_iter().filter(|h| !seen.contains(&h.id)) {
            let Ok(bytes) = serde_json::to_vec(&h) else {
                continue;
            };
            if let Err(e) = kv.put(key(&h.id), bytes.into()).await {
                tracing::warn!(error = %e, "webhook not shared yet; will retry");
            }
        }
    }
}
