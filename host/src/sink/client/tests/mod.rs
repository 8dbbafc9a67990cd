//! Tests of the client: its pure parts, and every call against a real
//! in-process development server on an ephemeral port (`cluster`: against
//! a development cluster).

mod cluster;

use super::*;
use md5::{Digest, Md5};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair,
};
use serde_json::json;
use std::collections::BTreeSet;
use std::path::PathBuf;
use tokio::net::TcpListener;
use weir_devserver::{Config, DevServer, TlsConfig};
use weir_proto::pb::devserver::FaultPlan;
use weir_proto::pb::devserver::fault_control_client::FaultControlClient;
use weir_proto::record::{hrecord, raw_record};

/// How long a test waits for something that should happen at once.
const DEADLINE: Duration = Duration::from_secs(10);

fn shard(id: u64, start: &str, end: &str, active: bool) -> pb::Shard {
    pb::Shard {
        stream_name: "s".into(),
        shard_id: id,
        start_hash_range_key: start.into(),
        end_hash_range_key: end.into(),
        epoch: 1,
        is_active: active,
    }
}

fn server_node(id: u32, host: &str, port: u32) -> pb::ServerNode {
    pb::ServerNode {
        id,
        host: host.into(),
        port,
        version: None,
    }
}

#[test]
fn shard_maps_use_active_shards_and_reject_bad_ranges() {
    let max = u128::MAX.to_string();
    let map = shard_map(
        "s",
        vec![
            shard(1, "0", "99", true),
            shard(2, "100", &max, true),
            shard(3, "0", &max, false),
        ],
    )
    .expect("valid shards");
    assert_eq!(map.shard_ids().collect::<Vec<_>>(), [1, 2]);
    assert_eq!(route("s", &map, "").expect("routed"), 2);

    let error = shard_map("s", vec![shard(1, "x", "1", true)]).expect_err("bad bound");
    assert!(matches!(error, ClientError::BadShards { .. }), "{error}");
    let error = shard_map(
        "s",
        vec![shard(1, "0", "10", true), shard(2, "5", "20", true)],
    )
    .expect_err("overlap");
    assert!(error.to_string().contains("overlap"), "{error}");

    let gap = shard_map("s", vec![shard(1, "0", "0", true)]).expect("one tiny shard");
    let error = route("s", &gap, "k").expect_err("no shard owns the key");
    assert!(
        matches!(&error, ClientError::NoShardForKey { key, .. } if key == "k"),
        "{error}"
    );
}

#[test]
fn clusters_keep_running_nodes_or_fall_back_to_server_nodes() {
    let seed = NodeAddr::new("seed", 1);
    let reply = pb::DescribeClusterResponse {
        protocol_version: "0.1.0".into(),
        server_nodes: vec![server_node(9, "ignored", 1)],
        server_nodes_status: vec![
            pb::ServerNodeStatus {
                node: Some(server_node(1, "a", 6570)),
                state: pb::NodeState::Running as i32,
            },
            pb::ServerNodeStatus {
                node: Some(server_node(2, "b", 6570)),
                state: pb::NodeState::Dead as i32,
            },
            pb::ServerNodeStatus {
                node: Some(server_node(3, "[::1]", 7000)),
                state: pb::NodeState::Running as i32,
            },
            pb::ServerNodeStatus {
                node: Some(server_node(4, "", 7000)),
                state: pb::NodeState::Running as i32,
            },
        ],
        cluster_up_time: 1,
    };
    let cluster = cluster_from(&seed, reply);
    assert_eq!(cluster.nodes.len(), 3, "the node without a host is dropped");
    assert_eq!(
        cluster.running().cloned().collect::<Vec<_>>(),
        [NodeAddr::new("a", 6570), NodeAddr::new("::1", 7000)]
    );

    let reply = pb::DescribeClusterResponse {
        server_nodes: vec![server_node(1, "a", 1), server_node(2, "b", 70000)],
        ..Default::default()
    };
    let cluster = cluster_from(&seed, reply);
    assert_eq!(
        cluster.running().cloned().collect::<Vec<_>>(),
        [NodeAddr::new("a", 1)],
        "statuses absent: server nodes count as running; port 70000 is unusable"
    );
}

#[test]
fn tls_options_on_a_plain_url_are_refused() {
    let options = ClientOptions {
        tls: TlsOptions {
            insecure_skip_verify: true,
            ..TlsOptions::default()
        },
        ..ClientOptions::default()
    };
    let error = Client::new(url("hstream://h"), options).expect_err("plain URL");
    assert!(error.is_tls_failure(), "{error}");
    assert!(error.to_string().contains("hstreams://"), "{error}");
}

#[test]
fn tls_setup_errors_name_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("missing.pem");
    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "hello").expect("write");
    let pki = Pki::new();
    let cert = pki.write(dir.path(), "client.pem", &pki.client.0);
    let other_key = pki.write(
        dir.path(),
        "other.key",
        &KeyPair::generate().expect("key").serialize_pem(),
    );

    let attempt = |tls: TlsOptions| {
        Client::new(
            url("hstreams://h"),
            ClientOptions {
                tls,
                ..ClientOptions::default()
            },
        )
        .expect_err("TLS setup should fail")
    };
    let cases = [
        (
            TlsOptions {
                ca_file: Some(missing.clone()),
                ..TlsOptions::default()
            },
            "missing.pem",
            "cannot read",
        ),
        (
            TlsOptions {
                ca_file: Some(not_pem.clone()),
                ..TlsOptions::default()
            },
            "not.pem",
            "no PEM certificate",
        ),
        (
            TlsOptions {
                cert_file: Some(cert.clone()),
                ..TlsOptions::default()
            },
            "client.pem",
            "private key",
        ),
        (
            TlsOptions {
                cert_file: Some(cert.clone()),
                key_file: Some(other_key.clone()),
                ..TlsOptions::default()
            },
            "other.key",
            "does not fit",
        ),
        (
            TlsOptions {
                cert_file: Some(cert.clone()),
                key_file: Some(not_pem.clone()),
                ..TlsOptions::default()
            },
            "not.pem",
            "private key",
        ),
        (
            TlsOptions {
                ca_file: Some(cert.clone()),
                insecure_skip_verify: true,
                ..TlsOptions::default()
            },
            "",
            "contradict",
        ),
    ];
    for (options, file, problem) in cases {
        let error = attempt(options.clone());
        let text = error.to_string();
        assert!(matches!(error, ClientError::TlsSetup { .. }), "{text}");
        assert!(text.contains(file), "{options:?}: {text}");
        assert!(text.contains(problem), "{options:?}: {text}");
    }
}

// ---------------------------------------------------------------------------
// Against a development server.

fn url(text: &str) -> ServerUrl {
    text.parse().expect("valid URL")
}

pub(crate) async fn start(config: Config) -> DevServer {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind an ephemeral port");
    DevServer::start(listener, config)
        .await
        .expect("the devserver starts")
}

fn client(server: &DevServer, options: ClientOptions) -> Client {
    let scheme = if options.tls.is_set() || server.endpoint().starts_with("https") {
        "hstreams"
    } else {
        "hstream"
    };
    Client::new(url(&format!("{scheme}://{}", server.local_addr())), options)
        .expect("client options are valid")
}

async fn plain() -> (DevServer, Client) {
    let server = start(Config::default()).await;
    let client = client(&server, ClientOptions::default());
    (server, client)
}

async fn next_record(reader: &mut StreamReader) -> ReadRecord {
    tokio::time::timeout(DEADLINE, reader.next())
        .await
        .expect("a record arrives before the deadline")
        .expect("the read succeeds")
        .expect("the read goes on")
}

async fn faults(server: &DevServer, plan: FaultPlan) {
    FaultControlClient::connect(server.endpoint())
        .await
        .expect("connect to fault control")
        .set_faults(plan)
        .await
        .expect("set faults");
}

#[tokio::test]
async fn stream_administration() {
    let (_server, client) = plain().await;
    client
        .echo_at(&client.url().seeds()[0], "hello")
        .await
        .expect("echo");
    assert!(client.list_streams().await.expect("list").is_empty());

    let created = client
        .create_stream("b", 3, 1, Duration::from_secs(3600))
        .await
        .expect("create b");
    assert_eq!(
        (
            created.name.as_str(),
            created.shards,
            created.replication,
            created.backlog
        ),
        ("b", 3, 1, Duration::from_secs(3600))
    );
    let age = created
        .created
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .expect("a creation time in the past");
    assert!(age < Duration::from_secs(60), "{age:?}");
    client
        .create_stream("a", 1, 1, Duration::ZERO)
        .await
        .expect("create a");

    let names = |streams: Vec<StreamInfo>| streams.into_iter().map(|s| s.name).collect::<Vec<_>>();
    assert_eq!(
        names(client.list_streams().await.expect("list")),
        ["a", "b"]
    );
    assert_eq!(client.get_stream("b").await.expect("get b").shards, 3);
    assert!(client.stream_exists("a").await.expect("exists"));
    assert!(!client.stream_exists("zzz").await.expect("exists"));

    let error = client
        .create_stream("a", 1, 1, Duration::ZERO)
        .await
        .expect_err("a exists");
    assert!(
        matches!(
            &error,
            ClientError::Status {
                code: tonic::Code::AlreadyExists,
                ..
            }
        ),
        "{error}"
    );
    assert_eq!(
        error.error_body().and_then(|b| b.code()),
        Some(pb::ErrorCode::StreamExists)
    );
    let error = client
        .create_stream("c", 0, 1, Duration::ZERO)
        .await
        .expect_err("no shards");
    assert!(
        matches!(
            &error,
            ClientError::Status {
                code: tonic::Code::InvalidArgument,
                ..
            }
        ),
        "{error}"
    );

    let error = client.get_stream("zzz").await.expect_err("missing");
    assert!(
        matches!(&error, ClientError::StreamNotFound { stream } if stream == "zzz"),
        "{error}"
    );
    let error = client
        .delete_stream("zzz", false)
        .await
        .expect_err("missing");
    assert!(error.is_stream_missing(), "{error}");
    client
        .delete_stream("zzz", true)
        .await
        .expect("ignoring a missing stream");
    client.delete_stream("a", false).await.expect("delete a");
    assert_eq!(names(client.list_streams().await.expect("list")), ["b"]);

    let cluster = client.describe_cluster().await.expect("describe");
    assert_eq!(cluster.running().count(), 1);
}

#[tokio::test]
async fn calls_spread_over_the_pool_of_connections() {
    let server = start(Config::default()).await;
    for pool_size in [1, 3] {
        let client = client(
            &server,
            ClientOptions {
                pool_size,
                ..ClientOptions::default()
            },
        );
        let stream = format!("pool{pool_size}");
        client
            .create_stream(&stream, 1, 1, Duration::ZERO)
            .await
            .expect("create");
        // Calls take the channels in turn, so each one connects once.
        for i in 0..6 {
            client
                .append_by_key(
                    &stream,
                    "",
                    vec![raw_record("", format!("{i}"))],
                    Compression::None,
                )
                .await
                .expect("append");
        }
        assert_eq!(
            client.connections_opened(),
            pool_size as u64,
            "one connection per channel, each reused"
        );
    }
}

#[tokio::test]
async fn appends_read_back_identically_with_every_compression_and_flag() {
    let test_start = SystemTime::now();
    let (_server, client) = plain().await;
    client
        .create_stream("s", 2, 1, Duration::ZERO)
        .await
        .expect("create");
    let shard_id = client.shard_for_key("s", "k").await.expect("route");

    let mut expected = Vec::new();
    for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let object =
            json!({"compression": compression.name(), "n": 1.5, "deep": {"a": [true, null]}});
        let records = vec![
            raw_record("k", format!("raw {compression}")),
            raw_record("k", vec![0u8, 0x9f, 0x92, 0x96]),
            raw_record("k", Vec::new()),
            hrecord("k", object.as_object().expect("object")).expect("hrecord"),
        ];
        let ids = client
            .append("s", shard_id, records.clone(), compression)
            .await
            .expect("append");
        assert_eq!(ids.len(), records.len());
        for (index, id) in ids.iter().enumerate() {
            assert_eq!(id.shard_id, shard_id);
            assert_eq!(id.batch_id, ids[0].batch_id, "one batch, one batch id");
            assert_eq!(id.batch_index as usize, index);
        }
        expected.extend(ids.into_iter().zip(records));
    }

    let mut reader = client
        .read_stream("s", StartFrom::Earliest)
        .await
        .expect("read");
    for (id, record) in &expected {
        let read = next_record(&mut reader).await;
        assert_eq!(&read.id, id);
        assert_eq!(&read.record, record);
        let ms = u64::try_from(read.timestamp_ms.expect("a store time")).expect("after 1970");
        let stored_at = SystemTime::UNIX_EPOCH + Duration::from_millis(ms);
        let slack = Duration::from_secs(1);
        assert!(
            test_start <= stored_at + slack && stored_at <= SystemTime::now() + slack,
            "stored during the test: {stored_at:?}"
        );
    }
}

#[tokio::test]
async fn a_read_from_latest_sees_only_new_records() {
    let (_server, client) = plain().await;
    client
        .create_stream("s", 1, 1, Duration::ZERO)
        .await
        .expect("create");
    let old = raw_record("", "old");
    let new = raw_record("", "new");
    client
        .append_by_key("s", "", vec![old], Compression::None)
        .await
        .expect("append old");
    let mut reader = client
        .read_stream("s", StartFrom::Latest)
        .await
        .expect("read");
    let appended = client
        .append_by_key("s", "", vec![new.clone()], Compression::Gzip)
        .await
        .expect("append new");
    let read = next_record(&mut reader).await;
    assert_eq!(read.record, new);
    assert_eq!(read.id, appended.ids[0]);

    let error = client
        .read_stream("nope", StartFrom::Earliest)
        .await
        .expect_err("missing stream");
    assert!(error.is_stream_missing(), "{error}");
}

#[tokio::test]
async fn a_read_outlives_the_grpc_timeout() {
    let server = start(Config::default()).await;
    let timeout = Duration::from_millis(200);
    let client = client(
        &server,
        ClientOptions {
            grpc_timeout: timeout,
            ..ClientOptions::default()
        },
    );
    client
        .create_stream("s", 1, 1, Duration::ZERO)
        .await
        .expect("create");
    let mut reader = client
        .read_stream("s", StartFrom::Latest)
        .await
        .expect("read");
    // Not a synchronisation: the point is to let the deadline pass. (The
    // devserver, like tonic servers, ignores a deadline once a stream has
    // started, so this checks the client's side; the client also does not
    // send the deadline for streams, as a strict gRPC server would apply it
    // to the whole stream.)
    tokio::time::sleep(timeout * 2).await;
    client
        .append_by_key("s", "", vec![raw_record("", "late")], Compression::None)
        .await
        .expect("append");
    assert_eq!(
        next_record(&mut reader).await.record.payload.as_ref(),
        b"late"
    );
}

#[tokio::test]
async fn keys_land_on_the_shard_their_md5_names() {
    let (server, client) = plain().await;
    client
        .create_stream("keys", 4, 1, Duration::ZERO)
        .await
        .expect("create");
    // The ranges as the server states them, read without weir's client.
    let mut raw = HStreamApiClient::connect(server.endpoint())
        .await
        .expect("raw connect");
    let shards = raw
        .list_shards(pb::ListShardsRequest {
            stream_name: "keys".into(),
        })
        .await
        .expect("list shards")
        .into_inner()
        .shards;
    assert_eq!(shards.len(), 4);
    let owner = |key: &str| {
        let hash = u128::from_be_bytes(Md5::digest(key.as_bytes()).into());
        let owners = shards
            .iter()
            .filter(|s| {
                let start: u128 = s.start_hash_range_key.parse().expect("decimal start");
                let end: u128 = s.end_hash_range_key.parse().expect("decimal end");
                start <= hash && hash <= end
            })
            .map(|s| s.shard_id)
            .collect::<Vec<_>>();
        assert_eq!(owners.len(), 1, "exactly one shard owns {key:?}");
        owners[0]
    };

    let mut used = BTreeSet::new();
    for key in [
        "",
        "a",
        "b",
        "device-17",
        "sensor/42",
        "温度",
        "k0",
        "k1",
        "k2",
        "k3",
    ] {
        let expected = owner(key);
        used.insert(expected);
        assert_eq!(
            client.shard_for_key("keys", key).await.expect("route"),
            expected
        );
        let appended = client
            .append_by_key("keys", key, vec![raw_record(key, "x")], Compression::None)
            .await
            .expect("append");
        assert_eq!(appended.shard_id, expected, "key {key:?}");
        assert!(appended.ids.iter().all(|id| id.shard_id == expected));
    }
    assert!(used.len() >= 3, "the keys spread over shards: {used:?}");
}

#[tokio::test]
async fn a_recreated_stream_is_rediscovered_without_restart() {
    let (_server, client) = plain().await;
    client
        .create_stream("s", 2, 1, Duration::ZERO)
        .await
        .expect("create");
    let first = client
        .append_by_key("s", "k", vec![raw_record("k", "1")], Compression::None)
        .await
        .expect("first append");

    // Another client deletes and re-creates the stream: new shard ids, and
    // this client still has the old ones cached.
    let other = Client::new(client.url().clone(), ClientOptions::default()).expect("client");
    other.delete_stream("s", false).await.expect("delete");
    other
        .create_stream("s", 2, 1, Duration::ZERO)
        .await
        .expect("re-create");

    let error = client
        .append(
            "s",
            first.shard_id,
            vec![raw_record("k", "stale")],
            Compression::None,
        )
        .await
        .expect_err("the old shard is gone");
    assert!(error.is_shard_gone(), "{error}");

    let second = client
        .append_by_key("s", "k", vec![raw_record("k", "2")], Compression::Zstd)
        .await
        .expect("the keyed append re-discovers and succeeds");
    assert_ne!(second.shard_id, first.shard_id);
    assert_eq!(
        client.shard_for_key("s", "k").await.expect("route"),
        second.shard_id
    );

    // Deleted for good: the error says so.
    other.delete_stream("s", false).await.expect("delete");
    let error = client
        .append_by_key("s", "k", vec![raw_record("k", "3")], Compression::None)
        .await
        .expect_err("no stream");
    assert!(error.is_stream_missing(), "{error}");
    assert!(
        matches!(&error, ClientError::StreamNotFound { stream } if stream == "s"),
        "{error}"
    );
}

#[tokio::test]
async fn injected_unavailability_is_retriable_and_keeps_the_shard() {
    let (server, client) = plain().await;
    client
        .create_stream("s", 2, 1, Duration::ZERO)
        .await
        .expect("create");
    let shard_id = client.shard_for_key("s", "k").await.expect("route");
    faults(
        &server,
        FaultPlan {
            fail_next_appends: 1,
            ..FaultPlan::default()
        },
    )
    .await;
    let error = client
        .append_by_key("s", "k", vec![raw_record("k", "x")], Compression::None)
        .await
        .expect_err("injected failure");
    assert!(error.is_retriable(), "{error}");
    assert!(
        matches!(
            &error,
            ClientError::Status {
                code: tonic::Code::Unavailable,
                ..
            }
        ),
        "{error}"
    );
    let appended = client
        .append_by_key("s", "k", vec![raw_record("k", "x")], Compression::None)
        .await
        .expect("the next append succeeds");
    assert_eq!(appended.shard_id, shard_id);
}

#[tokio::test]
async fn a_slow_append_times_out() {
    let server = start(Config::default()).await;
    let client = client(
        &server,
        ClientOptions {
            grpc_timeout: Duration::from_millis(200),
            ..ClientOptions::default()
        },
    );
    client
        .create_stream("s", 1, 1, Duration::ZERO)
        .await
        .expect("create");
    faults(
        &server,
        FaultPlan {
            append_latency_ms: 5_000,
            ..FaultPlan::default()
        },
    )
    .await;
    let error = client
        .append_by_key("s", "", vec![raw_record("", "x")], Compression::None)
        .await
        .expect_err("too slow");
    assert!(
        matches!(&error, ClientError::Timeout { after, .. } if *after == Duration::from_millis(200)),
        "{error}"
    );
    assert!(error.is_retriable());
}

#[tokio::test]
async fn an_unreachable_server_is_reported_as_such() {
    // A port that was just free: nothing listens on it.
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let client = Client::new(
        url(&format!("hstream://127.0.0.1:{port}")),
        ClientOptions::default(),
    )
    .expect("client");
    let error = client.list_streams().await.expect_err("nothing listens");
    assert!(error.is_unreachable(), "{error:?}");
    assert!(error.is_retriable());
    assert!(!error.is_tls_failure());
    assert!(
        error.to_string().contains(&format!("127.0.0.1:{port}")),
        "{error}"
    );

    // Two seeds, both down: both are named.
    let client = Client::new(
        url(&format!("hstream://127.0.0.1:{port},localhost:{port}")),
        ClientOptions::default(),
    )
    .expect("client");
    let error = client
        .describe_cluster()
        .await
        .expect_err("nothing listens");
    assert!(error.is_unreachable(), "{error:?}");
    assert!(
        error.to_string().contains("localhost"),
        "every seed is named: {error}"
    );
}

#[tokio::test]
async fn a_second_seed_is_used_when_the_first_is_down() {
    let (server, _) = plain().await;
    let down = {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        listener.local_addr().expect("addr")
    };
    let client = Client::new(
        url(&format!("hstream://{down},{}", server.local_addr())),
        ClientOptions::default(),
    )
    .expect("client");
    let cluster = client
        .describe_cluster()
        .await
        .expect("second seed answers");
    assert_eq!(cluster.answered_by.port, server.local_addr().port());
    client
        .create_stream("s", 1, 1, Duration::ZERO)
        .await
        .expect("create through the cluster");
}

// ---------------------------------------------------------------------------
// TLS.

pub(crate) struct Pki {
    pub(crate) ca: String,
    pub(crate) server: (String, String),
    pub(crate) client: (String, String),
}

impl Pki {
    pub(crate) fn new() -> Pki {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("CA key"))
            .expect("CA certificate");
        let server_key = KeyPair::generate().expect("server key");
        let server = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
            .expect("server params")
            .signed_by(&server_key, &ca)
            .expect("server certificate");
        let client_key = KeyPair::generate().expect("client key");
        let mut client_params = CertificateParams::new(vec!["weir".into()]).expect("params");
        client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client = client_params
            .signed_by(&client_key, &ca)
            .expect("client certificate");
        Pki {
            ca: ca.pem(),
            server: (server.pem(), server_key.serialize_pem()),
            client: (client.pem(), client_key.serialize_pem()),
        }
    }

    pub(crate) fn write(&self, dir: &std::path::Path, name: &str, pem: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, pem).expect("write PEM");
        path
    }
}

/// A TLS development server and the files a client needs to reach it.
pub(crate) struct TlsSetup {
    _dir: tempfile::TempDir,
    pub(crate) ca: PathBuf,
    pub(crate) client_cert: PathBuf,
    pub(crate) client_key: PathBuf,
    pub(crate) server: DevServer,
}

pub(crate) async fn tls_server(mutual: bool) -> TlsSetup {
    let dir = tempfile::tempdir().expect("temp dir");
    let pki = Pki::new();
    let ca = pki.write(dir.path(), "ca.pem", &pki.ca);
    let config = Config {
        tls: Some(TlsConfig {
            cert: pki.write(dir.path(), "server.pem", &pki.server.0),
            key: pki.write(dir.path(), "server.key", &pki.server.1),
            client_ca: mutual.then(|| ca.clone()),
        }),
        ..Config::default()
    };
    TlsSetup {
        client_cert: pki.write(dir.path(), "client.pem", &pki.client.0),
        client_key: pki.write(dir.path(), "client.key", &pki.client.1),
        ca,
        server: start(config).await,
        _dir: dir,
    }
}

async fn works(client: &Client) -> Result<(), ClientError> {
    client.create_stream("t", 1, 1, Duration::ZERO).await?;
    client
        .append_by_key("t", "k", vec![raw_record("k", "secret")], Compression::Gzip)
        .await?;
    let mut reader = client.read_stream("t", StartFrom::Earliest).await?;
    assert_eq!(
        next_record(&mut reader).await.record.payload.as_ref(),
        b"secret"
    );
    Ok(())
}

#[tokio::test]
async fn tls_with_a_ca_and_with_skip_verify() {
    let setup = tls_server(false).await;
    let with_ca = client(
        &setup.server,
        ClientOptions {
            tls: TlsOptions {
                ca_file: Some(setup.ca.clone()),
                ..TlsOptions::default()
            },
            ..ClientOptions::default()
        },
    );
    works(&with_ca).await.expect("TLS with the CA");

    let skip = client(
        &setup.server,
        ClientOptions {
            tls: TlsOptions {
                insecure_skip_verify: true,
                ..TlsOptions::default()
            },
            ..ClientOptions::default()
        },
    );
    assert_eq!(skip.list_streams().await.expect("skip-verify").len(), 1);
}

#[tokio::test]
async fn tls_without_the_ca_is_a_tls_failure_not_unreachable() {
    let setup = tls_server(false).await;
    // No CA file: the system roots are trusted, and they do not know the
    // test CA. (A machine without any system roots fails at setup, which is
    // a TLS failure too.)
    let result = Client::new(
        url(&format!("hstreams://{}", setup.server.local_addr())),
        ClientOptions::default(),
    );
    let error = match result {
        Ok(client) => client.list_streams().await.expect_err("unknown CA"),
        Err(error) => error,
    };
    assert!(error.is_tls_failure(), "{error:?}");
    assert!(!error.is_unreachable(), "{error:?}");

    // A plain client talking to the TLS server, and a TLS client talking to
    // a plain server.
    let (plain_server, _) = plain().await;
    let tls_to_plain = Client::new(
        url(&format!("hstreams://{}", plain_server.local_addr())),
        ClientOptions {
            tls: TlsOptions {
                insecure_skip_verify: true,
                ..TlsOptions::default()
            },
            ..ClientOptions::default()
        },
    )
    .expect("client");
    let error = tls_to_plain.list_streams().await.expect_err("plain server");
    assert!(
        matches!(&error, ClientError::TlsHandshake { reason, .. } if reason.contains("hstream://")),
        "{error:?}"
    );
}

#[tokio::test]
async fn mutual_tls_needs_the_client_certificate() {
    let setup = tls_server(true).await;
    let with_identity = client(
        &setup.server,
        ClientOptions {
            tls: TlsOptions {
                ca_file: Some(setup.ca.clone()),
                cert_file: Some(setup.client_cert.clone()),
                key_file: Some(setup.client_key.clone()),
                insecure_skip_verify: false,
            },
            ..ClientOptions::default()
        },
    );
    works(&with_identity).await.expect("mutual TLS");

    let without = client(
        &setup.server,
        ClientOptions {
            tls: TlsOptions {
                ca_file: Some(setup.ca.clone()),
                ..TlsOptions::default()
            },
            ..ClientOptions::default()
        },
    );
    let error = without
        .list_streams()
        .await
        .expect_err("no client certificate");
    assert!(error.is_tls_failure(), "{error:?}");
}
