//! WhatsApp through Meta's Cloud API, or any API with its shape:
//! `POST {base}/{version}/{phone_number_id}/messages`, `Authorization: Bearer {token}`, a JSON
//! body with `messaging_product: "whatsapp"`, `to` (the number's digits), and either a
//! `template` (name, language code, body parameters: what business-initiated messages must
//! be) or a `text` (only inside the 24-hour window after the customer wrote). `200` answers
//! `messages[0].id`, which is kept. Errors carry Meta's JSON (`error.code`,
//! `error.message`); throttling codes, 429 and 5xx are retried.

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use crate::notify::adapters::http::{agent, classify};
use crate::notify::adapters::provider::{Adapter, Envelope, SendError};
use crate::notify::config::WhatsappConfig;
use crate::notify::templates::Rendered;

/// The Cloud API adapter.
pub struct Cloud {
    url: String,
    auth: String,
    agent: ureq::Agent,
}

#[derive(Deserialize)]
struct Sent {
    messages: Vec<SentId>,
}

#[derive(Deserialize)]
struct SentId {
    id: String,
}

#[derive(Deserialize)]
struct GraphError {
    error: GraphErrorBody,
}

#[derive(Deserialize)]
struct GraphErrorBody {
    code: Option<i64>,
    message: Option<String>,
}

/// Meta's throttling codes (rate limits, pair rate limit, spam rate limit): worth a retry
/// even under a 400.
const THROTTLED: [i64; 5] = [4, 80007, 130429, 131048, 131056];

fn what(body: &str) -> String {
    match serde_json::from_str::<GraphError>(body) {
        Ok(e) => format!(
            "WhatsApp error {}: {}",
            e.error.code.map_or("?".into(), |c| c.to_string()),
            e.error.message.unwrap_or_default()
        ),
        Err(_) => body.chars().take(200).collect(),
    }
}

/// The JSON body of a message to `to` (E.164; sent as its digits).
pub fn body(to: &str, r: &Rendered) -> serde_json::Value {
    let to = to.trim_start_matches('+');
    match &r.whatsapp {
        Some(t) => json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to,
            "type": "template",
            "template": {
                "name": t.name,
                "language": { "code": t.language },
                "components": [{
                    "type": "body",
                    "parameters": t.params.iter()
                        .map(|p| json!({ "type": "text", "text": p }))
                        .collect::<Vec<_>>(),
                }],
            },
        }),
        None => json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to,
            "type": "text",
            "text": { "preview_url": false, "body": r.text },
        }),
    }
}

impl Cloud {
    /// From its config (`WhatsappConfig::Cloud`).
    pub fn new(cfg: &WhatsappConfig, timeout: Duration) -> Cloud {
        let WhatsappConfig::Cloud {
            base_url,
            api_version,
            phone_number_id,
            access_token,
        } = cfg
        else {
            unreachable!("Cloud::new takes a Cloud config")
        };
        Cloud {
            url: format!(
                "{}/{api_version}/{phone_number_id}/messages",
                base_url.trim_end_matches('/')
            ),
            auth: format!("Bearer {access_token}"),
            agent: agent(timeout),
        }
    }
}

impl Adapter for Cloud {
    fn send(&self, e: &Envelope<'_>) -> Result<String, SendError> {
        let payload = body(e.to, e.rendered).to_string();
        let resp = self
            .agent
            .post(&self.url)
            .header("authorization", &self.auth)
            .header("content-type", "application/json")
            .send(payload.as_bytes());
        let body = match classify(resp, what) {
            Err(SendError::Permanent(error)) => {
                // A 400 whose code says "throttled" is a retry.
                let code = error
                    .split_once("WhatsApp error ")
                    .and_then(|(_, rest)| rest.split(':').next())
                    .and_then(|c| c.parse::<i64>().ok());
                return Err(match code {
                    Some(c) if THROTTLED.contains(&c) => SendError::Retry {
                        error,
                        after_ms: None,
                    },
                    _ => SendError::Permanent(error),
                });
            }
            other => other?,
        };
        serde_json::from_str::<Sent>(&body)
            .ok()
            .and_then(|s| s.messages.into_iter().next())
            .map(|m| m.id)
            // A 2xx means Meta took it: never sent again, even without a readable id.
            .map_or_else(|| Ok("unknown".into()), Ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::templates::WhatsappTemplate;

    #[test]
    fn bodies_have_the_cloud_apis_shape() {
        let text = Rendered {
            subject: None,
            text: "Hello".into(),
            whatsapp: None,
        };
        assert_eq!(
            body("+385911234567", &text),
            json!({"messaging_product":"whatsapp","recipient_type":"individual",
                   "to":"385911234567","type":"text",
                   "text":{"preview_url":false,"body":"Hello"}})
        );
        let tpl = Rendered {
            whatsapp: Some(WhatsappTemplate {
                name: "arriving_soon".into(),
                language: "en_US".into(),
                params: vec!["MP1".into()],
            }),
            ..text
        };
        assert_eq!(
            body("+385911234567", &tpl)["template"],
            json!({"name":"arriving_soon","language":{"code":"en_US"},
                   "components":[{"type":"body","parameters":[{"type":"text","text":"MP1"}]}]})
        );
        assert_eq!(
            what(
                r#"{"error":{"message":"Rate limit hit","type":"OAuthException","code":130429,"fbtrace_id":"x"}}"#
            ),
            "WhatsApp error 130429: Rate limit hit"
        );
    }
}
