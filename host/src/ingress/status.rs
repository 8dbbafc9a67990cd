//! What an ingress reports while it runs: its connection state and last
//! error, and its counters, read by the admin API through a `StatusHandle`.

use crate::ack::{AckCounts, AckStats};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;
use tokio::sync::watch;

/// Where an ingress stands with its broker (bridge) or its sockets
/// (listener).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionState {
    /// Connecting or waiting to reconnect.
    Connecting,
    /// Connected to the broker, or (listener) accepting connections.
    Connected,
    /// Stopped: shut down, or the pipeline went away.
    Disconnected,
}

impl fmt::Display for ConnectionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConnectionState::Connecting => "connecting",
            ConnectionState::Connected => "connected",
            ConnectionState::Disconnected => "disconnected",
        })
    }
}

/// The connection status an admin API shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionStatus {
    pub state: ConnectionState,
    /// When `state` was entered.
    pub since: SystemTime,
    /// The last error, with the broker's address and its reason, kept after
    /// recovery so an operator can see why the last disconnect happened.
    pub last_error: Option<String>,
}

impl ConnectionStatus {
    fn new(state: ConnectionState) -> ConnectionStatus {
        ConnectionStatus {
            state,
            since: SystemTime::now(),
            last_error: None,
        }
    }
}

/// Counters of one ingress, updated with relaxed atomics.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) received: AtomicU64,
    pub(crate) malformed_presence: AtomicU64,
    pub(crate) reconnects: AtomicU64,
    pub(crate) dropped_qos0: AtomicU64,
    pub(crate) refused_subscriptions: AtomicU64,
    pub(crate) connections_accepted: AtomicU64,
    pub(crate) connections_refused: AtomicU64,
    pub(crate) clients_connected: AtomicU64,
    pub(crate) protocol_errors: AtomicU64,
    pub(crate) auth_bad_credentials: AtomicU64,
    pub(crate) auth_no_username: AtomicU64,
    pub(crate) acl_denied_publish: AtomicU64,
    pub(crate) acl_denied_subscribe: AtomicU64,
}

/// A snapshot of an ingress's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IngressStats {
    /// MQTT PUBLISH packets received (messages and presence messages).
    pub received: u64,
    /// Presence messages that could not be turned into client events.
    pub malformed_presence: u64,
    /// Bridge: connections to the broker established after the first.
    pub reconnects: u64,
    /// QoS 0 messages dropped because the pipeline already held `qos0_window` of them.
    pub dropped_qos0: u64,
    /// Bridge: subscriptions the broker refused.
    pub refused_subscriptions: u64,
    /// Listener: connections whose CONNECT was accepted.
    pub connections_accepted: u64,
    /// Listener: connections refused (credentials, limits, bad CONNECT).
    pub connections_refused: u64,
    /// Listener: clients connected right now.
    pub clients_connected: u64,
    /// Listener: connections closed for breaking the protocol.
    pub protocol_errors: u64,
    /// Listener: CONNECTs refused for an unknown username or a wrong
    /// password (part of `connections_refused`).
    pub auth_bad_credentials: u64,
    /// Listener: CONNECTs refused for having no username while
    /// `allow_anonymous` is off (part of `connections_refused`).
    pub auth_no_username: u64,
    /// Listener: publishes the ACL denied (acknowledged, not ingested).
    pub acl_denied_publish: u64,
    /// Listener: subscriptions the ACL denied.
    pub acl_denied_subscribe: u64,
    /// Messages by completed outcome (see `crate::ack`).
    pub acks: AckCounts,
}

/// A handle on an ingress's status, for the admin API. Cheap to clone.
#[derive(Debug, Clone)]
pub struct StatusHandle {
    connection: watch::Receiver<ConnectionStatus>,
    counters: Arc<Counters>,
    acks: AckStats,
}

impl StatusHandle {
    pub fn connection(&self) -> ConnectionStatus {
        self.connection.borrow().clone()
    }

    /// A receiver that sees every change of the connection status.
    pub fn watch(&self) -> watch::Receiver<ConnectionStatus> {
        self.connection.clone()
    }

    pub fn stats(&self) -> IngressStats {
        let c = &self.counters;
        let get = |n: &AtomicU64| n.load(Ordering::Relaxed);
        IngressStats {
            received: get(&c.received),
            malformed_presence: get(&c.malformed_presence),
            reconnects: get(&c.reconnects),
            dropped_qos0: get(&c.dropped_qos0),
            refused_subscriptions: get(&c.refused_subscriptions),
            connections_accepted: get(&c.connections_accepted),
            connections_refused: get(&c.connections_refused),
            clients_connected: get(&c.clients_connected),
            protocol_errors: get(&c.protocol_errors),
            auth_bad_credentials: get(&c.auth_bad_credentials),
            auth_no_username: get(&c.auth_no_username),
            acl_denied_publish: get(&c.acl_denied_publish),
            acl_denied_subscribe: get(&c.acl_denied_subscribe),
            acks: self.acks.counts(),
        }
    }
}

/// The status side an ingress task writes to.
#[derive(Debug)]
pub(crate) struct StatusWriter {
    connection: watch::Sender<ConnectionStatus>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) acks: AckStats,
}

impl StatusWriter {
    pub(crate) fn new(initial: ConnectionState) -> StatusWriter {
        StatusWriter {
            connection: watch::Sender::new(ConnectionStatus::new(initial)),
            counters: Arc::default(),
            acks: AckStats::default(),
        }
    }

    pub(crate) fn handle(&self) -> StatusHandle {
        StatusHandle {
            connection: self.connection.subscribe(),
            counters: self.counters.clone(),
            acks: self.acks.clone(),
        }
    }

    pub(crate) fn set_state(&self, state: ConnectionState) {
        self.connection.send_if_modified(|status| {
            if status.state == state {
                return false;
            }
            status.state = state;
            status.since = SystemTime::now();
            true
        });
    }

    pub(crate) fn set_error(&self, error: String) {
        self.connection
            .send_modify(|status| status.last_error = Some(error));
    }

    pub(crate) fn count(&self, counter: impl Fn(&Counters) -> &AtomicU64) {
        counter(&self.counters).fetch_add(1, Ordering::Relaxed);
    }
}
