//! The configured adapters, one per channel ([`Adapters`]).

use std::time::Duration;

use crate::notify::adapters::provider::{Adapter, LogAdapter};
use crate::notify::adapters::{smtp, twilio, whatsapp};
use crate::notify::config::{EmailConfig, NotifyConfig, SmsConfig, WhatsappConfig};
use crate::notify::contact::Channel;

/// The adapters of the configured channels, by [`Channel::index`].
pub struct Adapters(pub [Option<Box<dyn Adapter>>; 3]);

impl Adapters {
    /// Builds the configured adapters.
    pub fn new(cfg: &NotifyConfig) -> Result<Adapters, String> {
        let timeout = Duration::from_secs(cfg.timeout_s);
        let email: Option<Box<dyn Adapter>> = match &cfg.email {
            None => None,
            Some(EmailConfig::Log) => Some(Box::new(LogAdapter(Channel::Email))),
            Some(smtp @ EmailConfig::Smtp { .. }) => {
                Some(Box::new(smtp::Smtp::new(smtp, timeout)?))
            }
        };
        let sms: Option<Box<dyn Adapter>> = match &cfg.sms {
            None => None,
            Some(SmsConfig::Log) => Some(Box::new(LogAdapter(Channel::Sms))),
            Some(t @ SmsConfig::Twilio { .. }) => Some(Box::new(twilio::Twilio::new(t, timeout))),
        };
        let whatsapp: Option<Box<dyn Adapter>> = match &cfg.whatsapp {
            None => None,
            Some(WhatsappConfig::Log) => Some(Box::new(LogAdapter(Channel::Whatsapp))),
            Some(w @ WhatsappConfig::Cloud { .. }) => {
                Some(Box::new(whatsapp::Cloud::new(w, timeout)))
            }
        };
        Ok(Adapters([email, sms, whatsapp]))
    }

    /// The adapter of a channel.
    pub fn get(&self, c: Channel) -> Option<&dyn Adapter> {
        self.0[c.index()].as_deref()
    }
}
