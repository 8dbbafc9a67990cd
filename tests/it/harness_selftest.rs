//! Checks of the harness itself: if these fail, every other scenario would
//! fail for the harness's reasons.

use crate::harness::mosquitto::Mosquitto;
use crate::harness::process::Process;
use std::path::Path;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

async fn round_trip(port: u16, text: &str) {
    let port = port.to_string();
    // stdbuf: mosquitto_sub block-buffers stdout when it is a pipe.
    let mut sub = Process::spawn(
        "mosquitto_sub",
        Path::new("stdbuf"),
        &[
            "-oL",
            "mosquitto_sub",
            "-p",
            &port,
            "-t",
            "selftest/#",
            "-C",
            "1",
            "-d",
        ],
    );
    sub.wait_for_line(WAIT, |l| l.contains("SUBACK").then_some(()))
        .await;
    let publish = std::process::Command::new("mosquitto_pub")
        .args(["-p", &port, "-t", "selftest/a", "-m", text, "-q", "1"])
        .status()
        .expect("run mosquitto_pub");
    assert!(publish.success());
    sub.wait_for_line(WAIT, |l| (l == text).then_some(())).await;
    assert_eq!(sub.wait(WAIT).await, Some(0));
}

#[tokio::test]
async fn mosquitto_starts_restarts_and_passes_messages() {
    let mut broker = Mosquitto::start().await;
    let port = broker.port();
    round_trip(port, "before restart").await;
    broker.restart().await;
    assert_eq!(broker.port(), port);
    round_trip(port, "after restart").await;
}
