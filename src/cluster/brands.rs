//! Carriers' brands set through the API, across a cluster: the KV bucket `PREFIX-state` holds
//! each one (key `brand.<carrier>`, removed with a delete marker), the API of any gateway
//! writes there ([`publish`]), and every gateway with a web listener keeps its own
//! `DATA_DIR/brands.json` as the bucket says ([`follow`]). The first gateway to follow the
//! bucket brings the brands it held alone (a gateway that ran alone joining a cluster keeps
//! them); every later one drops the brands of its file the bucket does not hold.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::kv::Operation;
use futures_util::StreamExt;
use tokio::sync::watch;

use crate::cluster::nats::Cluster;
use crate::tenancy::BrandConfig;

/// Sets (`Some`) or removes (`None`) a carrier's brand on this gateway (blocking: a file).
pub type ApplyBrand = Arc<dyn Fn(&str, Option<BrandConfig>) -> std::io::Result<()> + Send + Sync>;

fn key(carrier: &str) -> String {
    format!("brand.{carrier}")
}

/// Writes (`Some`) or removes (`None`) a carrier's brand for every gateway.
pub async fn publish(
    cluster: &Cluster,
    carrier: &str,
    brand: Option<&BrandConfig>,
) -> Result<(), String> {
    let kv = &cluster.state_kv;
    match brand {
        Some(b) => {
            let bytes = serde_json::to_vec(b).map_err(|e| e.to_string())?;
            kv.put(key(carrier), bytes.into())
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
        None => kv.delete(key(carrier)).await.map_err(|e| e.to_string()),
    }
}

/// Applies on a blocking thread (the brands' file).
async fn apply_here(apply: &ApplyBrand, carrier: &str, brand: Option<BrandConfig>) {
    let (apply, id) = (apply.clone(), carrier.to_owned());
    match tokio::task::spawn_blocking(move || apply(&id, brand)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, carrier, "shared brand not kept here"),
        Err(e) => tracing::warn!(error = %e, carrier, "shared brand not kept here"),
    }
}

/// Keeps this gateway's brands (`held`: those its file holds) as the bucket holds them, until
/// `stop` fires; reopens its watch after a failure.
pub async fn follow(
    cluster: Cluster,
    held: Vec<(String, BrandConfig)>,
    apply: ApplyBrand,
    mut stop: watch::Receiver<bool>,
) {
    let kv = cluster.state_kv.clone();
    if kv.create("brands-seeded", "".into()).await.is_ok() {
        // The first gateway to follow: what it held alone becomes the cluster's.
        for (carrier, brand) in &held {
            if let Err(e) = publish(&cluster, carrier, Some(brand)).await {
                tracing::warn!(error = %e, carrier, "brand not shared");
            }
        }
    } else {
        // Any other: what the bucket does not hold goes.
        let mut listed = BTreeSet::new();
        if let Ok(mut keys) = kv.keys().await {
            while let Some(Ok(k)) = keys.next().await {
                if let Some(c) = k.strip_prefix("brand.") {
                    listed.insert(c.to_owned());
                }
            }
            for (carrier, _) in held.iter().filter(|(c, _)| !listed.contains(c)) {
                apply_here(&apply, carrier, None).await;
            }
        }
    }
    loop {
        let mut entries = match kv.watch_with_history("brand.*").await {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "brands not followed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    _ = stop.changed() => return,
                }
            }
        };
        loop {
            let entry = tokio::select! {
                e = entries.next() => e,
                _ = stop.changed() => return,
            };
            let Some(Ok(entry)) = entry else {
                break;
            };
            let Some(carrier) = entry.key.strip_prefix("brand.") else {
                continue;
            };
            let brand = match entry.operation {
                Operation::Put => match serde_json::from_slice::<BrandConfig>(&entry.value) {
                    Ok(b) => Some(b),
                    Err(e) => {
                        tracing::warn!(error = %e, carrier, "shared brand unreadable");
                        continue;
                    }
                },
                Operation::Delete | Operation::Purge => None,
            };
            apply_here(&apply, carrier, brand).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
