//! [`BrandConfig`]: how a carrier's pages look (name, logo, colours), checked at start-up
//! because its values end up inside pages and style sheets. The gateway's own brand is
//! `[web.brand]`; a carrier's is `[carriers.<id>.brand]`.

use serde::{Deserialize, Serialize};

/// Branding of the pages.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct BrandConfig {
    /// Shown in the header and the title.
    pub name: String,
    /// Logo image URL (`https://...` or a path on this listener); shown left of the name.
    pub logo_url: Option<String>,
    /// Inline SVG logo, served at `/brand/logo.svg` (used when `logo_url` is unset). It is
    /// shown through an `<img>`, where an SVG cannot run scripts.
    pub logo_svg: Option<String>,
    /// Header and button colour, `#rgb` or `#rrggbb`.
    pub primary: String,
    /// Text on the primary colour.
    pub on_primary: String,
    /// Page background.
    pub background: String,
    /// Body text.
    pub text: String,
    /// The carrier whose brand this is (set when a page wears a carrier's own brand: its style
    /// sheet and logo are served under the carrier's id). Not configured.
    #[serde(skip)]
    pub carrier: Option<String>,
}

impl Default for BrandConfig {
    fn default() -> Self {
        BrandConfig {
            name: "Milepost".into(),
            logo_url: None,
            logo_svg: None,
            primary: "#0b5fff".into(),
            on_primary: "#ffffff".into(),
            background: "#f3f5f9".into(),
            text: "#17202c".into(),
            carrier: None,
        }
    }
}

impl BrandConfig {
    /// Checks the values that end up inside pages and style sheets; `at` names the section
    /// in errors (`web.brand`, `carriers.acme.brand`).
    pub fn validate(&self, at: &str) -> Result<(), String> {
        for (what, c) in [
            ("primary", &self.primary),
            ("on_primary", &self.on_primary),
            ("background", &self.background),
            ("text", &self.text),
        ] {
            if !is_colour(c) {
                return Err(format!("{at}.{what} must be #rgb or #rrggbb, not {c:?}"));
            }
        }
        if let Some(u) = &self.logo_url {
            // Only http(s) or a local path: a `javascript:` or `data:` URL has no place in a page.
            if !(u.starts_with("https://")
                || u.starts_with("http://")
                || (u.starts_with('/') && !u.starts_with("//")))
            {
                return Err(format!(
                    "{at}.logo_url must be http(s):// or /path, not {u:?}"
                ));
            }
        }
        if self.name.chars().count() > 80 || self.name.chars().any(char::is_control) {
            return Err(format!(
                "{at}.name: at most 80 characters, none of them control characters"
            ));
        }
        if self
            .logo_svg
            .as_ref()
            .is_some_and(|svg| svg.len() > MAX_SVG)
        {
            return Err(format!(
                "{at}.logo_svg is larger than {} KiB",
                MAX_SVG / 1024
            ));
        }
        Ok(())
    }
}

/// The largest inline SVG logo, bytes.
const MAX_SVG: usize = 64 * 1024;

fn is_colour(c: &str) -> bool {
    c.strip_prefix('#')
        .is_some_and(|h| matches!(h.len(), 3 | 6) && h.chars().all(|c| c.is_ascii_hexdigit()))
}
