//! The rule runtime module: weir's rule evaluator as an ABI v1 plugin.
//!
//! Every rule file weir compiles runs in this one module. `weir_init`
//! receives the rule's checked program (JSON, in the init document's
//! `config.program`, put there by weir's compiler); `weir_process` runs it
//! on each batch with `weir_rules_runtime::batch::process`, the function
//! the host also calls to evaluate a rule natively, so both do exactly the
//! same. Nothing here can panic on any input (the batch is untrusted; the
//! module is built with `panic = "abort"`, which would trap): every lookup
//! is checked, and the evaluator reports bad input as per-event errors.

use std::cell::RefCell;
use weir_guest_sdk::abi::{self, OutputFrameWriter};
use weir_rules_runtime::batch;
use weir_rules_runtime::program::Program;

#[link(wasm_import_module = "weir")]
unsafe extern "C" {
    #[link_name = "now_ms"]
    fn host_now_ms() -> i64;
    #[link_name = "random"]
    fn host_random(ptr: u32, len: u32);
}

struct Host;

impl weir_rules_runtime::Host for Host {
    fn now_ms(&self) -> i64 {
        // SAFETY: an import with no arguments, provided by the host.
        unsafe { host_now_ms() }
    }

    fn random(&self, buf: &mut [u8]) {
        // SAFETY: the host writes at most `len` bytes at `ptr`, which is
        // this buffer in our own memory.
        unsafe { host_random(buf.as_mut_ptr() as u32, buf.len() as u32) }
    }
}

#[derive(Default)]
struct State {
    input: Vec<u8>,
    program: Option<Program>,
    frame: OutputFrameWriter,
    error: Vec<u8>,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
}

fn with<R>(f: impl FnOnce(&mut State) -> R) -> R {
    STATE.with(|s| f(&mut s.borrow_mut()))
}

#[unsafe(no_mangle)]
pub extern "C" fn weir_abi_version_1() {}

#[unsafe(no_mangle)]
pub extern "C" fn weir_buffer(len: u32) -> u32 {
    with(|st| {
        if st.input.len() < len as usize {
            st.input.resize(len as usize, 0);
        }
        st.input.as_mut_ptr() as u32
    })
}

/// Reads the program out of the init document.
fn program_of(doc: &[u8]) -> Result<Program, String> {
    let doc: serde_json::Value =
        serde_json::from_slice(doc).map_err(|e| format!("init document: {e}"))?;
    let text = doc
        .get("config")
        .and_then(|c| c.get("program"))
        .and_then(|p| p.as_str())
        .ok_or("the init document has no config.program: this module runs rule files compiled by weir")?;
    serde_json::from_str(text).map_err(|e| format!("config.program is not a rule program of this weir: {e}"))
}

#[unsafe(no_mangle)]
pub extern "C" fn weir_init(len: u32) -> u64 {
    with(|st| {
        let doc = st.input.get(..len as usize).unwrap_or_default();
        match program_of(doc) {
            Ok(program) => {
                st.program = Some(program);
                0
            }
            Err(message) => {
                st.error = message.into_bytes();
                abi::pack(st.error.as_ptr() as u32, st.error.len() as u32)
            }
        }
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn weir_process(len: u32) -> u64 {
    with(|st| {
        let State {
            input,
            program,
            frame,
            ..
        } = st;
        frame.reset();
        let batch = input.get(..len as usize).unwrap_or_default();
        match program {
            Some(p) => batch::process(p, batch, &Host, frame),
            None => frame.error(0, abi::code::RULE, "weir_process called before weir_init"),
        }
        let out = frame.finish();
        abi::pack(out.as_ptr() as u32, out.len() as u32)
    })
}
