//! `milepost demo`: a delivery day a newcomer can watch. It starts a gateway with its web
//! pages, lays a route of a few stops on a real recorded trace ([`plan`]), starts it now,
//! and drives it through the driver's own QUIC session the way a phone would: fixes along the
//! trace at the chosen speed, a real dwell at every stop, the proof photo uploaded on the
//! session's upload stream, then the outcome (delivered with a photo, with a code, to a named
//! person; one attempt fails with a reason). The recipient's tracking page and the
//! dispatcher's map follow it live.
//!
//! Fix times are the wall clock when each fix is sent: what a viewer reads on the pages
//! ("arriving 14:05-14:15", "driver position at 14:02") is about now. At a speed above 1 the
//! driver covers the trace faster than it was recorded; the ETA learns that pace like any
//! other.

pub mod plan;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use milepost_proto::route::{Outcome, Proof};
use milepost_proto::{CommandKind, DeviceInfo, Fix, Seq};

use crate::auth::{Claims, Role};
use crate::client::{ClientEndpoint, Session};
use crate::replay::trace::TracePoint;
use crate::server::Gateway;
use plan::{Action, Plan};

/// How the demo drives (its speed is in the plan's timeline).
#[derive(Clone, Debug)]
pub struct DriveOptions {
    /// Time at each stop before the outcome, ms.
    pub dwell_ms: i64,
    /// Fixes sent while standing at a stop, one every this many ms.
    pub dwell_fix_ms: i64,
}

/// Something that happened on the demo's day, for the terminal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// The driver left the depot.
    Started,
    /// The driver stopped at a stop.
    AtStop {
        /// The stop.
        stop: String,
    },
    /// An outcome was recorded.
    Outcome {
        /// The stop.
        stop: String,
        /// Its parcel.
        tracking: String,
        /// In words.
        what: String,
    },
    /// The trace ended.
    Finished,
}

/// The links a person opens to watch the day.
#[derive(Clone, Debug)]
pub struct Links {
    /// The dispatcher's live map of the demo depot.
    pub dispatcher: String,
    /// One tracking page per parcel, in stop order.
    pub parcels: Vec<(String, String)>,
    /// The API's reference page.
    pub api_docs: String,
}

/// Tokens for the day, valid for `ttl_s`: the driver's, and the links' with their tokens.
pub fn links(gw: &Gateway, plan: &Plan, web: SocketAddr, ttl_s: i64) -> (String, Links) {
    let mint = |role, sub: &str| token(gw, role, sub, ttl_s);
    let base = format!("http://{web}");
    let parcels = plan
        .route
        .stops
        .iter()
        .flat_map(|s| &s.parcels)
        .map(|p| {
            let t = &p.tracking.0;
            (
                t.clone(),
                format!("{base}/t/{t}?token={}", mint(Role::Recipient, t)),
            )
        })
        .collect();
    let links = Links {
        dispatcher: format!(
            "{base}/dispatch?token={}",
            mint(Role::Dispatcher, plan::DEPOT)
        ),
        parcels,
        api_docs: format!("{base}/api/v1/docs"),
    };
    (mint(Role::Driver, plan::DRIVER), links)
}

/// Assigns the plan's route, as the depot's dispatcher would, over QUIC: its parcels exist
/// (and their tracking links open) from here on.
///
/// # Errors
/// The gateway refused the route, or the connection failed.
pub async fn assign(gw: &Gateway, plan: &Plan) -> anyhow::Result<()> {
    let ep = endpoint(gw)?;
    let dispatcher = token(gw, Role::Dispatcher, plan::DEPOT, 3600);
    let mut office = open(&ep, gw.local_addr, &dispatcher, plan::DEPOT).await?;
    office
        .command(1, CommandKind::AssignRoute(plan.route.clone()))
        .await?;
    office.close();
    ep.quinn().wait_idle().await;
    Ok(())
}

/// A token of the demo depot for `role` and `sub`, valid `ttl_s` from now.
fn token(gw: &Gateway, role: Role, sub: &str, ttl_s: i64) -> String {
    let now = chrono::Utc::now().timestamp();
    gw.mint(&Claims {
        role,
        sub: sub.to_owned(),
        depot: plan::DEPOT.to_owned(),
        exp: now + ttl_s,
        iat: now,
        carrier: None,
    })
}

/// A client endpoint trusting the gateway's development CA.
fn endpoint(gw: &Gateway) -> anyhow::Result<ClientEndpoint> {
    let ca = gw
        .dev_ca
        .clone()
        .ok_or_else(|| anyhow::anyhow!("the demo gateway has no development CA"))?;
    Ok(ClientEndpoint::new(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        &ca,
    )?)
}

/// Drives the day of an assigned plan ([`assign`]) over the driver's own QUIC session,
/// telling `step` as it goes. Returns when the trace ends.
///
/// # Errors
/// The gateway refused a fix batch, an upload or an outcome, or the connection failed.
pub async fn drive_day(
    gw: &Gateway,
    plan: &Plan,
    points: &[TracePoint],
    driver_token: &str,
    o: &DriveOptions,
    mut step: impl FnMut(Step),
) -> anyhow::Result<()> {
    let ep = endpoint(gw)?;
    let mut phone = Phone {
        session: open(&ep, gw.local_addr, driver_token, plan::DRIVER).await?,
        seq: 0,
    };
    phone.seq = phone.session.welcome.watermark.0;
    let mut next = plan.stops.iter().enumerate().peekable();
    step(Step::Started);
    for (i, p) in points.iter().enumerate() {
        if i > 0 {
            let gap = plan.timeline[i] - plan.timeline[i - 1];
            tokio::time::sleep(Duration::from_millis(gap.max(0) as u64)).await;
        }
        phone.send(p.lat, p.lon).await?;
        let Some((k, stop)) = next.next_if(|(_, s)| s.at == i) else {
            continue;
        };
        let id = plan.route.stops[k].id.0.clone();
        step(Step::AtStop { stop: id.clone() });
        let mut stood = 0;
        while stood < o.dwell_ms {
            tokio::time::sleep(Duration::from_millis(o.dwell_fix_ms as u64)).await;
            stood += o.dwell_fix_ms;
            phone.send(p.lat, p.lon).await?;
        }
        let tracking = plan::tracking(k);
        let (outcome, what) = phone.outcome(&stop.action, &tracking).await?;
        phone
            .session
            .command(
                10 + k as u32,
                CommandKind::ReportOutcome {
                    stop: id.as_str().into(),
                    tracking: None,
                    outcome,
                },
            )
            .await?;
        step(Step::Outcome {
            stop: id,
            tracking,
            what,
        });
    }
    step(Step::Finished);
    phone.session.close();
    ep.quinn().wait_idle().await;
    Ok(())
}

/// The demo driver's phone: its session and its next seq.
struct Phone {
    session: Session,
    seq: u64,
}

impl Phone {
    /// Sends one fix at (lat, lon), timed now, and waits for its ack.
    async fn send(&mut self, lat: f64, lon: f64) -> anyhow::Result<()> {
        self.seq += 1;
        let now = chrono::Utc::now().timestamp_millis();
        let fix = Fix::from_degrees(now, lat, lon, 6.0);
        let ack = self.session.batch(Seq(self.seq), vec![fix]).await?;
        if let Some(r) = ack.rejected.first() {
            anyhow::bail!("the gateway refused a demo fix: {:?}", r.reason);
        }
        Ok(())
    }

    /// The outcome for `action` (uploading its photo first), and its words.
    async fn outcome(
        &mut self,
        action: &Action,
        tracking: &str,
    ) -> anyhow::Result<(Outcome, String)> {
        let photo = || {
            // A stand-in for the doorstep photo: a JPEG header and a caption.
            let mut b = b"\xff\xd8\xff\xe0 milepost demo doorstep photo of ".to_vec();
            b.extend_from_slice(tracking.as_bytes());
            b
        };
        Ok(match action {
            Action::Photo => {
                let sha = self.session.upload(1, &photo()).await?;
                let what = format!("delivered, photo {}…", &sha[..10]);
                let proof = proof(Some(sha), None);
                (Outcome::Delivered { proof }, what)
            }
            Action::HandedTo(name) => {
                let sha = self.session.upload(2, &photo()).await?;
                let o = Outcome::DeliveredTo {
                    proof: proof(Some(sha), None),
                    received_by: (*name).to_owned(),
                };
                (o, format!("delivered to {name}, photo"))
            }
            Action::Code => (
                Outcome::Delivered {
                    proof: proof(None, Some(plan::OTP.to_owned())),
                },
                "delivered against the one-time code".into(),
            ),
            Action::Fail(reason) => (
                Outcome::Failed {
                    reason: *reason,
                    note: "nobody answered; a card was left".into(),
                },
                format!(
                    "attempt failed: {}",
                    milepost_core::present::reason_text(*reason)
                ),
            ),
        })
    }
}

fn proof(photo_sha256: Option<String>, otp: Option<String>) -> Proof {
    Proof {
        photo_sha256,
        signature_sha256: None,
        otp,
    }
}

/// A session as `subject`.
async fn open(
    ep: &ClientEndpoint,
    server: SocketAddr,
    token: &str,
    subject: &str,
) -> anyhow::Result<Session> {
    let conn = ep.connect(server, "localhost").await?;
    let device = DeviceInfo {
        device_id: format!("demo-{subject}"),
        app: concat!("milepost-demo/", env!("CARGO_PKG_VERSION")).into(),
        os: std::env::consts::OS.into(),
    };
    Ok(Session::open(conn, token, subject, device).await?)
}

/// True if `addr` can be bound now (TCP), so that a busy port is named before anything starts.
pub fn tcp_free(addr: SocketAddr) -> bool {
    std::net::TcpListener::bind(addr).is_ok()
}

/// True if `addr` can be bound now (UDP).
pub fn udp_free(addr: SocketAddr) -> bool {
    std::net::UdpSocket::bind(addr).is_ok()
}

/// A fresh data directory for one demo run under the system's temporary directory.
pub fn fresh_dir() -> std::io::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "milepost-demo-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_millis()
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Removes a directory made by [`fresh_dir`] (best effort).
pub fn remove_dir(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
}
