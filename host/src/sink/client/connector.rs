//! How a gRPC channel reaches one server: TCP, then TLS when the URL asks
//! for it, under one connect timeout.
//!
//! tonic is handed this connector instead of dialling itself so that a
//! failure says which step failed. The typed [`ConnectFailure`] travels up
//! inside the `tonic::Status` of the call that needed the connection, where
//! the client finds it again to report "unreachable" and "TLS handshake
//! failed" as different errors.

use super::url::NodeAddr;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::net::TcpStream;
use tonic::transport::{Channel, Endpoint};

/// Why a connection to a server could not be opened.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectFailure {
    #[error("cannot connect to {addr}: {source}")]
    Tcp {
        addr: NodeAddr,
        source: std::io::Error,
    },
    #[error("connecting to {addr} timed out after {after:?}")]
    Timeout { addr: NodeAddr, after: Duration },
    #[error("TLS handshake with {addr} failed: {source}")]
    Tls {
        addr: NodeAddr,
        source: std::io::Error,
    },
    #[error("{addr} cannot be dialled: {reason}")]
    InvalidAddress { addr: NodeAddr, reason: String },
}

/// Everything needed to open connections to one server.
#[derive(Debug, Clone)]
pub(crate) struct Dialer {
    pub(crate) addr: NodeAddr,
    pub(crate) tls: Option<Arc<rustls::ClientConfig>>,
    pub(crate) connect_timeout: Duration,
    /// Counts the connections opened (TLS ones once the handshake is done).
    pub(crate) opened: Arc<AtomicU64>,
}

impl Dialer {
    /// A channel that connects on first use and reconnects after a loss.
    /// Each channel has its own HTTP/2 connection, which is what lets a pool
    /// of channels spread load over several connections.
    pub(crate) fn lazy_channel(self) -> Result<Channel, ConnectFailure> {
        let invalid = |reason: String| ConnectFailure::InvalidAddress {
            addr: self.addr.clone(),
            reason,
        };
        // The URIs only name the origin requests carry (`:scheme` and
        // `:authority`); the connector ignores them and dials `addr`. tonic
        // refuses an `https` endpoint unless it does TLS itself, so the
        // endpoint says `http` and the origin says `https`.
        let endpoint = Endpoint::from_shared(format!("http://{}", self.addr))
            .map_err(|e| invalid(e.to_string()))?;
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let origin = format!("{scheme}://{}", self.addr)
            .parse()
            .map_err(|e: http::uri::InvalidUri| invalid(e.to_string()))?;
        // Windows sized by bandwidth-delay probing, as gRPC's C core does,
        // so reading large records back is not paced by 64 KiB windows.
        let endpoint = endpoint
            .origin(origin)
            .http2_adaptive_window(true)
            .http2_keep_alive_interval(Duration::from_secs(20))
            .keep_alive_timeout(Duration::from_secs(10));

        Ok(match self.tls.clone() {
            None => endpoint.connect_with_connector_lazy(tower::service_fn(move |_| {
                let dialer = self.clone();
                async move {
                    let stream = dialer.tcp().await?;
                    dialer.opened.fetch_add(1, Ordering::Relaxed);
                    Ok::<_, ConnectFailure>(TokioIo::new(stream))
                }
            })),
            Some(tls) => {
                let server_name = ServerName::try_from(self.addr.host.clone())
                    .map_err(|e| invalid(format!("not a valid TLS server name: {e}")))?;
                endpoint.connect_with_connector_lazy(tower::service_fn(move |_| {
                    let dialer = self.clone();
                    let connector = tokio_rustls::TlsConnector::from(tls.clone());
                    let server_name = server_name.clone();
                    async move {
                        let stream = dialer.tls(connector, server_name).await?;
                        dialer.opened.fetch_add(1, Ordering::Relaxed);
                        Ok::<_, ConnectFailure>(TokioIo::new(stream))
                    }
                }))
            }
        })
    }

    async fn tcp(&self) -> Result<TcpStream, ConnectFailure> {
        let connect = TcpStream::connect((self.addr.host.as_str(), self.addr.port));
        let stream = tokio::time::timeout(self.connect_timeout, connect)
            .await
            .map_err(|_| self.timeout())?
            .map_err(|source| ConnectFailure::Tcp {
                addr: self.addr.clone(),
                source,
            })?;
        // gRPC messages are small and latency matters more than packet count.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(addr = %self.addr, %error, "cannot set TCP_NODELAY");
        }
        Ok(stream)
    }

    async fn tls(
        &self,
        connector: tokio_rustls::TlsConnector,
        server_name: ServerName<'static>,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, ConnectFailure> {
        // One deadline covers both steps, as a user expects of "connect".
        let deadline = tokio::time::Instant::now() + self.connect_timeout;
        let tcp = self.tcp().await?;
        tokio::time::timeout_at(deadline, connector.connect(server_name, tcp))
            .await
            .map_err(|_| self.timeout())?
            .map_err(|source| ConnectFailure::Tls {
                addr: self.addr.clone(),
                source,
            })
    }

    fn timeout(&self) -> ConnectFailure {
        ConnectFailure::Timeout {
            addr: self.addr.clone(),
            after: self.connect_timeout,
        }
    }
}
