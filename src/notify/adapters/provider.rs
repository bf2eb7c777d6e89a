//! What every adapter shares: the [`Adapter`] trait, the [`Envelope`] it sends, the
//! [`SendError`] it answers, the `log` adapter, and the HTTP helpers of the HTTP providers.

use std::time::Duration;

use crate::notify::contact::Channel;
use crate::notify::templates::Rendered;

/// One message to send.
#[derive(Clone, Debug)]
pub struct Envelope<'a> {
    /// The outbox id (part of an e-mail's Message-ID).
    pub id: u64,
    /// The address (e-mail, or E.164 phone).
    pub to: &'a str,
    /// The recipient's name, for an e-mail's `To:`.
    pub name: Option<&'a str>,
    /// The message.
    pub rendered: &'a Rendered,
    /// The opt-out link (an e-mail's `List-Unsubscribe`).
    pub unsubscribe: Option<&'a str>,
    /// The carrier's sender name (an e-mail's `From:` display name; the address stays the
    /// configured one).
    pub sender: Option<&'a str>,
}

/// Why a message did not go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendError {
    /// Worth trying again (timeouts, 429, 5xx, SMTP 4xx), after `after_ms` if the provider
    /// said.
    Retry {
        /// What went wrong.
        error: String,
        /// The provider's `Retry-After`, ms.
        after_ms: Option<u64>,
    },
    /// Never going to work (a refused number, a 4xx, SMTP 5xx).
    Permanent(String),
}

impl SendError {
    /// The error text.
    pub fn text(&self) -> &str {
        match self {
            SendError::Retry { error, .. } => error,
            SendError::Permanent(e) => e,
        }
    }
}

/// A provider.
pub trait Adapter: Send + Sync {
    /// Sends one message; the provider's id of it.
    fn send(&self, e: &Envelope<'_>) -> Result<String, SendError>;
}

/// Development: the message goes to the gateway's log.
pub struct LogAdapter(pub Channel);

impl Adapter for LogAdapter {
    fn send(&self, e: &Envelope<'_>) -> Result<String, SendError> {
        tracing::info!(
            channel = self.0.name(),
            id = e.id,
            subject = e.rendered.subject.as_deref().unwrap_or(""),
            text = %e.rendered.text,
            "notification (log adapter)"
        );
        Ok(format!("log-{}", e.id))
    }
}

/// An HTTP agent for a provider: errors as values (the status decides), a global timeout.
pub(crate) fn agent(timeout: Duration) -> ureq::Agent {
    // ureq's rustls needs a process-wide provider; ours is ring (an error means one is set).
    let _ = rustls::crypto::ring::default_provider().install_default();
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .build()
        .into()
}

/// Sorts an HTTP answer: 2xx is the body, 408/429/5xx are worth retrying (after
/// `Retry-After` seconds if given), any other status is permanent. `what` names the
/// provider's error from the body.
pub(crate) fn classify(
    resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    what: fn(&str) -> String,
) -> Result<String, SendError> {
    let mut resp = resp.map_err(|e| SendError::Retry {
        error: e.to_string(),
        after_ms: None,
    })?;
    let status = resp.status().as_u16();
    let after_ms = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|s| s.min(3600) * 1000);
    let body = resp
        .body_mut()
        .with_config()
        .limit(64 * 1024)
        .read_to_string()
        .unwrap_or_default();
    if (200..300).contains(&status) {
        return Ok(body);
    }
    let error = format!("HTTP {status}: {}", what(&body));
    if status == 408 || status == 429 || status >= 500 {
        Err(SendError::Retry { error, after_ms })
    } else {
        Err(SendError::Permanent(error))
    }
}
