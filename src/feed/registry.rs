//! [`Webhooks`]: the gateway's webhook endpoints, those of the configuration (`feed.webhooks`,
//! signed with `feed.webhook_secret`) and those added at run time through the API, each with
//! its own signing secret, kept in `DATA_DIR/webhooks.json` (owner-only) so they survive a
//! restart. Adding one starts its delivery thread (it delivers the milestones emitted from
//! then on); removing one stops it. Configured endpoints are listed but cannot be removed
//! at run time: the file they come from is the operator's.
//!
//! An endpoint added by a carrier's key is that carrier's: it gets the milestones of its
//! parcels only, and only that carrier's keys list or remove it. Configured endpoints and those
//! added by a platform key get every carrier's.
//!
//! On a single box this gateway delivers to all of them. In a cluster deliveries are the
//! leader's; endpoints added at run time are shared through the cluster's bucket
//! (`crate::cluster::hooks`): each gateway adopts the others' ([`Webhooks::adopt`]) and a
//! removal anywhere is a tombstone every gateway follows.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::auth::short_digest;
use crate::feed::webhook::{spawn, Common, Delivery, EndpointSpec, EndpointStats};
use crate::state::lock;

/// Where an endpoint comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// `feed.webhooks` in the configuration.
    Config,
    /// Added through the API.
    Api,
}

/// An endpoint as the API lists it (never its secret).
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct WebhookInfo {
    /// Its id.
    pub id: String,
    /// Where it delivers.
    pub url: String,
    /// Where it comes from.
    pub source: Source,
    /// Added, UTC ms (0 for configured ones).
    pub created_ms: i64,
    /// The carrier whose milestones it gets (absent: every carrier's).
    pub carrier: Option<String>,
    /// Milestones delivered since the gateway started.
    pub delivered: u64,
    /// Failed attempts since the gateway started.
    pub failures: u64,
    /// The newest deliveries and failures, oldest first.
    pub recent: Vec<Delivery>,
}

/// Why an endpoint could not be added or removed.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// Not an http(s) URL.
    #[error("a webhook URL is http:// or https:// and at most 2,000 bytes")]
    BadUrl,
    /// Already an endpoint.
    #[error("{0} is an endpoint already")]
    Duplicate(String),
    /// No such endpoint.
    #[error("no webhook {0}")]
    Unknown(String),
    /// Configured, so not removable here.
    #[error("webhook {0} comes from the configuration file: remove it there")]
    Configured(String),
    /// The file or the thread failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// An endpoint added through the API as a cluster shares it (with its secret: the bucket is
/// the cluster's own), or the tombstone of one removed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedHook {
    /// Its id.
    pub id: String,
    /// Where it delivers.
    pub url: String,
    /// Its signing secret (hex).
    pub secret: String,
    /// Added, UTC ms.
    pub created_ms: i64,
    /// The carrier whose milestones it gets (absent: every carrier's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carrier: Option<String>,
    /// Removed: every gateway drops it.
    #[serde(default)]
    pub removed: bool,
}

/// An endpoint as kept in the file.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Stored {
    id: String,
    url: String,
    /// Hex.
    secret: String,
    created_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    carrier: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct HookFile {
    hooks: Vec<Stored>,
}

struct Registered {
    id: String,
    url: String,
    source: Source,
    created_ms: i64,
    carrier: Option<String>,
    stats: Arc<EndpointStats>,
    removed: Arc<AtomicBool>,
}

struct Inner {
    endpoints: Vec<Registered>,
    threads: Vec<JoinHandle<()>>,
}

/// The webhook endpoints of a gateway.
pub struct Webhooks {
    common: Common,
    file: PathBuf,
    inner: Mutex<Inner>,
    /// Held through an add or a remove (check, file, thread), so two never interleave.
    edit: Mutex<()>,
    /// Ids removed on this gateway, for a cluster to spread as tombstones.
    removed_here: Mutex<Vec<String>>,
}

fn read(path: &Path) -> std::io::Result<HookFile> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).map_err(std::io::Error::other),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(HookFile::default()),
        Err(e) => Err(e),
    }
}

fn write(path: &Path, f: &HookFile) -> std::io::Result<()> {
    let tmp = path.with_extension("json.new");
    let _ = std::fs::remove_file(&tmp);
    let bytes = serde_json::to_vec_pretty(f).map_err(std::io::Error::other)?;
    crate::auth::write_private(&tmp, &bytes)?;
    std::fs::rename(&tmp, path)?;
    // The new name is durable once the directory is synced.
    std::fs::File::open(path.parent().unwrap_or(Path::new(".")))?.sync_all()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Webhooks {
    /// Starts the configured endpoints (`urls`, signed with `secret`) and those of the file in
    /// `data_dir`.
    pub fn start(
        urls: &[String],
        secret: &[u8],
        data_dir: &Path,
        common: Common,
    ) -> std::io::Result<Arc<Webhooks>> {
        let file = data_dir.join("webhooks.json");
        let stored = read(&file)?;
        let hooks = Webhooks {
            common,
            file,
            inner: Mutex::new(Inner {
                endpoints: Vec::new(),
                threads: Vec::new(),
            }),
            edit: Mutex::new(()),
            removed_here: Mutex::new(Vec::new()),
        };
        for url in urls {
            let id = format!("cfg-{}", &short_digest(url)[..8]);
            hooks.run(id, url.clone(), secret.to_vec(), Source::Config, 0, None)?;
        }
        for s in stored.hooks {
            let secret = s.secret.into_bytes();
            hooks.run(s.id, s.url, secret, Source::Api, s.created_ms, s.carrier)?;
        }
        Ok(Arc::new(hooks))
    }

    fn run(
        &self,
        id: String,
        url: String,
        secret: Vec<u8>,
        source: Source,
        created_ms: i64,
        carrier: Option<String>,
    ) -> std::io::Result<()> {
        let stats = Arc::new(EndpointStats::default());
        let removed = Arc::new(AtomicBool::new(false));
        let spec = EndpointSpec {
            url: url.clone(),
            secret,
            stats: stats.clone(),
            removed: removed.clone(),
            carrier: carrier.clone(),
        };
        let thread = spawn(spec, &self.common)?;
        let mut inner = lock(&self.inner);
        inner.threads.push(thread);
        inner.endpoints.push(Registered {
            id,
            url,
            source,
            created_ms,
            carrier,
            stats,
            removed,
        });
        Ok(())
    }

    /// Every endpoint.
    pub fn list(&self) -> Vec<WebhookInfo> {
        lock(&self.inner)
            .endpoints
            .iter()
            .map(|e| WebhookInfo {
                id: e.id.clone(),
                url: e.url.clone(),
                source: e.source,
                created_ms: e.created_ms,
                carrier: e.carrier.clone(),
                delivered: e.stats.delivered.load(Ordering::Relaxed),
                failures: e.stats.failures.load(Ordering::Relaxed),
                recent: e.stats.recent(),
            })
            .collect()
    }

    /// Adds an endpoint delivering to `url` the milestones of `carrier`'s parcels (none: every
    /// carrier's); returns it and its signing secret (shown once: the receiver checks
    /// `X-Milepost-Signature` with it).
    pub fn add(
        &self,
        url: &str,
        now_ms: i64,
        carrier: Option<&str>,
    ) -> Result<(WebhookInfo, String), HookError> {
        let url = url.trim();
        if !(url.starts_with("https://") || url.starts_with("http://"))
            || url.len() > 2000
            || url.chars().any(char::is_whitespace)
        {
            return Err(HookError::BadUrl);
        }
        let _edit = lock(&self.edit);
        if lock(&self.inner).endpoints.iter().any(|e| e.url == url) {
            return Err(HookError::Duplicate(url.to_owned()));
        }
        let mut rng = rand::thread_rng();
        let id = format!("wh-{:08x}", rng.next_u32());
        let mut secret = [0u8; 32];
        rng.fill_bytes(&mut secret);
        let secret = hex(&secret);
        let mut file = read(&self.file)?;
        file.hooks.push(Stored {
            id: id.clone(),
            url: url.to_owned(),
            secret: secret.clone(),
            created_ms: now_ms,
            carrier: carrier.map(str::to_owned),
        });
        write(&self.file, &file)?;
        self.run(
            id.clone(),
            url.to_owned(),
            secret.clone().into_bytes(),
            Source::Api,
            now_ms,
            carrier.map(str::to_owned),
        )?;
        let info = self
            .list()
            .into_iter()
            .find(|i| i.id == id)
            .ok_or_else(|| HookError::Unknown(id.clone()))?;
        Ok((info, secret))
    }

    /// Removes endpoint `id` (added through the API) and stops its thread.
    pub fn remove(&self, id: &str) -> Result<(), HookError> {
        let _edit = lock(&self.edit);
        let mut inner = lock(&self.inner);
        let k = inner
            .endpoints
            .iter()
            .position(|e| e.id == id)
            .ok_or_else(|| HookError::Unknown(id.to_owned()))?;
        if inner.endpoints[k].source == Source::Config {
            return Err(HookError::Configured(id.to_owned()));
        }
        let mut file = read(&self.file)?;
        file.hooks.retain(|h| h.id != id);
        write(&self.file, &file)?;
        let e = inner.endpoints.remove(k);
        e.removed.store(true, Ordering::Relaxed);
        drop(inner);
        lock(&self.removed_here).push(id.to_owned());
        // Added again later, it starts from then on, not from where this one stopped.
        self.common.cursors.forget(&short_digest(&e.url))?;
        Ok(())
    }

    /// The endpoints added through the API on this gateway (its file), to share.
    pub fn added(&self) -> std::io::Result<Vec<SharedHook>> {
        Ok(read(&self.file)?
            .hooks
            .into_iter()
            .map(|h| SharedHook {
                id: h.id,
                url: h.url,
                secret: h.secret,
                created_ms: h.created_ms,
                carrier: h.carrier,
                removed: false,
            })
            .collect())
    }

    /// The ids removed on this gateway, to spread as tombstones.
    pub fn removed_here(&self) -> Vec<String> {
        lock(&self.removed_here).clone()
    }

    /// Follows what another gateway shared: starts an endpoint it added (and keeps it in this
    /// gateway's file too), or drops one it removed.
    pub fn adopt(&self, h: &SharedHook) -> Result<(), HookError> {
        let _edit = lock(&self.edit);
        let mut inner = lock(&self.inner);
        let here = inner.endpoints.iter().position(|e| e.id == h.id);
        match (here, h.removed) {
            (Some(k), true) => {
                if inner.endpoints[k].source == Source::Config {
                    return Ok(());
                }
                let e = inner.endpoints.remove(k);
                e.removed.store(true, Ordering::Relaxed);
                drop(inner);
                let mut file = read(&self.file)?;
                file.hooks.retain(|s| s.id != h.id);
                write(&self.file, &file)?;
                tracing::info!(id = %h.id, "webhook removed elsewhere in the cluster");
            }
            (None, false) => {
                if inner.endpoints.iter().any(|e| e.url == h.url) {
                    return Ok(());
                }
                drop(inner);
                let mut file = read(&self.file)?;
                if !file.hooks.iter().any(|s| s.id == h.id) {
                    file.hooks.push(Stored {
                        id: h.id.clone(),
                        url: h.url.clone(),
                        secret: h.secret.clone(),
                        created_ms: h.created_ms,
                        carrier: h.carrier.clone(),
                    });
                    write(&self.file, &file)?;
                }
                self.run(
                    h.id.clone(),
                    h.url.clone(),
                    h.secret.clone().into_bytes(),
                    Source::Api,
                    h.created_ms,
                    h.carrier.clone(),
                )?;
                tracing::info!(id = %h.id, "webhook added elsewhere in the cluster");
            }
            _ => {}
        }
        Ok(())
    }

    /// Waits for every delivery thread (once the gateway's stop flag is set).
    pub fn join(&self) {
        let threads = std::mem::take(&mut lock(&self.inner).threads);
        for t in threads {
            let _ = t.join();
        }
    }
}
