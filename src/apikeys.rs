//! API keys for back-office systems: `mpk_<id>_<secret>`, sent as `Authorization: Bearer`.
//!
//! A key is created by `milepost key create` and shown once; the data directory keeps only its
//! SHA-256 (`DATA_DIR/api-keys.json`, readable by its owner only), with its name, its scopes and
//! whether it was revoked. The gateway re-reads the file when it changes (checked at most once
//! a second), so a new key works and a revoked one stops within a second, without a restart.
//! Revoking also writes `key:<id>` to the token deny list, which a cluster shares: the other
//! gateways refuse the key within a second too. In a cluster each gateway also publishes the
//! keys of its file (hashes only) to the shared bucket and takes the others' from it
//! (`crate::cluster::keys`), so a key created beside one gateway works on all.
//!
//! A scope is `backoffice:DEPOT` (an order or routing system: writes routes, outcomes and
//! tracking links, reads everything of the depot) or `dispatcher:DEPOT` (reads, and handles
//! alerts); `DEPOT` may be `*` for every depot. A key belongs to one carrier (`carrier`; see
//! [`crate::tenancy`]): its depots, `*` included, are that carrier's only. A platform key
//! (`*`, and every key made before carriers existed) spans carriers. A shipper's key
//! (`shipper:CARRIER`, a platform key with only such scopes) follows parcels by tracking number
//! at the carriers it names, and lists nothing.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use rand::RngCore;
use serde::{Deserialize, Serialize};

/// The file name of the key store in the data directory.
pub const FILE: &str = "api-keys.json";

/// What a key's holder is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyRole {
    /// An order, routing or warehouse system: reads and writes.
    Backoffice,
    /// A dispatcher's console or tool: reads, and acknowledges alerts.
    Dispatcher,
    /// A shipper's system: looks parcels up by tracking number at the carriers its scopes
    /// name (the scope's target is a carrier, not a depot), and lists nothing.
    Shipper,
}

/// One scope of a key: a role in a depot (`*`: every depot of the key's carrier), or a
/// shipper's carrier (`*`: every carrier).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Scope {
    /// The role.
    pub role: KeyRole,
    /// The depot, or `*`; a shipper scope's carrier.
    pub depot: String,
}

impl Scope {
    /// Parses `backoffice:north`, `dispatcher:*`.
    pub fn parse(s: &str) -> Result<Scope, String> {
        let (role, depot) = s
            .split_once(':')
            .ok_or_else(|| format!("scope {s:?}: expected ROLE:DEPOT"))?;
        let role = match role {
            "backoffice" => KeyRole::Backoffice,
            "dispatcher" => KeyRole::Dispatcher,
            "shipper" => KeyRole::Shipper,
            other => return Err(format!("scope {s:?}: unknown role {other:?}")),
        };
        if depot.is_empty() || depot.chars().any(|c| c.is_control() || c == ',') {
            return Err(format!("scope {s:?}: bad depot"));
        }
        Ok(Scope {
            role,
            depot: depot.to_owned(),
        })
    }

    /// True if this scope covers `depot` (a shipper's scope covers no depot).
    pub fn covers(&self, depot: &str) -> bool {
        self.role != KeyRole::Shipper && (self.depot == "*" || self.depot == depot)
    }

    /// True if this is a shipper's scope at `carrier`.
    pub fn follows_carrier(&self, carrier: &str) -> bool {
        self.role == KeyRole::Shipper && (self.depot == "*" || self.depot == carrier)
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let role = match self.role {
            KeyRole::Backoffice => "backoffice",
            KeyRole::Dispatcher => "dispatcher",
            KeyRole::Shipper => "shipper",
        };
        write!(f, "{role}:{}", self.depot)
    }
}

/// A stored key (never the key itself).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    /// Public id (8 hex digits), part of the key.
    pub id: String,
    /// A name for people (`order-system`).
    pub name: String,
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// The carrier it belongs to; `*` or absent (keys made before carriers existed): the
    /// platform, every carrier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carrier: Option<String>,
    /// SHA-256 of the whole key, hex.
    pub sha256: String,
    /// Created, UTC ms.
    pub created_ms: i64,
    /// Revoked, UTC ms.
    #[serde(default)]
    pub revoked_ms: Option<i64>,
}

impl ApiKey {
    /// True if the key may act as `role` in `depot` as far as its scopes go (a back-office
    /// key also reads as a dispatcher); its carrier is checked by [`crate::tenancy::Tenant`].
    pub fn allows(&self, role: KeyRole, depot: &str) -> bool {
        self.scopes
            .iter()
            .any(|s| s.covers(depot) && (s.role == role || s.role == KeyRole::Backoffice))
    }

    /// Whom the key speaks for.
    pub fn tenant(&self) -> crate::tenancy::Tenant {
        crate::tenancy::Tenant::of_key(self.carrier.as_deref())
    }

    /// The deny-list entry that revokes this key.
    pub fn deny_entry(&self) -> String {
        deny_entry(&self.id)
    }
}

/// The deny-list entry that revokes key `id`.
pub fn deny_entry(id: &str) -> String {
    format!("key:{}", id.to_lowercase())
}

/// A shipper's scopes come alone, on a platform key (they name carriers); a carrier's key
/// holds back-office and dispatcher scopes.
fn check_carrier_scopes(carrier: &str, scopes: &[Scope]) -> Result<(), KeyError> {
    let shipper = scopes.iter().filter(|s| s.role == KeyRole::Shipper).count();
    if shipper > 0 && shipper < scopes.len() {
        return Err(KeyError::Invalid(
            "a shipper key has only shipper scopes: make another key for the rest".into(),
        ));
    }
    if shipper > 0 && carrier != "*" {
        return Err(KeyError::Invalid(format!(
            "a shipper key follows parcels across carriers: make it with --carrier '*', not {carrier:?}"
        )));
    }
    let id_ok = carrier == "*"
        || ((1..=64).contains(&carrier.len())
            && carrier
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    if !id_ok {
        return Err(KeyError::Invalid(format!(
            "carrier {carrier:?}: an id is 1-64 letters, digits, '-' or '_', or '*'"
        )));
    }
    Ok(())
}

/// The key file's content.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyFile {
    /// Every key ever created, revoked ones included.
    pub keys: Vec<ApiKey>,
}

/// A key store failure.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a key file.
    #[error("{path}: {source}")]
    Format {
        /// The file.
        path: PathBuf,
        /// Why.
        source: serde_json::Error,
    },
    /// No such key.
    #[error("no key {0}")]
    Unknown(String),
    /// Bad arguments.
    #[error("{0}")]
    Invalid(String),
}

fn sha256_hex(s: &str) -> String {
    crate::proofs::sha256_hex(s.as_bytes())
}

/// Equal in time independent of where the first difference is.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The id part of a presented key, if it has the key's shape.
pub fn id_of(key: &str) -> Option<&str> {
    let rest = key.strip_prefix("mpk_")?;
    let (id, secret) = rest.split_once('_')?;
    (id.len() == 8 && id.bytes().all(|b| b.is_ascii_hexdigit()) && secret.len() >= 32).then_some(id)
}

impl KeyFile {
    /// Reads `path` (absent file: no keys).
    pub fn read(path: &Path) -> Result<KeyFile, KeyError> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| KeyError::Format {
                path: path.to_owned(),
                source,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(KeyFile::default()),
            Err(source) => Err(KeyError::Io {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Writes `path` atomically (a new file renamed over the old), readable by its owner only.
    pub fn write(&self, path: &Path) -> Result<(), KeyError> {
        let io = |source| KeyError::Io {
            path: path.to_owned(),
            source,
        };
        let tmp = path.with_extension("json.new");
        let _ = std::fs::remove_file(&tmp);
        let bytes = serde_json::to_vec_pretty(self).map_err(|source| KeyError::Format {
            path: path.to_owned(),
            source,
        })?;
        crate::auth::write_private(&tmp, &bytes).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// Adds a new key of `carrier` (`*`: the platform); returns it with the key itself (shown
    /// once, never stored).
    pub fn create(
        &mut self,
        name: &str,
        carrier: &str,
        scopes: Vec<Scope>,
        now_ms: i64,
    ) -> Result<(ApiKey, String), KeyError> {
        if name.trim().is_empty() || name.len() > 100 {
            return Err(KeyError::Invalid(
                "a key needs a name of 1-100 bytes".into(),
            ));
        }
        if scopes.is_empty() {
            return Err(KeyError::Invalid("a key needs at least one scope".into()));
        }
        check_carrier_scopes(carrier, &scopes)?;
        let mut rng = rand::thread_rng();
        let id = loop {
            let id = format!("{:08x}", rng.next_u32());
            if !self.keys.iter().any(|k| k.id == id) {
                break id;
            }
        };
        let mut secret = [0u8; 32];
        rng.fill_bytes(&mut secret);
        let key = format!("mpk_{id}_{}", B64.encode(secret));
        let stored = ApiKey {
            id,
            name: name.trim().to_owned(),
            scopes,
            carrier: Some(carrier.to_owned()),
            sha256: sha256_hex(&key),
            created_ms: now_ms,
            revoked_ms: None,
        };
        self.keys.push(stored.clone());
        Ok((stored, key))
    }

    /// Marks key `id` revoked.
    pub fn revoke(&mut self, id: &str, now_ms: i64) -> Result<&ApiKey, KeyError> {
        let k = self
            .keys
            .iter_mut()
            .find(|k| k.id.eq_ignore_ascii_case(id))
            .ok_or_else(|| KeyError::Unknown(id.to_owned()))?;
        k.revoked_ms.get_or_insert(now_ms);
        Ok(k)
    }

    /// The live (not revoked) key that `presented` is, if any.
    pub fn verify(&self, presented: &str) -> Option<&ApiKey> {
        let id = id_of(presented)?;
        let k = self.keys.iter().find(|k| k.id == id)?;
        (k.revoked_ms.is_none() && same(&k.sha256, &sha256_hex(presented))).then_some(k)
    }
}

/// The gateway's view of the key file: re-read when it changed, at most once a second.
pub struct KeyStore {
    path: PathBuf,
    inner: Mutex<Loaded>,
    /// Keys of the other gateways of a cluster.
    shared: Mutex<KeyFile>,
}

/// What tells a changed file: its modification time (coarse: a few milliseconds), size and
/// inode (every write renames a new file into place).
type Stamp = Option<(SystemTime, u64, u64)>;

fn stamp(path: &Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let ino = std::os::unix::fs::MetadataExt::ino(&m);
    #[cfg(not(unix))]
    let ino = 0;
    Some((m.modified().ok()?, m.len(), ino))
}

struct Loaded {
    file: KeyFile,
    mtime: Stamp,
    checked: Option<Instant>,
}

impl KeyStore {
    /// The key store of the data directory `dir`.
    pub fn new(dir: &Path) -> KeyStore {
        let store = KeyStore {
            path: dir.join(FILE),
            inner: Mutex::new(Loaded {
                file: KeyFile::default(),
                mtime: None,
                checked: None,
            }),
            shared: Mutex::new(KeyFile::default()),
        };
        store.refresh(false);
        store
    }

    /// Re-reads the file if it changed; `throttled`: not if looked at less than a second ago.
    fn refresh(&self, throttled: bool) {
        let mut l = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if throttled
            && l.checked
                .is_some_and(|c| c.elapsed() < Duration::from_secs(1))
        {
            return;
        }
        l.checked = Some(Instant::now());
        let mtime = stamp(&self.path);
        if mtime == l.mtime {
            return;
        }
        match KeyFile::read(&self.path) {
            Ok(file) => {
                tracing::info!(keys = file.keys.len(), "API keys loaded");
                l.file = file;
                l.mtime = mtime;
            }
            // A half-written or broken file keeps the keys known before (and says so).
            Err(e) => tracing::warn!(error = %e, "API key file not loaded"),
        }
    }

    /// The live key `presented` is, if any (re-reading the file if it changed, then the
    /// other gateways' keys).
    pub fn verify(&self, presented: &str) -> Option<ApiKey> {
        self.refresh(true);
        let local = |s: &KeyStore| {
            s.inner
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .file
                .verify(presented)
                .cloned()
        };
        let found = local(self).or_else(|| {
            // A key created since the last look: look again now (a stat; the file is read
            // only if it changed).
            id_of(presented)?;
            self.refresh(false);
            local(self)
        });
        // A key revoked anywhere is refused here too (the deny list says so as well).
        let revoked_elsewhere = |k: &ApiKey| {
            self.shared
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .keys
                .iter()
                .any(|s| s.id == k.id && s.revoked_ms.is_some())
        };
        match found {
            Some(k) if revoked_elsewhere(&k) => None,
            Some(k) => Some(k),
            None => self
                .shared
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .verify(presented)
                .cloned(),
        }
    }

    /// The keys of this gateway's file (to share with a cluster).
    pub fn local(&self) -> Vec<ApiKey> {
        self.refresh(true);
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .file
            .keys
            .clone()
    }

    /// Replaces the keys known from the other gateways of a cluster.
    pub fn set_shared(&self, keys: Vec<ApiKey>) {
        self.shared.lock().unwrap_or_else(|p| p.into_inner()).keys = keys;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_and_print() {
        let s = Scope::parse("backoffice:north").unwrap();
        assert_eq!(s.to_string(), "backoffice:north");
        assert!(s.covers("north") && !s.covers("south"));
        assert!(Scope::parse("dispatcher:*").unwrap().covers("south"));
        for bad in ["north", "admin:north", "backoffice:", "dispatcher:a,b"] {
            assert!(Scope::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_key_verifies_until_revoked_and_only_its_hash_is_kept() {
        let mut f = KeyFile::default();
        let scopes = vec![Scope::parse("backoffice:north").unwrap()];
        let (stored, key) = f.create("orders", "*", scopes, 1).unwrap();
        assert!(key.starts_with(&format!("mpk_{}_", stored.id)));
        assert_eq!(id_of(&key), Some(stored.id.as_str()));
        let text = serde_json::to_string(&f).unwrap();
        assert!(!text.contains(&key[13..]), "the secret is not stored");
        assert_eq!(f.verify(&key).map(|k| k.name.as_str()), Some("orders"));
        // A key with one character changed, or another key's shape, is nobody.
        let mut wrong = key.clone();
        let last = wrong.pop().unwrap();
        wrong.push(if last == 'A' { 'B' } else { 'A' });
        assert!(f.verify(&wrong).is_none());
        assert!(f.verify("mpk_zz_x").is_none());
        assert!(f.verify("").is_none());
        f.revoke(&stored.id, 2).unwrap();
        assert!(f.verify(&key).is_none());
        assert!(matches!(f.revoke("00000000", 3), Err(KeyError::Unknown(_))));
    }

    #[test]
    fn roles_and_depots() {
        let mut f = KeyFile::default();
        let (k, _) = f
            .create(
                "ops",
                "acme",
                vec![
                    Scope::parse("backoffice:north").unwrap(),
                    Scope::parse("dispatcher:south").unwrap(),
                ],
                1,
            )
            .unwrap();
        assert!(k.allows(KeyRole::Backoffice, "north"));
        assert!(k.allows(KeyRole::Dispatcher, "north"));
        assert!(k.allows(KeyRole::Dispatcher, "south"));
        assert!(!k.allows(KeyRole::Backoffice, "south"));
        assert!(!k.allows(KeyRole::Dispatcher, "east"));
        assert!(f.create("", "*", vec![], 1).is_err());
        assert_eq!(k.tenant(), crate::tenancy::Tenant::Carrier("acme".into()));
    }

    #[test]
    fn shipper_keys_are_platform_keys_with_only_shipper_scopes() {
        let mut f = KeyFile::default();
        let ship = |s: &str| Scope::parse(s).unwrap();
        let (k, _) = f
            .create(
                "shop",
                "*",
                vec![ship("shipper:acme"), ship("shipper:zeta")],
                1,
            )
            .unwrap();
        assert_eq!(k.tenant(), crate::tenancy::Tenant::Platform);
        assert!(k.scopes.iter().any(|s| s.follows_carrier("zeta")));
        assert!(!k.scopes.iter().any(|s| s.follows_carrier("other")));
        // A shipper scope covers no depot: it lists nothing.
        assert!(!k.allows(KeyRole::Dispatcher, "acme") && !k.allows(KeyRole::Dispatcher, "*"));
        let mixed = vec![ship("shipper:acme"), ship("backoffice:north")];
        assert!(f.create("x", "*", mixed, 1).is_err());
        assert!(f
            .create("x", "acme", vec![ship("shipper:acme")], 1)
            .is_err());
        assert!(f
            .create("x", "bad id", vec![ship("backoffice:*")], 1)
            .is_err());
        // Keys made before carriers existed speak for the platform.
        let old: ApiKey = serde_json::from_str(
            r#"{"id":"0000000a","name":"old","scopes":[{"role":"backoffice","depot":"*"}],"sha256":"x","created_ms":1}"#,
        )
        .unwrap();
        assert_eq!(old.tenant(), crate::tenancy::Tenant::Platform);
    }

    #[test]
    fn keys_shared_by_other_gateways_work_here_and_their_revocation_counts() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::new(dir.path());
        let mut elsewhere = KeyFile::default();
        let (k, key) = elsewhere
            .create(
                "orders",
                "*",
                vec![Scope::parse("backoffice:*").unwrap()],
                1,
            )
            .unwrap();
        assert!(store.verify(&key).is_none());
        store.set_shared(elsewhere.keys.clone());
        assert_eq!(store.verify(&key).map(|k| k.name), Some("orders".into()));
        elsewhere.revoke(&k.id, 2).unwrap();
        store.set_shared(elsewhere.keys.clone());
        assert!(store.verify(&key).is_none());
    }

    #[test]
    fn the_store_picks_up_new_and_revoked_keys_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let mut f = KeyFile::default();
        let (k, key) = f
            .create(
                "orders",
                "*",
                vec![Scope::parse("backoffice:*").unwrap()],
                1,
            )
            .unwrap();
        f.write(&path).unwrap();
        let store = KeyStore::new(dir.path());
        assert!(store.verify(&key).is_some());
        f.revoke(&k.id, 2).unwrap();
        f.write(&path).unwrap();
        store.refresh(false);
        assert!(store.verify(&key).is_none());
        // A broken file keeps what was loaded.
        std::fs::write(&path, b"{not json").unwrap();
        store.refresh(false);
        assert!(store.verify(&key).is_none());
    }
}
