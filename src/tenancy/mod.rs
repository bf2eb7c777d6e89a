//! Carriers as tenants above depots, and the one rule that keeps them apart.
//!
//! A carrier (`[carriers.<id>]`, [`Carriers`]) owns depots; a depot no carrier lists belongs
//! to the carrier [`DEFAULT_CARRIER`], so a gateway configured before carriers existed is one
//! carrier's. Routes, drivers, parcels and their history belong to the carrier of their
//! depot. Every credential speaks for a [`Tenant`]: an API key names its carrier (or the
//! platform, `*`), a token's carrier is its depot's (and, when the token names one, must be
//! it). Every entry that shows a depot's data asks [`Tenant::admits`]; nothing else decides
//! which carrier sees what.
//!
//! A carrier's brand (`[carriers.<id>.brand]`, [`BrandConfig`]) dresses its recipients' pages,
//! and its name and locale its messages.

mod brand;
mod carriers;

pub use brand::BrandConfig;
pub use carriers::{CarrierConfig, Carriers, DEFAULT_CARRIER};

/// Whom a credential speaks for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Tenant {
    /// The platform's operator: every carrier (API keys made with `--carrier '*'`, and keys
    /// made before carriers existed).
    Platform,
    /// One carrier, by id.
    Carrier(String),
}

impl Tenant {
    /// The tenant an API key's `carrier` field names (`None` or `*`: the platform).
    pub fn of_key(carrier: Option<&str>) -> Tenant {
        match carrier {
            None | Some("*") => Tenant::Platform,
            Some(c) => Tenant::Carrier(c.to_owned()),
        }
    }

    /// May this tenant see `depot` at all (its role and depot scopes decide the rest)?
    pub fn admits(&self, carriers: &Carriers, depot: &str) -> bool {
        match self {
            Tenant::Platform => true,
            Tenant::Carrier(c) => carriers.carrier_of(depot) == c,
        }
    }

    /// The carrier, if one.
    pub fn carrier(&self) -> Option<&str> {
        match self {
            Tenant::Platform => None,
            Tenant::Carrier(c) => Some(c),
        }
    }
}

impl std::fmt::Display for Tenant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Tenant::Platform => f.write_str("*"),
            Tenant::Carrier(c) => f.write_str(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_carrier_admits_its_depots_only_and_the_platform_all() {
        let c: Carriers =
            toml::from_str("[acme]\ndepots = [\"north\"]\n[zeta]\ndepots = [\"south\"]\n").unwrap();
        let acme = Tenant::of_key(Some("acme"));
        assert!(acme.admits(&c, "north"));
        assert!(!acme.admits(&c, "south") && !acme.admits(&c, "unlisted"));
        let default = Tenant::of_key(Some(DEFAULT_CARRIER));
        assert!(default.admits(&c, "unlisted") && !default.admits(&c, "north"));
        for p in [Tenant::of_key(None), Tenant::of_key(Some("*"))] {
            assert_eq!(p, Tenant::Platform);
            assert!(p.admits(&c, "north") && p.admits(&c, "south") && p.admits(&c, "x"));
        }
    }
}
