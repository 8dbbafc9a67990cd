//! The component flavour of a plugin: a Wasm component implementing the
//! `weir:rule` world of `guest-sdk/wit/weir-rule.wit`, for languages whose
//! toolchains build components rather than our byte-level core ABI
//! (JavaScript with componentize-js, Python with componentize-py).
//!
//! The WIT file is the contract the host is built from: `bindgen!` reads it
//! at compile time, so a change to it the host does not follow fails the
//! build. To the rest of the engine a component is the same as a core
//! module: [`ComponentInstance::process`] takes an ABI v1 batch frame and
//! returns an ABI v1 output frame, so failure isolation, bisection, target
//! checks, metrics and dead letters are shared code, not a second copy.
//! The price is one decode of the batch into WIT values and one encode of
//! the result into a frame per batch, besides the canonical ABI's own
//! copies; `host/benches/component.rs` measures it per event.

use super::{Failure, HostState, MAX_GUEST_STRING, classify, cut};
use bytes::Bytes;
use wasmtime::Store;
use weir_guest_sdk::abi::{self, BatchReader, OutputFrameWriter};

wasmtime::component::bindgen!({
    path: "../guest-sdk/wit",
    world: "weir:rule/rule",
});

use self::weir::rule::types as wit;

/// The WASI 0.2 packages weir provides to components (given nothing: no
/// preopened directories, no network, no environment; stdout and stderr go
/// to the plugin's log). Not `wasi:http`: a rule makes no requests.
const WASI_PACKAGES: [&str; 6] = [
    "wasi:io",
    "wasi:clocks",
    "wasi:random",
    "wasi:cli",
    "wasi:filesystem",
    "wasi:sockets",
];

/// What a component may import: the `weir:rule` interfaces and WASI 0.2.
pub(super) fn import_allowed(name: &str) -> bool {
    let package = name.split('/').next().unwrap_or_default();
    let package = package.split('@').next().unwrap_or_default();
    package == "weir:rule" || WASI_PACKAGES.contains(&package)
}

/// Adds the `weir:rule/host` functions to a component linker.
pub(super) fn add_to_linker(
    linker: &mut wasmtime::component::Linker<HostState>,
) -> wasmtime::Result<()> {
    Rule::add_to_linker::<HostState, wasmtime::component::HasSelf<HostState>>(linker, |s| s)
}

/// WASI 0.2's waiting functions, `wasi:io/poll`'s `poll` and a pollable's
/// `block` (how a component sleeps, waits on a timer or reads blocking),
/// trap instead of waiting, as `poll_oneoff` answers core modules: a host
/// call is not interrupted by the epoch deadline, so a component that
/// waits would hold the rules thread for as long as it asks. Every
/// `wasi:io@0.2.x` import resolves to these, as the linker matches minor
/// versions. Nothing else in what weir gives a component waits: stdin is
/// empty, stdout and stderr are the plugin's log, there is no network.
pub(super) fn refuse_waiting(
    linker: &mut wasmtime::component::Linker<HostState>,
) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut poll = linker.instance("wasi:io/poll@0.2.12")?;
    for function in ["poll", "[method]pollable.block"] {
        poll.func_new(function, move |_, _, _, _| {
            Err(wasmtime::Error::new(Waited { function }))
        })?;
    }
    linker.allow_shadowing(false);
    Ok(())
}

/// What a component that waited is told (and its operator sees).
#[derive(Debug, thiserror::Error)]
#[error(
    "the plugin waited (wasi:io/poll `{function}`: a sleep, a timer or a blocking read); \
     a rule must return without waiting, since its wait would hold every rule's events"
)]
pub(super) struct Waited {
    function: &'static str,
}

/// A live component instance and the frame its results are written into.
pub(super) struct ComponentInstance {
    rule: Rule,
    frame: OutputFrameWriter,
    events: Vec<wit::Event>,
}

impl ComponentInstance {
    /// Instantiates `pre` and runs its `init` with the init document.
    pub(super) fn start(
        store: &mut Store<HostState>,
        pre: &RulePre<HostState>,
        init_doc: &str,
    ) -> Result<ComponentInstance, super::LoadError> {
        let rule = pre
            .instantiate(&mut *store)
            .map_err(|e| super::LoadError::Instantiate(classify(store, e).to_string()))?;
        match rule.call_init(&mut *store, init_doc) {
            Ok(Ok(())) => {}
            Ok(Err(message)) => return Err(super::LoadError::Init(message)),
            Err(e) => return Err(super::LoadError::Init(classify(store, e).to_string())),
        }
        Ok(ComponentInstance {
            rule,
            frame: OutputFrameWriter::new(),
            events: Vec::new(),
        })
    }

    /// Runs `process` over the events of an ABI v1 batch frame and returns
    /// its result as an ABI v1 output frame.
    pub(super) fn process(
        &mut self,
        store: &mut Store<HostState>,
        batch: &[u8],
    ) -> Result<Bytes, Failure> {
        self.events.clear();
        decode_batch(batch, &mut self.events)
            .map_err(|e| Failure::bad_output(format!("host batch frame: {e}")))?;
        let result = self
            .rule
            .call_process(&mut *store, &self.events)
            .map_err(|e| classify(store, e))?;
        self.frame.reset();
        for output in &result.outputs {
            let flag = match output.flag {
                wit::RecordFlag::Json => abi::Flag::Json,
                wit::RecordFlag::Raw => abi::Flag::Raw,
            };
            let open = self
                .frame
                .begin_output(output.event, flag, &output.target, &output.key);
            self.frame.record_buf().extend_from_slice(&output.record);
            self.frame.end_output(open);
        }
        for error in &result.errors {
            self.frame.error(error.event, error.code, &error.message);
        }
        Ok(Bytes::copy_from_slice(self.frame.finish()))
    }
}

/// An ABI v1 batch frame as WIT events.
fn decode_batch(batch: &[u8], events: &mut Vec<wit::Event>) -> Result<(), abi::FrameError> {
    let mut reader = BatchReader::new(batch)?;
    while let Some(event) = reader.next_event() {
        let event = event?;
        let fields = event
            .fields()
            .map(|field| {
                field.map(|(id, value)| wit::Field {
                    id,
                    value: match value {
                        abi::Value::Null => wit::Value::Null,
                        abi::Value::Bool(b) => wit::Value::Boolean(b),
                        abi::Value::I64(i) => wit::Value::Int(i),
                        abi::Value::F64(f) => wit::Value::Float(f),
                        abi::Value::Str(s) => wit::Value::Text(s.to_owned()),
                        abi::Value::Bytes(b) => wit::Value::Bytes(b.to_vec()),
                        abi::Value::Json(s) => wit::Value::Json(s.to_owned()),
                    },
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        events.push(wit::Event {
            kind: kind(event.kind),
            fields,
        });
    }
    Ok(())
}

fn kind(kind: abi::Kind) -> wit::Kind {
    match kind {
        abi::Kind::MessagePublish => wit::Kind::MessagePublish,
        abi::Kind::ClientConnected => wit::Kind::ClientConnected,
        abi::Kind::ClientDisconnected => wit::Kind::ClientDisconnected,
        abi::Kind::ClientConnack => wit::Kind::ClientConnack,
        abi::Kind::SessionSubscribed => wit::Kind::SessionSubscribed,
        abi::Kind::SessionUnsubscribed => wit::Kind::SessionUnsubscribed,
        abi::Kind::MessageDelivered => wit::Kind::MessageDelivered,
        abi::Kind::MessageAcked => wit::Kind::MessageAcked,
        abi::Kind::MessageDropped => wit::Kind::MessageDropped,
        abi::Kind::DeliveryDropped => wit::Kind::DeliveryDropped,
    }
}

impl wit::Host for HostState {}

impl self::weir::rule::host::Host for HostState {
    fn log(&mut self, level: self::weir::rule::host::Level, message: String) {
        use self::weir::rule::host::Level;
        let level = match level {
            Level::Error => abi::level::ERROR,
            Level::Warn => abi::level::WARN,
            Level::Info => abi::level::INFO,
            Level::Debug => abi::level::DEBUG,
            Level::Trace => abi::level::TRACE,
        };
        crate::rules::wasi_log::log_line(&self.plugin, level, &self.metrics, || {
            cut(message, MAX_GUEST_STRING)
        });
    }

    fn now_ms(&mut self) -> i64 {
        super::now_ms()
    }

    fn monotonic_ns(&mut self) -> i64 {
        i64::try_from(self.start.elapsed().as_nanos()).unwrap_or(i64::MAX)
    }

    fn counter_add(&mut self, name: String, delta: i64) {
        self.metrics.counter_add(&cut(name, 256), delta);
    }

    fn random(&mut self, len: u32) -> Vec<u8> {
        let mut bytes = vec![0u8; len.min(4096) as usize];
        fastrand::fill(&mut bytes);
        bytes
    }
}
