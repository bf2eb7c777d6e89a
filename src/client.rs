//! The QUIC client side of the protocol, used by `milepost drive`, `query`, the load tools and
//! the end-to-end tests: connect with the server's trust anchor, say Hello, then send batches,
//! live-fix datagrams and queries.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use milepost_proto::{
    Ack, ClientDatagram, ClientMsg, Command, CommandKind, DeviceInfo, ErrorCode, ErrorFrame,
    FeedTarget, Fix, FixBatch, Hello, Query, QueryKind, QueryResult, Seq, ServerMsg, Subscribe,
    Welcome, MAX_FRAME_HARD, PROTOCOL_VERSION,
};

use crate::wire::{close_code, read_msg, write_msg, WireError};

/// A client-side failure.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// TLS trust anchor problem.
    #[error(transparent)]
    Cert(#[from] crate::certs::CertError),
    /// Could not start connecting.
    #[error("connect: {0}")]
    Connect(#[from] quinn::ConnectError),
    /// The connection failed or was closed.
    #[error("connection: {0}")]
    Connection(#[from] quinn::ConnectionError),
    /// The server refused a request with a typed error.
    #[error("refused: {} ({})", .0.code, .0.message)]
    Refused(ErrorFrame),
    /// A frame could not be read or written.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// The server sent something that does not belong here.
    #[error("unexpected message: {0}")]
    Unexpected(String),
    /// A local socket problem.
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    /// A datagram could not be sent.
    #[error("datagram: {0}")]
    Datagram(#[from] quinn::SendDatagramError),
}

impl ClientError {
    /// The protocol error code behind this failure, if the server gave one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Refused(f) => Some(f.code),
            ClientError::Connection(e) => close_code(e),
            ClientError::Wire(WireError::Read(quinn::ReadError::ConnectionLost(e))) => {
                close_code(e)
            }
            ClientError::Wire(WireError::Write(quinn::WriteError::ConnectionLost(e))) => {
                close_code(e)
            }
            _ => None,
        }
    }
}

/// The protocol version a connection's ALPN negotiated (the newest if it names none).
pub fn negotiated_version(conn: &quinn::Connection) -> u16 {
    conn.handshake_data()
        .and_then(|h| h.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
        .and_then(|h| h.protocol)
        .and_then(|p| milepost_proto::version_of_alpn(&p))
        .unwrap_or(PROTOCOL_VERSION)
}

/// A client endpoint: one UDP socket that many connections (simulated drivers) can share.
#[derive(Clone)]
pub struct ClientEndpoint {
    endpoint: quinn::Endpoint,
    /// The TLS configuration, for [`ClientEndpoint::phone`].
    tls: Arc<rustls::ClientConfig>,
    transport: Arc<quinn::TransportConfig>,
}

/// One phone's connection settings: its own store of TLS session tickets (and QUIC address
/// tokens), as a real phone has. Connections made with [`ClientEndpoint::connect_as`] resume
/// the TLS session of this phone's previous connection, however many other phones share the
/// endpoint's socket. (A store shared by thousands of simulated phones would hold only a
/// handful of tickets per server, so almost none of them could resume after a restart.)
#[derive(Clone)]
pub struct Phone {
    cfg: quinn::ClientConfig,
}

/// TLS 1.3 tickets and QUIC address tokens a phone keeps per server (the gateway issues four
/// of each per connection, `crate::certs::TICKETS_PER_HANDSHAKE`; rustls keeps at most eight).
const PHONE_TICKETS: usize = 8;

/// A phone's QUIC timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timers {
    /// Send a PING after this long without sending anything (`None`: never).
    pub keep_alive: Option<Duration>,
    /// The connection dies after this long without hearing from the server (the effective
    /// timeout is the smaller of this and the server's).
    pub idle_timeout: Duration,
}

impl Default for Timers {
    /// A PING after 15 s of silence, a 30 s idle timeout (quinn's default).
    fn default() -> Self {
        Timers {
            keep_alive: Some(Duration::from_secs(15)),
            idle_timeout: Duration::from_secs(30),
        }
    }
}

impl ClientEndpoint {
    /// Binds a client endpoint on `bind` (e.g. `127.0.0.1:0`) trusting the CA in `ca_pem`.
    pub fn new(bind: SocketAddr, ca_pem: &Path) -> Result<ClientEndpoint, ClientError> {
        ClientEndpoint::speaking(bind, ca_pem, PROTOCOL_VERSION)
    }

    /// Like [`ClientEndpoint::new`], for phones that speak protocol `version` (1 or 2).
    pub fn speaking(
        bind: SocketAddr,
        ca_pem: &Path,
        version: u16,
    ) -> Result<ClientEndpoint, ClientError> {
        ClientEndpoint::build(bind, ca_pem, version, Timers::default())
    }

    /// Like [`ClientEndpoint::new`], with the phone's QUIC timers `timers` (what PROTOCOL.md's
    /// guidance for client authors discusses: keep-alives against battery and NAT timeouts).
    pub fn with_timers(
        bind: SocketAddr,
        ca_pem: &Path,
        timers: Timers,
    ) -> Result<ClientEndpoint, ClientError> {
        ClientEndpoint::build(bind, ca_pem, PROTOCOL_VERSION, timers)
    }

    fn build(
        bind: SocketAddr,
        ca_pem: &Path,
        version: u16,
        timers: Timers,
    ) -> Result<ClientEndpoint, ClientError> {
        let mut tls = crate::certs::client_tls_speaking(ca_pem, version)?;
        // Resume TLS sessions (cheap reconnects) and allow 0-RTT, which `connect_0rtt` uses.
        tls.resumption = rustls::client::Resumption::in_memory_sessions(65_536);
        tls.enable_early_data = true;
        let tls = Arc::new(tls);
        let mut transport = quinn::TransportConfig::default();
        let idle = quinn::IdleTimeout::try_from(timers.idle_timeout)
            .map_err(|e| ClientError::Unexpected(format!("idle timeout: {e}")))?;
        transport
            .keep_alive_interval(timers.keep_alive)
            .max_idle_timeout(Some(idle))
            .max_concurrent_bidi_streams(quinn::VarInt::from_u32(0))
            .max_concurrent_uni_streams(quinn::VarInt::from_u32(2))
            // Like the server: no path MTU probes (PROTOCOL.md, "No path MTU discovery").
            .mtu_discovery_config(None);
        let transport = Arc::new(transport);
        let cfg = quic_client_config(tls.clone(), transport.clone())?;
        let mut endpoint = quinn::Endpoint::client(bind)?;
        endpoint.set_default_client_config(cfg);
        Ok(ClientEndpoint {
            endpoint,
            tls,
            transport,
        })
    }

    /// Connects to `server`, checking its certificate for `server_name`.
    pub async fn connect(
        &self,
        server: SocketAddr,
        server_name: &str,
    ) -> Result<quinn::Connection, ClientError> {
        Ok(self.endpoint.connect(server, server_name)?.await?)
    }

    /// Settings for one more phone on this endpoint, with a session store of its own.
    pub fn phone(&self) -> Result<Phone, ClientError> {
        self.phone_keeping(true, true)
    }

    /// Like [`ClientEndpoint::phone`], keeping TLS tickets (resumption) and QUIC address
    /// tokens only as asked: the handshake paths a phone can take (`benches/handshake.rs`).
    pub fn phone_keeping(&self, tickets: bool, tokens: bool) -> Result<Phone, ClientError> {
        let mut tls = (*self.tls).clone();
        tls.resumption = if tickets {
            rustls::client::Resumption::store(Arc::new(
                rustls::client::ClientSessionMemoryCache::new(PHONE_TICKETS),
            ))
        } else {
            rustls::client::Resumption::disabled()
        };
        let mut cfg = quic_client_config(Arc::new(tls), self.transport.clone())?;
        if tokens {
            cfg.token_store(Arc::new(quinn::TokenMemoryCache::new(4, PHONE_TICKETS)));
        } else {
            cfg.token_store(Arc::new(quinn::NoneTokenStore));
        }
        Ok(Phone { cfg })
    }

    /// Connects as `phone` (resuming its TLS session when it holds a ticket).
    pub async fn connect_as(
        &self,
        phone: &Phone,
        server: SocketAddr,
        server_name: &str,
    ) -> Result<quinn::Connection, ClientError> {
        Ok(self
            .endpoint
            .connect_with(phone.cfg.clone(), server, server_name)?
            .await?)
    }

    /// Connects, sending 0-RTT data at once when a resumable session with this gateway is
    /// known. Returns the connection and whether 0-RTT was attempted; the future resolves to
    /// whether the gateway accepted it (if not, streams opened before the handshake completed
    /// fail and must be opened again: see [`Session::open_0rtt`]).
    pub async fn connect_0rtt(
        &self,
        server: SocketAddr,
        server_name: &str,
    ) -> Result<(quinn::Connection, Option<quinn::ZeroRttAccepted>), ClientError> {
        let connecting = self.endpoint.connect(server, server_name)?;
        match connecting.into_0rtt() {
            Ok((conn, accepted)) => Ok((conn, Some(accepted))),
            Err(connecting) => Ok((connecting.await?, None)),
        }
    }

    /// Moves the endpoint to a new local socket (a phone switching networks): connections
    /// migrate.
    pub fn rebind(&self, bind: SocketAddr) -> Result<(), ClientError> {
        let socket = std::net::UdpSocket::bind(bind)?;
        self.endpoint.rebind(socket)?;
        Ok(())
    }

    /// Waits until every connection of this endpoint is closed and its close is sent.
    pub async fn wait_idle(&self) {
        self.endpoint.wait_idle().await;
    }

    /// The underlying quinn endpoint.
    pub fn quinn(&self) -> &quinn::Endpoint {
        &self.endpoint
    }
}

/// The quinn client configuration over a TLS configuration.
fn quic_client_config(
    tls: Arc<rustls::ClientConfig>,
    transport: Arc<quinn::TransportConfig>,
) -> Result<quinn::ClientConfig, ClientError> {
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
        .map_err(|e| ClientError::Unexpected(e.to_string()))?;
    let mut cfg = quinn::ClientConfig::new(Arc::new(crypto));
    cfg.transport_config(transport);
    Ok(cfg)
}

/// An authenticated session on the first bidirectional stream.
pub struct Session {
    /// The connection.
    pub conn: quinn::Connection,
    /// What the server said in its Welcome.
    pub welcome: Welcome,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
}

impl Session {
    /// Opens the session stream and says Hello with `token` claiming `subject`.
    pub async fn open(
        conn: quinn::Connection,
        token: &str,
        subject: &str,
        device: DeviceInfo,
    ) -> Result<Session, ClientError> {
        let (mut send, mut recv) = conn.open_bi().await?;
        let hello = ClientMsg::Hello(Hello {
            version: negotiated_version(&conn),
            token: token.to_owned(),
            subject: subject.to_owned(),
            device,
        });
        write_msg(&mut send, &hello).await?;
        let reply = read_msg::<ServerMsg>(&mut recv, MAX_FRAME_HARD).await;
        match reply {
            Ok(Some(ServerMsg::Welcome(welcome))) => Ok(Session {
                conn,
                welcome,
                send,
                recv,
            }),
            Ok(Some(ServerMsg::Error(e))) => Err(ClientError::Refused(e)),
            Ok(other) => Err(ClientError::Unexpected(format!("{other:?}"))),
            Err(e) => {
                // The server may have closed before we read its error frame: report its code.
                match conn.close_reason() {
                    Some(reason) => Err(ClientError::Connection(reason)),
                    None => Err(e.into()),
                }
            }
        }
    }

    /// Opens the session on a connection from [`ClientEndpoint::connect_0rtt`]: the Hello (and
    /// whatever fix batches follow) go as 0-RTT data; if the gateway refused 0-RTT, the Hello is
    /// sent again once the handshake is done. Only fix batches may be sent before the Welcome:
    /// the gateway holds anything else until the handshake completes.
    pub async fn open_0rtt(
        conn: quinn::Connection,
        zero_rtt: Option<quinn::ZeroRttAccepted>,
        token: &str,
        subject: &str,
        device: DeviceInfo,
    ) -> Result<Session, ClientError> {
        let first = Session::open(conn.clone(), token, subject, device.clone()).await;
        match (first, zero_rtt) {
            (Ok(s), _) => Ok(s),
            (Err(e), Some(accepted)) => {
                if accepted.await {
                    Err(e)
                } else {
                    Session::open(conn, token, subject, device).await
                }
            }
            (Err(e), None) => Err(e),
        }
    }

    /// Sends a batch without waiting for its ack (pipelining); read acks with [`Session::recv`].
    pub async fn send_batch(&mut self, first_seq: Seq, fixes: Vec<Fix>) -> Result<(), ClientError> {
        write_msg(
            &mut self.send,
            &ClientMsg::FixBatch(FixBatch { first_seq, fixes }),
        )
        .await?;
        Ok(())
    }

    /// Reads the next answer on the session stream.
    pub async fn recv(&mut self) -> Result<ServerMsg, ClientError> {
        match read_msg::<ServerMsg>(&mut self.recv, MAX_FRAME_HARD).await {
            Ok(Some(msg)) => Ok(msg),
            Ok(None) => Err(ClientError::Unexpected("session stream finished".into())),
            Err(e) => match self.conn.close_reason() {
                Some(reason) => Err(ClientError::Connection(reason)),
                None => Err(e.into()),
            },
        }
    }

    /// Sends a batch and waits for its ack.
    pub async fn batch(&mut self, first_seq: Seq, fixes: Vec<Fix>) -> Result<Ack, ClientError> {
        self.send_batch(first_seq, fixes).await?;
        match self.recv().await? {
            ServerMsg::Ack(ack) => Ok(ack),
            ServerMsg::Error(e) => Err(ClientError::Refused(e)),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Asks a dispatcher query and waits for the answer.
    pub async fn query(&mut self, id: u32, kind: QueryKind) -> Result<QueryResult, ClientError> {
        write_msg(&mut self.send, &ClientMsg::Query(Query { id, kind })).await?;
        match self.recv().await? {
            ServerMsg::QueryResult(r) => Ok(r),
            ServerMsg::Error(e) => Err(ClientError::Refused(e)),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Runs a command and waits for its answer (`Done` or `ParcelStatus`); a refusal is
    /// [`ClientError::Refused`].
    pub async fn command(&mut self, id: u32, kind: CommandKind) -> Result<ServerMsg, ClientError> {
        write_msg(&mut self.send, &ClientMsg::Command(Command { id, kind })).await?;
        match self.recv().await? {
            m @ (ServerMsg::Done { .. }
            | ServerMsg::ParcelStatus { .. }
            | ServerMsg::Route { .. }) => Ok(m),
            ServerMsg::Error(e) => Err(ClientError::Refused(e)),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Opens a feed subscription on a new stream. `after`: the last offset processed, to
    /// resume; `None` to start from a snapshot.
    pub async fn subscribe(
        &self,
        target: FeedTarget,
        after: Option<u64>,
    ) -> Result<FeedStream, ClientError> {
        let (mut send, recv) = self.conn.open_bi().await?;
        write_msg(
            &mut send,
            &ClientMsg::Subscribe(Subscribe { target, after }),
        )
        .await?;
        Ok(FeedStream { _send: send, recv })
    }

    /// Uploads a proof file (photo or signature) on a stream of its own (PROTOCOL.md 6.11):
    /// the header, the bytes, the end of the stream; then waits for `Done`. The name is the
    /// bytes' SHA-256, which an outcome's proof then names. A refusal is
    /// [`ClientError::Refused`] (`UploadRefused`, `WrongRole`, `DiskFull`...).
    pub async fn upload(&self, id: u32, bytes: &[u8]) -> Result<String, ClientError> {
        let sha256 = crate::proofs::sha256_hex(bytes);
        let (mut send, mut recv) = self.conn.open_bi().await?;
        let header = ClientMsg::Upload(milepost_proto::Upload {
            id,
            sha256: sha256.clone(),
            size: bytes.len() as u64,
        });
        write_msg(&mut send, &header).await?;
        // A refusal may come before every byte is sent (the server stops reading): the
        // answer tells, so a failed write is not the end of it.
        let sent = send.write_all(bytes).await;
        let _ = send.finish();
        let answer = read_msg::<ServerMsg>(&mut recv, MAX_FRAME_HARD).await;
        match answer {
            Ok(Some(ServerMsg::Done { id: got })) if got == id => Ok(sha256),
            Ok(Some(ServerMsg::Error(e))) => Err(ClientError::Refused(e)),
            Ok(other) => {
                sent.map_err(WireError::Write)?;
                Err(ClientError::Unexpected(format!("{other:?}")))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Sends the newest fix as a datagram; its ack comes on the ack stream
    /// ([`Session::accept_ack_stream`]).
    pub fn send_live(&self, seq: Seq, fix: Fix) -> Result<(), ClientError> {
        let bytes = milepost_proto::encode(&ClientDatagram::LiveFix { seq, fix })
            .map_err(|e| ClientError::Unexpected(e.to_string()))?;
        self.conn.send_datagram(bytes.into())?;
        Ok(())
    }

    /// Waits for the server-opened stream that carries live-fix acks.
    pub async fn accept_ack_stream(&self) -> Result<AckStream, ClientError> {
        Ok(AckStream {
            recv: self.conn.accept_uni().await?,
        })
    }

    /// Finishes the session stream and closes the connection normally.
    pub fn close(mut self) {
        let _ = self.send.finish();
        self.conn.close(quinn::VarInt::from_u32(0), b"bye");
    }
}

/// A feed subscription's stream.
pub struct FeedStream {
    /// Kept open: finishing it tells the gateway the subscriber left.
    _send: quinn::SendStream,
    recv: quinn::RecvStream,
}

impl FeedStream {
    /// The next feed message (`FeedSnapshot`, `FeedEvent`, `FeedPosition`, `FeedResync`), or
    /// the refusal as [`ClientError::Refused`].
    pub async fn next(&mut self) -> Result<ServerMsg, ClientError> {
        match read_msg::<ServerMsg>(&mut self.recv, MAX_FRAME_HARD).await? {
            Some(ServerMsg::Error(e)) => Err(ClientError::Refused(e)),
            Some(m) => Ok(m),
            None => Err(ClientError::Unexpected("feed ended".into())),
        }
    }
}

/// The server-opened push stream: acks of live-fix datagrams and, for drivers, pushes (route
/// assigned or re-sequenced, recipient instructions).
pub struct AckStream {
    recv: quinn::RecvStream,
}

impl AckStream {
    /// Wraps a unidirectional stream accepted from the server.
    pub fn from_recv(recv: quinn::RecvStream) -> AckStream {
        AckStream { recv }
    }

    /// The next message on the push stream (a live-fix `Ack` or a driver `Push`), or `None`
    /// when the stream ends.
    pub async fn next_msg(&mut self) -> Result<Option<ServerMsg>, ClientError> {
        match read_msg::<ServerMsg>(&mut self.recv, MAX_FRAME_HARD).await? {
            Some(m @ (ServerMsg::Ack(_) | ServerMsg::Push(_))) => Ok(Some(m)),
            Some(other) => Err(ClientError::Unexpected(format!("{other:?}"))),
            None => Ok(None),
        }
    }

    /// The next live-fix ack (skipping driver pushes), or `None` when the stream ends.
    pub async fn next(&mut self) -> Result<Option<Ack>, ClientError> {
        loop {
            match self.next_msg().await? {
                Some(ServerMsg::Ack(a)) => return Ok(Some(a)),
                Some(_) => continue,
                None => return Ok(None),
            }
        }
    }
}
