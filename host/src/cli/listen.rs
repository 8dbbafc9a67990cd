//! Binding the sockets weir serves on, so that a refusal says which of
//! weir's listeners it was, why, and the setting that chooses another
//! address: "the MQTT listener cannot listen on 127.0.0.1:1883: the address
//! is in use (another MQTT broker?); choose another address with
//! --mqtt-listen". `weir dev` names its flags, `weir run` the fields of
//! weir.toml. Everything is bound before the gateway starts, so nothing
//! after the readiness line can fail for a port.

use std::net::SocketAddr;
use tokio::net::TcpListener;

/// One of weir's listeners, as a person knows it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Listener {
    /// "the MQTT listener".
    name: &'static str,
    /// What usually holds its port already.
    usual_occupant: &'static str,
}

pub(crate) const MQTT: Listener = Listener {
    name: "the MQTT listener",
    usual_occupant: "another MQTT broker, such as mosquitto",
};

pub(crate) const MQTT_TLS: Listener = Listener {
    name: "the MQTT TLS listener",
    usual_occupant: "another MQTT broker",
};

pub(crate) const ADMIN: Listener = Listener {
    name: "the admin API",
    usual_occupant: "another weir",
};

pub(crate) const HSTREAM: Listener = Listener {
    name: "the HStreamDB-compatible server",
    usual_occupant: "HStreamDB, or another weir dev",
};

/// A listener that could not bind its address.
#[derive(Debug, thiserror::Error)]
#[error("{} cannot listen on {addr}: {reason}; choose another address with {setting}", listener.name)]
pub(crate) struct ListenError {
    listener: Listener,
    addr: SocketAddr,
    reason: String,
    setting: String,
}

/// Binds `addr` for `listener`; `setting` is what chooses the address
/// (`--mqtt-listen`, `mqtt.listener.bind in weir.toml`).
pub(crate) async fn bind(
    listener: Listener,
    addr: SocketAddr,
    setting: &str,
) -> Result<TcpListener, ListenError> {
    TcpListener::bind(addr).await.map_err(|error| ListenError {
        listener,
        addr,
        reason: match error.kind() {
            std::io::ErrorKind::AddrInUse => {
                format!("the address is in use ({}?)", listener.usual_occupant)
            }
            std::io::ErrorKind::AddrNotAvailable => {
                "no network interface of this machine has that address".to_owned()
            }
            std::io::ErrorKind::PermissionDenied => {
                "permission denied (ports below 1024 need privileges)".to_owned()
            }
            _ => error.to_string(),
        },
        setting: setting.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_busy_port_names_the_listener_and_its_setting() {
        let taken = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let addr = taken.local_addr().expect("its address");
        let error = bind(MQTT, addr, "--mqtt-listen")
            .await
            .expect_err("the port is taken");
        assert_eq!(
            error.to_string(),
            format!(
                "the MQTT listener cannot listen on {addr}: the address is in use \
                 (another MQTT broker, such as mosquitto?); choose another address with --mqtt-listen"
            )
        );
    }
}
