//! `[carriers.<id>]`: the carriers above the depots (a name, a time zone that decides their
//! days, and the depots they own). A depot no carrier lists belongs to the carrier `default`.
//! Checked at start-up: a depot owned twice, an unknown zone or a bad id stops it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

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
}

impl Default for CarrierConfig {
    fn default() -> Self {
        CarrierConfig {
            name: String::new(),
            time_zone: "UTC".into(),
            depots: Vec::new(),
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

    /// Known: configured, or the default carrier.
    pub fn knows(&self, carrier: &str) -> bool {
        carrier == DEFAULT_CARRIER || self.0.contains_key(carrier)
    }
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
    }

    #[test]
    fn a_depot_owned_twice_or_a_bad_zone_is_refused() {
        let two = carriers("[a]\ndepots = [\"north\"]\n[b]\ndepots = [\"north\"]\n");
        assert!(two.validate().unwrap_err().contains("already belongs"));
        let zone = carriers("[a]\ntime_zone = \"Mars/Olympus\"\n");
        assert!(zone.validate().unwrap_err().contains("unknown time zone"));
        let id = carriers("[\"a b\"]\n");
        assert!(id.validate().is_err());
    }
}
