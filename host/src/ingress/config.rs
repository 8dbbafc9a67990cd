//! The bridge's and the listener's configuration, as it appears in weir's
//! TOML file, and its validation.
//!
//! Every field has a default, stated in its doc comment, so a minimal
//! `[bridge]` section with just `url` works. Validation happens once, before
//! anything connects, and names the offending field.

use super::presence::PresenceConfig;
use std::net::SocketAddr;
use std::path::PathBuf;

/// A configuration value that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ConfigError {
    /// The field's path in the configuration, e.g. `bridge.tls.ca_file`.
    pub field: String,
    pub reason: String,
}

pub(crate) fn config_error(field: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

/// The MQTT protocol version to speak: `"3.1.1"` or `"5"`; `version = 5`,
/// a TOML integer, is accepted too, as the obvious way to write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub enum MqttVersion {
    /// MQTT 3.1.1 (protocol level 4).
    #[serde(rename = "3.1.1")]
    V311,
    /// MQTT 5.
    #[default]
    #[serde(rename = "5")]
    V5,
}

impl<'de> serde::Deserialize<'de> for MqttVersion {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = MqttVersion;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(r#""3.1.1" or "5""#)
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<MqttVersion, E> {
                match text {
                    "3.1.1" => Ok(MqttVersion::V311),
                    "5" => Ok(MqttVersion::V5),
                    _ => Err(E::invalid_value(serde::de::Unexpected::Str(text), &self)),
                }
            }

            fn visit_i64<E: serde::de::Error>(self, number: i64) -> Result<MqttVersion, E> {
                match number {
                    5 => Ok(MqttVersion::V5),
                    _ => Err(E::invalid_value(
                        serde::de::Unexpected::Signed(number),
                        &self,
                    )),
                }
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// MQTT's largest packet: the remaining length field's maximum plus the
/// fixed header.
pub(crate) const MQTT_MAX_PACKET_SIZE: u32 = 268_435_455;

/// Bridge mode: weir connects to a broker as a client.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BridgeConfig {
    /// The broker: `mqtt://host:port` (TCP, port 1883 when omitted) or
    /// `mqtts://host:port` (TLS, port 8883 when omitted). Default
    /// `mqtt://127.0.0.1:1883`.
    pub url: String,
    /// `"3.1.1"` or `"5"`. Default `"5"`. Shared subscriptions and the
    /// receive maximum (which bounds QoS 1/2 messages in flight by `window`)
    /// need 5.
    pub version: MqttVersion,
    /// The client id. A persistent session is keyed by it, so it must be
    /// stable and unique per weir instance. Default `weir`.
    pub client_id: String,
    /// Username, if the broker wants one. Default none.
    pub username: Option<String>,
    /// Password, if the broker wants one. Default none.
    pub password: Option<String>,
    /// Keepalive in seconds. With MQTT 5 at least 5; with 3.1.1, 0 turns
    /// it off. Default 60.
    #[serde(deserialize_with = "crate::config::units::secs")]
    pub keepalive_secs: u16,
    /// Start a clean session on every connect (`true`), or keep a persistent
    /// one (`false`) so the broker queues messages while weir is away and
    /// redelivers the unacknowledged ones: at-least-once needs `false`.
    /// Default `false`.
    pub clean_start: bool,
    /// MQTT 5: how long the broker keeps the persistent session after a
    /// disconnect, in seconds. (MQTT 3.1.1 sessions last until the broker's
    /// own limit.) Default 3600.
    #[serde(deserialize_with = "crate::config::units::secs")]
    pub session_expiry_secs: u32,
    /// The largest packet weir accepts, in bytes. weir drops the
    /// connection on a larger incoming message, so this defaults to MQTT's
    /// limit, 268435455; with MQTT 5 the broker is told the limit and
    /// discards larger messages instead of sending them.
    #[serde(deserialize_with = "crate::config::units::bytes")]
    pub max_packet_size: u32,
    /// The most QoS 1/2 messages handed to the pipeline and not yet
    /// complete (acknowledged only once stored). With MQTT 5 it is sent as
    /// the receive maximum (capped at 65535), so the broker never has more
    /// in flight; with MQTT 3.1.1 the broker's own in-flight limit applies
    /// (mosquitto's `max_inflight_messages`, default 20). It is also how
    /// many messages a broker may deliver again after a crash. Default 1000.
    pub window: usize,
    /// The most QoS 0 messages handed to the pipeline and not yet stored.
    /// MQTT has no flow control for QoS 0, so one that arrives beyond this
    /// is dropped and counted. Separate from `window` because it bounds only
    /// memory and latency, not a duplicate window: a burst or a pause of the
    /// sink must not cost messages. Default 10000.
    pub qos0_window: usize,
    /// Seconds to wait for the TCP/TLS connection and CONNACK. Default 10.
    #[serde(deserialize_with = "crate::config::units::secs")]
    pub connect_timeout_secs: u64,
    /// First delay before reconnecting, in milliseconds; doubles after each
    /// failure up to `reconnect_max_delay_ms` and resets once connected.
    /// Default 500.
    #[serde(deserialize_with = "crate::config::units::millis")]
    pub reconnect_min_delay_ms: u64,
    /// Longest delay between reconnect attempts, in milliseconds. Default
    /// 30000.
    #[serde(deserialize_with = "crate::config::units::millis")]
    pub reconnect_max_delay_ms: u64,
    /// Join the shared-subscription group of this name
    /// (`$share/GROUP/filter`) so several weir instances split the load; each
    /// message goes to one member. Presence topics are shared too, so each
    /// client event is handled once. Needs a broker that supports shared
    /// subscriptions (mosquitto 2, EMQX, HiveMQ, VerneMQ). Default none.
    pub share_group: Option<String>,
    /// TLS settings for `mqtts://`. Default: verify the broker against the
    /// system's root certificates, no client certificate.
    pub tls: ClientTlsConfig,
    /// Where client connect/disconnect events come from. Default: EMQX's
    /// `$SYS` presence messages.
    pub presence: PresenceConfig,
}

impl Default for BridgeConfig {
    fn default() -> Self {
        BridgeConfig {
            url: "mqtt://127.0.0.1:1883".into(),
            version: MqttVersion::V5,
            client_id: "weir".into(),
            username: None,
            password: None,
            keepalive_secs: 60,
            clean_start: false,
            session_expiry_secs: 3600,
            max_packet_size: MQTT_MAX_PACKET_SIZE,
            window: 1000,
            qos0_window: 10_000,
            connect_timeout_secs: 10,
            reconnect_min_delay_ms: 500,
            reconnect_max_delay_ms: 30_000,
            share_group: None,
            tls: ClientTlsConfig::default(),
            presence: PresenceConfig::default(),
        }
    }
}

/// TLS towards the broker.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientTlsConfig {
    /// PEM file of the CA certificates that sign the broker's certificate.
    /// Default none: the system's root certificates.
    pub ca_file: Option<PathBuf>,
    /// PEM file of weir's client certificate chain, for brokers that want
    /// one. Needs `key_file`. Default none.
    pub cert_file: Option<PathBuf>,
    /// PEM file of the client certificate's private key. Default none.
    pub key_file: Option<PathBuf>,
    /// Check the broker's certificate and that it names the host of `url`.
    /// Turn off only for testing:
    /// anyone on the path can then read and change the traffic. Default
    /// `true`.
    pub verify: bool,
}

impl Default for ClientTlsConfig {
    fn default() -> Self {
        ClientTlsConfig {
            ca_file: None,
            cert_file: None,
            key_file: None,
            verify: true,
        }
    }
}

/// Whether the broker is reached over TCP or TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    Tcp,
    Tls,
}

/// The broker address taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BrokerAddress {
    pub(crate) transport: Transport,
    pub(crate) host: String,
    pub(crate) port: u16,
}

impl BridgeConfig {
    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.broker_address()?;
        if self.client_id.is_empty() && !self.clean_start {
            return Err(config_error(
                "bridge.client_id",
                "a persistent session (clean_start = false) needs a client id",
            ));
        }
        if self.client_id.len() > 65_535 {
            return Err(config_error(
                "bridge.client_id",
                "longer than MQTT's 65535 bytes",
            ));
        }
        if self.password.is_some() && self.username.is_none() {
            return Err(config_error(
                "bridge.password",
                "a password needs a username",
            ));
        }
        if self.version == MqttVersion::V5 && self.keepalive_secs < 5 {
            // Kept from the rumqttc client, which could not turn the MQTT 5
            // keepalive off, so that configurations stay valid both ways.
            return Err(config_error(
                "bridge.keepalive_secs",
                "must be at least 5 with MQTT 5",
            ));
        }
        if self.max_packet_size < 128 || self.max_packet_size > MQTT_MAX_PACKET_SIZE {
            return Err(config_error(
                "bridge.max_packet_size",
                format!("must be between 128 and {MQTT_MAX_PACKET_SIZE}"),
            ));
        }
        if self.window == 0 {
            return Err(config_error("bridge.window", "must be at least 1"));
        }
        if self.qos0_window == 0 {
            return Err(config_error("bridge.qos0_window", "must be at least 1"));
        }
        if self.connect_timeout_secs == 0 {
            return Err(config_error(
                "bridge.connect_timeout_secs",
                "must be at least 1",
            ));
        }
        if self.reconnect_min_delay_ms == 0 {
            return Err(config_error(
                "bridge.reconnect_min_delay_ms",
                "must be at least 1: without a delay a refused connection is retried in a hot loop",
            ));
        }
        if self.reconnect_max_delay_ms < self.reconnect_min_delay_ms {
            return Err(config_error(
                "bridge.reconnect_max_delay_ms",
                "must not be less than reconnect_min_delay_ms",
            ));
        }
        if let Some(group) = &self.share_group
            && (group.is_empty() || group.contains(['/', '+', '#']))
        {
            return Err(config_error(
                "bridge.share_group",
                "must be a non-empty name without '/', '+' or '#'",
            ));
        }
        self.tls.validate("bridge.tls")?;
        self.presence.validate("bridge.presence")?;
        Ok(())
    }

    pub(crate) fn broker_address(&self) -> Result<BrokerAddress, ConfigError> {
        let bad = |reason: &str| config_error("bridge.url", format!("{:?} {reason}", self.url));
        let uri: http::Uri = self
            .url
            .parse()
            .map_err(|_| bad("is not a URL like mqtt://host:1883"))?;
        let (transport, default_port) = match uri.scheme_str() {
            Some("mqtt" | "tcp") => (Transport::Tcp, 1883),
            Some("mqtts" | "ssl" | "tls") => (Transport::Tls, 8883),
            Some(other) => {
                return Err(bad(&format!(
                    "has scheme {other:?}: use mqtt:// or mqtts://"
                )));
            }
            None => {
                return Err(bad(
                    "has no scheme: use mqtt://host:port or mqtts://host:port",
                ));
            }
        };
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(bad("has a path or query, which MQTT does not use"));
        }
        let authority = uri.authority().ok_or_else(|| bad("has no host"))?;
        if authority.as_str().contains('@') {
            return Err(bad(
                "has credentials: set bridge.username and bridge.password instead",
            ));
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        if host.is_empty() {
            return Err(bad("has no host"));
        }
        Ok(BrokerAddress {
            transport,
            host: host.to_owned(),
            port: authority.port_u16().unwrap_or(default_port),
        })
    }
}

impl ClientTlsConfig {
    fn validate(&self, field: &str) -> Result<(), ConfigError> {
        check_file(&format!("{field}.ca_file"), self.ca_file.as_ref())?;
        check_file(&format!("{field}.cert_file"), self.cert_file.as_ref())?;
        check_file(&format!("{field}.key_file"), self.key_file.as_ref())?;
        if self.cert_file.is_some() != self.key_file.is_some() {
            return Err(config_error(
                &format!("{field}.key_file"),
                "cert_file and key_file go together",
            ));
        }
        Ok(())
    }
}

pub(crate) fn check_file(field: &str, path: Option<&PathBuf>) -> Result<(), ConfigError> {
    match path {
        Some(path) if !path.is_file() => Err(config_error(
            field,
            format!("{} does not exist or is not a file", path.display()),
        )),
        _ => Ok(()),
    }
}

/// Listener mode: devices connect to weir.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListenerConfig {
    /// Address of the plain TCP listener; none for TLS only. Default
    /// `0.0.0.0:1883`.
    pub bind: Option<SocketAddr>,
    /// The TLS listener. Default none.
    pub tls: Option<ListenerTlsConfig>,
    /// Let clients connect without a username. Default `false`.
    pub allow_anonymous: bool,
    /// Accepted usernames and passwords. A client that sends a username must
    /// match one of them, even when `allow_anonymous` is on. Default none.
    pub users: Vec<UserConfig>,
    /// Who may publish and subscribe to what: rules tried in order, the
    /// first whose client, action and topic match decides. Default none.
    pub acl: Vec<AclRule>,
    /// What happens to a publish or subscribe no `acl` rule matches
    /// (EMQX's `authorization.no_match`). Default `allow`, so a listener
    /// without rules lets every client use every topic.
    pub acl_no_match: AclPermission,
    /// Most clients connected at once; more are refused with "server
    /// unavailable" (3.1.1) or "server busy" (5). Default 10000.
    pub max_connections: usize,
    /// The largest packet accepted from a client, in bytes; a client that
    /// sends a larger one is disconnected (MQTT 5: "packet too large").
    /// Default 1048576 (1 MiB).
    #[serde(deserialize_with = "crate::config::units::bytes")]
    pub max_packet_size: u32,
    /// Per connection, the most messages handed to the pipeline and not yet
    /// complete; sent to MQTT 5 clients as the receive maximum (capped at
    /// 65535). When it is full weir stops reading from that client until a
    /// message completes. Default 100.
    pub window: usize,
    /// Seconds a new connection has to send CONNECT. Default 10.
    #[serde(deserialize_with = "crate::config::units::secs")]
    pub connect_timeout_secs: u64,
    /// The longest session a client may keep after disconnecting, in
    /// seconds; a client asking for more (or a 3.1.1 client with
    /// clean session off, which asks for "forever") gets this. Sessions live
    /// in memory only. Default 7200.
    #[serde(deserialize_with = "crate::config::units::secs")]
    pub max_session_expiry_secs: u32,
    /// Per subscriber, the most messages waiting to be sent to it; a message
    /// that finds the queue full is not delivered to that subscriber
    /// (`delivery.dropped`, reason `queue_full`). Bounds the memory a slow
    /// subscriber costs. Default 1000.
    pub subscriber_queue: usize,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        ListenerConfig {
            bind: Some(SocketAddr::from(([0, 0, 0, 0], 1883))),
            tls: None,
            allow_anonymous: false,
            users: Vec::new(),
            acl: Vec::new(),
            acl_no_match: AclPermission::Allow,
            max_connections: 10_000,
            max_packet_size: 1024 * 1024,
            window: 100,
            connect_timeout_secs: 10,
            max_session_expiry_secs: 7200,
            subscriber_queue: 1000,
        }
    }
}

/// The TLS listener.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerTlsConfig {
    /// Address to listen on. Required.
    pub bind: SocketAddr,
    /// PEM file of the server certificate chain. Required.
    pub cert_file: PathBuf,
    /// PEM file of the server's private key. Required.
    pub key_file: PathBuf,
    /// PEM file of CAs whose client certificates are required; none means
    /// clients need no certificate. Default none.
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
    /// Take a client's username from its certificate, as EMQX's
    /// `peer_cert_as_username` does: `"cn"`, the subject's common name.
    /// Such a client needs no password (the CA vouches for it), and a
    /// username it sends is replaced. Needs `client_ca_file`. Default none.
    #[serde(default)]
    pub peer_cert_as_username: Option<PeerCertField>,
}

/// The part of a client certificate that names its client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PeerCertField {
    /// The subject's common name.
    Cn,
}

/// A username and its password accepted by the listener: exactly one of
/// `password` and `password_hash`.
#[derive(Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// Required.
    pub username: String,
    /// The password as the client sends it. Default none.
    #[serde(default)]
    pub password: Option<String>,
    /// The password's hash as a PHC string (`$pbkdf2-sha256$...` or
    /// `$pbkdf2-sha512$...`), as `weir passwd` writes it. Default none.
    #[serde(default)]
    pub password_hash: Option<String>,
}

impl UserConfig {
    /// A user whose password is given as plain text.
    pub fn with_password(username: impl Into<String>, password: impl Into<String>) -> UserConfig {
        UserConfig {
            username: username.into(),
            password: Some(password.into()),
            password_hash: None,
        }
    }
}

impl std::fmt::Debug for UserConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |secret: &Option<String>| secret.as_ref().map(|_| "<redacted>");
        f.debug_struct("UserConfig")
            .field("username", &self.username)
            .field("password", &redacted(&self.password))
            .field("password_hash", &redacted(&self.password_hash))
            .finish()
    }
}

/// Whether an ACL rule lets its clients through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AclPermission {
    #[default]
    Allow,
    Deny,
}

/// What an ACL rule is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AclAction {
    Publish,
    Subscribe,
    /// Publish and subscribe.
    #[default]
    All,
}

/// One rule of the listener's ACL, as EMQX's file authorizer writes one
/// (`{allow, {username, "u"}, publish, ["t/#"]}`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct AclRule {
    /// `allow` or `deny`. Required.
    pub permission: AclPermission,
    /// `publish`, `subscribe` or `all`. Default `all`.
    #[serde(default)]
    pub action: AclAction,
    /// The rule applies only to clients with this username. Default: any.
    #[serde(default)]
    pub username: Option<String>,
    /// The rule applies only to the client with this id. Default: any.
    #[serde(default)]
    pub clientid: Option<String>,
    /// Topic filters (`+`, `#`, and the placeholders `${username}` and
    /// `${clientid}`), or `eq FILTER` for exactly that text. Required, not
    /// empty.
    pub topics: Vec<String>,
}

impl ListenerConfig {
    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.bind.is_none() && self.tls.is_none() {
            return Err(config_error(
                "listener.bind",
                "neither bind nor tls is set: the listener would accept nothing",
            ));
        }
        if let Some(tls) = &self.tls {
            check_file("listener.tls.cert_file", Some(&tls.cert_file))?;
            check_file("listener.tls.key_file", Some(&tls.key_file))?;
            check_file("listener.tls.client_ca_file", tls.client_ca_file.as_ref())?;
            if tls.peer_cert_as_username.is_some() && tls.client_ca_file.is_none() {
                return Err(config_error(
                    "listener.tls.peer_cert_as_username",
                    "needs client_ca_file: without it clients send no certificate",
                ));
            }
        }
        let certified = self
            .tls
            .as_ref()
            .is_some_and(|tls| tls.peer_cert_as_username.is_some());
        if !self.allow_anonymous && self.users.is_empty() && !certified {
            return Err(config_error(
                "listener.users",
                "is empty and allow_anonymous is false: no client could connect",
            ));
        }
        super::auth::Users::from_config(&self.users)?;
        super::acl::Acl::from_config(&self.acl, self.acl_no_match)?;
        if self.subscriber_queue == 0 {
            return Err(config_error(
                "listener.subscriber_queue",
                "must be at least 1",
            ));
        }
        if self.max_connections == 0 {
            return Err(config_error(
                "listener.max_connections",
                "must be at least 1",
            ));
        }
        if self.max_packet_size < 128 || self.max_packet_size > MQTT_MAX_PACKET_SIZE {
            return Err(config_error(
                "listener.max_packet_size",
                format!("must be between 128 and {MQTT_MAX_PACKET_SIZE}"),
            ));
        }
        if self.window == 0 {
            return Err(config_error("listener.window", "must be at least 1"));
        }
        if self.connect_timeout_secs == 0 {
            return Err(config_error(
                "listener.connect_timeout_secs",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bridge(url: &str) -> BridgeConfig {
        BridgeConfig {
            url: url.into(),
            ..BridgeConfig::default()
        }
    }

    #[test]
    fn urls_give_transport_host_and_port() {
        let addr = bridge("mqtt://broker.local")
            .broker_address()
            .expect("valid");
        assert_eq!(
            addr,
            BrokerAddress {
                transport: Transport::Tcp,
                host: "broker.local".into(),
                port: 1883
            }
        );
        let addr = bridge("mqtts://[::1]:9000")
            .broker_address()
            .expect("valid");
        assert_eq!(
            (addr.transport, addr.host.as_str(), addr.port),
            (Transport::Tls, "::1", 9000)
        );
        assert_eq!(
            bridge("mqtts://h").broker_address().expect("valid").port,
            8883
        );
    }

    #[test]
    fn bad_urls_name_the_field_and_the_problem() {
        for (url, words) in [
            ("http://h:1883", "scheme"),
            ("h:1883", "scheme"),
            ("mqtt://h:1883/topic", "path"),
            ("mqtt://user:pw@h", "credentials"),
            ("mqtt://", "URL"),
        ] {
            let error = bridge(url).validate().expect_err(url);
            assert_eq!(error.field, "bridge.url", "{url}");
            assert!(error.reason.contains(words), "{url}: {error}");
        }
    }

    #[test]
    fn missing_certificate_files_are_named() {
        let mut config = bridge("mqtts://h");
        config.tls.ca_file = Some("/nonexistent/ca.pem".into());
        let error = config.validate().expect_err("missing CA");
        assert_eq!(error.field, "bridge.tls.ca_file");
        assert!(error.reason.contains("/nonexistent/ca.pem"));

        let dir = tempfile::tempdir().expect("temp dir");
        let cert = dir.path().join("cert.pem");
        std::fs::write(&cert, "x").expect("write");
        let mut config = bridge("mqtts://h");
        config.tls.cert_file = Some(cert);
        assert_eq!(
            config.validate().expect_err("cert without key").field,
            "bridge.tls.key_file"
        );
    }

    #[test]
    fn other_bridge_fields_are_checked() {
        let check = |edit: fn(&mut BridgeConfig), field: &str| {
            let mut config = BridgeConfig::default();
            edit(&mut config);
            assert_eq!(config.validate().expect_err(field).field, field);
        };
        check(|c| c.client_id.clear(), "bridge.client_id");
        check(|c| c.keepalive_secs = 2, "bridge.keepalive_secs");
        check(|c| c.max_packet_size = 10, "bridge.max_packet_size");
        check(|c| c.window = 0, "bridge.window");
        check(|c| c.qos0_window = 0, "bridge.qos0_window");
        check(
            |c| c.reconnect_min_delay_ms = 0,
            "bridge.reconnect_min_delay_ms",
        );
        check(|c| c.share_group = Some("a/b".into()), "bridge.share_group");
        check(|c| c.password = Some("p".into()), "bridge.password");
        assert_eq!(BridgeConfig::default().validate(), Ok(()));
    }

    #[test]
    fn configs_come_from_toml_and_reject_unknown_fields() {
        let config: BridgeConfig = toml::from_str(
            r#"
            url = "mqtt://10.0.0.1:1884"
            version = "3.1.1"
            share_group = "weir"
            [presence]
            connected_topic = "x/+/up"
            "#,
        )
        .expect("valid config");
        assert_eq!(config.version, MqttVersion::V311);
        assert_eq!(config.presence.connected_topic, "x/+/up");
        assert_eq!(config.window, 1000, "defaults fill the rest");

        let error =
            toml::from_str::<BridgeConfig>(r#"urll = "mqtt://h""#).expect_err("unknown field");
        assert!(error.to_string().contains("urll"), "{error}");
    }

    #[test]
    fn the_version_reads_as_text_or_as_the_number_5() {
        let version = |value: &str| {
            toml::from_str::<BridgeConfig>(&format!("version = {value}")).map(|c| c.version)
        };
        assert_eq!(version(r#""3.1.1""#), Ok(MqttVersion::V311));
        assert_eq!(version(r#""5""#), Ok(MqttVersion::V5));
        assert_eq!(version("5"), Ok(MqttVersion::V5));
        for wrong in ["4", r#""3""#, "3.1", "true"] {
            let error = version(wrong).expect_err(wrong).to_string();
            assert!(
                error.contains(r#"expected "3.1.1" or "5""#),
                "{wrong}: {error}"
            );
        }
    }

    #[test]
    fn listener_needs_a_way_in() {
        let config = ListenerConfig::default();
        assert_eq!(
            config.validate().expect_err("no users").field,
            "listener.users"
        );
        let config = ListenerConfig {
            allow_anonymous: true,
            ..ListenerConfig::default()
        };
        assert_eq!(config.validate(), Ok(()));
        let config = ListenerConfig {
            allow_anonymous: true,
            tls: Some(ListenerTlsConfig {
                bind: "127.0.0.1:0".parse().expect("addr"),
                cert_file: "/nonexistent/cert.pem".into(),
                key_file: "/nonexistent/key.pem".into(),
                client_ca_file: None,
                peer_cert_as_username: None,
            }),
            ..ListenerConfig::default()
        };
        assert_eq!(
            config.validate().expect_err("missing cert").field,
            "listener.tls.cert_file"
        );

        // Certificates as logins need certificates, and then need no users.
        let dir = tempfile::tempdir().expect("temp dir");
        let pem = dir.path().join("any.pem");
        std::fs::write(&pem, "x").expect("write");
        let tls = ListenerTlsConfig {
            bind: "127.0.0.1:0".parse().expect("addr"),
            cert_file: pem.clone(),
            key_file: pem.clone(),
            client_ca_file: None,
            peer_cert_as_username: Some(PeerCertField::Cn),
        };
        let config = ListenerConfig {
            tls: Some(tls.clone()),
            ..ListenerConfig::default()
        };
        assert_eq!(
            config.validate().expect_err("no client CA").field,
            "listener.tls.peer_cert_as_username"
        );
        let config = ListenerConfig {
            tls: Some(ListenerTlsConfig {
                client_ca_file: Some(pem),
                ..tls
            }),
            ..ListenerConfig::default()
        };
        assert_eq!(config.validate(), Ok(()));
    }
}
