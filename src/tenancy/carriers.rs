//! `[carriers.<id>]`: the carriers above the depots (a name, a time zone that decides their
//! days, a locale, a brand, and the depots they own). A depot no carrier lists belongs to the
//! carrier `default`. Checked at start-up: a depot owned twice, an unknown zone, a bad id or
//! brand stops it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::brand::BrandConfig;

/// The carrier of every depot no carrier lists.
pub const DEFAULT_CARRIER: &str = "default";

/// One carrier.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CarrierConfig {
    /// Its name, as shown.
    pub name: String,
    /// The IANA time zone of its days (analytics group routes by the local day of their
    /// planned start).
    pub time_zone: String,
    /// The depots it owns.
    pub depots: Vec<String>,
    /// How its pages and messages write times: a BCP 47 locale (`en-GB`: `14:05`, `Mon 7
    /// Dec`; `en-US`: `2:05 PM`, `Mon, Dec 7`). The region decides the clock; the words stay
    /// English.
    pub locale: String,
    /// Its recipients' pages (`[carriers.<id>.brand]`; absent: `[web.brand]` with this
    /// carrier's name).
    pub brand: Option<BrandConfig>,
    /// The name its e-mails come from (`From: <sender_name> <notify.email.from's address>`;
    /// absent: its `name`).
    pub sender_name: Option<String>,
    /// A file holding its own token secret (at least 32 bytes): tokens of its depots are
    /// signed with it, so the carrier can mint its own, for its depots only. Absent: the
    /// gateway's secret signs them.
    pub token_secret_file: Option<std::path::PathBuf>,
}

impl Default for CarrierConfig {
    fn default() -> Self {
        CarrierConfig {
            name: String::new(),
            time_zone: "UTC".into(),
            depots: Vec::new(),
            locale: "en-GB".into(),
            brand: None,
            sender_name: None,
            token_secret_file: None,
        }
    }
}

/// Every carrier, by id.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Carriers(pub BTreeMap<String, CarrierConfig>);

impl Carriers {
    /// Checks ids, zones and that no depot has two carriers.
    pub fn validate(&self) -> Result<(), String> {
        let mut owner: BTreeMap<&str, &str> = BTreeMap::new();
        for (id, c) in &self.0 {
            if !is_id(id) {
                return Err(format!(
                    "carriers.{id:?}: an id is 1-64 letters, digits, '-' or '_'"
                ));
            }
            if c.time_zone.parse::<chrono_tz::Tz>().is_err() {
                return Err(format!(
                    "carriers.{id}.time_zone: unknown time zone {:?}",
                    c.time_zone
                ));
            }
            if !is_locale(&c.locale) {
                return Err(format!(
                    "carriers.{id}.locale: {:?} is not a locale (a BCP 47 tag such as en-GB or en-US)",
                    c.locale
                ));
            }
            if id == DEFAULT_CARRIER && c.token_secret_file.is_some() {
                return Err(format!(
                    "carriers.{id}.token_secret_file: the default carrier has every depot no carrier lists, so its own secret would sign tokens for any depot name; give the depots to a carrier of their own"
                ));
            }
            if let Some(b) = &c.brand {
                b.validate(&format!("carriers.{id}.brand"))?;
            }
            for (what, v) in [
                ("name", Some(&c.name)),
                ("sender_name", c.sender_name.as_ref()),
            ] {
                if v.is_some_and(|v| v.chars().count() > 80 || v.chars().any(char::is_control)) {
                    return Err(format!(
                        "carriers.{id}.{what}: at most 80 characters, none of them control characters"
                    ));
                }
            }
            for d in &c.depots {
                if let Some(other) = owner.insert(d, id) {
                    return Err(format!(
                        "carriers.{id}.depots: depot {d:?} already belongs to carrier {other:?}"
                    ));
                }
            }
        }
        Ok(())
    }

    /// The carrier that owns `depot`.
    pub fn carrier_of(&self, depot: &str) -> &str {
        self.0
            .iter()
            .find(|(_, c)| c.depots.iter().any(|d| d == depot))
            .map_or(DEFAULT_CARRIER, |(id, _)| id.as_str())
    }

    /// A carrier's time zone (UTC for the default carrier unless configured).
    pub fn tz(&self, carrier: &str) -> chrono_tz::Tz {
        self.0
            .get(carrier)
            .and_then(|c| c.time_zone.parse().ok())
            .unwrap_or(chrono_tz::UTC)
    }

    /// The time zone of `depot`'s carrier: the zone its pages show times in.
    pub fn zone_of_depot(&self, depot: &str) -> chrono_tz::Tz {
        self.tz(self.carrier_of(depot))
    }

    /// How `depot`'s carrier writes times: its zone and its locale's clock.
    pub fn clock_of_depot(&self, depot: &str) -> milepost_core::present::LocalClock {
        let carrier = self.carrier_of(depot);
        let zone = self.tz(carrier);
        let locale = self.0.get(carrier).map_or("", |c| c.locale.as_str());
        milepost_core::present::LocalClock::of_locale(zone, locale)
    }

    /// The brand of `depot`'s pages: its carrier's own, else `fallback` (`[web.brand]`) under
    /// the carrier's name when it has one.
    pub fn brand_of_depot(&self, depot: &str, fallback: &BrandConfig) -> BrandConfig {
        let id = self.carrier_of(depot);
        match self.0.get(id) {
            Some(CarrierConfig { brand: Some(b), .. }) => BrandConfig {
                carrier: Some(id.to_owned()),
                ..b.clone()
            },
            Some(c) if !c.name.is_empty() => BrandConfig {
                name: c.name.clone(),
                ..fallback.clone()
            },
            _ => fallback.clone(),
        }
    }

    /// The name e-mails about `depot`'s parcels come from: its carrier's `sender_name`, else
    /// its `name` (none for a depot of no configured carrier, or a carrier without a name).
    pub fn sender_of_depot(&self, depot: &str) -> Option<&str> {
        let c = self.0.get(self.carrier_of(depot))?;
        c.sender_name
            .as_deref()
            .or(Some(c.name.as_str()).filter(|n| !n.is_empty()))
    }

    /// A carrier's own brand, if it has one.
    pub fn brand(&self, carrier: &str) -> Option<&BrandConfig> {
        self.0.get(carrier).and_then(|c| c.brand.as_ref())
    }

    /// True unless a token names a carrier other than its depot's now (tokens made before
    /// carriers existed name none): a depot that changed hands takes its old tokens' rights
    /// with it.
    pub fn token_fits(&self, carrier: Option<&str>, depot: &str) -> bool {
        carrier.is_none_or(|c| c == self.carrier_of(depot))
    }

    /// Known: configured, or the default carrier.
    pub fn knows(&self, carrier: &str) -> bool {
        carrier == DEFAULT_CARRIER || self.0.contains_key(carrier)
    }
}

/// `en`, `en-GB`, `zh-Hant-TW`: 2-3 letters, then parts of 2-8 letters or digits.
fn is_locale(s: &str) -> bool {
    let mut parts = s.split('-');
    let lang_ok = parts
        .next()
        .is_some_and(|l| (2..=3).contains(&l.len()) && l.chars().all(|c| c.is_ascii_alphabetic()));
    lang_ok
        && s.len() <= 35
        && parts.all(|p| (2..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()))
}

fn is_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn carriers(toml_text: &str) -> Carriers {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn depots_map_to_carriers_and_the_rest_to_the_default() {
        let c = carriers(
            "[acme]\nname = \"Acme\"\ntime_zone = \"Europe/Zagreb\"\ndepots = [\"north\"]\n",
        );
        c.validate().unwrap();
        assert_eq!(c.carrier_of("north"), "acme");
        assert_eq!(c.carrier_of("south"), DEFAULT_CARRIER);
        assert_eq!(c.tz("acme"), chrono_tz::Europe::Zagreb);
        assert!(c.knows("acme") && c.knows("default") && !c.knows("other"));
        assert!(c.token_fits(None, "north") && c.token_fits(Some("acme"), "north"));
        assert!(!c.token_fits(Some("default"), "north") && !c.token_fits(Some("acme"), "south"));
    }

    #[test]
    fn a_depot_owned_twice_or_a_bad_zone_is_refused() {
        let two = carriers("[a]\ndepots = [\"north\"]\n[b]\ndepots = [\"north\"]\n");
        assert!(two.validate().unwrap_err().contains("already belongs"));
        let zone = carriers("[a]\ntime_zone = \"Mars/Olympus\"\n");
        assert!(zone.validate().unwrap_err().contains("unknown time zone"));
        let id = carriers("[\"a b\"]\n");
        assert!(id.validate().is_err());
        let locale = carriers("[a]\nlocale = \"en_US!\"\n");
        assert!(locale
            .validate()
            .unwrap_err()
            .starts_with("carriers.a.locale"));
    }

    #[test]
    fn a_carriers_locale_sets_its_clock() {
        let c = carriers(
            "[us]\ntime_zone = \"America/Chicago\"\nlocale = \"en-US\"\ndepots = [\"dallas\"]\n[eu]\ndepots = [\"north\"]\n",
        );
        c.validate().unwrap();
        let us = c.clock_of_depot("dallas");
        assert!(us.hour12 && us.month_first);
        assert_eq!(us.zone, chrono_tz::America::Chicago);
        let eu = c.clock_of_depot("north");
        assert!(!eu.hour12 && !eu.month_first);
        assert_eq!(c.clock_of_depot("elsewhere"), chrono_tz::UTC.into());
    }
}
