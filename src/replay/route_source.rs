//! `--route` of `drive` and `replay`: the route a recorded trace drives, from a route file
//! (route JSON, docs/ROUTES.md) or from the gateway, by the id of a route it has loaded (its
//! plan is read over a dispatcher session, [`CommandKind::GetRoute`]). Either way the caller
//! moves it in time with the trace.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use milepost_core::fleet::route::RouteJson;
use milepost_proto::route::{Route, RouteId};
use milepost_proto::{CommandKind, ErrorCode, ServerMsg};

use crate::client::{ClientError, Session};

/// Where a `--route` comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteSource {
    /// A route file.
    File(PathBuf),
    /// The id of a route the gateway has loaded.
    Loaded(RouteId),
}

impl RouteSource {
    /// An existing file, or a name ending in `.json` (a missing file is an error to report,
    /// not an id), is a file; anything else is a loaded route's id.
    pub fn parse(arg: &str) -> RouteSource {
        let path = Path::new(arg);
        if path.is_file() || arg.ends_with(".json") {
            RouteSource::File(path.to_owned())
        } else {
            RouteSource::Loaded(RouteId(arg.to_owned()))
        }
    }
}

/// Reads and checks a route file.
///
/// # Errors
/// An unreadable file, or one that is not a valid route.
pub fn read_file(path: &Path) -> anyhow::Result<Route> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Route::from_json(&text).with_context(|| format!("{}", path.display()))
}

/// The plan of the loaded route `id`, asked over the dispatcher session `s` of `depot`.
///
/// # Errors
/// No such route in the depot (a message that says what `--route` takes), a refusal or a
/// lost connection.
pub async fn fetch(s: &mut Session, depot: &str, id: &RouteId) -> anyhow::Result<Route> {
    let asked = CommandKind::GetRoute {
        route_id: id.clone(),
    };
    match s.command(1, asked).await {
        Ok(ServerMsg::Route { route, .. }) => Ok(route),
        Ok(other) => bail!("the gateway answered {other:?} when asked for route {id}"),
        Err(e) if e.code() == Some(ErrorCode::NotFound) => bail!(
            "--route {id}: no such file, and depot {depot} has no route {id} loaded \
             (give a route JSON file, or the id of a route the depot has loaded)"
        ),
        Err(ClientError::Refused(e)) => {
            bail!("the gateway refused to show route {id}: {}", e.message)
        }
        Err(e) => Err(e).with_context(|| format!("asking the gateway for route {id}")),
    }
}

/// A loaded route moves with a trace only if it is still on the trace's day: one already
/// moved (by an earlier `drive --route ID`) would be moved again, months away.
///
/// # Errors
/// The route's planned start is more than a day from the trace's first point.
pub fn on_the_traces_day(route: &Route, trace_start_ms: i64) -> anyhow::Result<()> {
    const DAY_MS: i64 = 86_400_000;
    if (route.planned_start_ms - trace_start_ms).abs() > DAY_MS {
        let day = |ms: i64| {
            chrono::DateTime::from_timestamp_millis(ms)
                .map_or_else(|| ms.to_string(), |d| d.format("%Y-%m-%d").to_string())
        };
        bail!(
            "--route {}: the loaded route starts on {}, not on the trace's day ({}); it was \
             moved already. Give its route file, or load it again as recorded",
            route.id,
            day(route.planned_start_ms),
            day(trace_start_ms)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_or_a_loaded_routes_id() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("day");
        std::fs::write(&file, "{}").unwrap();
        let file_arg = file.to_str().unwrap();
        assert_eq!(
            RouteSource::parse(file_arg),
            RouteSource::File(file.clone())
        );
        // A missing .json is a file to complain about, not an id.
        assert_eq!(
            RouteSource::parse("missing.json"),
            RouteSource::File("missing.json".into())
        );
        assert_eq!(
            RouteSource::parse("R-2026-12-07"),
            RouteSource::Loaded(RouteId("R-2026-12-07".into()))
        );
        assert!(read_file(&file).is_err());
    }

    #[test]
    fn a_route_moved_already_is_not_moved_again() {
        use milepost_core::fleet::route::RouteJson;
        let route = Route::from_json(include_str!("../../examples/route.json")).unwrap();
        let start = route.planned_start_ms;
        assert!(on_the_traces_day(&route, start + 3_600_000).is_ok());
        let err = on_the_traces_day(&route, start + 40 * 86_400_000).unwrap_err();
        assert!(err.to_string().contains("moved already"), "{err}");
    }
}
