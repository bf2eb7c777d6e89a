//! Exports for BI tools: one carrier's closed routes of one local day as three Parquet files
//! (the `parquet` crate's column writer, Snappy-compressed), laid out by carrier and day:
//! `carrier=<id>/day=<YYYY-MM-DD>/{routes,stops,parcel_events}.parquet`. The carrier and the
//! day are in that path only, not in the files (Hive-partitioned readers take them from the
//! path and refuse a file column of the same name). The schema is in `docs/ANALYTICS.md`; a
//! day with no routes gives files with the schema and no rows.
//!
//! Routes still live are not exported (their numbers are not final): export a day once its
//! routes are archived (`log.archive_routes_after_s` after they finish) or cancelled.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::NaiveDate;
use milepost_core::analytics::RouteFacts;
use milepost_core::history::{Closed, RouteHistory};
use milepost_core::present::event_kind;
use milepost_proto::route::{ParcelEvent, ParcelState, RouteId};
use parquet::basic::Compression;
use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int32Type, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;

use super::local_day;
use crate::history::{History, HistoryError};
use crate::tenancy::Carriers;

/// The tables of a day's export, in file-name order.
pub const TABLES: [&str; 3] = ["routes", "stops", "parcel_events"];

/// A failure of an export.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Reading the history failed.
    #[error(transparent)]
    History(#[from] HistoryError),
    /// Writing Parquet failed.
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
}

/// One column's values (`None`: null).
enum Values {
    Str(Vec<Option<String>>),
    I64(Vec<Option<i64>>),
    I32(Vec<Option<i32>>),
    F64(Vec<Option<f64>>),
}

/// A table being built: columns in schema order.
struct Table {
    schema: &'static str,
    cols: Vec<Values>,
}

impl Table {
    fn new(schema: &'static str) -> Table {
        let cols = schema
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("optional"))
            .map(|l| {
                if l.contains("binary") {
                    Values::Str(Vec::new())
                } else if l.contains("int64") {
                    Values::I64(Vec::new())
                } else if l.contains("int32") {
                    Values::I32(Vec::new())
                } else {
                    Values::F64(Vec::new())
                }
            })
            .collect();
        Table { schema, cols }
    }

    fn s(&mut self, i: usize, v: Option<&str>) {
        if let Values::Str(c) = &mut self.cols[i] {
            c.push(v.map(str::to_owned));
        }
    }
    fn i(&mut self, i: usize, v: Option<i64>) {
        match &mut self.cols[i] {
            Values::I64(c) => c.push(v),
            Values::I32(c) => c.push(v.map(|v| v.clamp(i32::MIN.into(), i32::MAX.into()) as i32)),
            _ => {}
        }
    }
    fn f(&mut self, i: usize, v: Option<f64>) {
        if let Values::F64(c) = &mut self.cols[i] {
            c.push(v);
        }
    }

    /// The table as a Parquet file.
    fn write(self) -> Result<Vec<u8>, ExportError> {
        let schema = Arc::new(parse_message_type(self.schema)?);
        let props = Arc::new(
            WriterProperties::builder()
                .set_compression(Compression::SNAPPY)
                .set_created_by("milepost".into())
                .build(),
        );
        let mut w = SerializedFileWriter::new(Vec::new(), schema, props)?;
        let mut rg = w.next_row_group()?;
        let mut cols = self.cols.into_iter();
        while let Some(mut cw) = rg.next_column()? {
            let Some(values) = cols.next() else { break };
            match values {
                Values::Str(v) => {
                    let def = levels(&v);
                    let vals: Vec<ByteArray> = v
                        .into_iter()
                        .flatten()
                        .map(|s| ByteArray::from(s.into_bytes()))
                        .collect();
                    cw.typed::<ByteArrayType>()
                        .write_batch(&vals, Some(&def), None)?;
                }
                Values::I64(v) => {
                    let def = levels(&v);
                    let vals: Vec<i64> = v.into_iter().flatten().collect();
                    cw.typed::<Int64Type>()
                        .write_batch(&vals, Some(&def), None)?;
                }
                Values::I32(v) => {
                    let def = levels(&v);
                    let vals: Vec<i32> = v.into_iter().flatten().collect();
                    cw.typed::<Int32Type>()
                        .write_batch(&vals, Some(&def), None)?;
                }
                Values::F64(v) => {
                    let def = levels(&v);
                    let vals: Vec<f64> = v.into_iter().flatten().collect();
                    cw.typed::<DoubleType>()
                        .write_batch(&vals, Some(&def), None)?;
                }
            }
            cw.close()?;
        }
        rg.close()?;
        Ok(w.into_inner()?)
    }
}

fn levels<T>(v: &[Option<T>]) -> Vec<i16> {
    v.iter().map(|x| i16::from(x.is_some())).collect()
}

const ROUTES: &str = "message routes {
  optional binary route_id (STRING);
  optional binary depot (STRING);
  optional binary driver (STRING);
  optional binary closed (STRING);
  optional int64 planned_start (TIMESTAMP(MILLIS,true));
  optional int64 started (TIMESTAMP(MILLIS,true));
  optional int64 finished (TIMESTAMP(MILLIS,true));
  optional int32 stops;
  optional int32 stops_served;
  optional int32 stops_with_window;
  optional int32 on_time;
  optional int32 early;
  optional int32 late;
  optional int32 parcels;
  optional int32 delivered;
  optional int32 failed;
  optional int32 first_attempts;
  optional int32 first_attempt_delivered;
  optional int64 working_s;
  optional double driven_m;
  optional int32 stalls;
  optional int32 late_alerts;
}";

const STOPS: &str = "message stops {
  optional binary route_id (STRING);
  optional binary stop_id (STRING);
  optional int32 position;
  optional int64 window_start (TIMESTAMP(MILLIS,true));
  optional int64 window_end (TIMESTAMP(MILLIS,true));
  optional int64 planned_arrival (TIMESTAMP(MILLIS,true));
  optional int64 arrived (TIMESTAMP(MILLIS,true));
  optional int64 departed (TIMESTAMP(MILLIS,true));
  optional int32 parcels;
  optional int32 delivered;
  optional int32 failed;
}";

const PARCEL_EVENTS: &str = "message parcel_events {
  optional binary route_id (STRING);
  optional binary tracking (STRING);
  optional int64 at (TIMESTAMP(MILLIS,true));
  optional binary event (STRING);
  optional binary reason (STRING);
}";

/// Where a route's part of its parcels' histories may start and ends: it began at its planned
/// start, or its start if earlier; it ends at its finish (its close, if it never finished).
#[derive(Clone, Copy)]
struct Span {
    began: i64,
    finish: i64,
}

impl Span {
    fn of(r: &RouteHistory) -> Span {
        Span {
            began: r
                .view
                .started_ms
                .map_or(r.planned_start_ms, |s| s.min(r.planned_start_ms)),
            finish: r.view.finished_ms.unwrap_or(r.closed_ms).min(r.closed_ms),
        }
    }
}

/// Where a parcel's history passes from route `prev` to route `next`: `next`'s beginning,
/// but never before `prev` finished (a parcel is on one unfinished route at a time, so nothing
/// of `next` comes before that).
fn boundary(prev: Option<Span>, next: Span) -> i64 {
    prev.map_or(next.began, |p| next.began.max(p.finish + 1))
}

/// The spans of the routes an export meets, each read from the history once.
struct Spans<'a> {
    history: &'a History,
    known: HashMap<RouteId, Option<Span>>,
}

impl Spans<'_> {
    fn get(&mut self, id: &RouteId) -> Result<Option<Span>, ExportError> {
        if let Some(s) = self.known.get(id) {
            return Ok(*s);
        }
        let s = self.history.route(id)?.as_ref().map(Span::of);
        self.known.insert(id.clone(), s);
        Ok(s)
    }

    /// The part `[since, until]` of a parcel's history (it spans the parcel's routes,
    /// `routes`, oldest first) that belongs to route `id` (span `own`): from the boundary with
    /// the route before (from the first event, for the parcel's first route) to the boundary
    /// with the next one when that route is in the history too, else to this route's finish.
    /// So a retry's events never land in an earlier route's rows, whenever the earlier route
    /// was archived.
    fn part_of(
        &mut self,
        routes: &[RouteId],
        id: &RouteId,
        own: Span,
    ) -> Result<(i64, i64), ExportError> {
        let k = routes.iter().position(|x| x == id);
        let since = match k {
            Some(k) if k > 0 => boundary(self.get(&routes[k - 1])?, own),
            _ => i64::MIN,
        };
        let next = match k.and_then(|k| routes.get(k + 1)) {
            Some(n) => self.get(n)?,
            None => None,
        };
        let until = match next {
            Some(n) => boundary(Some(own), n) - 1,
            None => own.finish,
        };
        Ok((since, until))
    }
}

/// One carrier's export of one local day: each table's Parquet file, in [`TABLES`] order.
pub struct DayExport {
    /// `(table name, file bytes)`.
    pub files: Vec<(&'static str, Vec<u8>)>,
    /// Routes exported.
    pub routes: usize,
    /// Parcel events exported.
    pub parcel_events: usize,
}

/// Exports `carrier`'s closed routes planned on local `day`, from `depots` (those the caller
/// may read; the carrier's others are left out).
pub fn export_day(
    history: &History,
    carriers: &Carriers,
    depots: &[String],
    carrier: &str,
    day: NaiveDate,
) -> Result<DayExport, ExportError> {
    let tz = carriers.tz(carrier);
    let day_s = day.format("%Y-%m-%d").to_string();
    let before = day.pred_opt().unwrap_or(day).format("%Y-%m-%d").to_string();
    let after = day.succ_opt().unwrap_or(day).format("%Y-%m-%d").to_string();
    let mut closed: Vec<(RouteFacts, RouteHistory)> = Vec::new();
    for depot in depots.iter().filter(|d| carriers.carrier_of(d) == carrier) {
        for f in history.facts(
            &milepost_proto::route::DepotId(depot.clone()),
            &before,
            &after,
        )? {
            if local_day(f.planned_start_ms, tz) != day_s {
                continue;
            }
            if let Some(r) = history.route(&f.route_id)? {
                closed.push((f, r));
            }
        }
    }
    closed.sort_by(|a, b| a.0.route_id.cmp(&b.0.route_id));
    let mut routes = Table::new(ROUTES);
    let mut stops = Table::new(STOPS);
    let mut events = Table::new(PARCEL_EVENTS);
    let mut n_events = 0;
    let mut spans = Spans {
        history,
        known: closed
            .iter()
            .map(|(f, r)| (f.route_id.clone(), Some(Span::of(r))))
            .collect(),
    };
    for (f, r) in &closed {
        let id = f.route_id.0.as_str();
        let closed_s = match r.closed {
            Closed::Archived => "archived",
            Closed::Cancelled => "cancelled",
        };
        routes.s(0, Some(id));
        routes.s(1, Some(&f.depot.0));
        routes.s(2, Some(&f.driver.0));
        routes.s(3, Some(closed_s));
        routes.i(4, Some(f.planned_start_ms));
        routes.i(5, f.started_ms);
        routes.i(6, f.finished_ms);
        for (k, v) in [
            f.counts.stops,
            f.counts.stops_served,
            f.counts.with_window,
            f.counts.on_time,
            f.counts.early,
            f.counts.late,
            f.counts.parcels,
            f.counts.delivered,
            f.counts.failed,
            f.counts.first_attempts,
            f.counts.first_attempt_delivered,
        ]
        .into_iter()
        .enumerate()
        {
            routes.i(7 + k, Some(i64::from(v)));
        }
        routes.i(18, Some(f.counts.working_s as i64));
        routes.f(19, Some(f.counts.driven_m));
        routes.i(20, Some(i64::from(f.counts.stalls)));
        routes.i(21, Some(i64::from(f.counts.late_alerts)));
        for (pos, s) in r.view.stops.iter().enumerate() {
            stops.s(0, Some(id));
            stops.s(1, Some(&s.id.0));
            stops.i(2, Some(pos as i64));
            stops.i(3, s.window.map(|w| w.start_ms));
            stops.i(4, s.window.map(|w| w.end_ms));
            stops.i(5, s.planned_arrival_ms);
            stops.i(6, s.arrived_ms);
            stops.i(7, s.departed_ms);
            let count = |st: &[ParcelState]| {
                Some(s.parcels.iter().filter(|(_, p)| st.contains(p)).count() as i64)
            };
            stops.i(8, Some(s.parcels.len() as i64));
            stops.i(9, count(&[ParcelState::Delivered]));
            stops.i(10, count(&[ParcelState::Failed, ParcelState::Returned]));
            for (t, _) in &s.parcels {
                let Some(h) = history.parcel(t)? else {
                    continue;
                };
                let (since, until) = spans.part_of(&h.routes, &f.route_id, Span::of(r))?;
                for m in h
                    .milestones
                    .iter()
                    .filter(|m| m.fix_t_ms >= since && m.fix_t_ms <= until)
                {
                    let reason = match &m.kind {
                        ParcelEvent::Failed { reason, .. }
                        | ParcelEvent::NextStep { reason, .. } => {
                            Some(milepost_core::fleet::ndr::reason_name(*reason))
                        }
                        _ => None,
                    };
                    events.s(0, Some(id));
                    events.s(1, Some(&t.0));
                    events.i(2, Some(m.fix_t_ms));
                    events.s(3, Some(event_kind(&m.kind)));
                    events.s(4, reason);
                    n_events += 1;
                }
            }
        }
    }
    Ok(DayExport {
        files: vec![
            ("routes", routes.write()?),
            ("stops", stops.write()?),
            ("parcel_events", events.write()?),
        ],
        routes: closed.len(),
        parcel_events: n_events,
    })
}
