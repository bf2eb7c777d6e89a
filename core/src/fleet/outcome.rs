//! Delivery outcomes reported by the driver or the back office: delivered (checking the proof:
//! digests, one-time code), failed, or returned to the sender (also after a failed attempt);
//! applying the outcome to the route's parcels and stops.
//!
//! A report is all-or-nothing: every parcel it names is checked before any is changed, so a
//! wrong code for one parcel of a stop leaves the whole stop untouched.

use milepost_proto::route::{
    valid_received_by, DispatchEvent, Outcome, ParcelEvent, ParcelState, Proof, ProofSummary,
    StopId, TrackingNumber, Update, MAX_RECEIVED_BY,
};
use milepost_proto::DriverId;

use crate::fleet::config::CoreConfig;
use crate::fleet::progress::StopPhase;
use crate::fleet::run::RouteRun;

/// What an outcome is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutcomeTarget {
    /// Every parcel of the stop that has no outcome yet.
    Stop(StopId),
    /// One parcel.
    Parcel(TrackingNumber),
}

/// Why an outcome (or instructions) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutcomeError {
    /// The driver has no route.
    #[error("driver {0} has no route")]
    NoRoute(DriverId),
    /// The stop is not on the driver's route.
    #[error("stop {0} is not on the driver's route")]
    UnknownStop(StopId),
    /// The parcel is not on the driver's route (or not known at all).
    #[error("parcel {0} is not known here")]
    UnknownParcel(TrackingNumber),
    /// The parcel already has an outcome (or the stop has no parcel left without one).
    #[error("parcel {0} already has an outcome")]
    AlreadyReported(TrackingNumber),
    /// The stop requires a one-time code and none was given.
    #[error("parcel {0}: one-time code required")]
    OtpRequired(TrackingNumber),
    /// The one-time code does not match the parcel's.
    #[error("parcel {0}: wrong one-time code")]
    WrongOtp(TrackingNumber),
    /// A delivery needs a photo, a signature or a code.
    #[error("delivery without any proof")]
    NoProof,
    /// A digest is not 64 hex characters.
    #[error("bad SHA-256 digest {0:?}")]
    BadDigest(String),
    /// The receiver's name is empty, too long or holds control characters.
    #[error("received_by must be 1 to {MAX_RECEIVED_BY} bytes of text")]
    BadReceiver,
}

impl RouteRun {
    /// Applies a reported outcome at `t_ms`.
    ///
    /// # Errors
    /// Unknown stop/parcel, a repeated report, a missing or wrong code, a malformed digest.
    pub fn report(
        &mut self,
        cfg: &CoreConfig,
        target: &OutcomeTarget,
        outcome: &Outcome,
        t_ms: i64,
        out: &mut Vec<Update>,
    ) -> Result<(), OutcomeError> {
        let returning = matches!(outcome, Outcome::Returned { .. });
        let (stop, parcels) = self.resolve(target, returning)?;
        let otp_verified = match outcome.delivery() {
            Some((proof, name)) => {
                if let Some(name) = name {
                    check_receiver(name)?;
                }
                self.check_proof(stop, &parcels, proof)?
            }
            None => false,
        };
        self.start(cfg, t_ms, out);
        for &k in &parcels {
            let summary = |proof: &Proof| ProofSummary {
                photo_sha256: proof.photo_sha256.clone(),
                signature_sha256: proof.signature_sha256.clone(),
                otp_verified,
            };
            let (state, kind) = match outcome {
                Outcome::Delivered { proof } => (
                    ParcelState::Delivered,
                    ParcelEvent::Delivered {
                        proof: summary(proof),
                        at_ms: t_ms,
                    },
                ),
                Outcome::DeliveredTo { proof, received_by } => (
                    ParcelState::Delivered,
                    ParcelEvent::DeliveredTo {
                        proof: summary(proof),
                        at_ms: t_ms,
                        received_by: received_by.trim().to_owned(),
                    },
                ),
                Outcome::Failed { reason, note } => (
                    ParcelState::Failed,
                    ParcelEvent::Failed {
                        reason: *reason,
                        note: note.clone(),
                    },
                ),
                Outcome::Returned { note } => (
                    ParcelState::Returned,
                    ParcelEvent::Returned { note: note.clone() },
                ),
            };
            self.parcels[k].state = state;
            self.emit_parcel(k, t_ms, kind, out);
        }
        if let Outcome::Failed { reason, .. } = outcome {
            let stop_id = self.plan.stops[stop].id.clone();
            out.push(self.dispatch(
                t_ms,
                DispatchEvent::AttemptFailed {
                    stop: stop_id,
                    reason: *reason,
                },
            ));
        }
        self.after_close(cfg, stop, t_ms, out);
        Ok(())
    }

    /// After parcels of `stop` were closed (an outcome, or taken off the route): the stop is
    /// done once all its parcels are, and the route finished once every parcel is.
    pub(crate) fn after_close(
        &mut self,
        cfg: &CoreConfig,
        stop: usize,
        t_ms: i64,
        out: &mut Vec<Update>,
    ) {
        if self.stop_parcels(stop).iter().all(|p| p.closed()) {
            self.stops[stop].progress.phase = StopPhase::Done;
            self.stops[stop].progress.inside_since_ms = None;
            if self.at_stop == Some(stop) {
                self.at_stop = None;
            }
            self.refresh_service(cfg);
            self.refresh_stops_away(cfg, t_ms, out);
        }
        if self.finished_ms.is_none() && self.parcels.iter().all(|p| p.closed()) {
            self.finished_ms = Some(t_ms);
            let delivered = self
                .parcels
                .iter()
                .filter(|p| p.state == ParcelState::Delivered)
                .count();
            let failed = self.parcels.len() - delivered;
            out.push(self.dispatch(
                t_ms,
                DispatchEvent::RouteFinished {
                    delivered: delivered as u32,
                    failed: failed as u32,
                },
            ));
        }
    }

    /// The stop index and the open parcel indices a target names; with `returning`, parcels
    /// whose attempt failed count as open too (a failed parcel may still be sent back, once).
    fn resolve(
        &self,
        target: &OutcomeTarget,
        returning: bool,
    ) -> Result<(usize, Vec<usize>), OutcomeError> {
        let closed = |k: usize| {
            let p = &self.parcels[k];
            p.closed() && !(returning && p.state == ParcelState::Failed && !p.withdrawn)
        };
        match target {
            OutcomeTarget::Stop(id) => {
                let i = self
                    .plan
                    .stops
                    .iter()
                    .position(|s| &s.id == id)
                    .ok_or_else(|| OutcomeError::UnknownStop(id.clone()))?;
                let open: Vec<usize> = self.parcel_range(i).filter(|&k| !closed(k)).collect();
                match open.is_empty() {
                    true => Err(OutcomeError::AlreadyReported(
                        self.parcels[self.parcel_range(i).start].tracking.clone(),
                    )),
                    false => Ok((i, open)),
                }
            }
            OutcomeTarget::Parcel(tn) => {
                let k = self
                    .parcels
                    .iter()
                    .position(|p| &p.tracking == tn)
                    .ok_or_else(|| OutcomeError::UnknownParcel(tn.clone()))?;
                if closed(k) {
                    return Err(OutcomeError::AlreadyReported(tn.clone()));
                }
                Ok((self.parcels[k].stop, vec![k]))
            }
        }
    }

    /// Checks a delivery proof for the given parcels; returns whether a code was verified.
    fn check_proof(
        &self,
        stop: usize,
        parcels: &[usize],
        proof: &Proof,
    ) -> Result<bool, OutcomeError> {
        for d in [&proof.photo_sha256, &proof.signature_sha256]
            .into_iter()
            .flatten()
        {
            if d.len() != 64 || !d.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(OutcomeError::BadDigest(d.clone()));
            }
        }
        let required = self.plan.stops[stop].otp_required;
        if proof.photo_sha256.is_none() && proof.signature_sha256.is_none() && proof.otp.is_none() {
            return Err(OutcomeError::NoProof);
        }
        let plan_parcels = &self.plan.stops[stop].parcels;
        let first = self.parcel_range(stop).start;
        let mut verified = proof.otp.is_some();
        for &k in parcels {
            let tn = &self.parcels[k].tracking;
            let code = plan_parcels.get(k - first).and_then(|p| p.otp.as_deref());
            match (&proof.otp, code) {
                (None, _) if required => return Err(OutcomeError::OtpRequired(tn.clone())),
                (Some(given), Some(code)) if !ct_eq(given.as_bytes(), code.as_bytes()) => {
                    return Err(OutcomeError::WrongOtp(tn.clone()))
                }
                (Some(_), None) => verified = false,
                _ => {}
            }
        }
        Ok(verified)
    }
}

/// A receiver's name: some text, at most [`MAX_RECEIVED_BY`] bytes, no control characters.
fn check_receiver(name: &str) -> Result<(), OutcomeError> {
    match valid_received_by(name) {
        true => Ok(()),
        false => Err(OutcomeError::BadReceiver),
    }
}

/// Constant-time comparison, so response timing does not leak how much of a guessed code was
/// right.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
