//! wasmtime: one Engine, module checks, instances, limits, and calls.
//!
//! - **One Engine** for all plugins, with a dedicated thread that advances
//!   its epoch every `tick`; each call gets a deadline of
//!   `ceil(deadline / tick) + 1` epochs, so a runaway loop traps within
//!   about one tick of its deadline. In deterministic mode (tests) the
//!   engine meters fuel instead and epochs are off.
//! - **Compiled once.** Modules go through wasmtime's own compilation cache
//!   when a cache directory is given: artifacts on disk keyed by the
//!   SHA-256 of the module and of the compiler configuration, in a folder
//!   per wasmtime version, so a restart or the reload of an unchanged module
//!   skips Cranelift. This avoids `Module::deserialize`, which is `unsafe`.
//!   Imports are resolved once into an `InstancePre`.
//! - **No pooling allocator.** A plugin keeps one instance for its whole
//!   life and re-instantiates only after a failure or a reload, so
//!   instantiation is off the hot path. Measured on the message plugin
//!   (instantiate plus a first call): about 60 µs on demand, 33 µs pooled.
//!   The 27 µs saved per failure is noise next to the failure itself (a
//!   trap's retry, a deadline of milliseconds), while pooling reserves
//!   virtual memory for slots we would never use.
//! - **Checked at load.** A module must export the `weir_abi_version_1`
//!   marker (another version is named in the error), the ABI functions with
//!   their exact types, and import nothing but `weir::*` and WASI preview 1
//!   (with no preopened directories, sockets, environment or arguments;
//!   stdout and stderr go to the plugin's log).
//! - **Limits** through a `ResourceLimiter` that records when the memory
//!   cap was hit, so a trap after a refused `memory.grow` is reported as
//!   out-of-memory rather than as a generic trap.
//!
//! - **Two flavours, one call.** A plugin is a core module with the byte
//!   ABI of `guest-sdk/ABI.md` or a component of the `weir:rule` WIT world
//!   (`component`); the binary's header tells them apart on load. Both
//!   become the same [`Compiled`] and [`Instance`]: `process` takes an ABI
//!   v1 batch frame and returns an ABI v1 output frame, so everything above
//!   this module is flavour-blind. Both run in the same kind of store, with
//!   the same deadline, memory cap, WASI sandbox and host functions.
//!
//! Everything here blocks: callers run it on a blocking thread.

mod component;

use super::encode::Selection;
use super::manifest::Limits;
use super::metrics::PluginMetrics;
use bytes::Bytes;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use wasmtime::{
    Caller, Config, Engine, Extern, ExternType, InstancePre, Linker, Memory, Module, Store, Trap,
    TypedFunc, ValType,
};
use weir_guest_sdk::abi::{self, FieldsSpec};

/// Why a module could not be loaded or initialised.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LoadError {
    #[error("not a WebAssembly module or component: {0}")]
    Invalid(String),
    #[error(
        "not a weir plugin: it exports no `{}N` marker (build it with weir-guest-sdk's #[rule])",
        abi::VERSION_EXPORT_PREFIX
    )]
    NoMarker,
    #[error(
        "built for weir plugin ABI version {found}; this weir speaks version {}",
        abi::ABI_VERSION
    )]
    WrongAbi { found: String },
    #[error(
        "imports `{module}::{name}`, which weir does not provide (a plugin may import only weir::log, weir::now_ms, weir::monotonic_ns, weir::counter_add, weir::random and WASI preview 1)"
    )]
    ForbiddenImport { module: String, name: String },
    #[error("export `{name}`: {problem}")]
    BadExport { name: &'static str, problem: String },
    #[error("a component, but not of the `weir:rule` world of guest-sdk/wit/weir-rule.wit: {0}")]
    NotRuleWorld(String),
    #[error(
        "component imports `{0}`, which weir does not provide (a component may import only weir:rule/host and WASI 0.2 io, clocks, random, cli, filesystem and sockets)"
    )]
    ForbiddenComponentImport(String),
    #[error("custom section `weir.fields`: {0}")]
    Fields(String),
    #[error("compilation failed: {0}")]
    Compile(String),
    #[error("instantiation failed: {0}")]
    Instantiate(String),
    #[error("init failed: {0}")]
    Init(String),
}

/// How a call into a plugin failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// The module trapped (a panic, `unreachable`, a bad memory access...).
    Trap,
    /// The per-batch deadline (or fuel, in deterministic mode) ran out.
    Deadline,
    /// The module tried to grow its memory past the cap.
    OutOfMemory,
    /// The module returned an output frame that breaks the ABI.
    BadOutput,
}

impl FailureKind {
    pub fn name(self) -> &'static str {
        match self {
            FailureKind::Trap => "trap",
            FailureKind::Deadline => "deadline",
            FailureKind::OutOfMemory => "out_of_memory",
            FailureKind::BadOutput => "bad_output",
        }
    }
}

/// A failed call, with what happened.
#[derive(Debug, Clone)]
pub(super) struct Failure {
    pub kind: FailureKind,
    pub message: String,
}

impl Failure {
    pub(crate) fn bad_output(message: impl Into<String>) -> Self {
        Failure {
            kind: FailureKind::BadOutput,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind.name(), self.message)
    }
}

/// Engine-wide settings.
#[derive(Debug, Clone)]
pub(super) struct RuntimeOptions {
    /// Where wasmtime caches compiled modules; `None` disables the cache.
    pub cache_dir: Option<std::path::PathBuf>,
    /// Epoch tick.
    pub tick: Duration,
    /// Meter fuel instead of using epochs (deterministic, slower; tests).
    pub fuel: bool,
}

/// The shared wasmtime engine and linker.
pub(super) struct Runtime {
    engine: Engine,
    linker: Linker<HostState>,
    component_linker: wasmtime::component::Linker<HostState>,
    /// Checked modules by content hash: every compiled rule runs in the
    /// same rule runtime module, which is compiled once.
    modules: std::sync::Mutex<std::collections::HashMap<[u8; 32], Pre>>,
    cache: Option<wasmtime::Cache>,
    tick: Duration,
    fuel: bool,
    stop: Arc<AtomicBool>,
    ticker: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("tick", &self.tick)
            .field("fuel", &self.fuel)
            .finish_non_exhaustive()
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(ticker) = self.ticker.take() {
            let _ = ticker.join();
        }
    }
}

impl Runtime {
    pub(super) fn new(options: &RuntimeOptions) -> Result<Runtime, LoadError> {
        let mut config = Config::new();
        if options.fuel {
            config.consume_fuel(true);
        } else {
            config.epoch_interruption(true);
        }
        // Plugins get a modest stack: deep recursion is a trap, not a
        // host stack overflow.
        config.max_wasm_stack(1 << 20);
        // For `perf record`: name the JIT code of plugins in /tmp/perf-PID.map.
        if std::env::var_os("WEIR_WASM_PERFMAP").is_some() {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let cache = match &options.cache_dir {
            Some(dir) => {
                // wasmtime wants an absolute path; configs and `weir dev`
                // may give one relative to the working directory.
                let dir = std::path::absolute(dir).map_err(|e| {
                    LoadError::Compile(format!("compilation cache in {}: {e}", dir.display()))
                })?;
                let mut cache_config = wasmtime::CacheConfig::new();
                cache_config.with_directory(&dir);
                let cache = wasmtime::Cache::new(cache_config).map_err(|e| {
                    LoadError::Compile(format!("compilation cache in {}: {e:#}", dir.display()))
                })?;
                config.cache(Some(cache.clone()));
                Some(cache)
            }
            None => None,
        };
        let engine = Engine::new(&config).map_err(|e| LoadError::Compile(format!("{e:#}")))?;
        let mut linker = Linker::new(&engine);
        add_host_functions(&mut linker).map_err(|e| LoadError::Compile(format!("{e:#}")))?;
        wasmtime_wasi::p1::add_to_linker_sync(&mut linker, HostState::wasi)
            .map_err(|e| LoadError::Compile(format!("{e:#}")))?;
        refuse_blocking(&mut linker).map_err(|e| LoadError::Compile(format!("{e:#}")))?;
        let mut component_linker = wasmtime::component::Linker::new(&engine);
        component::add_to_linker(&mut component_linker)
            .and_then(|()| wasmtime_wasi::p2::add_to_linker_sync(&mut component_linker))
            .and_then(|()| component::refuse_waiting(&mut component_linker))
            .map_err(|e| LoadError::Compile(format!("{e:#}")))?;

        let stop = Arc::new(AtomicBool::new(false));
        let ticker = if options.fuel {
            None
        } else {
            let engine = engine.clone();
            let stop = stop.clone();
            let tick = options.tick;
            Some(
                std::thread::Builder::new()
                    .name("weir-epoch".into())
                    .spawn(move || {
                        while !stop.load(Ordering::Relaxed) {
                            std::thread::sleep(tick);
                            engine.increment_epoch();
                        }
                    })
                    .map_err(|e| LoadError::Compile(format!("epoch thread: {e}")))?,
            )
        };
        Ok(Runtime {
            engine,
            linker,
            component_linker,
            modules: Default::default(),
            cache,
            tick: options.tick,
            fuel: options.fuel,
            stop,
            ticker,
        })
    }

    /// Compilation cache hits and misses since start (zero without a cache).
    pub(super) fn cache_stats(&self) -> (usize, usize) {
        self.cache
            .as_ref()
            .map_or((0, 0), |c| (c.cache_hits(), c.cache_misses()))
    }

    /// Compiles and checks a module (blocking; may take milliseconds to
    /// seconds the first time a module is seen). `fields`, when given,
    /// says which columns the module reads instead of its `weir.fields`
    /// section.
    pub(super) fn compile(
        &self,
        wasm: &[u8],
        fields: Option<&FieldsSpec>,
    ) -> Result<Compiled, LoadError> {
        use sha2::Digest as _;
        let (encoding, section) = inspect(wasm)?;
        let spec = match fields {
            Some(spec) => Some(spec.clone()),
            None => section,
        };
        let selection = match &spec {
            Some(spec) => Selection::from_spec(spec).map_err(|e| LoadError::Fields(e.0))?,
            None => Selection::all(),
        };
        let hash: [u8; 32] = sha2::Sha256::digest(wasm).into();
        let known = self
            .modules
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&hash)
            .cloned();
        let pre = match known {
            Some(pre) => pre,
            None => {
                let pre = match encoding {
                    wasmparser::Encoding::Module => Pre::Core(self.compile_module(wasm)?),
                    wasmparser::Encoding::Component => {
                        Pre::Component(self.compile_component(wasm)?)
                    }
                };
                self.modules
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(hash, pre.clone());
                pre
            }
        };
        Ok(Compiled { pre, selection })
    }

    fn compile_module(&self, wasm: &[u8]) -> Result<InstancePre<HostState>, LoadError> {
        let module =
            Module::new(&self.engine, wasm).map_err(|e| LoadError::Compile(format!("{e:#}")))?;
        check_marker(&module)?;
        check_imports(&module)?;
        check_exports(&module)?;
        self.linker
            .instantiate_pre(&module)
            .map_err(|e| LoadError::Instantiate(format!("{e:#}")))
    }

    fn compile_component(&self, wasm: &[u8]) -> Result<component::RulePre<HostState>, LoadError> {
        let compiled = wasmtime::component::Component::new(&self.engine, wasm)
            .map_err(|e| LoadError::Compile(format!("{e:#}")))?;
        let ty = compiled.component_type();
        if let Some((name, _)) = ty
            .imports(&self.engine)
            .find(|(name, _)| !component::import_allowed(name))
        {
            return Err(LoadError::ForbiddenComponentImport(name.to_owned()));
        }
        let pre = self
            .component_linker
            .instantiate_pre(&compiled)
            .map_err(|e| LoadError::Instantiate(format!("{e:#}")))?;
        component::RulePre::new(pre).map_err(|e| LoadError::NotRuleWorld(format!("{e:#}")))
    }

    /// Creates an instance and runs its `init` with `init_doc`.
    pub(super) fn instantiate(
        &self,
        compiled: &Compiled,
        plugin: &Arc<str>,
        limits: &Limits,
        metrics: &Arc<PluginMetrics>,
        init_doc: &[u8],
    ) -> Result<Instance, LoadError> {
        let epochs = |deadline: Duration| {
            let ticks = deadline.as_nanos().div_ceil(self.tick.as_nanos().max(1));
            Budget::Epochs(u64::try_from(ticks).unwrap_or(u64::MAX).saturating_add(1))
        };
        // Instantiation and init get a budget of their own: a component of
        // a dynamic language starts its whole runtime there.
        let (budget, init_budget) = if self.fuel {
            (Budget::Fuel(limits.fuel), Budget::Fuel(limits.fuel))
        } else {
            (epochs(limits.deadline()), epochs(limits.init_deadline()))
        };
        let mut limiter = Limiter {
            memory: limits.memory_bytes(),
            table_elements: usize::try_from(limits.table_elements).unwrap_or(usize::MAX),
            tables: usize::try_from(limits.tables).unwrap_or(usize::MAX),
            instances: usize::try_from(limits.instances).unwrap_or(usize::MAX),
            memories: 1,
            hit_memory_cap: false,
            largest_memory: 0,
        };
        if let Pre::Component(_) = compiled.pre {
            // A component's core instances, tables and memories are fixed
            // by its structure (componentize-py links a dozen modules); a
            // guest cannot create more at run time, so the manifest's
            // counts would only refuse well-built components. Memory size
            // stays capped per memory.
            limiter.tables = limiter.tables.max(COMPONENT_STRUCTURE_CAP);
            limiter.instances = limiter.instances.max(COMPONENT_STRUCTURE_CAP);
            limiter.memories = COMPONENT_STRUCTURE_CAP;
        }
        let state = HostState {
            plugin: plugin.clone(),
            metrics: metrics.clone(),
            limiter,
            wasi: None,
            start: Instant::now(),
            deadline_ms: limits.init_deadline_ms,
            memory_mb: limits.memory_mb,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        if !self.fuel {
            store.epoch_deadline_trap();
        }
        arm(&mut store, init_budget);
        let pre = match &compiled.pre {
            Pre::Core(pre) => pre,
            Pre::Component(pre) => {
                let doc = std::str::from_utf8(init_doc)
                    .map_err(|e| LoadError::Init(format!("init document is not UTF-8: {e}")))?;
                let flavour =
                    Flavour::Component(component::ComponentInstance::start(&mut store, pre, doc)?);
                store.data_mut().deadline_ms = limits.deadline_ms;
                return Ok(Instance {
                    store,
                    budget,
                    flavour,
                });
            }
        };
        let fail = |store: &Store<HostState>, e: wasmtime::Error| classify(store, e).to_string();
        let instance = match pre.instantiate(&mut store) {
            Ok(i) => i,
            Err(e) => return Err(LoadError::Instantiate(fail(&store, e))),
        };
        // A wasm32-wasip1 reactor runs its constructors in `_initialize`.
        if let Ok(initialize) = instance.get_typed_func::<(), ()>(&mut store, "_initialize") {
            initialize
                .call(&mut store, ())
                .map_err(|e| LoadError::Instantiate(fail(&store, e)))?;
        }
        let export = |name: &'static str, e: wasmtime::Error| LoadError::BadExport {
            name,
            problem: format!("{e:#}"),
        };
        let memory = instance
            .get_memory(&mut store, abi::EXPORT_MEMORY)
            .ok_or_else(|| LoadError::BadExport {
                name: abi::EXPORT_MEMORY,
                problem: "missing".into(),
            })?;
        let buffer = instance
            .get_typed_func::<u32, u32>(&mut store, abi::EXPORT_BUFFER)
            .map_err(|e| export(abi::EXPORT_BUFFER, e))?;
        let init = instance
            .get_typed_func::<u32, u64>(&mut store, abi::EXPORT_INIT)
            .map_err(|e| export(abi::EXPORT_INIT, e))?;
        let process = instance
            .get_typed_func::<u32, u64>(&mut store, abi::EXPORT_PROCESS)
            .map_err(|e| export(abi::EXPORT_PROCESS, e))?;
        let mut core = CoreInstance {
            memory,
            buffer,
            process,
            input: (0, 0),
        };
        let reply = core
            .invoke(&mut store, init_budget, &init, init_doc)
            .map_err(|f| LoadError::Init(f.to_string()))?;
        store.data_mut().deadline_ms = limits.deadline_ms;
        if !reply.is_empty() {
            return Err(LoadError::Init(
                String::from_utf8_lossy(&reply).into_owned(),
            ));
        }
        Ok(Instance {
            store,
            budget,
            flavour: Flavour::Core(core),
        })
    }
}

/// Ceiling on a component's core instances, tables and memories.
const COMPONENT_STRUCTURE_CAP: usize = 1000;

/// A checked module or component, ready to instantiate.
pub(super) struct Compiled {
    pre: Pre,
    pub selection: Selection,
}

#[derive(Clone)]
enum Pre {
    Core(InstancePre<HostState>),
    Component(component::RulePre<HostState>),
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compiled")
            .field("selection", &self.selection)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy)]
enum Budget {
    Epochs(u64),
    Fuel(u64),
}

fn arm(store: &mut Store<HostState>, budget: Budget) {
    match budget {
        Budget::Epochs(ticks) => store.set_epoch_deadline(ticks),
        // Fuel is only set when the engine meters it, so this cannot fail.
        Budget::Fuel(fuel) => {
            let _ = store.set_fuel(fuel);
        }
    }
}

fn classify(store: &Store<HostState>, error: wasmtime::Error) -> Failure {
    let state = store.data();
    if state.limiter.hit_memory_cap {
        return Failure {
            kind: FailureKind::OutOfMemory,
            message: format!("memory cap of {} MiB reached", state.memory_mb),
        };
    }
    if let Some(waited) = error.downcast_ref::<component::Waited>() {
        return Failure {
            kind: FailureKind::Trap,
            message: waited.to_string(),
        };
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => Failure {
            kind: FailureKind::Deadline,
            message: format!("deadline of {} ms exceeded", state.deadline_ms),
        },
        Some(Trap::OutOfFuel) => Failure {
            kind: FailureKind::Deadline,
            message: "fuel budget exhausted".into(),
        },
        _ => Failure {
            kind: FailureKind::Trap,
            message: cut(format!("{error:#}"), 1000),
        },
    }
}

/// Cuts `text` to at most `max` bytes on a character boundary.
fn cut(mut text: String, max: usize) -> String {
    if text.len() > max {
        let end = (0..=max)
            .rev()
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(0);
        text.truncate(end);
    }
    text
}

/// A live instance of a plugin. After any failure it must be dropped:
/// re-entering a trapped instance is not allowed.
pub(super) struct Instance {
    store: Store<HostState>,
    budget: Budget,
    flavour: Flavour,
}

enum Flavour {
    Core(CoreInstance),
    Component(component::ComponentInstance),
}

/// A core module's exports.
struct CoreInstance {
    memory: Memory,
    buffer: TypedFunc<u32, u32>,
    process: TypedFunc<u32, u64>,
    /// The guest's input buffer (pointer, size) from the last
    /// `weir_buffer` call; it stays valid until the next one.
    input: (u32, u32),
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance").finish_non_exhaustive()
    }
}

impl Instance {
    /// Runs `weir_process` over an encoded batch and returns the output
    /// frame, copied once out of guest memory.
    pub(super) fn process(&mut self, batch: &[u8]) -> Result<Bytes, Failure> {
        match &mut self.flavour {
            Flavour::Core(core) => {
                let process = core.process.clone();
                let out = core.invoke(&mut self.store, self.budget, &process, batch);
                let size = core.memory.data_size(&self.store);
                self.store.data().metrics.set_memory(size);
                out
            }
            Flavour::Component(component) => {
                self.store.data_mut().limiter.hit_memory_cap = false;
                arm(&mut self.store, self.budget);
                let out = component.process(&mut self.store, batch);
                let state = self.store.data();
                state.metrics.set_memory(state.limiter.largest_memory);
                out
            }
        }
    }
}

impl CoreInstance {
    /// Copies `input` into the guest's buffer and calls `func(len)`.
    fn invoke(
        &mut self,
        store: &mut Store<HostState>,
        budget: Budget,
        func: &TypedFunc<u32, u64>,
        input: &[u8],
    ) -> Result<Bytes, Failure> {
        let len = u32::try_from(input.len())
            .map_err(|_| Failure::bad_output("input larger than 4 GiB"))?;
        store.data_mut().limiter.hit_memory_cap = false;
        arm(store, budget);
        if len > self.input.1 {
            // Ask for room to spare so that growing batches rarely cost an
            // extra call.
            let want = len.checked_next_power_of_two().unwrap_or(len).max(4096);
            let ptr = self
                .buffer
                .call(&mut *store, want)
                .map_err(|e| classify(store, e))?;
            self.input = (ptr, want);
        }
        self.memory
            .write(&mut *store, self.input.0 as usize, input)
            .map_err(|_| Failure::bad_output("weir_buffer returned a buffer outside memory"))?;
        let packed = func
            .call(&mut *store, len)
            .map_err(|e| classify(store, e))?;
        let (ptr, len) = abi::unpack(packed);
        let (ptr, len) = (ptr as usize, len as usize);
        self.memory
            .data(&*store)
            .get(ptr..ptr.saturating_add(len))
            .map(Bytes::copy_from_slice)
            .ok_or_else(|| Failure::bad_output("returned a frame outside memory"))
    }
}

/// Per-store data: who the plugin is, its limits, its metrics, and WASI.
pub(super) struct HostState {
    plugin: Arc<str>,
    metrics: Arc<PluginMetrics>,
    limiter: Limiter,
    wasi: Option<wasmtime_wasi::p1::WasiP1Ctx>,
    start: Instant,
    deadline_ms: u64,
    memory_mb: u64,
}

impl HostState {
    /// WASI is built on first use: most plugins never call it.
    fn wasi(&mut self) -> &mut wasmtime_wasi::p1::WasiP1Ctx {
        let plugin = self.plugin.clone();
        let metrics = self.metrics.clone();
        self.wasi.get_or_insert_with(|| {
            wasmtime_wasi::WasiCtxBuilder::new()
                .stdout(super::wasi_log::LogStream::new(
                    plugin.clone(),
                    abi::level::INFO,
                    metrics.clone(),
                ))
                .stderr(super::wasi_log::LogStream::new(
                    plugin,
                    abi::level::WARN,
                    metrics,
                ))
                .build_p1()
        })
    }
}

/// Components reach WASI 0.2 through the same sandboxed context.
impl wasmtime_wasi::WasiView for HostState {
    fn ctx(&mut self) -> wasmtime_wasi::WasiCtxView<'_> {
        wasmtime_wasi::WasiView::ctx(self.wasi())
    }
}

struct Limiter {
    memory: usize,
    table_elements: usize,
    tables: usize,
    instances: usize,
    memories: usize,
    hit_memory_cap: bool,
    /// The largest size any memory grew to, the memory gauge of a
    /// component (which may have several memories).
    largest_memory: usize,
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory {
            self.hit_memory_cap = true;
            return Ok(false);
        }
        self.largest_memory = self.largest_memory.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= self.table_elements)
    }

    fn instances(&self) -> usize {
        self.instances
    }

    fn tables(&self) -> usize {
        self.tables
    }

    fn memories(&self) -> usize {
        self.memories
    }
}

const MAX_GUEST_STRING: usize = 64 * 1024;

fn guest_string(caller: &mut Caller<'_, HostState>, ptr: u32, len: u32) -> String {
    let Some(Extern::Memory(memory)) = caller.get_export(abi::EXPORT_MEMORY) else {
        return String::new();
    };
    let start = ptr as usize;
    let len = (len as usize).min(MAX_GUEST_STRING);
    memory
        .data(&caller)
        .get(start..start.saturating_add(len))
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default()
}

/// Writes a plugin's log line to weir's log under the plugin's name.
pub(crate) fn plugin_log(plugin: &str, level: u32, message: &str) {
    match level {
        abi::level::ERROR => tracing::error!(target: "weir::plugin", plugin, "{message}"),
        abi::level::WARN => tracing::warn!(target: "weir::plugin", plugin, "{message}"),
        abi::level::INFO => tracing::info!(target: "weir::plugin", plugin, "{message}"),
        abi::level::DEBUG => tracing::debug!(target: "weir::plugin", plugin, "{message}"),
        _ => tracing::trace!(target: "weir::plugin", plugin, "{message}"),
    }
}

/// WASI's `poll_oneoff` (how `std::thread::sleep` and blocking reads wait)
/// answers ENOTSUP instead of waiting: a host call is not interrupted by the
/// epoch deadline, so a plugin that sleeps would hold the rules thread for
/// as long as it asks (issue 19 measured 21 s). Rust's `sleep` then panics,
/// which is a trap like any other. Components get the same through
/// `component::refuse_waiting`.
fn refuse_blocking(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    const ENOTSUP: i32 = 58;
    linker.allow_shadowing(true);
    linker.func_wrap(
        "wasi_snapshot_preview1",
        "poll_oneoff",
        |_: i32, _: i32, _: i32, _: i32| -> i32 { ENOTSUP },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

fn add_host_functions(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        abi::IMPORT_MODULE,
        "log",
        |mut caller: Caller<'_, HostState>, level: u32, ptr: u32, len: u32| {
            let (plugin, metrics) = {
                let state = caller.data();
                (state.plugin.clone(), state.metrics.clone())
            };
            super::wasi_log::log_line(&plugin, level, &metrics, || {
                guest_string(&mut caller, ptr, len)
            });
        },
    )?;
    linker.func_wrap(abi::IMPORT_MODULE, "now_ms", now_ms)?;
    linker.func_wrap(
        abi::IMPORT_MODULE,
        "monotonic_ns",
        |caller: Caller<'_, HostState>| -> i64 {
            i64::try_from(caller.data().start.elapsed().as_nanos()).unwrap_or(i64::MAX)
        },
    )?;
    linker.func_wrap(
        abi::IMPORT_MODULE,
        "random",
        |mut caller: Caller<'_, HostState>, ptr: u32, len: u32| {
            let Some(memory) = caller
                .get_export(abi::EXPORT_MEMORY)
                .and_then(wasmtime::Extern::into_memory)
            else {
                return;
            };
            let len = len.min(4096) as usize;
            let mut bytes = vec![0u8; len];
            fastrand::fill(&mut bytes);
            // Out of bounds: the guest gets nothing rather than a trap.
            let _ = memory.write(&mut caller, ptr as usize, &bytes);
        },
    )?;
    linker.func_wrap(
        abi::IMPORT_MODULE,
        "counter_add",
        |mut caller: Caller<'_, HostState>, ptr: u32, len: u32, delta: i64| {
            let name = guest_string(&mut caller, ptr, len.min(256));
            caller.data().metrics.counter_add(&name, delta);
        },
    )?;
    Ok(())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Whether the binary is a core module or a component, and the module's
/// `weir.fields` section if it has one. A component's fields come from its
/// manifest: component toolchains have no way to add a custom section.
fn inspect(wasm: &[u8]) -> Result<(wasmparser::Encoding, Option<FieldsSpec>), LoadError> {
    let mut found = None;
    let mut encoding = None;
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        match payload.map_err(|e| LoadError::Invalid(e.to_string()))? {
            wasmparser::Payload::Version {
                encoding: wasmparser::Encoding::Component,
                ..
            } => return Ok((wasmparser::Encoding::Component, None)),
            wasmparser::Payload::Version { encoding: e, .. } => encoding = Some(e),
            wasmparser::Payload::CustomSection(section)
                if section.name() == abi::FIELDS_SECTION =>
            {
                if found.is_some() {
                    return Err(LoadError::Fields("appears twice".into()));
                }
                found =
                    Some(FieldsSpec::parse(section.data()).map_err(|e| LoadError::Fields(e.0))?);
            }
            _ => {}
        }
    }
    Ok((encoding.unwrap_or(wasmparser::Encoding::Module), found))
}

fn check_marker(module: &Module) -> Result<(), LoadError> {
    let versions: Vec<&str> = module
        .exports()
        .filter_map(|e| e.name().strip_prefix(abi::VERSION_EXPORT_PREFIX))
        .collect();
    if versions.contains(&"1") {
        return Ok(());
    }
    match versions.first() {
        Some(found) => Err(LoadError::WrongAbi {
            found: (*found).to_owned(),
        }),
        None => Err(LoadError::NoMarker),
    }
}

fn check_imports(module: &Module) -> Result<(), LoadError> {
    for import in module.imports() {
        let allowed = match import.module() {
            abi::IMPORT_MODULE => matches!(
                import.name(),
                "log" | "now_ms" | "monotonic_ns" | "counter_add" | "random"
            ),
            "wasi_snapshot_preview1" => true,
            _ => false,
        };
        if !allowed {
            return Err(LoadError::ForbiddenImport {
                module: import.module().to_owned(),
                name: import.name().to_owned(),
            });
        }
    }
    Ok(())
}

fn check_exports(module: &Module) -> Result<(), LoadError> {
    let func = |name: &'static str, result: ValType| -> Result<(), LoadError> {
        match module.get_export(name) {
            Some(ExternType::Func(ty)) => {
                let params: Vec<ValType> = ty.params().collect();
                let results: Vec<ValType> = ty.results().collect();
                if params.len() == 1
                    && params[0].matches(&ValType::I32)
                    && results.len() == 1
                    && results[0].matches(&result)
                {
                    Ok(())
                } else {
                    Err(LoadError::BadExport {
                        name,
                        problem: format!("has type {ty}, expected (i32) -> {result}"),
                    })
                }
            }
            Some(_) => Err(LoadError::BadExport {
                name,
                problem: "is not a function".into(),
            }),
            None => Err(LoadError::BadExport {
                name,
                problem: "missing".into(),
            }),
        }
    };
    func(abi::EXPORT_BUFFER, ValType::I32)?;
    func(abi::EXPORT_INIT, ValType::I64)?;
    func(abi::EXPORT_PROCESS, ValType::I64)?;
    match module.get_export(abi::EXPORT_MEMORY) {
        Some(ExternType::Memory(_)) => Ok(()),
        _ => Err(LoadError::BadExport {
            name: abi::EXPORT_MEMORY,
            problem: "missing (a plugin exports its linear memory as `memory`)".into(),
        }),
    }
}
