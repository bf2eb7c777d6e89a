//! UDP socket buffer sizes. One gateway socket takes every phone's packets: after a restart,
//! every phone's first flight of the handshake (a 1,200-byte Initial, about 2.3 KB of kernel
//! buffer each) arrives within a second, while the gateway's one core is busy with the
//! handshakes before them. What the receive buffer cannot hold is dropped, and a phone whose
//! Initial was dropped waits for QUIC's retransmission timer (1 s, then 2 s, 4 s...): those
//! phones are the last to come back. A 10,000-phone storm lost about 50,000 datagrams on the
//! gateway's socket with the 4 MiB that `net.core.rmem_max` allowed here.
//!
//! The kernel caps `SO_RCVBUF`/`SO_SNDBUF` at `net.core.rmem_max`/`wmem_max`. A process with
//! `CAP_NET_ADMIN` may go past the cap (`SO_RCVBUFFORCE`/`SO_SNDBUFFORCE`); otherwise the
//! capped size is used (or raise the sysctls).

use std::net::UdpSocket;

/// Sizes a socket's receive and send buffers to `bytes` each, past the system cap when the
/// process may. Best effort: returns the receive buffer size the kernel reports afterwards
/// (the kernel doubles what it is given, for its bookkeeping), if it can be read.
pub fn size_buffers(socket: &UdpSocket, bytes: usize) -> Option<usize> {
    let Ok(state) = quinn::udp::UdpSocketState::new(socket.into()) else {
        return None;
    };
    if !force(socket, bytes) {
        let _ = state.set_recv_buffer_size(socket.into(), bytes);
        let _ = state.set_send_buffer_size(socket.into(), bytes);
    }
    state.recv_buffer_size(socket.into()).ok()
}

/// Sets both buffers past the system cap; false if not permitted (or not Linux).
#[cfg(target_os = "linux")]
fn force(socket: &UdpSocket, bytes: usize) -> bool {
    use rustix::net::sockopt;
    sockopt::set_socket_recv_buffer_size_force(socket, bytes).is_ok()
        && sockopt::set_socket_send_buffer_size_force(socket, bytes).is_ok()
}

#[cfg(not(target_os = "linux"))]
fn force(_: &UdpSocket, _: usize) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_grow_at_least_to_the_default() {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        let before = quinn::udp::UdpSocketState::new((&s).into())
            .unwrap()
            .recv_buffer_size((&s).into())
            .unwrap();
        let after = size_buffers(&s, 4 << 20).unwrap();
        assert!(after >= before, "{after} < {before}");
    }
}
