//! `weir passwd`: hashes a listener user's password for weir.toml
//! (`mqtt.listener.users[].password_hash`), so the file holds nothing a
//! reader of it could log in with.
//!
//! The password is asked for twice without echo when stdin is a terminal,
//! else read from stdin's first line so a script can pipe it in; it is never
//! an argument, where `ps` and shell history would keep it.

use super::{Exit, print_line};
use crate::ingress::{DEFAULT_ROUNDS, MIN_ROUNDS, hash_password};
use anyhow::{Context, bail};
use std::io::{BufRead, IsTerminal, Write};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Print a whole `[[mqtt.listener.users]]` entry for this user; without
    /// it, only the `password_hash` line.
    username: Option<String>,
    /// PBKDF2-SHA256 rounds: each makes a guess slower, and each CONNECT of
    /// the user slower to check.
    #[arg(long, default_value_t = DEFAULT_ROUNDS,
          value_parser = clap::value_parser!(u32).range(i64::from(MIN_ROUNDS)..))]
    rounds: u32,
}

pub(crate) async fn run(args: Args, out: &mut (dyn Write + Send)) -> anyhow::Result<Exit> {
    let password = tokio::task::spawn_blocking(read_password)
        .await
        .context("reading the password stopped")??;
    if password.is_empty() {
        bail!("the password is empty");
    }
    let rounds = args.rounds;
    let hash = tokio::task::spawn_blocking(move || hash_password(&password, rounds))
        .await
        .context("hashing the password stopped")??;
    let mut lines = Vec::new();
    if let Some(username) = args.username {
        lines.push("[[mqtt.listener.users]]".to_owned());
        lines.push(format!("username = {}", toml::Value::String(username)));
    }
    lines.push(format!("password_hash = {}", toml::Value::String(hash)));
    for line in lines {
        print_line(out, &line).context("cannot write to stdout")?;
    }
    Ok(Exit::Success)
}

fn read_password() -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        let password =
            rpassword::prompt_password("Password: ").context("cannot read the password")?;
        let again = rpassword::prompt_password("Again: ").context("cannot read the password")?;
        if password != again {
            bail!("the two passwords differ");
        }
        return Ok(password);
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from stdin")?;
    let password = line.strip_suffix('\n').unwrap_or(&line);
    Ok(password.strip_suffix('\r').unwrap_or(password).to_owned())
}
