//! The one-node shapes of the server: [`serve`] for a foreground process
//! and [`DevServer`] for the background of this process. Both are a
//! [`DevCluster`] of one node (id 1), so a single server and a cluster share
//! every handler.
//!
//! Shutting down ends open streaming reads and blocked ReadShard calls, so
//! the graceful drain of connections cannot hang on a reader that follows
//! a stream forever.

use crate::Config;
use crate::cluster::{ClusterConfig, DevCluster, NodeConfig};
use crate::error::Error;
use std::future::Future;
use std::net::SocketAddr;
use tokio::net::TcpListener;

/// The id of the node of a one-node server.
const SINGLE_NODE_ID: u32 = 1;

/// Serves on `listener` until `shutdown` completes, then drains connections
/// and returns. Fails before serving when the data directory or the TLS
/// files cannot be used.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let server = DevServer::start(listener, config).await?;
    shutdown.await;
    server.shutdown().await
}

fn split(config: Config) -> (ClusterConfig, NodeConfig) {
    (
        ClusterConfig {
            data_dir: config.data_dir,
            max_record_bytes: config.max_record_bytes,
            fsync: config.fsync,
            strict_ownership: false,
        },
        NodeConfig {
            id: SINGLE_NODE_ID,
            tls: config.tls,
            advertised_host: config.advertised_host,
        },
    )
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
    cluster: DevCluster,
}

impl DevServer {
    /// Starts serving on an already-bound listener. Returns once the store
    /// is open, so a bad data directory or TLS file is reported here.
    pub async fn start(listener: TcpListener, config: Config) -> Result<DevServer, Error> {
        let local_addr = listener.local_addr().map_err(Error::Listener)?;
        let tls = config.tls.is_some();
        let (cluster, node) = split(config);
        let cluster = DevCluster::start(cluster, vec![(listener, node)]).await?;
        Ok(DevServer {
            local_addr,
            tls,
            cluster,
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
    pub async fn shutdown(self) -> Result<(), Error> {
        self.cluster.shutdown().await
    }
}
