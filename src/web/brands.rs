//! Carriers' brands set through the API (`PUT /api/v1/carriers/{carrier}/brand`), kept in
//! `DATA_DIR/brands.json` (a new file synced and renamed over the old), over the
//! configuration's `[carriers.<id>.brand]` (which brand a page wears is
//! [`crate::web::state::WebState::brand_of_depot`]'s to say). In a cluster the state bucket
//! holds them and every gateway keeps its file as the bucket says
//! ([`crate::cluster::brands`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use crate::tenancy::BrandConfig;

/// The brands set through the API, by carrier.
pub struct Brands {
    path: PathBuf,
    map: RwLock<BTreeMap<String, BrandConfig>>,
    /// Held through a write (file, then map), so that readers wait only for the swap.
    writing: std::sync::Mutex<()>,
}

impl Brands {
    /// Reads `DATA_DIR/brands.json` (none yet: no brands).
    pub fn open(data_dir: &Path) -> std::io::Result<Brands> {
        let path = data_dir.join("brands.json");
        let map = match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: {e}", path.display()),
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e),
        };
        Ok(Brands {
            path,
            map: RwLock::new(map),
            writing: std::sync::Mutex::new(()),
        })
    }

    /// Every brand set, by carrier.
    pub fn all(&self) -> Vec<(String, BrandConfig)> {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        map.iter().map(|(c, b)| (c.clone(), b.clone())).collect()
    }

    /// The brand set for `carrier`, if any.
    pub fn get(&self, carrier: &str) -> Option<BrandConfig> {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        map.get(carrier).cloned()
    }

    /// Sets (`Some`) or removes (`None`) `carrier`'s brand, durably. The file is renamed into
    /// place before the map changes: once it is, the brand holds (also after a restart) even
    /// if syncing its directory then fails.
    pub fn put(&self, carrier: &str, brand: Option<BrandConfig>) -> std::io::Result<()> {
        let _writing = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = self.map.read().unwrap_or_else(|p| p.into_inner()).clone();
        match brand {
            Some(b) => next.insert(carrier.to_owned(), b),
            None => next.remove(carrier),
        };
        let bytes = serde_json::to_vec_pretty(&next).map_err(std::io::Error::other)?;
        let tmp = self.path.with_extension("json.new");
        let _ = std::fs::remove_file(&tmp);
        crate::auth::write_private(&tmp, &bytes)?;
        std::fs::rename(&tmp, &self.path)?;
        *self.map.write().unwrap_or_else(|p| p.into_inner()) = next;
        std::fs::File::open(self.path.parent().unwrap_or(Path::new(".")))?.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brands_persist_and_go() {
        let dir = tempfile::tempdir().unwrap();
        let b = Brands::open(dir.path()).unwrap();
        let acme = BrandConfig {
            name: "Acme".into(),
            ..BrandConfig::default()
        };
        b.put("acme", Some(acme.clone())).unwrap();
        assert_eq!(Brands::open(dir.path()).unwrap().get("acme"), Some(acme));
        b.put("acme", None).unwrap();
        assert_eq!(Brands::open(dir.path()).unwrap().get("acme"), None);
        std::fs::write(dir.path().join("brands.json"), b"{not json").unwrap();
        assert!(Brands::open(dir.path()).is_err());
    }
}
