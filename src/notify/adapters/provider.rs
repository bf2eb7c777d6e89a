//! What every adapter shares: the [`Adapter`] trait, the [`Envelope`] it sends, the
//! [`SendError`] it answers, and the `log` adapter.

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
