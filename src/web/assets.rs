//! Static files and branding. The scripts and style sheet in the repository's `web/` folder are
//! embedded in the binary (`ASSETS`), gzipped once on first use, and versioned by a hash of
//! their bytes ([`asset_version`]: pages link `?v=TAG`, so they can be cached for a year). The
//! carrier's colours are a small style sheet ([`brand_css`]) and its logo is either a URL or an
//! inline SVG served here ([`brand_logo`], [`logo_src`]).

use std::sync::{Arc, OnceLock};

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::tenancy::BrandConfig;
use crate::web::error::WebError;
use crate::web::respond::{set_headers, with_headers, NOSNIFF};
use crate::web::state::WebState;

/// A static file embedded in the binary, with its gzip form made once.
struct Asset {
    /// Its name under `/assets/`.
    name: &'static str,
    /// Its `Content-Type`.
    mime: &'static str,
    /// Its text.
    body: &'static str,
}

/// The embedded files, served at `/assets/{name}`.
const ASSETS: &[Asset] = &[
    Asset {
        name: "style.css",
        mime: "text/css; charset=utf-8",
        body: include_str!("../../web/style.css"),
    },
    Asset {
        name: "track.js",
        mime: "text/javascript; charset=utf-8",
        body: include_str!("../../web/track.js"),
    },
    Asset {
        name: "dispatch.js",
        mime: "text/javascript; charset=utf-8",
        body: include_str!("../../web/dispatch.js"),
    },
    Asset {
        name: "map.js",
        mime: "text/javascript; charset=utf-8",
        body: include_str!("../../web/map.js"),
    },
    Asset {
        name: "live.js",
        mime: "text/javascript; charset=utf-8",
        body: include_str!("../../web/live.js"),
    },
    Asset {
        name: "dashboard.js",
        mime: "text/javascript; charset=utf-8",
        body: include_str!("../../web/dashboard.js"),
    },
    // Leaflet (BSD-2-Clause), the street map: see web/vendor/README.md.
    Asset {
        name: "leaflet.js",
        mime: "text/javascript; charset=utf-8",
        body: include_str!("../../web/vendor/leaflet.js"),
    },
    Asset {
        name: "leaflet.css",
        mime: "text/css; charset=utf-8",
        body: include_str!("../../web/vendor/leaflet.css"),
    },
    // uPlot (MIT), the dashboard's charts: see web/vendor/README.md.
    Asset {
        name: "uPlot.iife.min.js",
        mime: "text/javascript; charset=utf-8",
        body: include_str!("../../web/vendor/uPlot.iife.min.js"),
    },
    Asset {
        name: "uPlot.min.css",
        mime: "text/css; charset=utf-8",
        body: include_str!("../../web/vendor/uPlot.min.css"),
    },
];

/// Version tag of the embedded assets (a hash of their bytes): pages link `?v=TAG`, so assets
/// can be cached for a year and a new build is fetched at once.
pub fn asset_version() -> &'static str {
    static V: OnceLock<String> = OnceLock::new();
    V.get_or_init(|| {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for a in ASSETS {
            for b in a.body.bytes() {
                h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
            }
        }
        format!("{:012x}", h & 0xffff_ffff_ffff)
    })
}

fn gzipped(i: usize) -> &'static [u8] {
    static Z: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    let all = Z.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                use std::io::Write;
                let mut enc =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
                // Writing to a Vec cannot fail.
                let _ = enc.write_all(a.body.as_bytes());
                enc.finish().unwrap_or_default()
            })
            .collect()
    });
    all.get(i).map(Vec::as_slice).unwrap_or_default()
}

fn accepts_gzip(h: &HeaderMap) -> bool {
    h.get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',')
                .any(|e| e.trim().split(';').next() == Some("gzip"))
        })
}

/// `GET /assets/{file}`: an embedded file, gzipped when the browser takes it.
pub async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    let Some(i) = ASSETS.iter().position(|a| a.name == file) else {
        return WebError::NotFound("no such file".into()).into_response();
    };
    let a = &ASSETS[i];
    let gz = accepts_gzip(&headers) && !gzipped(i).is_empty();
    let mut r = if gz {
        (StatusCode::OK, gzipped(i)).into_response()
    } else {
        (StatusCode::OK, a.body).into_response()
    };
    let h = r.headers_mut();
    set_headers(
        h,
        &[
            (header::CONTENT_TYPE, a.mime),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            (header::VARY, "accept-encoding"),
            NOSNIFF,
        ],
    );
    if gz {
        set_headers(h, &[(header::CONTENT_ENCODING, "gzip")]);
    }
    r
}

/// How long browsers may keep the brand's style sheet and logo (they follow the configuration).
const BRAND_CACHE: &str = "public, max-age=300";

/// The brand colours as CSS custom properties (validated at start, so nothing can escape).
pub fn brand_css_text(b: &BrandConfig) -> String {
    format!(
        ":root{{--brand:{};--on-brand:{};--bg:{};--ink:{}}}\n",
        b.primary, b.on_primary, b.background, b.text
    )
}

/// Which brand `/brand.css` and `/brand/logo.svg` serve: a carrier's own (`?carrier=ID`), else
/// the gateway's.
#[derive(Debug, Default, serde::Deserialize)]
pub struct BrandQuery {
    carrier: Option<String>,
}

/// The query that names `b`'s carrier on its style sheet and logo (empty for the gateway's).
pub fn of_carrier(b: &BrandConfig) -> String {
    b.carrier
        .as_ref()
        .map(|c| format!("?carrier={c}"))
        .unwrap_or_default()
}

/// `GET /brand.css`: the brand colours.
pub async fn brand_css(
    State(st): State<Arc<WebState>>,
    q: Result<axum::extract::Query<BrandQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let q = q.map(|q| q.0).unwrap_or_default();
    with_headers(
        brand_css_text(&st.brand_of_carrier(q.carrier.as_deref())),
        &[
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, BRAND_CACHE),
        ],
    )
}

/// `GET /brand/logo.svg`: the configured inline SVG logo.
pub async fn brand_logo(
    State(st): State<Arc<WebState>>,
    q: Result<axum::extract::Query<BrandQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let q = q.map(|q| q.0).unwrap_or_default();
    let brand = st.brand_of_carrier(q.carrier.as_deref());
    let Some(svg) = brand.logo_svg else {
        return WebError::NotFound("no logo".into()).into_response();
    };
    with_headers(
        svg,
        &[
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, BRAND_CACHE),
            // Opened directly, the SVG still may not run anything.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'",
            ),
            NOSNIFF,
        ],
    )
}

/// The URL of the brand logo, if any (already validated).
pub fn logo_src(b: &BrandConfig) -> Option<String> {
    match (&b.logo_url, &b.logo_svg) {
        (Some(u), _) => Some(u.clone()),
        (None, Some(_)) => Some(format!("/brand/logo.svg{}", of_carrier(b))),
        (None, None) => None,
    }
}
