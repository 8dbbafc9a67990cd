//! Wiring and lifecycle: open the store, build the gRPC services, serve on
//! the caller's listener until asked to stop, then release everything (the
//! port and the data directory) so a new server can start at once.
//!
//! Shutting down ends open streaming reads and blocked ReadShard calls, so
//! the graceful drain of connections cannot hang on a reader that follows
//! a stream forever.

use crate::control::Faults;
use crate::error::Error;
use crate::service::Service;
use crate::service::read::Readers;
use crate::store::{Store, StoreOptions};
use crate::{Config, DEFAULT_MAX_RECORD_BYTES, tls};
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tonic::transport::ServerTlsConfig;
use weir_proto::pb::devserver::fault_control_server::FaultControlServer;
use weir_proto::pb::h_stream_api_server::HStreamApiServer;
use weir_proto::pb::{HStreamVersion, ServerNode};
use weir_proto::record::DEFAULT_MAX_DECODED_BYTES;

/// How often batches past their stream's backlog are removed.
const EXPIRY_INTERVAL: Duration = Duration::from_secs(1);

/// Serves on `listener` until `shutdown` completes, then drains connections
/// and returns. Fails before serving when the data directory or the TLS
/// files cannot be used.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    Server::open(&listener, config)
        .await?
        .run(listener, shutdown)
        .await
}

/// Everything prepared before the first connection is accepted.
struct Server {
    store: Arc<Store>,
    tls: Option<ServerTlsConfig>,
    node: ServerNode,
    max_record_bytes: usize,
}

impl Server {
    async fn open(listener: &TcpListener, config: Config) -> Result<Server, Error> {
        let local = listener.local_addr().map_err(Error::Listener)?;
        let tls = config.tls.as_ref().map(tls::server_config).transpose()?;
        let options = StoreOptions::new(config.data_dir.clone(), config.fsync);
        let store = tokio::task::spawn_blocking(move || Store::open(options))
            .await
            .map_err(|e| Error::Task(e.to_string()))??;
        let node = advertised_node(local, config.advertised_host.as_deref());
        tracing::info!(
            listen = %local,
            advertised = %format!("{}:{}", node.host, node.port),
            tls = tls.is_some(),
            data_dir = ?config.data_dir,
            "weir devserver ready"
        );
        Ok(Server {
            store: Arc::new(store),
            tls,
            node,
            max_record_bytes: match config.max_record_bytes {
                0 => DEFAULT_MAX_RECORD_BYTES,
                n => n,
            },
        })
    }

    async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), Error> {
        let (stop_tx, stop_rx) = watch::channel(false);
        // Readers treat a dropped sender as a stop too, so one copy lives
        // until the server is done.
        let stop_tx = Arc::new(stop_tx);
        let stop_signal = stop_tx.clone();
        let faults = Arc::new(Faults::default());
        let service = Service {
            store: self.store.clone(),
            faults: faults.clone(),
            readers: Readers::default(),
            node: self.node,
            started: Instant::now(),
            max_record_bytes: self.max_record_bytes,
            max_decoded_bytes: DEFAULT_MAX_DECODED_BYTES
                .max(self.max_record_bytes.saturating_mul(16)),
            stop: stop_rx,
        };
        // Far above the record limit, so an oversized batch reaches the
        // handler and gets HStreamDB's 207 rather than tonic's own error.
        let max_message = self
            .max_record_bytes
            .saturating_mul(4)
            .saturating_add(16 * 1024 * 1024);
        let api = HStreamApiServer::new(service).max_decoding_message_size(max_message);

        let expiry = tokio::spawn(remove_expired_periodically(self.store.clone()));
        let mut builder = tonic::transport::Server::builder();
        if let Some(tls) = self.tls {
            builder = builder.tls_config(tls)?;
        }
        let result = builder
            .add_service(api)
            .add_service(FaultControlServer::from_arc(faults))
            .serve_with_incoming_shutdown(incoming(listener), async move {
                shutdown.await;
                tracing::info!("weir devserver shutting down");
                stop_signal.send_replace(true);
            })
            .await;
        expiry.abort();
        self.store.close();
        drop(stop_tx);
        tracing::info!("weir devserver stopped");
        Ok(result?)
    }
}

async fn remove_expired_periodically(store: Arc<Store>) {
    let mut tick = tokio::time::interval(EXPIRY_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let store = store.clone();
        // Removing segment files blocks.
        if tokio::task::spawn_blocking(move || store.remove_expired())
            .await
            .is_err()
        {
            return;
        }
    }
}

/// The node clients are told to dial: the listener's real port, and the
/// configured host or else the listener's IP.
fn advertised_node(local: SocketAddr, advertised_host: Option<&str>) -> ServerNode {
    let host = match advertised_host {
        Some(host) => host.to_owned(),
        None => {
            let ip = match local.ip() {
                IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
                ip => ip,
            };
            if local.ip().is_unspecified() {
                tracing::warn!(
                    listen = %local,
                    advertised = %ip,
                    "listening on all addresses but advertising loopback; set an advertised host for remote clients"
                );
            }
            match ip {
                IpAddr::V4(ip) => ip.to_string(),
                IpAddr::V6(ip) => format!("[{ip}]"),
            }
        }
    };
    ServerNode {
        id: 1,
        host,
        port: u32::from(local.port()),
        version: Some(HStreamVersion {
            version: concat!("weir-devserver ", env!("CARGO_PKG_VERSION")).into(),
            commit: String::new(),
        }),
    }
}

/// A development server running in the background of this process.
///
/// Dropping it asks it to stop without waiting; [`DevServer::shutdown`]
/// waits until the port and the data directory are released, after which a
/// server can start again on the same address with the same directory.
#[derive(Debug)]
pub struct DevServer {
    local_addr: SocketAddr,
    tls: bool,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), Error>>>,
}

impl DevServer {
    /// Starts serving on an already-bound listener. Returns once the store
    /// is open, so a bad data directory or TLS file is reported here.
    pub async fn start(listener: TcpListener, config: Config) -> Result<DevServer, Error> {
        let local_addr = listener.local_addr().map_err(Error::Listener)?;
        let tls = config.tls.is_some();
        let server = Server::open(&listener, config).await?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(listener, async move {
            // A dropped handle stops the server as well.
            let _ = stopped.await;
        }));
        Ok(DevServer {
            local_addr,
            tls,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// Binds `addr` and starts serving on it; used to start again on the
    /// port of a server that was shut down.
    pub async fn bind(addr: SocketAddr, config: Config) -> Result<DevServer, Error> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind { addr, source })?;
        DevServer::start(listener, config).await
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `http://ADDR` or `https://ADDR`, for a tonic `Endpoint`.
    pub fn endpoint(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.local_addr)
    }

    /// Stops accepting connections, ends open reads, waits for the
    /// connections to close and releases the port and the data directory.
    pub async fn shutdown(mut self) -> Result<(), Error> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.map_err(|e| Error::Task(e.to_string()))?,
            None => Ok(()),
        }
    }
}

impl Drop for DevServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Accepted connections with Nagle's algorithm off: a reply that does not
/// fill a segment would otherwise wait for the client's delayed ACK (about
/// 20 ms per append of a few tens of kilobytes), as HStreamDB's does not.
fn incoming(listener: tokio::net::TcpListener) -> tonic::transport::server::TcpIncoming {
    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertises_a_dialable_host() {
        let node = advertised_node("0.0.0.0:6570".parse().expect("addr"), None);
        assert_eq!((node.host.as_str(), node.port), ("127.0.0.1", 6570));
        let node = advertised_node("[::1]:7000".parse().expect("addr"), None);
        assert_eq!(node.host, "[::1]");
        let node = advertised_node("127.0.0.1:7000".parse().expect("addr"), Some("hs.local"));
        assert_eq!((node.host.as_str(), node.port), ("hs.local", 7000));
    }
}
