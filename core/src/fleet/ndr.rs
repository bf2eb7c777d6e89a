//! The failed-delivery (NDR) policy: after a failed attempt, what happens to the parcel,
//! decided in the fold from the carrier's rules (`[core.ndr]`) and the parcel's attempts so far,
//! so every gateway and every replay decides the same. The decision is a
//! [`ParcelEvent::NextStep`] that follows the attempt's `Failed`: the recipient is told what
//! happens next, and the back office acts on it (a later route for a re-attempt, a hold at a
//! pickup point, a return).

use std::collections::BTreeMap;

use milepost_proto::route::{FailureReason, NextStep, ParcelEvent, ParcelUpdate};
use serde::{Deserialize, Serialize};

/// What a failure reason leads to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Try again on a later route.
    Reattempt,
    /// Hold at `hold_place`.
    Hold,
    /// Send back.
    Return,
}

/// The policy (`[core.ndr]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NdrPolicy {
    /// After this many failed attempts the parcel goes back to the sender, whatever the reason.
    pub max_attempts: u32,
    /// Per failure reason (`recipient_absent`, `address_not_found`, `access_problem`,
    /// `refused`, `damaged`, `other`); a reason not listed is re-attempted.
    pub on: BTreeMap<String, Action>,
    /// Where held parcels wait, in words recipients read.
    pub hold_place: String,
}

impl Default for NdrPolicy {
    fn default() -> Self {
        let on = [
            ("recipient_absent", Action::Reattempt),
            ("access_problem", Action::Reattempt),
            ("address_not_found", Action::Hold),
            ("refused", Action::Return),
            ("damaged", Action::Return),
            ("other", Action::Reattempt),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        NdrPolicy {
            max_attempts: 3,
            on,
            hold_place: "the depot's pickup counter".into(),
        }
    }
}

/// A failure reason's name in the policy.
pub fn reason_name(r: FailureReason) -> &'static str {
    match r {
        FailureReason::RecipientAbsent => "recipient_absent",
        FailureReason::AddressNotFound => "address_not_found",
        FailureReason::AccessProblem => "access_problem",
        FailureReason::Refused => "refused",
        FailureReason::Damaged => "damaged",
        FailureReason::Other => "other",
    }
}

impl NdrPolicy {
    /// Checks the policy: a positive attempt limit, known reasons, a place when holding.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_attempts == 0 {
            return Err("core.ndr.max_attempts must be at least 1".into());
        }
        let known = FailureReason::ALL.map(reason_name);
        if let Some(k) = self.on.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(format!(
                "core.ndr.on: unknown reason {k:?} (one of {})",
                known.join(", ")
            ));
        }
        if self.hold_place.trim().is_empty() && self.on.values().any(|a| *a == Action::Hold) {
            return Err("core.ndr.hold_place must name where held parcels wait".into());
        }
        Ok(())
    }

    /// What happens after the `attempt`-th failed attempt (counting from 1) for `reason`.
    pub fn decide(&self, reason: FailureReason, attempt: u32) -> NextStep {
        if attempt >= self.max_attempts {
            return NextStep::Return;
        }
        match self
            .on
            .get(reason_name(reason))
            .copied()
            .unwrap_or(Action::Reattempt)
        {
            Action::Reattempt => NextStep::Reattempt,
            Action::Hold => NextStep::Hold {
                place: self.hold_place.clone(),
            },
            Action::Return => NextStep::Return,
        }
    }

    /// The next step after a parcel update, if it is a failed attempt: `failed_before` counts
    /// the parcel's earlier failed attempts (in its feed, across routes while it moves on to a
    /// later one).
    pub fn after(&self, u: &ParcelUpdate, failed_before: u32) -> Option<ParcelUpdate> {
        let ParcelEvent::Failed { reason, .. } = &u.kind else {
            return None;
        };
        let attempt = failed_before + 1;
        Some(ParcelUpdate {
            tracking: u.tracking.clone(),
            fix_t_ms: u.fix_t_ms,
            kind: ParcelEvent::NextStep {
                reason: *reason,
                attempt,
                next: self.decide(*reason, attempt),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(reason: FailureReason) -> ParcelUpdate {
        ParcelUpdate {
            tracking: "T".into(),
            fix_t_ms: 5,
            kind: ParcelEvent::Failed {
                reason,
                note: String::new(),
            },
        }
    }

    #[test]
    fn the_policy_follows_the_reason_then_the_attempt_limit() {
        let p = NdrPolicy::default();
        assert_eq!(
            p.decide(FailureReason::RecipientAbsent, 1),
            NextStep::Reattempt
        );
        assert_eq!(
            p.decide(FailureReason::AddressNotFound, 1),
            NextStep::Hold {
                place: "the depot's pickup counter".into()
            }
        );
        assert_eq!(p.decide(FailureReason::Refused, 1), NextStep::Return);
        assert_eq!(
            p.decide(FailureReason::RecipientAbsent, 3),
            NextStep::Return
        );
        p.validate().unwrap();
        let bad = NdrPolicy {
            on: [("absent".to_owned(), Action::Hold)].into_iter().collect(),
            ..NdrPolicy::default()
        };
        assert!(bad.validate().unwrap_err().contains("absent"));
    }

    #[test]
    fn attempts_count_the_parcels_earlier_failures() {
        let p = NdrPolicy::default();
        let first = p.after(&failed(FailureReason::RecipientAbsent), 0).unwrap();
        assert_eq!(
            first.kind,
            ParcelEvent::NextStep {
                reason: FailureReason::RecipientAbsent,
                attempt: 1,
                next: NextStep::Reattempt
            }
        );
        let third = p.after(&failed(FailureReason::RecipientAbsent), 2).unwrap();
        assert!(matches!(
            third.kind,
            ParcelEvent::NextStep {
                attempt: 3,
                next: NextStep::Return,
                ..
            }
        ));
        assert_eq!(p.after(&first, 2), None);
    }
}
