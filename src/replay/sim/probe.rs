//! What is sampled from outside the drivers: at the measurement window's edges, the counters
//! and the CPU time and memory of the gateway, the load generator and the machine (from
//! `/proc`, see [`crate::replay::metrics`]); over the whole run, the UDP datagrams the kernel
//! dropped on the gateway's and the load generator's sockets.

use std::net::SocketAddr;
use std::sync::Arc;

use super::run::Run;
use crate::client::ClientEndpoint;
use crate::replay::metrics::{Counters, UdpDrops};
use crate::replay::procfs::{
    machine_busy_us, proc_sample, udp_buffer_errors, udp_socket_drops, ProcSample,
};

/// Samples taken at one edge of the window.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(super) struct Edge {
    /// When, us since the run's start.
    pub wall_us: u64,
    /// `Counters::acked` then.
    pub acked: u64,
    /// `Counters::sent` then.
    pub sent: u64,
    /// `Counters::connected` then.
    pub connected: u64,
    /// The gateway's process, when its id is known.
    pub gateway: Option<ProcSample>,
    /// The load generator's process.
    pub client: Option<ProcSample>,
    /// The machine's busy CPU time, us.
    pub machine: Option<u64>,
}

/// Samples taken at the window's edges.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(super) struct Probes {
    /// At the window's start.
    pub start: Edge,
    /// At the window's end.
    pub end: Edge,
}

impl Edge {
    /// Samples now. `gw_pid`: the gateway's process id.
    fn take(run: &Run, gw_pid: Option<&str>) -> Edge {
        Edge {
            wall_us: run.now_us(),
            acked: Counters::get(&run.c.acked),
            sent: Counters::get(&run.c.sent),
            connected: Counters::get(&run.c.connected),
            gateway: gw_pid.and_then(proc_sample),
            client: proc_sample("self"),
            machine: machine_busy_us(),
        }
    }
}

/// Samples the counters and the processes' CPU at the window's start and end.
pub(super) async fn window_probe(run: Arc<Run>, gw_pid: Option<String>) -> Probes {
    tokio::time::sleep_until(run.at(run.win.0)).await;
    let start = Edge::take(&run, gw_pid.as_deref());
    tokio::time::sleep_until(run.at(run.win.1)).await;
    let end = Edge::take(&run, gw_pid.as_deref());
    Probes { start, end }
}

/// The kernel's UDP drop counters at the run's start, to count the drops during it.
pub(super) struct DropProbe {
    /// The gateway's port: its socket is in this machine's tables only when it runs here.
    gw_port: Vec<u16>,
    /// Drops on the gateway's socket, and machine-wide buffer errors.
    before: (Option<u64>, Option<u64>),
}

impl DropProbe {
    /// Reads the counters now, for a gateway at `server`.
    pub fn start(server: SocketAddr) -> DropProbe {
        let gw_port: Vec<u16> = match server.ip().is_loopback() {
            true => vec![server.port()],
            false => Vec::new(),
        };
        let before = (udp_socket_drops(&gw_port), udp_buffer_errors());
        DropProbe { gw_port, before }
    }

    /// The drops since the start. Call before the load generator's endpoints `eps` close:
    /// their sockets' drop counters go with them.
    pub fn finish(&self, eps: &[ClientEndpoint]) -> UdpDrops {
        let client_ports: Vec<u16> = {
            let mut p: Vec<u16> = eps
                .iter()
                .filter_map(|e| e.quinn().local_addr().ok().map(|a| a.port()))
                .collect();
            p.sort_unstable();
            p.dedup();
            p
        };
        let since = |before: Option<u64>, now: Option<u64>| Some(now?.saturating_sub(before?));
        UdpDrops {
            gateway: match self.gw_port.is_empty() {
                true => None,
                false => since(self.before.0, udp_socket_drops(&self.gw_port)),
            },
            client: udp_socket_drops(&client_ports),
            machine: since(self.before.1, udp_buffer_errors()),
        }
    }
}
