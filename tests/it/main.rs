//! weir's integration tests: one binary, each module a group of scenarios
//! against real processes (mosquitto, the HStreamDB-compatible server, weir,
//! the official HStreamDB Python client) started on ephemeral ports by the
//! shared harness in `harness/`.

mod admin;
mod cluster;
mod console;
mod deploy;
mod dev;
mod events;
mod faults;
mod firstrun;
mod harness;
mod harness_selftest;
mod hstream;
mod import;
mod ingress;
mod pipeline;
mod plugins;
mod scaleout;
mod security;
mod sink;
mod tidy;
