//! MQTT in: turns MQTT traffic into [`Event`]s paired with acknowledgement
//! tokens, in one of two modes.
//!
//! - [`Bridge`]: weir is an MQTT client of a broker (rumqttc). It subscribes
//!   to the union of the rules' sources, and learns about client connects and
//!   disconnects from the broker's presence messages (see [`presence`]).
//! - [`Listener`]: devices connect to weir itself, so every field of the
//!   event model is known first hand.
//!
//! Both send [`Delivery`]s (event + [`AckToken`]) on a bounded channel and
//! take the rules' sources as a `watch` of [`Sources`], typed and checked by
//! the rule stage with the one topic-filter module (`weir_guest_sdk::topic`). Only this
//! module names rumqttc or MQTT packets; the rest of weir sees `Event`s.

mod acl;
mod auth;
mod bridge;
mod config;
mod frame;
mod ids;
mod listener;
mod presence;
mod props;
mod qos;
pub(crate) mod status;
mod tls;

pub(crate) use auth::{DEFAULT_ROUNDS, MIN_ROUNDS, hash_password};
pub use bridge::Bridge;
pub(crate) use config::ConfigError;
pub use config::{
    AclAction, AclPermission, AclRule, BridgeConfig, ListenerConfig, ListenerTlsConfig,
    MqttVersion, PeerCertField, UserConfig,
};
pub(crate) use ids::{MessageIds, now_ms};
pub use listener::Listener;
pub use presence::PresenceConfig;
pub(crate) use qos::{qos_from_v4, qos_from_v5, qos_to_v4, qos_to_v5};
pub use status::{ConnectionState, StatusHandle};
pub(crate) use status::{IngressStats, StatusWriter};
pub use weir_guest_sdk::topic::Qos;
pub use weir_guest_sdk::topic::{Source, Sources};

use crate::ack::AckToken;
use crate::event::Event;

/// One event and the token that acknowledges the MQTT message it came from.
/// Pass `ack` along with everything derived from `event`.
#[derive(Debug)]
pub struct Delivery {
    pub event: Event,
    pub ack: AckToken,
}
