//! `milepost watch`: follow a feed in the terminal. A recipient token shows the parcel's
//! one-line status as it changes; a dispatcher token shows a live table of the depot's drivers
//! and the latest route events. It resumes from its last offset after a lost connection, so no
//! milestone is missed.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use milepost_core::present::{dispatch_text, event_text, status_line};
use milepost_proto::route::{ParcelStatus, Update};
use milepost_proto::{CommandKind, DeviceInfo, DriverPosition, FeedTarget, ServerMsg};

use crate::client::{ClientEndpoint, ClientError, Session};

/// Follows the feed the token entitles to, forever (until Ctrl-C).
pub async fn watch(
    ep: &ClientEndpoint,
    server: SocketAddr,
    name: &str,
    token: &str,
    subject: &str,
    recipient: bool,
) -> Result<(), ClientError> {
    let mut after: Option<u64> = None;
    let mut status: Option<ParcelStatus> = None;
    let mut drivers: BTreeMap<String, DriverPosition> = BTreeMap::new();
    let mut events: Vec<String> = Vec::new();
    let mut backoff = Duration::from_millis(200);
    loop {
        let conn = match ep.connect(server, name).await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("connect: {e}; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        let mut session = Session::open(conn, token, subject, DeviceInfo::default()).await?;
        let target = if recipient {
            FeedTarget::Parcel(subject.into())
        } else {
            FeedTarget::Depot
        };
        let mut feed = session.subscribe(target, after).await?;
        backoff = Duration::from_millis(200);
        loop {
            let msg = match feed.next().await {
                Ok(m) => m,
                Err(e @ ClientError::Refused(_)) => return Err(e),
                Err(e) => {
                    eprintln!(
                        "feed lost ({e}); resuming after offset {}",
                        after.unwrap_or(0)
                    );
                    break;
                }
            };
            match msg {
                ServerMsg::FeedSnapshot(s) => {
                    after = Some(s.offset);
                    status = s.parcel;
                    drivers = s
                        .positions
                        .into_iter()
                        .map(|p| (p.driver.0.clone(), p))
                        .collect();
                }
                ServerMsg::FeedEvent { offset, update } => {
                    after = Some(offset);
                    match update {
                        Update::Parcel(p) => {
                            events.push(format!("#{offset} {}", event_text(&p.kind)));
                            if let Some(s) = status.as_mut() {
                                s.last_event = Some(p);
                            }
                        }
                        Update::Dispatch(d) => events.push(format!(
                            "#{offset} {} {}: {}",
                            d.route_id,
                            d.driver,
                            dispatch_text(&d.kind).1
                        )),
                        Update::Driver(_) => {}
                    }
                    if recipient {
                        // Refresh the status line (stops away, state, window) from the server's
                        // view, on the session stream: the feed has its own stream.
                        let ask = CommandKind::ParcelStatus {
                            tracking: subject.into(),
                        };
                        if let Ok(ServerMsg::ParcelStatus { status: s, .. }) =
                            session.command(offset as u32, ask).await
                        {
                            status = Some(s);
                        }
                    }
                }
                ServerMsg::FeedPosition(p) => {
                    drivers.insert(p.driver.0.clone(), p);
                }
                ServerMsg::FeedResync => events.push("(resync)".into()),
                _ => {}
            }
            render(recipient, subject, status.as_ref(), &drivers, &events);
        }
    }
}

fn render(
    recipient: bool,
    subject: &str,
    status: Option<&ParcelStatus>,
    drivers: &BTreeMap<String, DriverPosition>,
    events: &[String],
) {
    if recipient {
        let line = match status {
            Some(s) => {
                let last = s
                    .last_event
                    .as_ref()
                    .map(|u| event_text(&u.kind))
                    .unwrap_or_default();
                format!("{subject}: {} | last: {last}", status_line(s))
            }
            None => format!("{subject}: unknown parcel"),
        };
        let pos = drivers
            .values()
            .next()
            .map(|p| format!(" | driver at {:.5},{:.5}", p.fix.lat(), p.fix.lon()))
            .unwrap_or_default();
        println!("{line}{pos}");
        return;
    }
    // Dispatcher: clear the screen and draw the table.
    print!("\x1b[2J\x1b[H");
    println!(
        "{:<16} {:>11} {:>12} {:>8} {:>20}",
        "driver", "lat", "lon", "speed", "fix time (UTC)"
    );
    for p in drivers.values() {
        let t = chrono::DateTime::from_timestamp_millis(p.fix.t_ms)
            .map(|t| t.format("%H:%M:%S").to_string())
            .unwrap_or_default();
        let speed = p
            .fix
            .speed_mps
            .map(|s| format!("{s:.1}"))
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<16} {:>11.5} {:>12.5} {:>8} {:>20}",
            p.driver.0,
            p.fix.lat(),
            p.fix.lon(),
            speed,
            t
        );
    }
    println!("\nlatest events:");
    for e in events.iter().rev().take(10) {
        println!("  {e}");
    }
}
