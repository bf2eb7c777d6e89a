//! Drivers' profiles as recipients see them (first name, vehicle, photo), set by the back office
//! through the API (`PUT /api/v1/drivers/{driver}/profile`) and kept in
//! `DATA_DIR/drivers.json` (written to a temporary file, synced, renamed). The `[web.drivers]`
//! table of the configuration stays as the fallback for drivers without a profile. A profile is
//! shown to a recipient only once the driver is on the way to the recipient's stop
//! ([`crate::web`]'s parcel view). One gateway's: in a cluster each gateway keeps the profiles
//! set through it. Each profile remembers the carrier whose key set it (a platform key sets
//! none), so that another carrier's key cannot read or change it.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use serde::{Deserialize, Serialize};

/// A driver's profile.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DriverProfile {
    /// First name (1-50 bytes, no control characters).
    pub first_name: String,
    /// The vehicle, as recipients would recognise it ("white Ford Transit, ZG 123-AB").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vehicle: Option<String>,
    /// A photo, `https://` (at most 500 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub photo_url: Option<String>,
}

fn plain(s: &str, max: usize) -> bool {
    let t = s.trim();
    !t.is_empty() && t.len() <= max && !t.chars().any(char::is_control)
}

impl DriverProfile {
    /// Checks every field; the error names the field.
    pub fn check(&self) -> Result<(), (&'static str, &'static str)> {
        if !plain(&self.first_name, 50) {
            return Err((
                "first_name",
                "a first name is 1 to 50 bytes without control characters",
            ));
        }
        if self.vehicle.as_deref().is_some_and(|v| !plain(v, 100)) {
            return Err((
                "vehicle",
                "a vehicle is 1 to 100 bytes without control characters",
            ));
        }
        if let Some(u) = &self.photo_url {
            let ok = u.starts_with("https://")
                && u.len() <= 500
                && !u
                    .chars()
                    .any(|c| c.is_control() || c.is_whitespace() || c == '"');
            if !ok {
                return Err((
                    "photo_url",
                    "a photo is an https:// URL of at most 500 bytes",
                ));
            }
        }
        Ok(())
    }
}

/// The file: profiles and the carriers that set them (the first form was the bare map of
/// profiles).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct File {
    profiles: BTreeMap<String, DriverProfile>,
    #[serde(default)]
    carriers: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum AnyFile {
    Now(File),
    First(BTreeMap<String, DriverProfile>),
}

/// The profiles, in memory and in their file.
pub struct DriverProfiles {
    path: PathBuf,
    map: RwLock<File>,
}

impl DriverProfiles {
    /// Reads `DATA_DIR/drivers.json` (none yet: no profiles).
    pub fn open(data_dir: &Path) -> std::io::Result<DriverProfiles> {
        let path = data_dir.join("drivers.json");
        let map = match std::fs::read(&path) {
            Ok(b) => match serde_json::from_slice(&b).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: {e}", path.display()),
                )
            })? {
                AnyFile::Now(f) => f,
                AnyFile::First(profiles) => File {
                    profiles,
                    carriers: BTreeMap::new(),
                },
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => File::default(),
            Err(e) => return Err(e),
        };
        Ok(DriverProfiles {
            path,
            map: RwLock::new(map),
        })
    }

    /// A driver's profile.
    pub fn get(&self, driver: &str) -> Option<DriverProfile> {
        self.map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .profiles
            .get(driver)
            .cloned()
    }

    /// The carrier whose key set a driver's profile (none: no profile, or a platform key's).
    pub fn carrier_of(&self, driver: &str) -> Option<String> {
        self.map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .carriers
            .get(driver)
            .cloned()
    }

    /// Sets (`Some`) or removes (`None`) a driver's profile, durably, as set by `carrier`
    /// (none: the platform); true if one was there.
    pub fn put(
        &self,
        driver: &str,
        p: Option<DriverProfile>,
        carrier: Option<&str>,
    ) -> std::io::Result<bool> {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        let mut next = map.clone();
        let had = match p {
            Some(p) => next.profiles.insert(driver.to_owned(), p).is_some(),
            None => next.profiles.remove(driver).is_some(),
        };
        match carrier.filter(|_| next.profiles.contains_key(driver)) {
            Some(c) => next.carriers.insert(driver.to_owned(), c.to_owned()),
            None => next.carriers.remove(driver),
        };
        let bytes = serde_json::to_vec_pretty(&next).map_err(std::io::Error::other)?;
        let tmp = self.path.with_extension("json.tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        *map = next;
        Ok(had)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marko() -> DriverProfile {
        DriverProfile {
            first_name: "Marko".into(),
            vehicle: Some("white van".into()),
            photo_url: Some("https://cdn.example/marko.jpg".into()),
        }
    }

    #[test]
    fn profiles_persist_and_bad_fields_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = DriverProfiles::open(dir.path()).unwrap();
        assert!(!p.put("D1", Some(marko()), Some("acme")).unwrap());
        let again = DriverProfiles::open(dir.path()).unwrap();
        assert_eq!(again.get("D1"), Some(marko()));
        assert_eq!(again.carrier_of("D1").as_deref(), Some("acme"));
        assert!(p.put("D1", None, Some("acme")).unwrap());
        let again = DriverProfiles::open(dir.path()).unwrap();
        assert_eq!((again.get("D1"), again.carrier_of("D1")), (None, None));
        // A file of the first form (a bare map of profiles) still opens.
        std::fs::write(
            dir.path().join("drivers.json"),
            serde_json::to_vec(&BTreeMap::from([("D2".to_owned(), marko())])).unwrap(),
        )
        .unwrap();
        let first = DriverProfiles::open(dir.path()).unwrap();
        assert_eq!(
            (first.get("D2"), first.carrier_of("D2")),
            (Some(marko()), None)
        );
        let bad = |f: fn(&mut DriverProfile)| {
            let mut m = marko();
            f(&mut m);
            m.check().unwrap_err().0
        };
        assert_eq!(bad(|m| m.first_name = " ".into()), "first_name");
        assert_eq!(bad(|m| m.first_name = "Ma\nrko".into()), "first_name");
        assert_eq!(bad(|m| m.vehicle = Some("x".repeat(101))), "vehicle");
        assert_eq!(
            bad(|m| m.photo_url = Some("javascript:alert(1)".into())),
            "photo_url"
        );
        assert_eq!(
            bad(|m| m.photo_url = Some("https://a\" onerror=x".into())),
            "photo_url"
        );
    }
}
