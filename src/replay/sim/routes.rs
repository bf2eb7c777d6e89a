//! `replay --route`: every simulated driver drives a copy of one recorded route on the one
//! trace, in the same time base. A driver replays the trace from its start (no phase), so the
//! trace time `t` of its fix is stamped `t + offset` with one offset per driver (see
//! [`Run::stamp_ms`]); its route copy is moved by that offset, and by the driver's spread in
//! space, and its ids are made its own ([`copy_for`]). The copies are assigned by one
//! dispatcher session per depot, in the order the drivers start ([`assign`]).

use std::collections::HashMap;
use std::sync::Arc;

use milepost_core::fleet::route::shift_route;
use milepost_proto::route::Route;
use milepost_proto::{CommandKind, DeviceInfo, ServerMsg};

use super::config::ReplayConfig;
use super::plan::DriverPlan;
use super::run::Run;
use crate::auth::{Claims, Role};
use crate::client::{ClientEndpoint, Session};
use crate::replay::metrics::RoutesAssigned as Assigned;

/// Driver `plan`'s copy of `route`: its ids suffixed with the driver's (`R1` for `sim-00001`
/// is `R1.sim-00001`, and so are its tracking numbers), its driver and depot the driver's,
/// every stop moved by the driver's spread and every time by `offset_ms`.
pub(super) fn copy_for(route: &Route, plan: &DriverPlan, depot: &str, offset_ms: i64) -> Route {
    let mut r = route.clone();
    let own = |id: &str| format!("{id}.{}", plan.id);
    r.id = own(&route.id.0).as_str().into();
    r.driver = plan.id.as_str().into();
    r.depot = depot.into();
    for s in &mut r.stops {
        s.lat += plan.dlat;
        s.lon += plan.dlon;
        for p in &mut s.parcels {
            p.tracking = own(&p.tracking.0).as_str().into();
            // A template read from the gateway comes without its codes: the copy gets its own
            // (the simulated drivers report no outcomes).
            if p.otp.is_none() && s.otp_required {
                let sum = (p.tracking.0.bytes())
                    .fold(0u32, |a, b| a.wrapping_mul(31).wrapping_add(u32::from(b)));
                p.otp = Some(format!("{:04}", sum % 10_000));
            }
        }
    }
    shift_route(&mut r, offset_ms);
    r
}

/// Assigns every driver's copy of `route`, the first to start first, over one dispatcher
/// session per depot (opened when first needed; a failure is counted and logged, and the
/// driver drives without its route).
pub(super) async fn assign(
    run: Arc<Run>,
    route: Route,
    plans: Vec<(DriverPlan, String)>,
    ep: ClientEndpoint,
) -> Assigned {
    let t0 = run.traces[0].points.first().map_or(0, |p| p.t_ms);
    let mut plans = plans;
    plans.sort_by_key(|(p, _)| p.start_us);
    let mut sessions: HashMap<String, Session> = HashMap::new();
    let mut done = Assigned::default();
    for (i, (plan, depot)) in plans.into_iter().enumerate() {
        // The trace's first point is stamped when the driver starts (recorded pace: at once).
        let offset_ms = run.stamp_ms(plan.start_us) - t0;
        let copy = copy_for(&route, &plan, &depot, offset_ms);
        let s = match sessions.get_mut(&depot) {
            Some(s) => s,
            None => match dispatcher(&run.cfg, &ep, &depot).await {
                Ok(s) => sessions.entry(depot.clone()).or_insert(s),
                Err(e) => {
                    tracing::warn!(%depot, error = %e, "replay --route: no dispatcher session");
                    done.failed += 1;
                    continue;
                }
            },
        };
        match s
            .command(i as u32 + 1, CommandKind::AssignRoute(copy))
            .await
        {
            Ok(ServerMsg::Done { .. }) => done.ok += 1,
            Ok(other) => {
                tracing::warn!(driver = %plan.id, answer = ?other, "replay --route: route refused");
                done.failed += 1;
            }
            Err(e) => {
                tracing::warn!(driver = %plan.id, error = %e, "replay --route: route not sent");
                sessions.remove(&depot);
                done.failed += 1;
            }
        }
    }
    for (_, s) in sessions {
        s.close();
    }
    done
}

/// A dispatcher session of `depot`, its token minted with the replay's key (also how
/// `replay --route ID` reads a loaded route).
pub(crate) async fn dispatcher(
    cfg: &ReplayConfig,
    ep: &ClientEndpoint,
    depot: &str,
) -> Result<Session, crate::client::ClientError> {
    let now_s = chrono::Utc::now().timestamp();
    let token = cfg.key.mint(&Claims {
        role: Role::Dispatcher,
        sub: depot.to_owned(),
        depot: depot.to_owned(),
        exp: now_s + 24 * 3600,
        iat: now_s,
        carrier: None,
    });
    let conn = ep.connect(cfg.server, &cfg.server_name).await?;
    Session::open(conn, &token, depot, DeviceInfo::default()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drivers_copy_is_its_own_and_moves_with_it() {
        use milepost_core::fleet::route::RouteJson;
        let route =
            Route::from_json(include_str!("../../../examples/route.json")).expect("example route");
        let plan = DriverPlan {
            id: "sim-00007".into(),
            trace: 0,
            phase_ms: 0,
            dlat: 0.001,
            dlon: -0.002,
            start_us: 0,
            offline: None,
            migrate_at: None,
            rng: 1,
            schedule: Default::default(),
            net_seed: 1,
        };
        let c = copy_for(&route, &plan, "sim-3", 60_000);
        assert_eq!(c.id.0, format!("{}.sim-00007", route.id));
        assert_eq!(
            (c.driver.0.as_str(), c.depot.0.as_str()),
            ("sim-00007", "sim-3")
        );
        assert_eq!(c.planned_start_ms, route.planned_start_ms + 60_000);
        for (a, b) in route.stops.iter().zip(&c.stops) {
            assert!((b.lat - a.lat - 0.001).abs() < 1e-12 && (b.lon - a.lon + 0.002).abs() < 1e-12);
            for (p, q) in a.parcels.iter().zip(&b.parcels) {
                assert_eq!(q.tracking.0, format!("{}.sim-00007", p.tracking));
            }
            assert_eq!(
                b.window.map(|w| w.start_ms),
                a.window.map(|w| w.start_ms + 60_000)
            );
        }
    }
}
