//! SMS through Twilio's Messages API, or any API with its shape:
//! `POST {base}/2010-04-01/Accounts/{AccountSid}/Messages.json`, HTTP Basic auth with the
//! account SID and auth token, a form body with `To`, `From` (or `MessagingServiceSid`) and
//! `Body`; `201 Created` answers the message resource, whose `sid` is kept. Errors carry
//! Twilio's JSON (`code`, `message`); 429 and 5xx are retried.

use std::time::Duration;

use base64::Engine;
use serde::Deserialize;

use crate::notify::adapters::http::{agent, classify};
use crate::notify::adapters::provider::{Adapter, Envelope, SendError};
use crate::notify::config::SmsConfig;

/// The Twilio adapter.
pub struct Twilio {
    url: String,
    auth: String,
    from: Option<String>,
    service: Option<String>,
    agent: ureq::Agent,
}

#[derive(Deserialize)]
struct Created {
    sid: String,
}

#[derive(Deserialize)]
struct TwilioError {
    code: Option<u64>,
    message: Option<String>,
}

fn what(body: &str) -> String {
    match serde_json::from_str::<TwilioError>(body) {
        Ok(e) => format!(
            "Twilio error {}: {}",
            e.code.map_or("?".into(), |c| c.to_string()),
            e.message.unwrap_or_default()
        ),
        Err(_) => body.chars().take(200).collect(),
    }
}

impl Twilio {
    /// From its config (`SmsConfig::Twilio`).
    pub fn new(cfg: &SmsConfig, timeout: Duration) -> Twilio {
        let SmsConfig::Twilio {
            base_url,
            account_sid,
            auth_token,
            from,
            messaging_service_sid,
        } = cfg
        else {
            unreachable!("Twilio::new takes a Twilio config")
        };
        Twilio {
            url: format!(
                "{}/2010-04-01/Accounts/{account_sid}/Messages.json",
                base_url.trim_end_matches('/')
            ),
            auth: format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD
                    .encode(format!("{account_sid}:{auth_token}"))
            ),
            from: from.clone(),
            service: messaging_service_sid.clone(),
            agent: agent(timeout),
        }
    }

    /// The form body of a message.
    pub fn form(&self, to: &str, body: &str) -> String {
        let mut f = form_urlencoded::Serializer::new(String::new());
        f.append_pair("To", to);
        match (&self.service, &self.from) {
            (Some(s), _) => f.append_pair("MessagingServiceSid", s),
            (None, Some(from)) => f.append_pair("From", from),
            (None, None) => &mut f,
        };
        f.append_pair("Body", body);
        f.finish()
    }
}

impl Adapter for Twilio {
    fn send(&self, e: &Envelope<'_>) -> Result<String, SendError> {
        let resp = self
            .agent
            .post(&self.url)
            .header("authorization", &self.auth)
            .header("content-type", "application/x-www-form-urlencoded")
            .send(self.form(e.to, &e.rendered.text).as_bytes());
        let body = classify(resp, what)?;
        // A 2xx means Twilio took it: never sent again, even without a readable sid.
        Ok(serde_json::from_str::<Created>(&body).map_or_else(|_| "unknown".into(), |c| c.sid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_has_twilios_shape() {
        let t = Twilio::new(
            &SmsConfig::Twilio {
                base_url: "https://api.twilio.com/".into(),
                account_sid: "AC123".into(),
                auth_token: "tok".into(),
                from: Some("+15005550006".into()),
                messaging_service_sid: None,
            },
            Duration::from_secs(1),
        );
        assert_eq!(
            t.url,
            "https://api.twilio.com/2010-04-01/Accounts/AC123/Messages.json"
        );
        assert_eq!(t.auth, "Basic QUMxMjM6dG9r");
        assert_eq!(
            t.form("+385911234567", "Hi & bye"),
            "To=%2B385911234567&From=%2B15005550006&Body=Hi+%26+bye"
        );
        assert_eq!(
            what(r#"{"code":21211,"message":"Invalid 'To' Phone Number","status":400}"#),
            "Twilio error 21211: Invalid 'To' Phone Number"
        );
    }
}
