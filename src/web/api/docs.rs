//! The API's documentation: the OpenAPI 3.1 document generated from the handlers
//! (`/api/v1/openapi.json`), the parts every operation shares ([`Common`]: the bearer
//! security scheme and the error answers), and a reference page rendered from the same
//! document on the server (`/api/v1/docs`: plain HTML with the listener's style sheet, no
//! script, nothing fetched from elsewhere).

use std::fmt::Write;
use std::sync::OnceLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, OpenApi as Doc, Ref, RefOr, ResponseBuilder, Schema, SecurityRequirement,
};
use utoipa::{Modify, OpenApi};

use crate::web::pages::{escape, html};
use crate::web::respond::with_headers;

/// The OpenAPI document of `/api/v1`.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Milepost back-office API",
        description = "Routes, parcels, outcomes, proof files and drivers of a Milepost \
                       gateway. Authenticate with an API key (`milepost key create`) or a \
                       dispatcher token as `Authorization: Bearer`. Errors are \
                       `{code, message, field}`. Writes take an `Idempotency-Key` header. \
                       Lists are paginated with `cursor` and `limit`."
    ),
    paths(
        crate::web::api::routes::put_route,
        crate::web::api::routes::create_route,
        crate::web::api::routes::list_routes,
        crate::web::api::routes::get_route,
        crate::web::api::routes::cancel_route,
        crate::web::api::routes::resequence,
        crate::web::api::routes::add_stop,
        crate::web::api::routes::remove_stop,
        crate::web::api::parcels::get_parcel,
        crate::web::api::parcels::bulk_status,
        crate::web::api::parcels::tracking_link,
        crate::web::api::parcels::record_outcome,
        crate::web::api::drivers::get_driver,
        crate::web::api::drivers::depot_drivers,
        crate::web::api::drivers::put_profile,
        crate::web::api::drivers::get_profile,
        crate::web::api::drivers::delete_profile,
        crate::web::api::proofs::put_proof,
        crate::web::api::proofs::get_proof,
        crate::web::api::alerts::list_alerts,
        crate::web::api::alerts::acknowledge,
        crate::web::api::alerts::resolve,
        crate::web::api::exceptions::list_exceptions,
        crate::web::api::webhooks::list_webhooks,
        crate::web::api::webhooks::add_webhook,
        crate::web::api::webhooks::remove_webhook,
        crate::web::api::carriers::get_carrier,
        crate::web::api::carriers::put_brand,
        crate::web::api::carriers::delete_brand,
        crate::web::api::recipients::put_recipient,
        crate::web::api::recipients::get_recipient,
        crate::web::api::recipients::delete_recipient,
        crate::web::api::recipients::parcel_notifications,
        crate::web::api::recipients::list_dead,
        crate::web::api::recipients::retry_dead,
        crate::web::api::recipients::dismiss_dead,
        crate::web::api::service::get_delivery,
        crate::web::api::service::post_delivery,
        crate::web::api::service::get_messages,
        crate::web::api::analytics::get_analytics,
        crate::web::api::analytics::get_export,
    ),
    modifiers(&Common),
    tags(
        (name = "routes", description = "A depot's routes: assign, follow, change, cancel"),
        (name = "parcels", description = "Parcel status, history, tracking links, outcomes"),
        (name = "drivers", description = "Live positions and current routes"),
        (name = "proofs", description = "Proof-of-delivery photos and signatures"),
        (name = "alerts", description = "A depot's exceptions: list, acknowledge, resolve"),
        (name = "webhooks", description = "Endpoints that receive every milestone, signed"),
        (name = "carriers", description = "A carrier's settings and the brand of its pages"),
        (name = "recipients", description = "Recipients' contacts, the messages they were sent, dead letters"),
        (name = "analytics", description = "On-time, first-attempt, failure and ETA figures; Parquet exports"),
    )
)]
pub struct ApiDoc;

/// The error answers every operation may give, with the statuses of [`super::error`].
const ERRORS: &[(&str, &str)] = &[
    ("400", "Malformed request (`field` names what)"),
    ("401", "No credentials, or not good ones"),
    ("403", "Credentials that do not cover this"),
    ("404", "Unknown (or not the caller's)"),
    ("409", "Conflicts with the live state"),
    ("413", "Body over the limit"),
    ("415", "Body not JSON"),
    ("422", "Well-formed but refused"),
    ("429", "Over the key's rate (see Retry-After)"),
    ("500", "Internal failure (the history database)"),
    ("503", "Busy: retry later (see Retry-After)"),
];

/// Adds the bearer security scheme, and the security requirement and the error answers to
/// every operation.
pub struct Common;

fn operations(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.patch,
    ]
    .into_iter()
    .filter_map(|o| o.as_mut())
}

impl Modify for Common {
    fn modify(&self, api: &mut Doc) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key (`mpk_...`, from `milepost key create`) or a dispatcher token",
                    ))
                    .build(),
            ),
        );
        components.schemas.insert(
            "ErrorBody".into(),
            <super::error::ErrorBody as utoipa::PartialSchema>::schema(),
        );
        for item in api.paths.paths.values_mut() {
            for op in operations(item) {
                for (code, what) in ERRORS {
                    op.responses
                        .responses
                        .entry((*code).to_owned())
                        .or_insert_with(|| {
                            RefOr::T(
                                ResponseBuilder::new()
                                    .description(*what)
                                    .content(
                                        "application/json",
                                        ContentBuilder::new()
                                            .schema(Some(Ref::from_schema_name("ErrorBody")))
                                            .build(),
                                    )
                                    .build(),
                            )
                        });
                }
                op.security = Some(vec![SecurityRequirement::new(
                    "bearer",
                    Vec::<String>::new(),
                )]);
            }
        }
    }
}

/// The document, built once.
pub fn document() -> &'static Doc {
    static DOC: OnceLock<Doc> = OnceLock::new();
    DOC.get_or_init(ApiDoc::openapi)
}

fn document_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| document().to_pretty_json().unwrap_or_else(|_| "{}".into()))
}

/// `GET /api/v1/openapi.json`.
pub async fn openapi_json() -> Response {
    with_headers(
        (
            [(header::CONTENT_TYPE, "application/json")],
            document_json(),
        )
            .into_response(),
        &[(header::CACHE_CONTROL, "public, max-age=300")],
    )
}

/// `GET /api/v1/docs`: the reference page.
pub async fn reference_page() -> Response {
    html(axum::http::StatusCode::OK, reference_html(), None)
}

fn schema_name(r: &RefOr<Schema>) -> String {
    match r {
        RefOr::Ref(r) => r
            .ref_location
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned(),
        RefOr::T(Schema::Array(a)) => format!("array of {}", items_name(&a.items)),
        RefOr::T(Schema::Object(o)) => match serde_json::to_value(&o.schema_type) {
            Ok(serde_json::Value::String(t)) => t,
            Ok(v) => v.to_string(),
            Err(_) => "value".into(),
        },
        RefOr::T(_) => "value".into(),
    }
}

fn items_name(items: &utoipa::openapi::schema::ArrayItems) -> String {
    match items {
        utoipa::openapi::schema::ArrayItems::RefOrSchema(s) => schema_name(s),
        utoipa::openapi::schema::ArrayItems::False => "nothing".into(),
    }
}

/// A value's JSON form as text, without quotes (`"path"` -> `path`).
fn json_text<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(v) => v.to_string(),
        Err(_) => String::new(),
    }
}

/// The reference page's HTML, from the document.
pub fn reference_html() -> String {
    static PAGE: OnceLock<String> = OnceLock::new();
    PAGE.get_or_init(|| render(document())).clone()
}

fn render(doc: &Doc) -> String {
    let mut s = String::new();
    let title = escape(&doc.info.title);
    let _ = write!(
        s,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><link rel=\"stylesheet\" href=\"/assets/style.css\">\
         </head><body class=\"apidoc\"><main><h1>{title}</h1>"
    );
    if let Some(d) = &doc.info.description {
        let _ = write!(s, "<p>{}</p>", escape(d));
    }
    let _ = write!(
        s,
        "<p>Machine-readable: <a href=\"/api/v1/openapi.json\">openapi.json</a> (OpenAPI {}).</p>",
        escape(&json_text(&doc.openapi))
    );
    s.push_str("<h2>Operations</h2>");
    for (path, item) in &doc.paths.paths {
        for (method, op) in [
            ("GET", &item.get),
            ("PUT", &item.put),
            ("POST", &item.post),
            ("DELETE", &item.delete),
        ] {
            let Some(op) = op else { continue };
            let _ = write!(
                s,
                "<section class=\"op\"><h3><code>{method} {}</code></h3>",
                escape(path)
            );
            if let Some(sum) = &op.summary {
                let _ = write!(s, "<p><strong>{}</strong></p>", escape(sum));
            }
            if let Some(d) = &op.description {
                let _ = write!(s, "<p>{}</p>", escape(d));
            }
            if let Some(params) = &op.parameters {
                s.push_str(
                    "<table><tr><th>parameter</th><th>in</th><th>required</th><th>what</th></tr>",
                );
                for p in params {
                    let _ = write!(
                        s,
                        "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                        escape(&p.name),
                        escape(&json_text(&p.parameter_in)),
                        if matches!(p.required, utoipa::openapi::Required::True) {
                            "yes"
                        } else {
                            "no"
                        },
                        escape(p.description.as_deref().unwrap_or(""))
                    );
                }
                s.push_str("</table>");
            }
            if let Some(body) = &op.request_body {
                for (ct, c) in &body.content {
                    let name = c.schema.as_ref().map(schema_name).unwrap_or_default();
                    let _ = write!(
                        s,
                        "<p>Body: <code>{}</code> as {}</p>",
                        escape(&name),
                        escape(ct)
                    );
                }
            }
            s.push_str("<table><tr><th>status</th><th>what</th><th>body</th></tr>");
            for (code, r) in &op.responses.responses {
                if let RefOr::T(r) = r {
                    let body = r
                        .content
                        .values()
                        .next()
                        .and_then(|c| c.schema.as_ref())
                        .map(schema_name)
                        .unwrap_or_default();
                    let _ = write!(
                        s,
                        "<tr><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
                        escape(code),
                        escape(&r.description),
                        escape(&body)
                    );
                }
            }
            s.push_str("</table></section>");
        }
    }
    if let Some(c) = &doc.components {
        s.push_str("<h2>Types</h2>");
        for (name, schema) in &c.schemas {
            let _ = write!(
                s,
                "<section class=\"schema\"><h3 id=\"{0}\"><code>{0}</code></h3>",
                escape(name)
            );
            match schema {
                RefOr::T(Schema::Object(o)) => {
                    if let Some(d) = &o.description {
                        let _ = write!(s, "<p>{}</p>", escape(d));
                    }
                    if !o.properties.is_empty() {
                        s.push_str("<table><tr><th>field</th><th>type</th><th>required</th><th>what</th></tr>");
                        for (f, p) in &o.properties {
                            let desc = match p {
                                RefOr::T(Schema::Object(po)) => po.description.clone(),
                                _ => None,
                            };
                            let _ = write!(
                                s,
                                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                                escape(f),
                                escape(&schema_name(p)),
                                if o.required.contains(f) { "yes" } else { "no" },
                                escape(desc.as_deref().unwrap_or(""))
                            );
                        }
                        s.push_str("</table>");
                    }
                    if let Some(values) = &o.enum_values {
                        let v: Vec<String> = values.iter().map(|v| v.to_string()).collect();
                        let _ = write!(s, "<p>One of: <code>{}</code></p>", escape(&v.join(", ")));
                    }
                }
                RefOr::T(Schema::OneOf(one)) => {
                    let v: Vec<String> = one.items.iter().map(schema_name).collect();
                    let _ = write!(s, "<p>One of: {}</p>", escape(&v.join(", ")));
                }
                _ => {}
            }
            s.push_str("</section>");
        }
    }
    s.push_str("</main></body></html>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_documents_the_errors_and_needs_a_bearer() {
        let doc = document();
        assert!(doc.paths.paths.len() >= 10);
        for item in doc.paths.paths.clone().values_mut() {
            for op in operations(item) {
                for (code, _) in ERRORS {
                    assert!(
                        op.responses.responses.contains_key(*code),
                        "{:?}",
                        op.operation_id
                    );
                }
                assert!(op.security.is_some());
            }
        }
        let json = serde_json::to_value(doc).unwrap();
        assert!(json["openapi"].as_str().unwrap().starts_with("3.1"));
        assert!(json["components"]["schemas"]["Route"].is_object());
        assert!(json["components"]["schemas"]["ErrorBody"].is_object());
    }

    #[test]
    fn the_reference_page_names_every_path_and_runs_no_script() {
        let page = reference_html();
        for path in document().paths.paths.keys() {
            assert!(page.contains(&escape(path)), "{path}");
        }
        assert!(!page.contains("<script"));
    }
}
