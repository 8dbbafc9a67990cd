//! `weir run --config weir.toml`: the gateway in production, against a real
//! broker (or as one) and a real HStreamDB cluster, until Ctrl-C or SIGTERM.
//!
//! Once everything is started it prints what it listens on, one line each,
//! then `weir ready`, so scripts and tests can wait for it:
//!
//! ```text
//! weir mqtt listener on 127.0.0.1:1883      (listener mode)
//! weir admin on http://127.0.0.1:8080       (unless admin.enabled = false)
//! weir ready
//! ```

use super::signal::ShutdownSignal;
use super::{Exit, print_line};
use crate::admin;
use crate::config::Config;
use crate::pipeline::{Gateway, Sockets};
use anyhow::Context;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// How long a shutdown may spend appending what is buffered.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(10);

/// How long admin requests in progress may delay a shutdown.
const ADMIN_SHUTDOWN_DEADLINE: Duration = Duration::from_secs(5);

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The configuration file (see docs/config.md); WEIR_... environment
    /// variables override its fields.
    #[arg(long, short, value_name = "FILE")]
    config: PathBuf,
}

pub(crate) async fn run(args: Args, out: &mut (dyn Write + Send)) -> anyhow::Result<Exit> {
    let config = Config::load(&args.config)?;
    let sockets = Sockets::bind(&config).await?;
    serve(&config, sockets, out).await
}

/// Starts the gateway, reports where it listens, runs until a signal, then
/// shuts down. Shared by `weir run` and `weir dev`.
pub(crate) async fn serve(
    config: &Config,
    sockets: Sockets,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<Exit> {
    let mut listening = Vec::new();
    for (name, socket) in [
        ("mqtt listener", &sockets.mqtt),
        ("mqtt tls listener", &sockets.mqtt_tls),
    ] {
        if let Some(socket) = socket {
            let addr = socket
                .local_addr()
                .context("cannot read a listening address")?;
            listening.push(format!("weir {name} on {addr}"));
        }
    }
    // Bound before the gateway starts, so a taken port fails the start.
    let admin_listener = match config.admin_listen() {
        Some(addr) => {
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} for the admin API"))?;
            let addr = listener
                .local_addr()
                .context("cannot read the admin API's address")?;
            listening.push(format!("weir admin on http://{addr}"));
            Some(listener)
        }
        None => None,
    };
    let mut shutdown = ShutdownSignal::listen()?;
    let gateway = Gateway::start(config, sockets)
        .await
        .context("cannot start the gateway")?;
    let admin = admin_listener.map(|listener| {
        let (stop, stopped) = oneshot::channel::<()>();
        let server = admin::serve(
            listener,
            gateway.handles().clone(),
            config.admin.clone(),
            async move {
                let _ = stopped.await;
            },
        );
        let task = tokio::spawn(async move {
            if let Err(error) = server.await {
                tracing::error!(%error, "the admin API stopped");
            }
        });
        (stop, task)
    });
    for line in listening {
        print_line(out, &line).context("cannot write to stdout")?;
    }
    print_line(out, "weir ready").context("cannot write to stdout")?;
    shutdown.received().await?;
    tracing::info!("shutting down");
    // The admin API stops first, so nobody is told "ready" while the sink
    // drains; its handles keep nothing of the sink running either way.
    if let Some((stop, mut task)) = admin {
        let _ = stop.send(());
        if tokio::time::timeout(ADMIN_SHUTDOWN_DEADLINE, &mut task)
            .await
            .is_err()
        {
            tracing::warn!("admin API requests still running at shutdown were cut off");
            task.abort();
        }
    }
    let report = gateway.shutdown(SHUTDOWN_DEADLINE).await;
    if !report.drained {
        tracing::warn!(
            left_on_disk = report.left_on_disk,
            "stopped before everything was appended; unacknowledged messages will be delivered again"
        );
    }
    Ok(Exit::Success)
}
