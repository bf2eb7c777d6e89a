//! Bearer tokens: `mp1.<base64url(JSON claims)>.<base64url(HMAC-SHA256)>`, signed with the
//! server secret. A token names its role, subject, depot and expiry; the gateway checks the
//! signature in constant time and the expiry against the `now` it is given.
//!
//! Revocation lives here too: a token's [`fingerprint`], its holder's [`subject_key`], and the
//! [`DenyList`] of revoked ones (a file reloaded without restart, plus the entries the other
//! gateways of a cluster revoked).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::SystemTime;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use milepost_proto::ErrorCode;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

const PREFIX: &str = "mp1.";

/// What a token lets its holder do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A driver app: sends fixes for the driver named by the subject.
    Driver,
    /// A dispatcher console: reads the live fleet of its depot.
    Dispatcher,
    /// A parcel recipient: follows the parcel named by the subject.
    Recipient,
}

/// The signed content of a token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The role.
    pub role: Role,
    /// Driver id, depot name or tracking number, by role.
    pub sub: String,
    /// The depot the holder belongs to (scopes queries and positions).
    pub depot: String,
    /// Expiry, Unix seconds.
    pub exp: i64,
    /// Issue time, Unix seconds.
    pub iat: i64,
    /// The carrier of the depot when the token was made (absent in tokens made before
    /// carriers existed): a token whose depot now belongs to another carrier is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carrier: Option<String>,
}

/// Why a token was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Not a token of ours, or not decodable.
    #[error("malformed token")]
    Malformed,
    /// The signature does not match.
    #[error("bad token signature")]
    BadSignature,
    /// Past its expiry.
    #[error("token expired")]
    Expired,
}

impl AuthError {
    /// The protocol error code for this refusal.
    pub fn code(self) -> ErrorCode {
        match self {
            AuthError::Malformed | AuthError::BadSignature => ErrorCode::TokenInvalid,
            AuthError::Expired => ErrorCode::TokenExpired,
        }
    }
}

/// The token signing key.
#[derive(Clone)]
pub struct TokenKey {
    key: Vec<u8>,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

impl TokenKey {
    /// A key from secret bytes.
    pub fn new(secret: &[u8]) -> TokenKey {
        TokenKey {
            key: secret.to_vec(),
        }
    }

    /// Reads `path`, or creates it with 32 random bytes (mode 0600) if it does not exist.
    pub fn load_or_create(path: &Path) -> std::io::Result<TokenKey> {
        match std::fs::read(path) {
            Ok(bytes) if bytes.len() >= 32 => Ok(TokenKey::new(&bytes)),
            Ok(_) => Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{} holds fewer than 32 bytes", path.display()),
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let secret: [u8; 32] = rand::random();
                write_private(path, &secret)?;
                Ok(TokenKey::new(&secret))
            }
            Err(e) => Err(e),
        }
    }

    /// The secret bytes (also the default webhook signing secret).
    pub fn secret(&self) -> &[u8] {
        &self.key
    }

    /// Signs claims into a token string.
    pub fn mint(&self, claims: &Claims) -> String {
        // Serialising a plain struct of strings and integers cannot fail.
        let json = serde_json::to_vec(claims).unwrap_or_default();
        let mut token = format!("{PREFIX}{}", B64.encode(json));
        let sig = self.mac(token.as_bytes()).finalize().into_bytes();
        token.push('.');
        token.push_str(&B64.encode(sig));
        token
    }

    /// Checks a token's signature and expiry at `now_s` (Unix seconds).
    pub fn verify(&self, token: &str, now_s: i64) -> Result<Claims, AuthError> {
        let parsed = Parsed::of(token)?;
        self.check(&parsed, now_s)?;
        Ok(parsed.claims)
    }

    /// Checks a parsed token's signature and expiry.
    fn check(&self, p: &Parsed<'_>, now_s: i64) -> Result<(), AuthError> {
        self.mac(p.signed.as_bytes())
            .verify_slice(&p.sig)
            .map_err(|_| AuthError::BadSignature)?;
        if p.claims.exp <= now_s {
            return Err(AuthError::Expired);
        }
        Ok(())
    }

    fn mac(&self, data: &[u8]) -> Hmac<Sha256> {
        // HMAC accepts keys of any length.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(data);
        mac
    }
}

/// A token taken apart, its signature not checked yet.
struct Parsed<'a> {
    /// What the signature covers.
    signed: &'a str,
    sig: Vec<u8>,
    claims: Claims,
}

impl<'a> Parsed<'a> {
    fn of(token: &'a str) -> Result<Parsed<'a>, AuthError> {
        let rest = token.strip_prefix(PREFIX).ok_or(AuthError::Malformed)?;
        let (payload, sig) = rest.rsplit_once('.').ok_or(AuthError::Malformed)?;
        let sig = B64.decode(sig).map_err(|_| AuthError::Malformed)?;
        let signed = &token[..PREFIX.len() + payload.len()];
        let json = B64.decode(payload).map_err(|_| AuthError::Malformed)?;
        let claims: Claims = serde_json::from_slice(&json).map_err(|_| AuthError::Malformed)?;
        Ok(Parsed {
            signed,
            sig,
            claims,
        })
    }
}

/// The gateway's token keys: the platform's secret, and the secrets of the carriers that have
/// their own (`[carriers.<id>] token_secret_file`). A token of a depot is signed with its
/// carrier's secret when the carrier has one, so a carrier that mints its own tokens can mint
/// them for its depots only; the platform's secret signs every depot's.
#[derive(Clone, Debug)]
pub struct TokenKeys {
    platform: TokenKey,
    carriers: std::collections::BTreeMap<String, TokenKey>,
    owners: crate::tenancy::Carriers,
}

impl TokenKeys {
    /// The platform's key alone (no carrier has a secret of its own).
    pub fn platform_only(platform: TokenKey) -> TokenKeys {
        TokenKeys {
            platform,
            carriers: Default::default(),
            owners: Default::default(),
        }
    }

    /// The platform's key and the carriers' own, read from their `token_secret_file`s (each of
    /// at least 32 bytes; a missing or short file is an error naming it).
    pub fn load(
        platform: TokenKey,
        carriers: &crate::tenancy::Carriers,
    ) -> std::io::Result<TokenKeys> {
        let mut own = std::collections::BTreeMap::new();
        for (id, c) in &carriers.0 {
            let Some(path) = &c.token_secret_file else {
                continue;
            };
            let bytes = std::fs::read(path).map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("carriers.{id}.token_secret_file {}: {e}", path.display()),
                )
            })?;
            if bytes.len() < 32 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "carriers.{id}.token_secret_file {} holds fewer than 32 bytes",
                        path.display()
                    ),
                ));
            }
            own.insert(id.clone(), TokenKey::new(&bytes));
        }
        Ok(TokenKeys {
            platform,
            carriers: own,
            owners: carriers.clone(),
        })
    }

    /// The platform's secret bytes (the default webhook signing secret, the cluster's shared
    /// secret).
    pub fn secret(&self) -> &[u8] {
        self.platform.secret()
    }

    /// Every configured carrier with its own secret's bytes, if it has one (for a cluster to
    /// check that its gateways agree).
    pub fn carrier_secrets(&self) -> Vec<(String, Option<&[u8]>)> {
        self.owners
            .0
            .keys()
            .map(|id| (id.clone(), self.carriers.get(id).map(TokenKey::secret)))
            .collect()
    }

    /// The platform's key.
    pub fn platform(&self) -> &TokenKey {
        &self.platform
    }

    /// The key that signs tokens of `depot`: its carrier's own, else the platform's.
    fn of_depot(&self, depot: &str) -> &TokenKey {
        self.carriers
            .get(self.owners.carrier_of(depot))
            .unwrap_or(&self.platform)
    }

    /// Signs claims with the key of their depot.
    pub fn mint(&self, claims: &Claims) -> String {
        self.of_depot(&claims.depot).mint(claims)
    }

    /// Checks a token's signature (by its depot's carrier's key, or the platform's) and
    /// expiry at `now_s`.
    pub fn verify(&self, token: &str, now_s: i64) -> Result<Claims, AuthError> {
        self.verify_signed(token, now_s).map(|(claims, _)| claims)
    }

    /// [`TokenKeys::verify`], and the carrier whose own key signed the token (none: the
    /// platform's). A carrier's key vouches for its depots only, not for the token's subject:
    /// the caller checks that the parcel or driver is that carrier's
    /// (`Shared::subject_is_carriers`).
    pub fn verify_signed(
        &self,
        token: &str,
        now_s: i64,
    ) -> Result<(Claims, Option<String>), AuthError> {
        let parsed = Parsed::of(token)?;
        let carrier = self.owners.carrier_of(&parsed.claims.depot);
        let signer = match self.carriers.get(carrier) {
            Some(own) => match own.check(&parsed, now_s) {
                Ok(()) => Some(carrier.to_owned()),
                Err(AuthError::BadSignature) => {
                    self.platform.check(&parsed, now_s)?;
                    None
                }
                Err(e) => return Err(e),
            },
            None => {
                self.platform.check(&parsed, now_s)?;
                None
            }
        };
        Ok((parsed.claims, signer))
    }
}

/// The first 16 hex digits of the SHA-256 of `s`: a short, stable name (a token's
/// fingerprint, a webhook URL's cursor file, a revocation's key in the cluster's bucket).
pub fn short_digest(s: &str) -> String {
    use sha2::Digest;
    let d = Sha256::digest(s.as_bytes());
    d.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// The fingerprint of a token as written in the deny list: `fp:` and its [`short_digest`].
pub fn fingerprint(token: &str) -> String {
    format!("fp:{}", short_digest(token))
}

/// How the deny list and the connection registry name a token's holder: `driver:d42`.
pub fn subject_key(role: Role, sub: &str) -> String {
    format!("{role:?}:{sub}").to_lowercase()
}

/// The token deny list: a text file, one entry a line: `driver:D42` (every token of that
/// subject; also `dispatcher:north`, `recipient:T1`), or a token fingerprint `fp:0123...`
/// (`milepost revoke` prints and appends them). `#` starts a comment.
pub struct DenyList {
    path: PathBuf,
    entries: RwLock<(HashSet<String>, Option<SystemTime>)>,
    /// Entries revoked on other gateways of a cluster (see the cluster's `revoke` task).
    shared: RwLock<HashSet<String>>,
}

impl DenyList {
    /// A deny list read from `path` (absent file = empty list).
    pub fn new(path: &Path) -> DenyList {
        let list = DenyList {
            path: path.to_owned(),
            entries: RwLock::new((HashSet::new(), None)),
            shared: RwLock::new(HashSet::new()),
        };
        list.reload();
        list
    }

    /// Re-reads the file if it changed. Returns the new entries when it did.
    pub fn reload(&self) -> Option<HashSet<String>> {
        let mtime = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        {
            let cur = self.entries.read().unwrap_or_else(|p| p.into_inner());
            if cur.1 == mtime {
                return None;
            }
        }
        let text = std::fs::read_to_string(&self.path).unwrap_or_default();
        let set: HashSet<String> = text
            .lines()
            .map(|l| l.split('#').next().unwrap_or("").trim().to_lowercase())
            .filter(|l| !l.is_empty())
            .collect();
        tracing::info!(path = %self.path.display(), entries = set.len(), "token deny list loaded");
        *self.entries.write().unwrap_or_else(|p| p.into_inner()) = (set.clone(), mtime);
        Some(set)
    }

    /// True if the token (by subject or fingerprint) is denied.
    pub fn denies(&self, claims: &Claims, token: &str) -> bool {
        let hit = |set: &HashSet<String>| {
            !set.is_empty()
                && (set.contains(&subject_key(claims.role, &claims.sub))
                    || set.contains(&fingerprint(token)))
        };
        hit(&self.entries.read().unwrap_or_else(|p| p.into_inner()).0)
            || hit(&self.shared.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// True if `entry` itself (e.g. an API key's `key:<id>`) is on the list.
    pub fn denies_entry(&self, entry: &str) -> bool {
        let entry = entry.to_lowercase();
        self.entries
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .contains(&entry)
            || self
                .shared
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .contains(&entry)
    }

    /// The entries of this gateway's own file.
    pub fn local(&self) -> HashSet<String> {
        self.entries
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .clone()
    }

    /// Replaces the entries revoked elsewhere in the cluster; returns them with the local ones
    /// when they changed.
    pub fn set_shared(&self, set: HashSet<String>) -> Option<HashSet<String>> {
        let mut cur = self.shared.write().unwrap_or_else(|p| p.into_inner());
        if *cur == set {
            return None;
        }
        *cur = set;
        let mut all = self.local();
        all.extend(cur.iter().cloned());
        Some(all)
    }
}

/// Writes a file readable only by its owner (on Unix).
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> Claims {
        Claims {
            role: Role::Driver,
            sub: "D42".into(),
            depot: "north".into(),
            exp,
            iat: 0,
            carrier: None,
        }
    }

    #[test]
    fn mint_then_verify() {
        let key = TokenKey::new(b"0123456789abcdef0123456789abcdef");
        let t = key.mint(&claims(100));
        assert_eq!(key.verify(&t, 99).unwrap(), claims(100));
        assert_eq!(key.verify(&t, 100), Err(AuthError::Expired));
    }

    #[test]
    fn a_carrier_with_its_own_secret_signs_its_depots_tokens_only() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("acme.key");
        std::fs::write(&file, b"acme's own secret, 32 bytes long!").unwrap();
        let carriers: crate::tenancy::Carriers = toml::from_str(&format!(
            "[acme]\ndepots = [\"north\"]\ntoken_secret_file = {:?}\n[zeta]\ndepots = [\"south\"]\n",
            file.display().to_string()
        ))
        .unwrap();
        let platform = TokenKey::new(b"0123456789abcdef0123456789abcdef");
        let keys = TokenKeys::load(platform.clone(), &carriers).unwrap();
        let acme = TokenKey::new(b"acme's own secret, 32 bytes long!");
        let of = |depot: &str| Claims {
            depot: depot.into(),
            ..claims(100)
        };
        // Acme's key signs Acme's depots; the gateway mints them with it.
        assert_eq!(
            keys.verify(&acme.mint(&of("north")), 0).unwrap(),
            of("north")
        );
        assert_eq!(
            acme.verify(&keys.mint(&of("north")), 0).unwrap(),
            of("north")
        );
        // Not Zeta's, nor a depot of no carrier.
        for depot in ["south", "elsewhere"] {
            let t = acme.mint(&of(depot));
            assert_eq!(keys.verify(&t, 0), Err(AuthError::BadSignature), "{depot}");
        }
        // The platform's key signs every depot's.
        for depot in ["north", "south", "elsewhere"] {
            assert!(
                keys.verify(&platform.mint(&of(depot)), 0).is_ok(),
                "{depot}"
            );
        }
        assert_eq!(
            keys.verify(&acme.mint(&of("north")), 100),
            Err(AuthError::Expired)
        );
        // A missing or short secret file stops the start, naming it.
        std::fs::write(&file, b"short").unwrap();
        let e = TokenKeys::load(platform, &carriers).unwrap_err();
        assert!(
            e.to_string().contains("carriers.acme.token_secret_file"),
            "{e}"
        );
    }

    #[test]
    fn forged_and_malformed_are_refused() {
        let key = TokenKey::new(b"0123456789abcdef0123456789abcdef");
        let other = TokenKey::new(b"another secret another secret 00");
        let t = other.mint(&claims(100));
        assert_eq!(key.verify(&t, 0), Err(AuthError::BadSignature));
        assert_eq!(key.verify("hello", 0), Err(AuthError::Malformed));
        assert_eq!(key.verify("mp1.x.y", 0), Err(AuthError::Malformed));
        // Changing the payload (role escalation) breaks the signature.
        let good = key.mint(&claims(100));
        let (_, sig) = good.rsplit_once('.').unwrap();
        let mut evil = claims(100);
        evil.role = Role::Dispatcher;
        let evil_payload = B64.encode(serde_json::to_vec(&evil).unwrap());
        let forged = format!("{PREFIX}{evil_payload}.{sig}");
        assert_eq!(key.verify(&forged, 0), Err(AuthError::BadSignature));
    }

    #[test]
    fn deny_list_by_subject_and_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("revoked.txt");
        let list = DenyList::new(&path);
        let claims = Claims {
            role: Role::Driver,
            sub: "D42".into(),
            depot: "x".into(),
            exp: 1,
            iat: 0,
            carrier: None,
        };
        assert!(!list.denies(&claims, "tok"));
        std::fs::write(
            &path,
            format!("# lost phone\ndriver:D42\n{}\n", fingerprint("other")),
        )
        .unwrap();
        assert!(list.reload().is_some());
        assert!(list.denies(&claims, "tok"));
        let mut c2 = claims.clone();
        c2.sub = "D7".into();
        assert!(!list.denies(&c2, "tok"));
        assert!(list.denies(&c2, "other"));
    }

    #[test]
    fn fingerprints_and_subject_keys_keep_their_format() {
        // SHA-256("abc") starts ba7816bf 8f01cfea: deny lists, webhook cursor files and the
        // cluster's revocation keys written before hold these names.
        assert_eq!(short_digest("abc"), "ba7816bf8f01cfea");
        assert_eq!(fingerprint("abc"), "fp:ba7816bf8f01cfea");
        assert_eq!(subject_key(Role::Dispatcher, "North"), "dispatcher:north");
    }
}
