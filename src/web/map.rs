//! The street map under the pages' drawings (`[web.map]`): a raster tile source (an XYZ URL
//! template) drawn by Leaflet, vendored in `web/vendor` and served from the binary. With no
//! source the pages keep their plain map (nothing fetched from anywhere); a source that fails
//! in the browser falls back to it (`web/map.js`).
//!
//! This file owns the section, its checks at start-up, the attributes that name the source to
//! the page's script, and the pages' content security policy, which must let the tiles in.

use serde::{Deserialize, Serialize};

use crate::web::pages::escape;

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

    /// The attributes of a page's map element that name the source to `web/map.js`
    /// (empty without one). The attribution is text: Leaflet shows it as markup, so it is
    /// escaped twice, once for the attribute and once for Leaflet.
    pub fn attributes(&self) -> String {
        match &self.tiles {
            Some(url) => format!(
                " data-tiles=\"{}\" data-attribution=\"{}\" data-max-zoom=\"{}\"",
                escape(url),
                escape(&escape(&self.attribution)),
                self.max_zoom
            ),
            None => String::new(),
        }
    }

    /// The style sheet and script a page with a street map loads before `map.js`.
    pub fn head(&self, version: &str) -> String {
        match self.tiles {
            Some(_) => format!(
                "<link rel=\"stylesheet\" href=\"/assets/leaflet.css?v={version}\">\
                 <script src=\"/assets/leaflet.js?v={version}\"></script>"
            ),
            None => String::new(),
        }
    }

    /// Where tiles come from, for the pages' `img-src` (`None`: no source, or an https one,
    /// which `https:` already allows).
    fn img_origin(&self) -> Option<&str> {
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
    crate::web::config::is_origin(origin).then_some(origin)
}

/// A page's content security policy: scripts and styles only from this listener, no inline
/// script; images from here, https, data URLs and the map's tile source; framing by
/// `frame_ancestors` (`'none'`, or the embedding origins).
pub fn page_csp(map: &MapConfig, frame_ancestors: &str) -> String {
    let tiles = map
        .img_origin()
        .map(|o| format!(" {o}"))
        .unwrap_or_default();
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' https: data:{tiles}; \
         connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors {frame_ancestors}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(url: &str) -> MapConfig {
        MapConfig {
            tiles: Some(url.into()),
            attribution: "© OpenStreetMap contributors".into(),
            max_zoom: 19,
        }
    }

    #[test]
    fn sources_are_checked_and_named() {
        MapConfig::default().validate().unwrap();
        with("https://tile.openstreetmap.org/{z}/{x}/{y}.png")
            .validate()
            .unwrap();
        with("http://127.0.0.1:8081/t/{z}/{x}/{y}.png")
            .validate()
            .unwrap();
        for bad in [
            "tile.example/{z}/{x}/{y}.png",
            "javascript:alert(1)//{z}{x}{y}",
            "https://tile.example/{z}/{x}.png",
            "https://tile.example/{z}/{x}/{y}.png\" onload=\"x",
            "https:///{z}/{x}/{y}",
        ] {
            let e = with(bad).validate().unwrap_err();
            assert!(e.starts_with("web.map.tiles"), "{bad}: {e}");
        }
        let mut c = with("https://tile.example/{z}/{x}/{y}.png");
        c.attribution = " ".into();
        assert!(c.validate().unwrap_err().starts_with("web.map.attribution"));
        c.attribution = "x".into();
        c.max_zoom = 30;
        assert!(c.validate().unwrap_err().starts_with("web.map.max_zoom"));
    }

    #[test]
    fn the_policy_lets_plain_http_tiles_in_only_from_their_origin() {
        let plain = page_csp(&MapConfig::default(), "'none'");
        assert!(plain.contains("img-src 'self' https: data:;"));
        let local = page_csp(&with("http://127.0.0.1:8081/t/{z}/{x}/{y}.png"), "'none'");
        assert!(local.contains("img-src 'self' https: data: http://127.0.0.1:8081;"));
        assert!(local.ends_with("frame-ancestors 'none'"));
        let https = page_csp(&with("https://tile.example/{z}/{x}/{y}.png"), "'none'");
        assert_eq!(https, plain);
    }

    #[test]
    fn attributes_are_escaped() {
        let mut c = with("https://tile.example/{z}/{x}/{y}.png?a=1&b=2");
        c.attribution = "<b>x</b>".into();
        let a = c.attributes();
        assert!(a.contains("data-tiles=\"https://tile.example/{z}/{x}/{y}.png?a=1&amp;b=2\""));
        assert!(a.contains("data-attribution=\"&amp;lt;b&amp;gt;x&amp;lt;/b&amp;gt;\""));
    }
}
