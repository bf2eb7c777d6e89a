//! [`KvCursors`]: the webhook cursors of a cluster, kept in the shared KV bucket so that the
//! gateway that takes over partition 0 goes on where the last one stopped.

use std::sync::Arc;

use async_nats::jetstream::kv;

use crate::cluster::lease::Owned;
use crate::cluster::nats::Cluster;
use crate::feed::webhook::Cursors;

/// The webhook cursors of a cluster: in the shared KV bucket, so that the gateway taking over
/// partition 0 goes on from where the last one stopped; delivery runs only on that gateway.
pub struct KvCursors {
    kv: kv::Store,
    owned: Arc<Owned>,
    rt: tokio::runtime::Handle,
}

impl KvCursors {
    /// Cursors of `cluster`, active while `owned` holds partition 0. Call from the runtime.
    pub fn new(cluster: &Cluster, owned: Arc<Owned>) -> KvCursors {
        KvCursors {
            kv: cluster.state_kv.clone(),
            owned,
            rt: tokio::runtime::Handle::current(),
        }
    }
}

impl Cursors for KvCursors {
    fn active(&self) -> bool {
        self.owned.is_leader()
    }

    fn load(&self, key: &str) -> std::io::Result<Option<u64>> {
        let v = self
            .rt
            .block_on(self.kv.get(format!("webhook.{key}")))
            .map_err(std::io::Error::other)?;
        Ok(v.and_then(|v| std::str::from_utf8(&v).ok()?.parse().ok()))
    }

    fn save(&self, key: &str, cursor: u64) -> std::io::Result<()> {
        self.rt
            .block_on(
                self.kv
                    .put(format!("webhook.{key}"), cursor.to_string().into()),
            )
            .map(|_| ())
            .map_err(std::io::Error::other)
    }

    fn forget(&self, key: &str) -> std::io::Result<()> {
        self.rt
            .block_on(self.kv.delete(format!("webhook.{key}")))
            .map_err(std::io::Error::other)
    }
}
