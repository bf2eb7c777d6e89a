//! [`WebConfig`]: the `[web]` section: the listener's address, the public base URL, the
//! carrier's brand on the pages, what the pages show of a driver, and the threads (and their
//! CPU priority) the listener runs on.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::tenancy::BrandConfig;

/// The web listener's settings (`[web]` in the configuration file).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    /// TCP address of the web listener. Off when unset (`serve --web-listen 127.0.0.1:8080`,
    /// `MILEPOST_WEB_LISTEN`, or `listen = "..."` here turns it on): a fixed default port would
    /// collide between gateways sharing a machine, tests included.
    pub listen: Option<SocketAddr>,
    /// Name, logo and colours of the pages.
    pub brand: BrandConfig,
    /// What recipients and dispatchers are told about a driver, by driver id. A driver with no
    /// entry is shown by nothing (recipients) or by id (dispatchers).
    pub drivers: BTreeMap<String, DriverDisplay>,
    /// Mark the token cookies `Secure` (only sent over HTTPS). Turn on when a TLS proxy fronts
    /// the listener; off by default because the listener itself speaks plain HTTP.
    pub secure_cookies: bool,
    /// Most event streams open at once; more are answered 503 (each costs a task and a
    /// mailbox).
    pub max_streams: usize,
    /// Largest radius of a "who is near here" query, metres.
    pub max_nearby_radius_m: f64,
    /// The public address of this listener as recipients reach it (`https://track.example`),
    /// for the tracking links the API hands out; links are relative paths when unset.
    pub public_url: Option<String>,
    /// The back-office API (`/api/v1`).
    pub api: ApiConfig,
    /// Origins (`https://shop.example`) that may frame the tracking page and read the status
    /// widget (`/t/{tracking}/widget`, with CORS). Needs `secure_cookies` (a framed page's
    /// cookie is a third-party one: `SameSite=None; Secure`, so HTTPS).
    pub embed_origins: Vec<String>,
    /// The street map under the pages' drawings (`[web.map]`).
    pub map: MapConfig,
    /// Threads of the listener's own runtime, apart from the gateway's (fix ingest, acks);
    /// 0 serves it on the gateway's runtime.
    pub threads: usize,
    /// The CPU priority (Unix nice, 0 to 19) of those threads: pages and lookups give way to
    /// drivers' fixes when the CPU is short. Ignored with `threads = 0`.
    pub nice: i32,
}

/// The back-office API's limits (`[web.api]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Requests per second per API key (or dispatcher token); a key may burst to `burst`.
    pub rate_per_s: u32,
    /// Requests a key may make at once after being idle.
    pub burst: u32,
    /// Largest JSON body, bytes (a route of a few hundred stops is well under).
    pub max_body_bytes: usize,
    /// Show the delivery photo and signature to the recipient on the tracking page.
    pub proofs_to_recipient: bool,
    /// Lifetime of a tracking link the API signs when the request names none, seconds.
    pub link_ttl_s: u64,
    /// How long the answer to a write is kept for its `Idempotency-Key`, seconds.
    pub idempotency_ttl_s: u64,
    /// Most answers kept for idempotency keys (the oldest go first).
    pub idempotency_max: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            rate_per_s: 200,
            burst: 400,
            max_body_bytes: 1024 * 1024,
            proofs_to_recipient: false,
            link_ttl_s: 14 * 86_400,
            idempotency_ttl_s: 86_400,
            idempotency_max: 100_000,
        }
    }
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            listen: None,
            brand: BrandConfig::default(),
            drivers: BTreeMap::new(),
            secure_cookies: false,
            embed_origins: Vec::new(),
            map: Default::default(),
            max_streams: 10_000,
            max_nearby_radius_m: 50_000.0,
            public_url: None,
            api: ApiConfig::default(),
            threads: 1,
            nice: 10,
        }
    }
}

/// How a driver is presented.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriverDisplay {
    /// First name only: recipients never see a driver's full name or id.
    pub first_name: String,
    /// The vehicle, e.g. "white Ford Transit".
    #[serde(default)]
    pub vehicle: Option<String>,
}

impl WebConfig {
    /// Checks the values that end up inside pages and style sheets.
    pub fn validate(&self) -> Result<(), String> {
        self.brand.validate("web.brand")?;
        for o in &self.embed_origins {
            if !is_origin(o) {
                return Err(format!(
                    "web.embed_origins: {o:?} is not an origin (http(s)://host[:port], no path)"
                ));
            }
        }
        if !self.embed_origins.is_empty() && !self.secure_cookies {
            return Err(
                "web.embed_origins needs web.secure_cookies = true (a framed page's cookie must be SameSite=None; Secure, so HTTPS)"
                    .into(),
            );
        }
        self.map.validate()?;
        if !(0..=19).contains(&self.nice) {
            return Err(format!("web.nice must be 0 to 19, not {}", self.nice));
        }
        if self.threads > 64 {
            return Err(format!("web.threads must be 0 to 64, not {}", self.threads));
        }
        if let Some(u) = &self.public_url {
            if !(u.starts_with("https://") || u.starts_with("http://")) || u.contains(['?', '#']) {
                return Err(format!(
                    "web.public_url must be http(s)://host[/path], not {u:?}"
                ));
            }
        }
        if self.api.rate_per_s == 0 || self.api.burst == 0 {
            return Err("web.api.rate_per_s and web.api.burst must be at least 1".into());
        }
        if !(self.max_nearby_radius_m > 0.0 && self.max_nearby_radius_m.is_finite()) {
            return Err("web.max_nearby_radius_m must be positive".into());
        }
        Ok(())
    }
}

/// `http(s)://host[:port]`: a scheme, a host of letters, digits, dots and dashes, an optional
/// port; nothing after.
pub fn is_origin(o: &str) -> bool {
    let Some(rest) = o
        .strip_prefix("https://")
        .or_else(|| o.strip_prefix("http://"))
    else {
        return false;
    };
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (rest, None),
    };
    !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        && port
            .is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.chars().all(|c| c.is_ascii_digit()))
}

/// `[web.map]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MapConfig {
    /// The raster tiles: an XYZ URL template with `{z}`, `{x}` and `{y}`, such as
    /// `https://tile.openstreetmap.org/{z}/{x}/{y}.png` (mind the provider's usage policy).
    /// Unset: the plain map.
    pub tiles: Option<String>,
    /// Shown on the map, as the tiles' licence asks (`© OpenStreetMap contributors`).
    /// Required with `tiles`.
    pub attribution: String,
    /// The highest zoom level the source serves.
    pub max_zoom: u8,
}

impl Default for MapConfig {
    fn default() -> Self {
        MapConfig {
            tiles: None,
            attribution: String::new(),
            max_zoom: 19,
        }
    }
}

impl MapConfig {
    /// Checks the section; errors name the key.
    pub fn validate(&self) -> Result<(), String> {
        let Some(url) = &self.tiles else {
            return Ok(());
        };
        if tile_origin(url).is_none() {
            return Err(format!(
                "web.map.tiles must be an http(s)://host[:port]/... URL, not {url:?}"
            ));
        }
        for part in ["{z}", "{x}", "{y}"] {
            if !url.contains(part) {
                return Err(format!("web.map.tiles has no {part}: {url:?}"));
            }
        }
        if url.chars().any(|c| {
            c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '<' | '>' | '\\')
        }) {
            return Err(format!(
                "web.map.tiles has a character a URL may not: {url:?}"
            ));
        }
        let a = self.attribution.trim();
        if a.is_empty() {
            return Err("web.map.attribution is required with web.map.tiles (the tiles' licence asks for it)".into());
        }
        if a.chars().count() > 300 {
            return Err("web.map.attribution is longer than 300 characters".into());
        }
        if !(1..=22).contains(&self.max_zoom) {
            return Err(format!(
                "web.map.max_zoom must be 1 to 22, not {}",
                self.max_zoom
            ));
        }
        Ok(())
    }

    /// Where tiles come from, for the pages' `img-src` (`None`: no source, or an https one,
    /// which `https:` already allows).
    pub fn img_origin(&self) -> Option<&str> {
        self.tiles
            .as_deref()
            .and_then(tile_origin)
            .filter(|o| !o.starts_with("https://"))
    }
}

/// `scheme://host[:port]` of a tile URL template.
fn tile_origin(url: &str) -> Option<&str> {
    let scheme_end = url.find("://")? + 3;
    let rest = &url[scheme_end..];
    let end = scheme_end + rest.find('/')?;
    let origin = &url[..end];
    is_origin(origin).then_some(origin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_and_logo_urls_are_checked() {
        let mut c = WebConfig::default();
        c.validate().unwrap();
        c.brand.primary = "red;}body{display:none".into();
        assert!(c.validate().is_err());
        c.brand.primary = "#abc".into();
        c.brand.logo_url = Some("javascript:alert(1)".into());
        assert!(c.validate().is_err());
        c.brand.logo_url = Some("//evil.example/x.png".into());
        assert!(c.validate().is_err());
        c.brand.logo_url = Some("https://cdn.example/logo.png".into());
        c.validate().unwrap();
    }

    #[test]
    fn config_round_trips_as_toml() {
        let mut c = WebConfig {
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 8080))),
            ..Default::default()
        };
        c.drivers.insert(
            "D1".into(),
            DriverDisplay {
                first_name: "Ana".into(),
                vehicle: Some("white van".into()),
            },
        );
        let text = toml::to_string_pretty(&c).unwrap();
        let back: WebConfig = toml::from_str(&text).unwrap();
        assert_eq!(back, c);
    }
}
