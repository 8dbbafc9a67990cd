//! `weir run --config weir.toml`: the gateway in production, against a real
//! broker (or as one) and a real HStreamDB cluster, until Ctrl-C or SIGTERM.
//! Without `--config` it runs the defaults (what an empty file means: a
//! bridge to a broker on localhost, docs/config.md), and its first log line
//! says so.
//!
//! Once everything is started it prints what it listens on, one line each,
//! then `weir ready`, so scripts and tests can wait for it:
//!
//! ```text
//! weir mqtt listener on 127.0.0.1:1883      (listener mode)
//! weir admin on http://127.0.0.1:8080       (unless admin.enabled = false)
//! weir ready
//! ```

use super::listen::{self, ListenError};
use super::signal::ShutdownSignal;
use super::{Exit, print_line};
use crate::admin;
use crate::config::{self, Config, MqttMode};
use crate::pipeline::{Gateway, Sockets};
use anyhow::Context;
use std::io::Write;
use std::net::SocketAddr;
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
    /// variables override its fields. Without it, the defaults (an empty
    /// file's) with those overrides.
    #[arg(long, short, value_name = "FILE")]
    config: Option<PathBuf>,
}

pub(crate) async fn run(args: Args, out: &mut (dyn Write + Send)) -> anyhow::Result<Exit> {
    let config = match &args.config {
        Some(path) => Config::load(path)?,
        None => {
            tracing::warn!(
                "no --config given: running on the defaults (an empty weir.toml, see docs/config.md) \
                 with the WEIR_... environment overrides"
            );
            Config::from_toml("", "the defaults", std::env::vars())?
        }
    };
    let bound = bind(&config, &Settings::of_config()).await?;
    serve(&config, bound, &[], out).await
}

/// What chooses each listener's address, for the message when it cannot
/// bind.
pub(crate) struct Settings {
    pub(crate) mqtt: String,
    pub(crate) mqtt_tls: String,
    pub(crate) admin: String,
}

impl Settings {
    /// The configuration's fields, in the file or as `WEIR_...` variables.
    pub(crate) fn of_config() -> Settings {
        let field = |path: &str| {
            format!(
                "{path} in the configuration (or {})",
                config::override_variable(path)
            )
        };
        Settings {
            mqtt: field("mqtt.listener.bind"),
            mqtt_tls: field("mqtt.listener.tls.bind"),
            admin: field("admin.listen"),
        }
    }
}

/// Every socket a configuration serves on, bound before anything starts.
pub(crate) struct Bound {
    sockets: Sockets,
    admin: Option<TcpListener>,
}

impl Bound {
    /// The MQTT listener's address (listener mode).
    pub(crate) fn mqtt_addr(&self) -> Option<SocketAddr> {
        self.sockets.mqtt.as_ref()?.local_addr().ok()
    }
}

/// Binds the MQTT listeners (listener mode) and the admin API.
pub(crate) async fn bind(config: &Config, settings: &Settings) -> Result<Bound, ListenError> {
    let mut sockets = Sockets::default();
    if config.mqtt.mode == MqttMode::Listener {
        let listener = &config.mqtt.listener;
        if let Some(addr) = listener.bind {
            sockets.mqtt = Some(listen::bind(listen::MQTT, addr, &settings.mqtt).await?);
        }
        if let Some(tls) = &listener.tls {
            sockets.mqtt_tls =
                Some(listen::bind(listen::MQTT_TLS, tls.bind, &settings.mqtt_tls).await?);
        }
    }
    let admin = match config.admin_listen() {
        Some(addr) => Some(listen::bind(listen::ADMIN, addr, &settings.admin).await?),
        None => None,
    };
    Ok(Bound { sockets, admin })
}

/// Starts the gateway on the sockets bound for it, reports where it
/// listens and then `notes` (what `weir dev` suggests trying: every
/// failure to start comes before them), runs until a signal, then shuts
/// down. Shared by `weir run` and `weir dev`.
pub(crate) async fn serve(
    config: &Config,
    bound: Bound,
    notes: &[String],
    out: &mut (dyn Write + Send),
) -> anyhow::Result<Exit> {
    let Bound {
        sockets,
        admin: admin_listener,
    } = bound;
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
    if let Some(listener) = &admin_listener {
        let addr = listener
            .local_addr()
            .context("cannot read the admin API's address")?;
        listening.push(format!("weir admin on http://{addr}"));
    }
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
    for line in listening.iter().chain(notes) {
        print_line(out, line).context("cannot write to stdout")?;
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
