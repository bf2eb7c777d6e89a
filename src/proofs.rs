//! Proof-of-delivery files (photos, signatures), content-addressed under
//! `DATA_DIR/proofs/ab/abcdef...` by the SHA-256 an outcome carries.
//!
//! A file is accepted only if its bytes hash to the name it is uploaded under and it is no
//! larger than the limit; it is written to a temporary name, synced, then renamed into place,
//! so a reader never sees half a file and a crash leaves at most a stray temporary file.
//! Uploading the same file twice stores it once.
//!
//! Files come over HTTP (`PUT /api/v1/proofs/{sha256}`) or a driver session's upload stream
//! (PROTOCOL.md section 6.11); both end in [`ProofStore::put`]. The `[proofs]` section of the
//! configuration ([`ProofsConfig`]) is owned here.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The proof files' settings (`[proofs]` in the configuration file).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProofsConfig {
    /// Largest proof file (photo, signature), bytes, over HTTP and QUIC alike.
    pub max_bytes: usize,
    /// QUIC uploads received at once, gateway-wide (each holds up to `max_bytes` in memory);
    /// more wait their turn.
    pub max_concurrent_uploads: usize,
    /// Longest a QUIC upload may take from its header to its last byte, seconds.
    pub upload_timeout_s: u64,
}

impl Default for ProofsConfig {
    fn default() -> Self {
        ProofsConfig {
            max_bytes: 8 * 1024 * 1024,
            max_concurrent_uploads: 16,
            upload_timeout_s: 120,
        }
    }
}

/// Why a proof file was refused or not stored.
#[derive(Debug, thiserror::Error)]
pub enum ProofError {
    /// The name is not 64 lower-case hex digits.
    #[error("a proof is named by its SHA-256: 64 lower-case hex digits")]
    BadName,
    /// The bytes hash to something else.
    #[error("the file's SHA-256 is {actual}, not {expected}")]
    DigestMismatch {
        /// The name it was uploaded under.
        expected: String,
        /// What its bytes hash to.
        actual: String,
    },
    /// Larger than the limit.
    #[error("proof files are at most {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// Empty.
    #[error("an empty file is no proof")]
    Empty,
    /// The disk failed.
    #[error("storing the proof: {0}")]
    Io(#[from] std::io::Error),
}

/// The proof file store of one data directory.
#[derive(Debug, Clone)]
pub struct ProofStore {
    dir: PathBuf,
    max_bytes: usize,
    /// Places for uploads being received (QUIC), so memory stays bounded.
    uploads: Arc<tokio::sync::Semaphore>,
    upload_timeout: std::time::Duration,
}

/// The SHA-256 of `bytes`, lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// True for 64 lower-case hex digits.
pub fn valid_name(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl ProofStore {
    /// The store under `data_dir/proofs`, configured by `cfg`.
    pub fn new(data_dir: &Path, cfg: &ProofsConfig) -> ProofStore {
        ProofStore {
            dir: data_dir.join("proofs"),
            max_bytes: cfg.max_bytes,
            uploads: Arc::new(tokio::sync::Semaphore::new(
                cfg.max_concurrent_uploads.max(1),
            )),
            upload_timeout: std::time::Duration::from_secs(cfg.upload_timeout_s.max(1)),
        }
    }

    /// The largest file taken.
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// A place to receive one upload in; waits while `max_concurrent_uploads` are under way.
    pub async fn upload_slot(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.uploads.clone().acquire_owned().await.ok()
    }

    /// Longest one upload may take.
    pub fn upload_timeout(&self) -> std::time::Duration {
        self.upload_timeout
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(&name[..2]).join(name)
    }

    /// Stores `bytes` under `name` after checking both; true if it was new.
    pub fn put(&self, name: &str, bytes: &[u8]) -> Result<bool, ProofError> {
        if !valid_name(name) {
            return Err(ProofError::BadName);
        }
        if bytes.is_empty() {
            return Err(ProofError::Empty);
        }
        if bytes.len() > self.max_bytes {
            return Err(ProofError::TooLarge {
                limit: self.max_bytes,
            });
        }
        let actual = sha256_hex(bytes);
        if actual != name {
            return Err(ProofError::DigestMismatch {
                expected: name.to_owned(),
                actual,
            });
        }
        let path = self.path(name);
        if path.exists() {
            return Ok(false);
        }
        let parent = path.parent().unwrap_or(&self.dir);
        std::fs::create_dir_all(parent)?;
        let tmp = parent.join(format!(".{name}.{}.tmp", std::process::id()));
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &path)?;
        // The new directory entry is durable once the directory is synced.
        std::fs::File::open(parent)?.sync_all()?;
        Ok(true)
    }

    /// True if a file named `name` is stored.
    pub fn has(&self, name: &str) -> bool {
        valid_name(name) && self.path(name).is_file()
    }

    /// The file named `name`, if stored.
    pub fn get(&self, name: &str) -> Result<Option<Vec<u8>>, ProofError> {
        if !valid_name(name) {
            return Err(ProofError::BadName);
        }
        match std::fs::read(self.path(name)) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(max_bytes: usize) -> ProofsConfig {
        ProofsConfig {
            max_bytes,
            ..ProofsConfig::default()
        }
    }

    #[test]
    fn a_file_is_stored_under_its_digest_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = ProofStore::new(dir.path(), &small(1024));
        let photo = b"\x89PNG not really";
        let name = sha256_hex(photo);
        assert!(!store.has(&name));
        assert!(store.put(&name, photo).unwrap());
        assert!(!store.put(&name, photo).unwrap());
        assert!(store.has(&name));
        assert_eq!(store.get(&name).unwrap().unwrap(), photo);
    }

    #[test]
    fn bad_uploads_are_refused_and_store_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = ProofStore::new(dir.path(), &small(8));
        let other = sha256_hex(b"other");
        assert!(matches!(
            store.put(&other, b"bytes"),
            Err(ProofError::DigestMismatch { .. })
        ));
        assert!(matches!(store.put("ABC", b"x"), Err(ProofError::BadName)));
        assert!(matches!(
            store.put(&"A".repeat(64), b"x"),
            Err(ProofError::BadName)
        ));
        let big = b"123456789";
        assert!(matches!(
            store.put(&sha256_hex(big), big),
            Err(ProofError::TooLarge { limit: 8 })
        ));
        assert!(matches!(
            store.put(&sha256_hex(b""), b""),
            Err(ProofError::Empty)
        ));
        assert!(!dir.path().join("proofs").exists());
        assert!(matches!(store.get("../etc"), Err(ProofError::BadName)));
        assert!(store.get(&other).unwrap().is_none());
    }
}
