//! The street map under the pages' drawings (`[web.map]`): a raster tile source (an XYZ URL
//! template) drawn by Leaflet, vendored in `web/vendor` and served from the binary. With no
//! source the pages keep their plain map (nothing fetched from anywhere); a source that fails
//! in the browser falls back to it (`web/map.js`).
//!
//! The section and its checks at start-up are `web::config::MapConfig`, the map element's
//! attributes and the page's extra head are drawn in `web::pages`; this file owns the pages'
//! content security policy, which must let the tiles in.

use axum::http::HeaderValue;

use crate::web::config::MapConfig;

/// [`page_csp`] as a header value.
pub fn csp_header(map: &MapConfig, frame_ancestors: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(&page_csp(map, frame_ancestors)).ok()
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
}
