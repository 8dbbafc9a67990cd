//! Fault injection through the FaultControl service on the same port.

use crate::{append, create_stream, raw_batch, start};
use std::time::{Duration, Instant};
use tonic::Code;
use weir_devserver::Config;
use weir_proto::pb::devserver::fault_control_client::FaultControlClient;
use weir_proto::pb::devserver::{FaultPlan, GetFaultsRequest};
use weir_proto::record::Compression;

#[tokio::test]
async fn appends_fail_while_the_plan_says_so() {
    let (server, mut client) = start(Config::default()).await;
    let mut control = FaultControlClient::connect(server.endpoint())
        .await
        .expect("control client");
    let shard = create_stream(&mut client, "s", 1).await[0].shard_id;
    let batch = || raw_batch(&["a"], Compression::None);

    let plan = control
        .set_faults(FaultPlan {
            fail_appends_for_ms: 60_000,
            ..FaultPlan::default()
        })
        .await
        .expect("set faults")
        .into_inner();
    assert!(plan.fail_appends_for_ms > 0 && plan.fail_appends_for_ms <= 60_000);
    for _ in 0..3 {
        let err = append(&mut client, "s", shard, batch())
            .await
            .expect_err("injected");
        assert_eq!(err.code(), Code::Unavailable);
    }
    let plan = control
        .get_faults(GetFaultsRequest {})
        .await
        .expect("get faults")
        .into_inner();
    assert_eq!(plan.injected_failures, 3);

    control
        .set_faults(FaultPlan::default())
        .await
        .expect("clear faults");
    append(&mut client, "s", shard, batch())
        .await
        .expect("appends work again");

    control
        .set_faults(FaultPlan {
            fail_next_appends: 2,
            ..FaultPlan::default()
        })
        .await
        .expect("set faults");
    for _ in 0..2 {
        append(&mut client, "s", shard, batch())
            .await
            .expect_err("one of the next two");
    }
    append(&mut client, "s", shard, batch())
        .await
        .expect("the third succeeds");
    let plan = control
        .get_faults(GetFaultsRequest {})
        .await
        .expect("get faults")
        .into_inner();
    assert_eq!((plan.injected_failures, plan.fail_next_appends), (5, 0));
}

#[tokio::test]
async fn latency_delays_appends() {
    let (server, mut client) = start(Config::default()).await;
    let mut control = FaultControlClient::connect(server.endpoint())
        .await
        .expect("control client");
    let shard = create_stream(&mut client, "s", 1).await[0].shard_id;
    control
        .set_faults(FaultPlan {
            append_latency_ms: 300,
            ..FaultPlan::default()
        })
        .await
        .expect("set faults");
    let started = Instant::now();
    append(
        &mut client,
        "s",
        shard,
        raw_batch(&["a"], Compression::None),
    )
    .await
    .expect("append");
    assert!(started.elapsed() >= Duration::from_millis(300));
    let plan = control
        .get_faults(GetFaultsRequest {})
        .await
        .expect("get faults")
        .into_inner();
    assert_eq!(plan.append_latency_ms, 300);
}
