//! `weir stream create|list|describe|delete|append|read`, after `hstream
//! stream ...` of the HStreamDB tutorial.
//!
//! `read` prints one line per record as the HStreamDB CLI does:
//! `timestamp: <ms>, id: <shard-batch-index>, key: "<key>", record: <record>`,
//! with HRecords as compact JSON and raw records as their text (control
//! characters escaped, so a record is always one line) or, when not UTF-8,
//! as `hex:` followed by the bytes in hexadecimal.

use super::server_args::ServerArgs;
use super::signal::ShutdownSignal;
use super::{Exit, print_line};
use crate::sink::client::{Compression, ReadRecord, StartFrom, StreamInfo};
use anyhow::Context;
use clap::ValueEnum;
use std::fmt::Write as _;
use std::io::Write;
use std::time::Duration;
use weir_proto::pb::h_stream_record_header::Flag;
use weir_proto::record::{decode_hrecord, flag_of, hrecord_from_json_text, key_of, raw_record};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Create a stream.
    Create {
        /// The stream's name.
        name: String,
        /// Number of shards the key space is divided into.
        #[arg(long, value_name = "N", default_value_t = 1)]
        shards: u32,
        /// Number of copies the store keeps of each record.
        #[arg(long, value_name = "N", default_value_t = 1)]
        replication: u32,
        /// Seconds records are kept; 0 keeps them forever.
        #[arg(long, value_name = "SECONDS", default_value_t = 0)]
        backlog: u32,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// List streams as a table.
    List {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Show one stream: its shards, replication, backlog and creation time.
    Describe {
        /// The stream's name.
        name: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Append records to a stream, all with one partition key; each RECORD
    /// is the JSON text of an object (stored as an HRecord) or, with --raw,
    /// bytes. Without RECORD arguments, each line of stdin is one record.
    Append {
        /// The stream's name.
        name: String,
        /// The records' partition key; it decides their shard.
        #[arg(long, default_value = "")]
        key: String,
        /// Store the records as raw bytes instead of HRecords.
        #[arg(long)]
        raw: bool,
        /// The records; none reads them from stdin, one per line.
        records: Vec<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Delete a stream.
    Delete {
        /// The stream's name.
        name: String,
        /// Succeed when the stream does not exist.
        #[arg(long)]
        ignore_missing: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Follow a stream, printing one line per record, until interrupted or
    /// --limit records were printed.
    Read {
        /// The stream's name.
        name: String,
        /// Stop after this many records.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        limit: Option<u64>,
        /// Start at the oldest record or at records appended from now on.
        #[arg(long, value_enum, default_value_t = ReadFrom::Earliest)]
        from: ReadFrom,
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ReadFrom {
    Earliest,
    Latest,
}

pub(crate) async fn run(command: Command, out: &mut (dyn Write + Send)) -> anyhow::Result<Exit> {
    match command {
        Command::Create {
            name,
            shards,
            replication,
            backlog,
            server,
        } => {
            let client = server.client()?;
            let info = client
                .create_stream(
                    &name,
                    shards,
                    replication,
                    Duration::from_secs(backlog.into()),
                )
                .await
                .with_context(|| format!("cannot create stream {name:?} on {}", server.server))?;
            print_line(
                out,
                &format!(
                    "created stream {:?} with {} shard(s), replication {}, backlog {}",
                    info.name,
                    info.shards,
                    info.replication,
                    backlog_text(info.backlog)
                ),
            )?;
        }
        Command::List { server } => {
            let client = server.client()?;
            let streams = client
                .list_streams()
                .await
                .with_context(|| format!("cannot list the streams of {}", server.server))?;
            out.write_all(stream_table(&streams).as_bytes())?;
            out.flush()?;
        }
        Command::Delete {
            name,
            ignore_missing,
            server,
        } => {
            let client = server.client()?;
            client
                .delete_stream(&name, ignore_missing)
                .await
                .with_context(|| format!("cannot delete stream {name:?} on {}", server.server))?;
            print_line(out, &format!("deleted stream {name:?}"))?;
        }
        Command::Describe { name, server } => {
            let client = server.client()?;
            let context = || format!("cannot describe stream {name:?} on {}", server.server);
            let info = client.get_stream(&name).await.with_context(context)?;
            let shards = client.shards(&name).await.with_context(context)?;
            out.write_all(describe_text(&info, shards.shard_ids()).as_bytes())?;
            out.flush()?;
        }
        Command::Append {
            name,
            key,
            raw,
            records,
            server,
        } => {
            let texts = if records.is_empty() {
                std::io::stdin()
                    .lines()
                    .collect::<Result<Vec<String>, _>>()
                    .context("cannot read the records from stdin")?
            } else {
                records
            };
            let records = texts
                .iter()
                .enumerate()
                .map(|(i, text)| {
                    if raw {
                        Ok(raw_record(key.as_str(), text.clone().into_bytes()))
                    } else {
                        hrecord_from_json_text(key.as_str(), text.as_bytes()).with_context(|| {
                            format!(
                                "record {} is not the JSON text of an object (use --raw for bytes)",
                                i + 1
                            )
                        })
                    }
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            if records.is_empty() {
                anyhow::bail!("no records to append: give them as arguments or on stdin");
            }
            let client = server.client()?;
            let appended = client
                .append_by_key(&name, &key, records, Compression::None)
                .await
                .with_context(|| {
                    format!("cannot append to stream {name:?} on {}", server.server)
                })?;
            let ids: Vec<String> = appended.ids.iter().map(ToString::to_string).collect();
            print_line(
                out,
                &format!(
                    "appended {} record(s) to stream {name:?}, shard {}: {}",
                    ids.len(),
                    appended.shard_id,
                    ids.join(" ")
                ),
            )?;
        }
        Command::Read {
            name,
            limit,
            from,
            server,
        } => read(&server, &name, limit, from, out).await?,
    }
    Ok(Exit::Success)
}

async fn read(
    server: &ServerArgs,
    name: &str,
    limit: Option<u64>,
    from: ReadFrom,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    let client = server.client()?;
    let context = || format!("cannot read stream {name:?} on {}", server.server);
    let from = match from {
        ReadFrom::Earliest => StartFrom::Earliest,
        ReadFrom::Latest => StartFrom::Latest,
    };
    let mut reader = client.read_stream(name, from).await.with_context(context)?;
    let mut shutdown = ShutdownSignal::listen()?;
    let interrupted = shutdown.received();
    tokio::pin!(interrupted);
    let mut printed = 0;
    // A stream with nothing to print would look like a hung command: once
    // no record came for a moment, say so on stderr (stdout stays records).
    let quiet = tokio::time::sleep(WAITING_NOTICE_AFTER);
    tokio::pin!(quiet);
    let mut told = false;
    while limit.is_none_or(|limit| printed < limit) {
        let record = tokio::select! {
            record = reader.next() => record.with_context(context)?,
            signal = &mut interrupted => {
                signal?;
                break;
            }
            () = &mut quiet, if !told && printed == 0 => {
                told = true;
                eprintln!("{}", waiting_notice(name, from));
                continue;
            }
        };
        let Some(record) = record else { break };
        match print_line(out, &record_line(&record)) {
            Ok(()) => printed += 1,
            // The reader of our output has gone (`weir stream read | head`).
            Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => break,
            Err(error) => return Err(error).context("cannot write to stdout"),
        }
    }
    Ok(())
}

/// How long `weir stream read` waits for a first record before it says it
/// is waiting.
const WAITING_NOTICE_AFTER: Duration = Duration::from_millis(500);

fn waiting_notice(name: &str, from: StartFrom) -> String {
    let which = match from {
        StartFrom::Earliest => "has no records yet",
        StartFrom::Latest => "has no new records yet",
    };
    format!("stream {name:?} {which}; waiting for records to be appended (Ctrl-C to stop)")
}

/// One record as `weir stream read` prints it.
pub(crate) fn record_line(read: &ReadRecord) -> String {
    let timestamp = read
        .timestamp_ms
        .map_or_else(|| "-".to_owned(), |ms| ms.to_string());
    let key = serde_json::Value::from(key_of(&read.record)).to_string();
    format!(
        "timestamp: {timestamp}, id: {}, key: {key}, record: {}",
        read.id,
        payload_text(flag_of(&read.record), &read.record.payload)
    )
}

fn payload_text(flag: Flag, payload: &[u8]) -> String {
    match flag {
        Flag::Json => match decode_hrecord(payload) {
            Ok(json) => json.to_string(),
            Err(error) => format!("<not a valid HRecord: {error}> {}", hex(payload)),
        },
        Flag::Raw => match std::str::from_utf8(payload) {
            Ok(text) => {
                let mut line = String::with_capacity(text.len());
                for c in text.chars() {
                    if c.is_control() {
                        line.extend(c.escape_default());
                    } else {
                        line.push(c);
                    }
                }
                line
            }
            Err(_) => hex(payload),
        },
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(4 + 2 * bytes.len());
    text.push_str("hex:");
    for byte in bytes {
        let _ = write!(text, "{byte:02x}");
    }
    text
}

fn backlog_text(backlog: Duration) -> String {
    if backlog.is_zero() {
        "forever".into()
    } else {
        humantime::format_duration(backlog).to_string()
    }
}

/// The streams as an aligned table with a header line.
/// `weir stream describe`'s text: one `name: value` line per property.
fn describe_text(info: &StreamInfo, shard_ids: impl Iterator<Item = u64>) -> String {
    let ids: Vec<String> = shard_ids.map(|id| id.to_string()).collect();
    let created = info.created.map_or_else(
        || "unknown".to_owned(),
        |t| humantime::format_rfc3339_seconds(t).to_string(),
    );
    format!(
        "stream: {}\nshards: {} ({})\nreplication: {}\nbacklog: {}\ncreated: {created}\n",
        info.name,
        info.shards,
        ids.join(", "),
        info.replication,
        backlog_text(info.backlog)
    )
}

pub(crate) fn stream_table(streams: &[StreamInfo]) -> String {
    let header = ["NAME", "SHARDS", "REPLICATION", "BACKLOG", "CREATED"].map(String::from);
    let rows: Vec<Vec<String>> = std::iter::once(header.to_vec())
        .chain(streams.iter().map(|s| {
            vec![
                s.name.clone(),
                s.shards.to_string(),
                s.replication.to_string(),
                backlog_text(s.backlog),
                s.created.map_or_else(
                    || "-".to_owned(),
                    |t| humantime::format_rfc3339_seconds(t).to_string(),
                ),
            ]
        }))
        .collect();
    super::table::table(&rows)
}
