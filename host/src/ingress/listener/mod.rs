//! Listener mode: devices connect to weir itself (MQTT 3.1.1 and 5, over TCP
//! and TLS), for edge deployments without a separate broker.
//!
//! weir sees every CONNECT, so `message.publish` events carry the
//! publisher's real client id, username and address, and `client.connected`
//! / `client.disconnected` come from the connections themselves, with
//! EMQX's reason words: `normal`, `keepalive_timeout`, `tcp_closed` /
//! `ssl_closed`, `takenover`, `discarded`, `protocol_error`,
//! `frame_too_large`, plus weir's own `shutdown` (weir is stopping) and
//! `not_stored` (see below).
//!
//! ## End-to-end at-least-once
//!
//! A device's QoS 1 PUBACK (QoS 2 PUBREC) is sent only once every record
//! derived from its message is stored, in the order the messages arrived.
//! When a message is not stored, weir sends no acknowledgement and closes the
//! connection (MQTT 5: reason "unspecified error"), so the device publishes
//! it again after reconnecting. QoS 2 packet ids whose PUBREC went out are
//! kept in the session until PUBREL, so a resent QoS 2 message is answered
//! without producing its records twice.
//!
//! ## What a gateway implements of MQTT
//!
//! - Sessions: a client connecting with clean start off gets
//!   `session_present` when weir still holds its session, and must then
//!   resend its unacknowledged messages. Sessions live in memory for the
//!   session expiry the client asks for (MQTT 3.1.1 clean session off: for
//!   ever), capped by `max_session_expiry_secs`; they do not survive a
//!   restart of weir. A second connection with the same client id takes the
//!   session over and the first is closed (`takenover`, or `discarded` when
//!   the new one starts clean).
//! - Subscriptions: weir is a small broker (`broker`). SUBSCRIBE is granted
//!   per filter at most QoS 1 (QoS 2 deliveries are not implemented; a QoS 2
//!   request gets QoS 1, which MQTT allows), wildcards included; shared
//!   subscriptions (`$share/`, `$queue/`) are refused, and MQTT 5 clients are
//!   told in CONNACK that shared and identified subscriptions are
//!   unavailable. Messages published to weir go to every subscriber with a
//!   matching filter, one copy each at the highest matching QoS, through a
//!   bounded queue per connection (`subscriber_queue`; a full queue drops
//!   that delivery) and at most 32 unacknowledged QoS 1 messages in flight.
//!   Delivery is independent of ingest: it neither waits for a message's
//!   records to be stored nor holds up the publisher's acknowledgement. A
//!   resumed session keeps its subscriptions; messages are not queued while
//!   its client is away, unacknowledged deliveries are not resent, and there
//!   is no retained-message store. MQTT 5 publish properties are forwarded.
//! - Events: what a broker sees becomes events for the rules that read them:
//!   `client.connack` (every CONNACK that answers a readable CONNECT,
//!   refusals included), `session.subscribed` / `session.unsubscribed` (per
//!   filter), `message.delivered`, `message.acked` (the subscriber's PUBACK),
//!   `message.dropped` (`no_subscribers`), `delivery.dropped` (`queue_full`,
//!   `no_local`, or `session_closed` for what the connection still held when
//!   it ended). Events acknowledge nothing.
//! - Keepalive: a client silent for 1.5 × its keepalive is disconnected
//!   (`keepalive_timeout`). Time during which weir itself stops reading (the
//!   window is full) does not count against the client.
//! - Will messages are turned into `message.publish` events (with the
//!   client's id, username and address) when a connection ends other than by
//!   a normal DISCONNECT. The will delay interval is not implemented: the will
//!   is published at once.
//! - Limits: `max_connections` clients at once (more are refused with "server
//!   unavailable" / "server busy"), `max_packet_size` (larger packets close
//!   the connection, MQTT 5: "packet too large"), `connect_timeout_secs` to
//!   send CONNECT, and `window` messages in the pipeline per connection
//!   (MQTT 5 clients get it as the receive maximum; when it is full weir
//!   stops reading from that client). No topic aliases are granted.
//! - Security: a CONNECT is checked against `users` (`super::auth`) or, with
//!   `tls.peer_cert_as_username`, named by its certificate; every PUBLISH,
//!   SUBSCRIBE filter and will against the ACL (`super::acl`). Enhanced
//!   authentication (AUTH) is not supported; passwords must be UTF-8.

mod broker;
mod codec;
mod connection;

use super::acl::Acl;
use super::auth::Users;
use super::config::{ConfigError, ListenerConfig, PeerCertField, config_error};
use super::{ConnectionState, Delivery, MessageIds, Sources, StatusHandle, StatusWriter, tls};
use broker::SubOptions;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinSet;

/// Sockets that may wait for their CONNECT beyond `max_connections`, so a
/// burst of reconnects is not refused while old sockets close.
const PRE_CONNECT_SLACK: usize = 64;

/// How often sessions past their expiry are dropped.
const SESSION_SWEEP_INTERVAL: Duration = Duration::from_secs(30);

/// How long connections get to say goodbye when weir stops.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// An MQTT server inside weir. Build it with [`Listener::new`], bind the
/// sockets yourself, then [`Listener::run`] it.
#[derive(Debug)]
pub struct Listener {
    config: ListenerConfig,
    users: Users,
    acl: Acl,
    tls: Option<Arc<rustls::ServerConfig>>,
    node: String,
    subscriptions: watch::Receiver<Sources>,
    out: mpsc::Sender<Delivery>,
    status: StatusWriter,
}

impl Listener {
    /// Checks `config` (and loads the TLS certificate) and prepares a
    /// listener that sends deliveries to `out` for the sources in
    /// `subscriptions`. `node` names this weir instance in events.
    pub fn new(
        config: ListenerConfig,
        node: impl Into<String>,
        subscriptions: watch::Receiver<Sources>,
        out: mpsc::Sender<Delivery>,
    ) -> Result<Listener, ConfigError> {
        config.validate()?;
        let users = Users::from_config(&config.users)?;
        let acl = Acl::from_config(&config.acl, config.acl_no_match)?;
        let tls = match &config.tls {
            Some(tls_config) => Some(Arc::new(tls::server_config(tls_config)?)),
            None => None,
        };
        Ok(Listener {
            config,
            users,
            acl,
            tls,
            node: node.into(),
            subscriptions,
            out,
            status: StatusWriter::new(ConnectionState::Connecting),
        })
    }

    pub fn status(&self) -> StatusHandle {
        self.status.handle()
    }

    /// Serves clients on the already-bound `tcp` (plain MQTT) and `tls`
    /// sockets until `shutdown` completes; then closes every connection
    /// (MQTT 5: "server shutting down") and returns once they have sent
    /// their disconnect events, or after a grace period.
    pub async fn run(
        self,
        tcp: Option<TcpListener>,
        tls: Option<TcpListener>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), ConfigError> {
        if tls.is_some() && self.tls.is_none() {
            return Err(config_error(
                "listener.tls",
                "a TLS socket was given but listener.tls is not configured",
            ));
        }
        let Listener {
            config,
            users,
            acl,
            tls: tls_config,
            node,
            mut subscriptions,
            out,
            status,
        } = self;
        let acceptor = tls_config.map(tokio_rustls::TlsAcceptor::from);
        let (sources_tx, sources) =
            watch::channel(Arc::new(subscriptions.borrow_and_update().clone()));
        let (stop_tx, stop) = watch::channel(false);
        let sockets = Arc::new(Semaphore::new(config.max_connections + PRE_CONNECT_SLACK));
        let shared = Arc::new(connection::Shared {
            users,
            acl,
            config,
            node,
            out,
            sources,
            sessions: Sessions::default(),
            broker: broker::Broker::default(),
            ids: MessageIds::new(),
            stop,
            next_connection: AtomicU64::new(0),
            status,
        });
        shared.status.set_state(ConnectionState::Connected);
        tracing::info!(
            tcp = ?tcp.as_ref().and_then(|l| l.local_addr().ok()),
            tls = ?tls.as_ref().and_then(|l| l.local_addr().ok()),
            "MQTT listener accepting connections"
        );

        let mut connections = JoinSet::new();
        let mut sweep = tokio::time::interval(SESSION_SWEEP_INTERVAL);
        let mut subscriptions_open = true;
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = accept(tcp.as_ref()) => {
                    if let Some((stream, peer, permit)) = admit(accepted, &sockets, &shared).await {
                        let shared = shared.clone();
                        connections.spawn(async move {
                            let _permit = permit;
                            if let Ok(local) = stream.local_addr() {
                                connection::serve(shared, stream, peer, local, "tcp_closed", None).await;
                            }
                        });
                    }
                }
                accepted = accept(tls.as_ref()) => {
                    if let (Some((stream, peer, permit)), Some(acceptor)) =
                        (admit(accepted, &sockets, &shared).await, acceptor.clone())
                    {
                        let shared = shared.clone();
                        connections.spawn(async move {
                            let _permit = permit;
                            let Ok(local) = stream.local_addr() else { return };
                            let timeout = Duration::from_secs(shared.config.connect_timeout_secs);
                            match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                                Ok(Ok(stream)) => {
                                    let certified = match certified_name(&shared, &stream) {
                                        Ok(name) => name,
                                        Err(()) => {
                                            shared.status.count(|c| &c.connections_refused);
                                            tracing::info!(%peer, "refusing a connection: its certificate has no common name to use as its username");
                                            return;
                                        }
                                    };
                                    connection::serve(shared, stream, peer, local, "ssl_closed", certified).await;
                                }
                                Ok(Err(error)) => {
                                    shared.status.count(|c| &c.connections_refused);
                                    tracing::info!(%peer, %error, "TLS handshake failed");
                                }
                                Err(_) => {
                                    shared.status.count(|c| &c.connections_refused);
                                    tracing::info!(%peer, "TLS handshake timed out");
                                }
                            }
                        });
                    }
                }
                changed = subscriptions.changed(), if subscriptions_open => match changed {
                    Ok(()) => {
                        let set = subscriptions.borrow_and_update().clone();
                        sources_tx.send_replace(Arc::new(set));
                    }
                    Err(_) => subscriptions_open = false,
                },
                _ = sweep.tick() => shared.sessions.sweep(),
                Some(_) = connections.join_next() => {}
            }
        }

        stop_tx.send_replace(true);
        let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!("some client connections did not close in time; aborting them");
            connections.abort_all();
        }
        shared.status.set_state(ConnectionState::Disconnected);
        tracing::info!("MQTT listener stopped");
        Ok(())
    }
}

/// The username a TLS client's certificate gives it, when the listener
/// takes usernames from certificates (`Err` if this one names nobody).
fn certified_name(
    shared: &connection::Shared,
    stream: &tokio_rustls::server::TlsStream<TcpStream>,
) -> Result<Option<String>, ()> {
    let field = shared
        .config
        .tls
        .as_ref()
        .and_then(|tls| tls.peer_cert_as_username);
    match field {
        None => Ok(None),
        Some(PeerCertField::Cn) => tls::peer_common_name(stream.get_ref().1)
            .map(Some)
            .ok_or(()),
    }
}

async fn accept(listener: Option<&TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
    }
}

/// Takes a socket slot for an accepted connection, or refuses it.
async fn admit(
    accepted: std::io::Result<(TcpStream, SocketAddr)>,
    sockets: &Arc<Semaphore>,
    shared: &connection::Shared,
) -> Option<(TcpStream, SocketAddr, tokio::sync::OwnedSemaphorePermit)> {
    match accepted {
        Ok((stream, peer)) => match sockets.clone().try_acquire_owned() {
            Ok(permit) => {
                let _ = stream.set_nodelay(true);
                Some((stream, peer, permit))
            }
            Err(_) => {
                shared.status.count(|c| &c.connections_refused);
                tracing::warn!(%peer, "refusing a connection: too many open sockets");
                None
            }
        },
        Err(error) => {
            // Usually out of file descriptors: give the process a moment
            // instead of spinning on the same error.
            tracing::error!(%error, "accepting a connection failed");
            tokio::time::sleep(Duration::from_millis(100)).await;
            None
        }
    }
}

/// Why a session's owner must close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kick {
    /// A new connection resumed the session.
    TakenOver,
    /// A new connection started the session afresh.
    Discarded,
}

/// Every session the listener holds, by client id.
#[derive(Debug, Default)]
pub(super) struct Sessions {
    by_client: Mutex<HashMap<String, Session>>,
}

#[derive(Debug)]
struct Session {
    /// The connection using the session and how to tell it to close.
    owner: Option<(u64, oneshot::Sender<Kick>)>,
    /// QoS 2 packet ids acknowledged with PUBREC and not yet released.
    qos2: Arc<Mutex<HashSet<u16>>>,
    /// The session's subscriptions while no connection holds it (a
    /// connection's live ones are in the broker).
    subscriptions: BTreeMap<String, SubOptions>,
    /// How long the session outlives its connection, in seconds.
    expiry_secs: u32,
    /// When an unowned session ends.
    expires_at: Option<Instant>,
}

/// What a connection gets when it opens its session.
#[derive(Debug)]
pub(super) struct Opened {
    pub(super) session_present: bool,
    pub(super) qos2: Arc<Mutex<HashSet<u16>>>,
    /// The subscriptions of a resumed session that no connection held.
    pub(super) subscriptions: BTreeMap<String, SubOptions>,
    /// The connection this one took the session over from: its live
    /// subscriptions (in the broker) belong to the session too.
    pub(super) taken_from: Option<u64>,
    pub(super) kicked: oneshot::Receiver<Kick>,
}

impl Sessions {
    /// Opens (or resumes) `client_id`'s session for connection `id`, closing
    /// the connection that held it.
    pub(super) fn open(
        &self,
        client_id: &str,
        id: u64,
        clean_start: bool,
        expiry_secs: u32,
    ) -> Opened {
        let (kick, kicked) = oneshot::channel();
        let mut sessions = self.by_client.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let previous = sessions
            .remove(client_id)
            .filter(|s| s.expires_at.is_none_or(|at| at > now));
        let (session_present, qos2, subscriptions, previous_owner) = match previous {
            Some(old) if !clean_start => (
                true,
                old.qos2,
                old.subscriptions,
                old.owner.map(|(id, k)| (id, k, Kick::TakenOver)),
            ),
            Some(old) => (
                false,
                Arc::default(),
                BTreeMap::new(),
                old.owner.map(|(id, k)| (id, k, Kick::Discarded)),
            ),
            None => (false, Arc::default(), BTreeMap::new(), None),
        };
        let taken_from = match &previous_owner {
            Some((id, _, Kick::TakenOver)) => Some(*id),
            _ => None,
        };
        sessions.insert(
            client_id.to_owned(),
            Session {
                owner: Some((id, kick)),
                qos2: qos2.clone(),
                subscriptions: BTreeMap::new(),
                expiry_secs,
                expires_at: None,
            },
        );
        drop(sessions);
        if let Some((_, kick, why)) = previous_owner {
            let _ = kick.send(why);
        }
        Opened {
            session_present,
            qos2,
            subscriptions,
            taken_from,
            kicked,
        }
    }

    /// Connection `id` ended: start its session's expiry, keeping its
    /// `subscriptions`, unless another connection has taken it over.
    pub(super) fn close(
        &self,
        client_id: &str,
        id: u64,
        expiry_secs: u32,
        subscriptions: BTreeMap<String, SubOptions>,
    ) {
        let mut sessions = self.by_client.lock().unwrap_or_else(|p| p.into_inner());
        let Some(session) = sessions.get_mut(client_id) else {
            return;
        };
        if !matches!(&session.owner, Some((owner, _)) if *owner == id) {
            return;
        }
        if expiry_secs == 0 {
            sessions.remove(client_id);
        } else {
            session.owner = None;
            session.subscriptions = subscriptions;
            session.expiry_secs = expiry_secs;
            session.expires_at = Some(Instant::now() + Duration::from_secs(expiry_secs.into()));
        }
    }

    fn sweep(&self) {
        let now = Instant::now();
        let mut sessions = self.by_client.lock().unwrap_or_else(|p| p.into_inner());
        sessions.retain(|_, s| s.expires_at.is_none_or(|at| at > now));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_client.lock().map(|s| s.len()).unwrap_or_default()
    }
}

/// Counts connection ids.
pub(super) fn next_id(counter: &AtomicU64) -> u64 {
    counter.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_resume_take_over_and_expire() {
        let sessions = Sessions::default();
        let first = sessions.open("c", 1, false, 60);
        assert!(!first.session_present);
        first.qos2.lock().expect("lock").insert(7);

        // Resuming takes the session, and its QoS 2 state, over.
        let mut first_kicked = first.kicked;
        let second = sessions.open("c", 2, false, 60);
        assert!(second.session_present);
        assert!(second.qos2.lock().expect("lock").contains(&7));
        assert_eq!(first_kicked.try_recv(), Ok(Kick::TakenOver));

        // The old connection closing does not end the new one's session.
        sessions.close("c", 1, 60, BTreeMap::new());
        let mut second_kicked = second.kicked;
        let third = sessions.open("c", 3, true, 0);
        assert!(!third.session_present, "clean start discards the session");
        assert!(third.qos2.lock().expect("lock").is_empty());
        assert_eq!(second_kicked.try_recv(), Ok(Kick::Discarded));

        // Expiry 0 ends the session with the connection.
        sessions.close("c", 3, 0, BTreeMap::new());
        assert_eq!(sessions.len(), 0);
    }

    #[test]
    fn a_closed_session_is_resumed_until_it_expires() {
        let sessions = Sessions::default();
        let _ = sessions.open("c", 1, false, 3600);
        let options = SubOptions {
            qos: crate::ingress::Qos::AtLeastOnce,
            no_local: false,
        };
        sessions.close("c", 1, 3600, BTreeMap::from([("t/#".to_owned(), options)]));
        sessions.sweep();
        assert_eq!(sessions.len(), 1, "not expired yet");
        let resumed = sessions.open("c", 2, false, 3600);
        assert!(resumed.session_present);
        assert_eq!(resumed.subscriptions.get("t/#"), Some(&options));
    }
}
