//! Message templates per milestone, channel and locale ([minijinja]): the built-in English
//! ones, overridden and extended by `notify.templates`, and per carrier by
//! `notify.carrier_templates.<carrier>` (a carrier's own first, then the platform's, then the
//! built-in ones). Every template is compiled and rendered
//! against sample values when the gateway starts, in strict mode, so a syntax error or an
//! unknown variable is reported then, with the template's name and line, never at send time.

use std::collections::BTreeMap;

use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

use crate::notify::config::{NotifyConfig, TemplateSet};
use crate::notify::contact::Channel;
use crate::notify::plan::Milestone;

/// The variables a template may use. Optional ones may be none: test them with `{% if %}`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Vars {
    /// The carrier's name.
    pub carrier: String,
    /// The tracking number.
    pub tracking: String,
    /// The tracking page, signed for this parcel.
    pub tracking_link: String,
    /// The page that stops messages to this address.
    pub optout_link: String,
    /// The recipient's name, if given.
    pub recipient_name: Option<String>,
    /// The expected window, `14:05-14:15` (local time; a date when not today).
    pub window: Option<String>,
    /// The best estimate, `14:09`.
    pub eta: Option<String>,
    /// Stops before this one.
    pub stops_away: Option<u32>,
    /// The driver's first name, once on the way.
    pub driver_first_name: Option<String>,
    /// Why an attempt failed, in words.
    pub reason: Option<String>,
    /// What happens after a failed attempt.
    pub next_step: Option<String>,
    /// Who took the parcel.
    pub received_by: Option<String>,
    /// When it was delivered, `14:09`.
    pub delivered_at: Option<String>,
    /// What the driver wrote (`driver_message`).
    pub message: Option<String>,
}

/// The variables' names, for the docs and the check.
pub const VARIABLES: [&str; 14] = [
    "carrier",
    "tracking",
    "tracking_link",
    "optout_link",
    "recipient_name",
    "window",
    "eta",
    "stops_away",
    "driver_first_name",
    "reason",
    "next_step",
    "received_by",
    "delivered_at",
    "message",
];

/// A WhatsApp template message, rendered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct WhatsappTemplate {
    /// The approved template's name.
    pub name: String,
    /// Its language code.
    pub language: String,
    /// Body parameters, in order.
    pub params: Vec<String>,
}

/// One message, rendered for one channel.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Rendered {
    /// E-mail subject (e-mail only), one line.
    pub subject: Option<String>,
    /// The text.
    pub text: String,
    /// The WhatsApp template, when one is named.
    pub whatsapp: Option<WhatsappTemplate>,
}

const FOOTER: &str = "\n\nFollow your parcel: {{ tracking_link }}\n\n--\nYou get these messages because a parcel is on its way to you. Stop them: {{ optout_link }}\n";

fn builtin(m: Milestone) -> TemplateSet {
    let (subject, body, sms): (&str, &str, &str) = match m {
        Milestone::OutForDelivery => (
            "Your {{ carrier }} parcel {{ tracking }} is out for delivery",
            "Your parcel {{ tracking }} is out for delivery today{% if window %}, expected {{ window }}{% endif %}.",
            "{{ carrier }}: parcel {{ tracking }} is out for delivery{% if window %}, expected {{ window }}{% endif %}. Track: {{ tracking_link }}",
        ),
        Milestone::StopsAway => (
            "Your {{ carrier }} parcel is {{ stops_away }} stop{% if stops_away != 1 %}s{% endif %} away",
            "Your parcel {{ tracking }} is {{ stops_away }} stop{% if stops_away != 1 %}s{% endif %} away{% if window %}, arriving {{ window }}{% endif %}.",
            "{{ carrier }}: parcel {{ tracking }} is {{ stops_away }} stop{% if stops_away != 1 %}s{% endif %} away{% if window %}, arriving {{ window }}{% endif %}. Track: {{ tracking_link }}",
        ),
        Milestone::ArrivingSoon => (
            "Your {{ carrier }} parcel is arriving soon",
            "{% if driver_first_name %}{{ driver_first_name }}{% else %}Your driver{% endif %} is arriving soon with parcel {{ tracking }}{% if eta %}, around {{ eta }}{% endif %}.",
            "{{ carrier }}: {% if driver_first_name %}{{ driver_first_name }}{% else %}your driver{% endif %} is arriving soon with parcel {{ tracking }}. Track: {{ tracking_link }}",
        ),
        Milestone::Delivered => (
            "Your {{ carrier }} parcel {{ tracking }} was delivered",
            "Your parcel {{ tracking }} was delivered{% if delivered_at %} at {{ delivered_at }}{% endif %}{% if received_by %} to {{ received_by }}{% endif %}. The proof of delivery is on the tracking page.",
            "{{ carrier }}: parcel {{ tracking }} delivered{% if delivered_at %} at {{ delivered_at }}{% endif %}{% if received_by %} to {{ received_by }}{% endif %}. Proof: {{ tracking_link }}",
        ),
        Milestone::AttemptFailed => (
            "We could not deliver your {{ carrier }} parcel {{ tracking }}",
            "We could not deliver your parcel {{ tracking }}{% if reason %} ({{ reason }}){% endif %}. {{ next_step }}",
            "{{ carrier }}: we could not deliver parcel {{ tracking }}{% if reason %} ({{ reason }}){% endif %}. {{ next_step }} {{ tracking_link }}",
        ),
        Milestone::Returned => (
            "Your {{ carrier }} parcel {{ tracking }} is going back to the sender",
            "Your parcel {{ tracking }} is going back to the sender. The sender will contact you.",
            "{{ carrier }}: parcel {{ tracking }} is going back to the sender. {{ tracking_link }}",
        ),
        Milestone::DriverMessage => (
            "A message from your {{ carrier }} driver",
            "Your driver wrote about your parcel {{ tracking }}:\n\n{{ message }}\n\nAnswer on the tracking page.",
            "{{ carrier }}: your driver wrote about parcel {{ tracking }}: {{ message }} Answer: {{ tracking_link }}",
        ),
        Milestone::Delayed => (
            "Your {{ carrier }} parcel {{ tracking }} is running late",
            "Your parcel {{ tracking }} is running late{% if eta %}: the new estimate is {{ eta }}{% endif %}. Sorry for the wait.",
            "{{ carrier }}: parcel {{ tracking }} is running late{% if eta %}, now expected {{ eta }}{% endif %}. {{ tracking_link }}",
        ),
    };
    TemplateSet {
        subject: Some(subject.into()),
        email: Some(format!("{body}{FOOTER}")),
        sms: Some(sms.into()),
        whatsapp_template: None,
        whatsapp_language: None,
        whatsapp_params: None,
    }
}

/// Templates of one locale per milestone (`notify.templates`, or one carrier's).
type Layer = BTreeMap<String, BTreeMap<Milestone, TemplateSet>>;

/// The gateway's templates, compiled and checked: the platform's, and each carrier's that has
/// templates of its own.
pub struct Templates {
    platform: Compiled,
    carriers: BTreeMap<String, Compiled>,
}

impl Templates {
    /// Compiles the built-in and configured templates and renders each against sample values;
    /// the error names the template (`locale.milestone.field`, a carrier's prefixed with its
    /// id) and the line.
    pub fn new(cfg: &NotifyConfig) -> Result<Templates, String> {
        let platform = Compiled::new(&cfg.templates, None, &cfg.default_locale, "")?;
        let carriers = cfg
            .carrier_templates
            .iter()
            .map(|(id, own)| {
                let prefix = format!("{id}:");
                let c = Compiled::new(own, Some(&cfg.templates), &cfg.default_locale, &prefix)?;
                Ok((id.clone(), c))
            })
            .collect::<Result<_, String>>()?;
        Ok(Templates { platform, carriers })
    }

    /// The templates messages about carrier `carrier`'s parcels use.
    pub fn of(&self, carrier: &str) -> &Compiled {
        self.carriers.get(carrier).unwrap_or(&self.platform)
    }
}

/// One set of templates (the platform's or a carrier's), compiled.
pub struct Compiled {
    env: Environment<'static>,
    /// Locales with templates of their own (the default locale always among them).
    locales: Vec<String>,
    /// Per locale and milestone, the WhatsApp template name and language.
    whatsapp: BTreeMap<(String, Milestone), (String, String, usize)>,
    /// What its templates' names start with.
    prefix: String,
}

fn name(locale: &str, m: Milestone, field: &str) -> String {
    format!("{locale}.{}.{field}", m.name())
}

impl Compiled {
    /// `own` templates over `base` ones (a carrier's over the platform's), over the built-in
    /// ones; names in errors start with `prefix`.
    fn new(
        own: &Layer,
        base: Option<&Layer>,
        default_locale: &str,
        prefix: &str,
    ) -> Result<Compiled, String> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_keep_trailing_newline(true);
        let mut locales: Vec<String> = own.keys().cloned().collect();
        for l in base.into_iter().flat_map(|b| b.keys()) {
            if !locales.contains(l) {
                locales.push(l.clone());
            }
        }
        if !locales.iter().any(|l| l == default_locale) {
            locales.push(default_locale.to_owned());
        }
        let layers: Vec<&Layer> = std::iter::once(own).chain(base).collect();
        let mut whatsapp = BTreeMap::new();
        for locale in &locales {
            for m in Milestone::ALL {
                // Each layer's locale, then its default locale; the first layer first.
                let candidates: Vec<&TemplateSet> = layers
                    .iter()
                    .flat_map(|l| {
                        [locale.as_str(), default_locale]
                            .into_iter()
                            .filter_map(|loc| l.get(loc).and_then(|t| t.get(&m)))
                    })
                    .collect();
                let pick = |f: fn(&TemplateSet) -> Option<&String>| -> String {
                    candidates
                        .iter()
                        .find_map(|t| f(t))
                        .cloned()
                        .unwrap_or_else(|| f(&builtin(m)).cloned().unwrap_or_default())
                };
                let fields = [
                    ("subject", pick(|t| t.subject.as_ref())),
                    ("email", pick(|t| t.email.as_ref())),
                    ("sms", pick(|t| t.sms.as_ref())),
                ];
                let named = |n: String| format!("{prefix}{n}");
                for (field, src) in fields {
                    env.add_template_owned(named(name(locale, m, field)), src)
                        .map_err(|e| describe(&e))?;
                }
                // A WhatsApp template of this very locale, the first layer's that has one.
                let wa = layers
                    .iter()
                    .filter_map(|l| l.get(locale).and_then(|t| t.get(&m)))
                    .find(|t| t.whatsapp_template.is_some());
                if let Some(t) = wa {
                    let params = t.whatsapp_params.clone().unwrap_or_default();
                    for (i, p) in params.iter().enumerate() {
                        let n = named(name(locale, m, &format!("whatsapp{i}")));
                        env.add_template_owned(n, p.clone())
                            .map_err(|e| describe(&e))?;
                    }
                    whatsapp.insert(
                        (locale.clone(), m),
                        (
                            t.whatsapp_template.clone().unwrap_or_default(),
                            t.whatsapp_language
                                .clone()
                                .unwrap_or_else(|| locale.clone()),
                            params.len(),
                        ),
                    );
                }
            }
        }
        let t = Compiled {
            env,
            locales,
            whatsapp,
            prefix: prefix.to_owned(),
        };
        t.check()?;
        Ok(t)
    }

    fn check(&self) -> Result<(), String> {
        let full = Vars {
            carrier: "Carrier".into(),
            tracking: "MP1".into(),
            tracking_link: "https://example.com/t/MP1".into(),
            optout_link: "https://example.com/n/optout/x".into(),
            recipient_name: Some("Ana".into()),
            window: Some("14:05-14:15".into()),
            eta: Some("14:09".into()),
            stops_away: Some(3),
            driver_first_name: Some("Marko".into()),
            reason: Some("recipient absent".into()),
            next_step: Some("We will try again tomorrow.".into()),
            received_by: Some("Ivo".into()),
            delivered_at: Some("14:09".into()),
            message: Some("I am at the gate: which floor?".into()),
        };
        let sparse = Vars {
            carrier: full.carrier.clone(),
            tracking: full.tracking.clone(),
            tracking_link: full.tracking_link.clone(),
            optout_link: full.optout_link.clone(),
            ..Vars::default()
        };
        for locale in &self.locales {
            for m in Milestone::ALL {
                for c in Channel::ALL {
                    for v in [&full, &sparse] {
                        self.render(locale, m, c, v)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// The locale used for a recipient's wish: theirs if it has templates, else the default.
    pub fn locale<'a>(&'a self, wish: Option<&'a str>, default: &'a str) -> &'a str {
        match wish {
            Some(w) if self.locales.iter().any(|l| l == w) => w,
            _ => default,
        }
    }

    fn one(&self, name: &str, v: &Vars) -> Result<String, String> {
        self.env
            .get_template(&format!("{}{name}", self.prefix))
            .and_then(|t| t.render(v))
            .map_err(|e| describe(&e))
    }

    /// Renders a milestone's message for a channel.
    pub fn render(
        &self,
        locale: &str,
        m: Milestone,
        c: Channel,
        v: &Vars,
    ) -> Result<Rendered, String> {
        Ok(match c {
            Channel::Email => Rendered {
                subject: Some(one_line(&self.one(&name(locale, m, "subject"), v)?)),
                text: self.one(&name(locale, m, "email"), v)?,
                whatsapp: None,
            },
            Channel::Sms => Rendered {
                subject: None,
                text: self.one(&name(locale, m, "sms"), v)?,
                whatsapp: None,
            },
            Channel::Whatsapp => {
                let whatsapp = match self.whatsapp.get(&(locale.to_owned(), m)) {
                    Some((tname, lang, n)) => Some(WhatsappTemplate {
                        name: tname.clone(),
                        language: lang.clone(),
                        params: (0..*n)
                            .map(|i| self.one(&name(locale, m, &format!("whatsapp{i}")), v))
                            .collect::<Result<_, _>>()?,
                    }),
                    None => None,
                };
                Rendered {
                    subject: None,
                    text: self.one(&name(locale, m, "sms"), v)?,
                    whatsapp,
                }
            }
        })
    }
}

/// A subject is one line: control characters become spaces (so no header can be injected
/// through a variable either).
fn one_line(s: &str) -> String {
    let t: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    t.trim().to_owned()
}

fn describe(e: &minijinja::Error) -> String {
    let name = e.name().unwrap_or("?");
    let line = e.line().map(|l| format!(" line {l}")).unwrap_or_default();
    let detail = e.detail().map(|d| format!(": {d}")).unwrap_or_default();
    format!("notify template {name}{line}: {}{detail}", e.kind())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg_with(locale: &str, m: Milestone, set: TemplateSet) -> NotifyConfig {
        let mut cfg = NotifyConfig::default();
        cfg.templates
            .entry(locale.into())
            .or_default()
            .insert(m, set);
        cfg
    }

    #[test]
    fn the_builtin_templates_check_and_read_well() {
        let t = Templates::new(&NotifyConfig::default()).unwrap().platform;
        let v = Vars {
            carrier: "Acme".into(),
            tracking: "MP7".into(),
            tracking_link: "https://t.example/t/MP7?token=x".into(),
            optout_link: "https://t.example/n/optout/y".into(),
            stops_away: Some(3),
            window: Some("14:05-14:15".into()),
            ..Vars::default()
        };
        let r = t
            .render("en", Milestone::StopsAway, Channel::Sms, &v)
            .unwrap();
        assert_eq!(
            r.text,
            "Acme: parcel MP7 is 3 stops away, arriving 14:05-14:15. Track: https://t.example/t/MP7?token=x"
        );
        let e = t
            .render("en", Milestone::StopsAway, Channel::Email, &v)
            .unwrap();
        assert_eq!(
            e.subject.as_deref(),
            Some("Your Acme parcel is 3 stops away")
        );
        assert!(e.text.contains("Stop them: https://t.example/n/optout/y"));
    }

    #[test]
    fn errors_name_the_template_and_line() {
        let bad = cfg_with(
            "hr",
            Milestone::ArrivingSoon,
            TemplateSet {
                sms: Some("Dolazi\n{{ driver_firstname }}".into()),
                ..TemplateSet::default()
            },
        );
        let e = Templates::new(&bad).err().unwrap();
        assert!(e.contains("hr.arriving_soon.sms line 2"), "{e}");
        let syntax = cfg_with(
            "en",
            Milestone::Delivered,
            TemplateSet {
                email: Some("ok\nok\n{% if x %}".into()),
                ..TemplateSet::default()
            },
        );
        let e = Templates::new(&syntax).err().unwrap();
        assert!(e.contains("en.delivered.email line 3"), "{e}");
    }

    #[test]
    fn locales_fall_back_and_whatsapp_templates_render() {
        let mut cfg = cfg_with(
            "hr",
            Milestone::ArrivingSoon,
            TemplateSet {
                sms: Some("{{ carrier }}: dostavljač stiže".into()),
                whatsapp_template: Some("arriving_soon_v2".into()),
                whatsapp_language: Some("hr".into()),
                whatsapp_params: Some(vec!["{{ tracking }}".into(), "{{ tracking_link }}".into()]),
                ..TemplateSet::default()
            },
        );
        cfg.default_locale = "en".into();
        let t = Templates::new(&cfg).unwrap().platform;
        let v = Vars {
            carrier: "Acme".into(),
            tracking: "MP7".into(),
            tracking_link: "L".into(),
            ..Vars::default()
        };
        assert_eq!(t.locale(Some("hr"), "en"), "hr");
        assert_eq!(t.locale(Some("fr"), "en"), "en");
        let w = t
            .render("hr", Milestone::ArrivingSoon, Channel::Whatsapp, &v)
            .unwrap();
        assert_eq!(w.text, "Acme: dostavljač stiže");
        assert_eq!(
            w.whatsapp,
            Some(WhatsappTemplate {
                name: "arriving_soon_v2".into(),
                language: "hr".into(),
                params: vec!["MP7".into(), "L".into()],
            })
        );
        // hr falls back to the built-in English where it has nothing of its own.
        let d = t
            .render("hr", Milestone::Delivered, Channel::Sms, &v)
            .unwrap();
        assert!(d.text.starts_with("Acme: parcel MP7 delivered"));
    }

    #[test]
    fn a_subject_stays_one_line() {
        let cfg = cfg_with(
            "en",
            Milestone::Delivered,
            TemplateSet {
                subject: Some("{{ recipient_name }}\r\nBcc: x@evil.example".into()),
                ..TemplateSet::default()
            },
        );
        let t = Templates::new(&cfg).unwrap().platform;
        let v = Vars {
            recipient_name: Some("Ana".into()),
            ..Vars::default()
        };
        let r = t
            .render("en", Milestone::Delivered, Channel::Email, &v)
            .unwrap();
        assert_eq!(r.subject.as_deref(), Some("Ana  Bcc: x@evil.example"));
    }

    #[test]
    fn a_carriers_templates_come_before_the_platforms_and_fall_back_to_them() {
        let mut cfg = cfg_with(
            "en",
            Milestone::Delivered,
            TemplateSet {
                sms: Some("platform: {{ tracking }} delivered".into()),
                ..TemplateSet::default()
            },
        );
        let own = TemplateSet {
            sms: Some("Zeta says {{ tracking }} is home".into()),
            ..TemplateSet::default()
        };
        cfg.carrier_templates
            .entry("zeta".into())
            .or_default()
            .entry("en".into())
            .or_default()
            .insert(Milestone::Delivered, own);
        let t = Templates::new(&cfg).unwrap();
        let v = Vars {
            tracking: "MP1".into(),
            ..Vars::default()
        };
        let sms = |c: &str, m| t.of(c).render("en", m, Channel::Sms, &v).unwrap().text;
        assert_eq!(sms("zeta", Milestone::Delivered), "Zeta says MP1 is home");
        assert_eq!(sms("acme", Milestone::Delivered), "platform: MP1 delivered");
        // What Zeta did not write is the platform's (here the built-in one).
        assert_eq!(
            sms("zeta", Milestone::Returned),
            sms("acme", Milestone::Returned)
        );
        // A carrier's broken template is named with its carrier.
        cfg.carrier_templates
            .get_mut("zeta")
            .unwrap()
            .get_mut("en")
            .unwrap()
            .insert(
                Milestone::Delayed,
                TemplateSet {
                    sms: Some("{{ nope }}".into()),
                    ..TemplateSet::default()
                },
            );
        let e = Templates::new(&cfg).err().unwrap();
        assert!(e.contains("zeta:en.delayed.sms"), "{e}");
    }
}
