//! The `[notify]` section: whether recipients are messaged, on which adapters, under which
//! rules (milestones, quiet hours, rate limit, retries), with which templates, and which
//! depots' alerts go out to dispatchers; and the vocabulary it is written in (milestones,
//! channels, what an address and a phone number look like).

use std::collections::BTreeMap;

use chrono::{NaiveTime, Timelike};
use serde::{Deserialize, Serialize};

/// The most worker threads (`notify.workers`), so the most connections one adapter holds.
pub const MAX_WORKERS: usize = 64;

/// A milestone a recipient may be told of.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Milestone {
    /// The route started.
    OutForDelivery,
    /// A few stops away (`notify.stops_away_at`).
    StopsAway,
    /// The driver is a few minutes away.
    ArrivingSoon,
    /// Delivered (to the door or to a named person).
    Delivered,
    /// An attempt failed.
    AttemptFailed,
    /// Going back to the sender.
    Returned,
    /// The estimate is past the promised window.
    Delayed,
    /// The driver wrote in the parcel's thread, and the recipient did not answer on the page
    /// within `driver_message_delay_s` (opt-in: not in the default `milestones`).
    DriverMessage,
}

impl Milestone {
    /// Every milestone.
    pub const ALL: [Milestone; 8] = [
        Milestone::OutForDelivery,
        Milestone::StopsAway,
        Milestone::ArrivingSoon,
        Milestone::Delivered,
        Milestone::AttemptFailed,
        Milestone::Returned,
        Milestone::Delayed,
        Milestone::DriverMessage,
    ];

    /// Its name in config, templates and the API.
    pub fn name(self) -> &'static str {
        match self {
            Milestone::OutForDelivery => "out_for_delivery",
            Milestone::StopsAway => "stops_away",
            Milestone::ArrivingSoon => "arriving_soon",
            Milestone::Delivered => "delivered",
            Milestone::AttemptFailed => "attempt_failed",
            Milestone::Returned => "returned",
            Milestone::Delayed => "delayed",
            Milestone::DriverMessage => "driver_message",
        }
    }

    /// An outcome of the delivery (delivered, failed, returned): news waiting before it is
    /// stale.
    pub fn is_outcome(self) -> bool {
        matches!(
            self,
            Milestone::Delivered | Milestone::AttemptFailed | Milestone::Returned
        )
    }

    /// Worth sending only while it is news: dropped in quiet hours, past the rate limit, when
    /// too old, or when a newer message for the same parcel waits behind it.
    pub fn timely(self) -> bool {
        matches!(
            self,
            Milestone::OutForDelivery
                | Milestone::StopsAway
                | Milestone::ArrivingSoon
                | Milestone::Delayed
                | Milestone::DriverMessage
        )
    }
}

/// A channel a message goes out on.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// E-mail over SMTP.
    Email,
    /// SMS through a Twilio-compatible API.
    Sms,
    /// WhatsApp through a Cloud-API-compatible API.
    Whatsapp,
}

impl Channel {
    /// Every channel, in metric order.
    pub const ALL: [Channel; 3] = [Channel::Email, Channel::Sms, Channel::Whatsapp];

    /// The channel's name in config, metrics and the API.
    pub fn name(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
            Channel::Whatsapp => "whatsapp",
        }
    }

    /// Its index in [`Channel::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Longest e-mail address, bytes (RFC 5321's path limit).
const MAX_EMAIL: usize = 254;

/// True for an address lettre will put in a header: one `local@domain`, no spaces, no
/// control characters (so nothing can be injected into a header through it).
pub fn valid_email(e: &str) -> bool {
    e.len() <= MAX_EMAIL
        && !e.chars().any(|c| c.is_control() || c.is_whitespace())
        && e.parse::<lettre::Address>().is_ok()
}

/// True for an E.164 number: `+`, then 8 to 15 digits, the first not 0.
pub fn valid_phone(p: &str) -> bool {
    let Some(d) = p.strip_prefix('+') else {
        return false;
    };
    (8..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0')
}

/// Recipient and dispatcher notifications (`[notify]`). Off unless `enabled`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotifyConfig {
    /// Send messages at all.
    pub enabled: bool,
    /// The carrier's name in messages (default: `web.brand.name`).
    pub carrier: Option<String>,
    /// Base URL of the web pages, for tracking and opt-out links (default: `web.public_url`;
    /// one of them must be set when notifications are on).
    pub public_url: Option<String>,
    /// IANA time zone of the times in messages and of the quiet hours (`Europe/Zagreb`).
    pub time_zone: String,
    /// Locale of recipients who name none.
    pub default_locale: String,
    /// The milestones recipients are told of (every one but `driver_message`, which is
    /// opt-in: a deployment whose templates are in other languages adds its own first).
    pub milestones: Vec<Milestone>,
    /// A driver's message waits this long, seconds, and goes out only if the recipient did
    /// not answer it on the tracking page meanwhile (they saw it there).
    pub driver_message_delay_s: u64,
    /// "N stops away" goes out once, the first time the parcel is this many stops away or
    /// fewer (and not yet arriving soon).
    pub stops_away_at: u32,
    /// No message in these local hours: timely ones (out for delivery, N stops away, arriving
    /// soon, delayed) are dropped, the others wait for the end.
    pub quiet_hours: Option<QuietHours>,
    /// Messages per recipient address per hour; past it timely ones are dropped, the others
    /// wait.
    pub rate_per_hour: u32,
    /// A timely message older than this is dropped rather than sent late, seconds.
    pub timely_max_age_s: u64,
    /// Attempts before a message goes to the dead-letter list.
    pub max_attempts: u32,
    /// First retry delay, ms (doubling each attempt up to `retry_max_ms`; a provider's
    /// `Retry-After` wins).
    pub retry_base_ms: u64,
    /// Longest retry delay, ms.
    pub retry_max_ms: u64,
    /// Threads talking to providers, 1 to [`MAX_WORKERS`].
    pub workers: usize,
    /// CPU priority (nice) of the outbox and worker threads: above the gateway's, so that
    /// messages never slow fix ingest (0 keeps the gateway's).
    pub nice: i32,
    /// Timeout of one provider request, seconds.
    pub timeout_s: u64,
    /// Lifetime of the tracking link in a message, days.
    pub link_ttl_days: u32,
    /// What a recipient is told happens next after a failed attempt, per next step of the
    /// policy (`core.ndr`): `reattempt`, `hold` (`{place}` is where), `return`.
    pub next_step: BTreeMap<String, String>,
    /// E-mail adapter.
    pub email: Option<EmailConfig>,
    /// SMS adapter.
    pub sms: Option<SmsConfig>,
    /// WhatsApp adapter.
    pub whatsapp: Option<WhatsappConfig>,
    /// Templates per locale and milestone, on top of the built-in English ones.
    pub templates: BTreeMap<String, BTreeMap<Milestone, TemplateSet>>,
    /// A carrier's own templates (`[notify.carrier_templates.<carrier>.<locale>.<milestone>]`),
    /// on top of `templates`, for messages about its parcels.
    pub carrier_templates: BTreeMap<String, BTreeMap<String, BTreeMap<Milestone, TemplateSet>>>,
    /// Depots whose dispatcher alerts go out by e-mail.
    pub alerts: Vec<AlertRoute>,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        let next_step = [
            ("reattempt", "We will try again on the next delivery day."),
            ("hold", "Your parcel waits for you at {place}."),
            ("return", "Your parcel goes back to the sender."),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        NotifyConfig {
            enabled: false,
            carrier: None,
            public_url: None,
            time_zone: "UTC".into(),
            default_locale: "en".into(),
            milestones: Milestone::ALL
                .into_iter()
                .filter(|m| *m != Milestone::DriverMessage)
                .collect(),
            driver_message_delay_s: 60,
            stops_away_at: 3,
            quiet_hours: None,
            rate_per_hour: 10,
            timely_max_age_s: 1800,
            max_attempts: 8,
            retry_base_ms: 1000,
            retry_max_ms: 300_000,
            workers: 4,
            nice: 10,
            timeout_s: 10,
            link_ttl_days: 14,
            next_step,
            email: None,
            sms: None,
            whatsapp: None,
            templates: BTreeMap::new(),
            carrier_templates: BTreeMap::new(),
            alerts: Vec::new(),
        }
    }
}

/// Local hours without messages, `HH:MM` each; `start` after `end` spans midnight.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuietHours {
    /// First quiet minute (`21:00`).
    pub start: String,
    /// First minute messages may go again (`08:00`).
    pub end: String,
}

impl QuietHours {
    /// The start and end as minutes of the day; an error for a time that is not `HH:MM` or
    /// for the same start and end.
    pub fn minutes(&self) -> Result<(u32, u32), String> {
        let minute_of = |text: &str| -> Result<u32, String> {
            let t = NaiveTime::parse_from_str(text, "%H:%M")
                .map_err(|_| format!("quiet hours: {text:?} is not HH:MM"))?;
            Ok(t.hour() * 60 + t.minute())
        };
        let (a, b) = (minute_of(&self.start)?, minute_of(&self.end)?);
        if a == b {
            return Err("quiet hours: start and end are the same minute".into());
        }
        Ok((a, b))
    }
}

/// How e-mail goes out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "adapter", rename_all = "snake_case", deny_unknown_fields)]
pub enum EmailConfig {
    /// Written to the gateway's log at info level (development).
    Log,
    /// An SMTP relay.
    Smtp {
        /// Host name (also the name checked in its certificate).
        host: String,
        /// Port (587 with STARTTLS, 465 with TLS, 25 plain).
        port: u16,
        /// `starttls` (required), `tls` (implicit), or `none` (loopback and tests only).
        #[serde(default = "starttls")]
        tls: String,
        /// User for AUTH, if the relay wants one.
        #[serde(default)]
        username: Option<String>,
        /// Its password.
        #[serde(default)]
        password: Option<String>,
        /// The sender, `Name <address>`.
        from: String,
        /// A PEM CA certificate to trust besides the public roots (a private relay's).
        #[serde(default)]
        ca_file: Option<std::path::PathBuf>,
    },
}

fn starttls() -> String {
    "starttls".into()
}

/// How SMS goes out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "adapter", rename_all = "snake_case", deny_unknown_fields)]
pub enum SmsConfig {
    /// Written to the gateway's log (development).
    Log,
    /// Twilio's Messages API (or a compatible one).
    Twilio {
        /// API base (`https://api.twilio.com`).
        #[serde(default = "twilio_base")]
        base_url: String,
        /// Account SID (`AC...`).
        account_sid: String,
        /// Auth token.
        auth_token: String,
        /// Sender number (E.164), unless `messaging_service_sid` is set.
        #[serde(default)]
        from: Option<String>,
        /// Messaging service (`MG...`) choosing the sender.
        #[serde(default)]
        messaging_service_sid: Option<String>,
    },
}

fn twilio_base() -> String {
    "https://api.twilio.com".into()
}

/// How WhatsApp messages go out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "adapter", rename_all = "snake_case", deny_unknown_fields)]
pub enum WhatsappConfig {
    /// Written to the gateway's log (development).
    Log,
    /// Meta's WhatsApp Cloud API (or a compatible one).
    Cloud {
        /// API base (`https://graph.facebook.com`).
        #[serde(default = "graph_base")]
        base_url: String,
        /// Graph API version (`v21.0`).
        #[serde(default = "graph_version")]
        api_version: String,
        /// The sending business phone number's id.
        phone_number_id: String,
        /// System user access token.
        access_token: String,
    },
}

fn graph_base() -> String {
    "https://graph.facebook.com".into()
}

fn graph_version() -> String {
    "v21.0".into()
}

/// One milestone's templates in one locale ([minijinja] syntax; variables in
/// `crate::notify::templates::VARIABLES`). A missing one falls back to the default locale's,
/// then to the built-in English.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TemplateSet {
    /// E-mail subject (one line).
    pub subject: Option<String>,
    /// E-mail body, plain text.
    pub email: Option<String>,
    /// SMS text (and the WhatsApp text when no WhatsApp template is named).
    pub sms: Option<String>,
    /// The approved WhatsApp template's name (business-initiated messages must use one).
    pub whatsapp_template: Option<String>,
    /// Its language code (`en_US`; default: the locale).
    pub whatsapp_language: Option<String>,
    /// Its body parameters, each a template.
    pub whatsapp_params: Option<Vec<String>>,
}

/// A depot whose dispatcher alerts go out by e-mail.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRoute {
    /// The depot.
    pub depot: String,
    /// Where to.
    pub email: String,
    /// Which alerts: `stalled`, `running_late`, `off_route`, `attempt_failed` (default all).
    #[serde(default = "all_alerts")]
    pub kinds: Vec<String>,
}

/// Alert kinds that can go out.
pub const ALERT_KINDS: [&str; 4] = ["stalled", "running_late", "off_route", "attempt_failed"];

fn all_alerts() -> Vec<String> {
    ALERT_KINDS.iter().map(|s| (*s).to_owned()).collect()
}

impl NotifyConfig {
    /// Whether a channel has an adapter.
    pub fn has(&self, c: Channel) -> bool {
        match c {
            Channel::Email => self.email.is_some(),
            Channel::Sms => self.sms.is_some(),
            Channel::Whatsapp => self.whatsapp.is_some(),
        }
    }

    /// Checks the values that need no other section (templates are checked when the
    /// notifier starts, by [`crate::notify::templates::Templates::new`]).
    pub fn validate(&self) -> Result<(), String> {
        if !self.enabled {
            return Ok(());
        }
        self.time_zone
            .parse::<chrono_tz::Tz>()
            .map_err(|_| format!("notify.time_zone {:?} is not an IANA zone", self.time_zone))?;
        if let Some(q) = &self.quiet_hours {
            q.minutes()?;
        }
        if self.driver_message_delay_s > self.timely_max_age_s {
            return Err(format!(
                "notify.driver_message_delay_s ({}) must not exceed notify.timely_max_age_s ({}): \
                 the message would always be too old to send",
                self.driver_message_delay_s, self.timely_max_age_s
            ));
        }
        if !(0..=19).contains(&self.nice) {
            return Err("notify.nice must be 0 to 19".into());
        }
        if self.workers == 0 || self.workers > MAX_WORKERS {
            return Err("notify.workers must be 1 to 64".into());
        }
        if let Some(k) = self
            .next_step
            .keys()
            .find(|k| !["reattempt", "hold", "return"].contains(&k.as_str()))
        {
            return Err(format!(
                "notify.next_step: unknown step {k:?} (reattempt, hold or return)"
            ));
        }
        if self.rate_per_hour == 0 {
            return Err("notify.rate_per_hour must be at least 1".into());
        }
        if self.max_attempts == 0 {
            return Err("notify.max_attempts must be at least 1".into());
        }
        if self.retry_base_ms == 0 || self.retry_base_ms > self.retry_max_ms {
            return Err("notify.retry_base_ms must be > 0 and <= retry_max_ms".into());
        }
        if self.link_ttl_days == 0 || self.link_ttl_days > 90 {
            return Err("notify.link_ttl_days must be 1 to 90".into());
        }
        if self.timeout_s == 0 {
            return Err("notify.timeout_s must be > 0".into());
        }
        if let Some(EmailConfig::Smtp { tls, from, .. }) = &self.email {
            if !["starttls", "tls", "none"].contains(&tls.as_str()) {
                return Err(format!("notify.email.tls {tls:?}: starttls, tls or none"));
            }
            from.parse::<lettre::message::Mailbox>()
                .map_err(|e| format!("notify.email.from {from:?}: {e}"))?;
        }
        if let Some(SmsConfig::Twilio {
            from,
            messaging_service_sid,
            ..
        }) = &self.sms
        {
            match (from, messaging_service_sid) {
                (None, None) => return Err("notify.sms needs from or messaging_service_sid".into()),
                (Some(f), _) if !valid_phone(f) => {
                    return Err(format!("notify.sms.from {f:?} is not an E.164 number"))
                }
                _ => {}
            }
        }
        for a in &self.alerts {
            if !valid_email(&a.email) {
                return Err(format!(
                    "notify.alerts: {:?} is not an e-mail address",
                    a.email
                ));
            }
            if let Some(k) = a.kinds.iter().find(|k| !ALERT_KINDS.contains(&k.as_str())) {
                return Err(format!(
                    "notify.alerts: unknown kind {k:?} (one of {})",
                    ALERT_KINDS.join(", ")
                ));
            }
        }
        if !self.alerts.is_empty() && self.email.is_none() {
            return Err("notify.alerts need an e-mail adapter (notify.email)".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drivers_message_is_opt_in_and_its_wait_shorter_than_news_lasts() {
        let mut c = NotifyConfig {
            enabled: true,
            ..NotifyConfig::default()
        };
        assert!(!c.milestones.contains(&Milestone::DriverMessage));
        assert_eq!(c.milestones.len(), Milestone::ALL.len() - 1);
        assert!(c.validate().is_ok());
        c.driver_message_delay_s = c.timely_max_age_s + 1;
        let e = c.validate().unwrap_err();
        assert!(e.contains("notify.driver_message_delay_s"), "{e}");
    }
}
