//! The runtime library of compiled rules: ABI v1 plumbing (input buffer,
//! batch decoding, output frame) and one export per value operation, for
//! the code weir generates from a rule file to call.
//!
//! Generated code never touches values itself: it holds *handles* (indexes
//! into a per-event table of values) and passes them to `rt_*` functions.
//! Fields are not copied out of the input buffer; a handle to a field is a
//! span of it. Handles 0, 1 and 2 are always NULL, true and false. An
//! operation that fails records the event's first error and gives NULL; when
//! the event ends, its outputs are rolled back and the error is reported, so
//! generated code needs no error paths.
//!
//! weir's merger keeps this module's code, data, memory and the exports
//! `memory`, `weir_buffer` and `weir_abi_version_1`; generated code provides
//! `weir_init` and `weir_process` and calls the `rt_*` exports by index.
//! Nothing here can panic on any input (the batch is untrusted): every
//! lookup is checked.

use std::borrow::Cow;
use std::cell::RefCell;
use weir_guest_sdk::abi::{
    self, BatchReader, Flag, FrameMark, Kind, OpenOutput, OutputFrameWriter,
};
use weir_rules_runtime::{self as rt, ArithOp, CmpOp, Func, Mode, Tri, Value};

#[link(wasm_import_module = "weir")]
unsafe extern "C" {
    #[link_name = "now_ms"]
    fn host_now_ms() -> i64;
}

fn now_ms() -> i64 {
    // SAFETY: an import with no arguments, provided by the host.
    unsafe { host_now_ms() }
}

/// Pseudo field ids for columns that are not single ABI fields.
const FIELD_EVENT: u32 = 0x7001;
const FIELD_FLAGS: u32 = 0x7002;
/// Handles that always exist.
const NULL: u32 = 0;
const TRUE: u32 = 1;
const FALSE: u32 = 2;

/// A field value as decoded from the batch: scalars inline, text as a span
/// of the input buffer.
#[derive(Debug, Clone, Copy)]
enum Raw {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(u32, u32),
    Bytes(u32, u32),
    Json(u32, u32),
}

#[derive(Debug)]
enum Slot {
    Val(Value<'static>),
    Raw(Raw),
    /// A string constant in the generated code's constants area.
    Const(u32, u32),
}

#[derive(Debug)]
struct EventEntry {
    kind: Kind,
    first: usize,
    count: usize,
    bad: Option<String>,
}

#[derive(Debug, Default)]
enum Target {
    #[default]
    Key,
    Record,
}

#[derive(Debug, Default)]
struct State {
    input: Vec<u8>,
    consts: Vec<u8>,
    events: Vec<EventEntry>,
    fields: Vec<(u32, Raw)>,
    next: usize,
    current: Option<(usize, FrameMark)>,
    kind: u32,
    /// Field ids and payload paths of the current event → index in `fields`.
    table: Vec<u32>,
    paths: Vec<u32>,
    slots: Vec<Slot>,
    frame: OutputFrameWriter,
    key: Vec<u8>,
    target: Target,
    open: Option<(OpenOutput, usize)>,
    error: Option<String>,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
}

fn with<R>(f: impl FnOnce(&mut State) -> R) -> R {
    STATE.with(|s| f(&mut s.borrow_mut()))
}

const ABSENT: u32 = u32::MAX;

/// A value from the parts of the state it may borrow from.
fn resolve<'s>(input: &'s [u8], consts: &'s [u8], slots: &'s [Slot], h: u32) -> Value<'s> {
    let Some(slot) = slots.get(h as usize) else {
        return Value::Null;
    };
    let span = |buf: &'s [u8], start: u32, len: u32| {
        let start = start as usize;
        buf.get(start..start.saturating_add(len as usize))
            .unwrap_or_default()
    };
    match slot {
        Slot::Val(v) => v.borrowed(),
        Slot::Const(start, len) => match std::str::from_utf8(span(consts, *start, *len)) {
            Ok(s) => Value::Str(Cow::Borrowed(s)),
            Err(_) => Value::Null,
        },
        Slot::Raw(raw) => match *raw {
            Raw::Null => Value::Null,
            Raw::Bool(b) => Value::Bool(b),
            Raw::Int(n) => Value::Int(n),
            Raw::Float(x) => Value::Float(x),
            Raw::Bytes(s, l) => Value::Bytes(Cow::Borrowed(span(input, s, l))),
            Raw::Str(s, l) => std::str::from_utf8(span(input, s, l))
                .map_or(Value::Null, |t| Value::Str(Cow::Borrowed(t))),
            Raw::Json(s, l) => std::str::from_utf8(span(input, s, l))
                .map_or(Value::Null, |t| Value::Json(Cow::Borrowed(t))),
        },
    }
}

impl State {
    fn val(&self, h: u32) -> Value<'_> {
        resolve(&self.input, &self.consts, &self.slots, h)
    }

    fn push(&mut self, slot: Slot) -> u32 {
        let h = u32::try_from(self.slots.len()).unwrap_or(NULL);
        self.slots.push(slot);
        h
    }

    fn push_value(&mut self, v: Value<'static>) -> u32 {
        match v {
            Value::Null => NULL,
            Value::Bool(true) => TRUE,
            Value::Bool(false) => FALSE,
            v => self.push(Slot::Val(v)),
        }
    }

    /// Stores a result that may borrow from the input: a span when it
    /// does, a copy otherwise.
    fn store(&mut self, slot: Slot) -> u32 {
        match slot {
            Slot::Val(v) => self.push_value(v),
            other => self.push(other),
        }
    }

    fn fail(&mut self, message: Cow<'static, str>) {
        if self.error.is_none() {
            self.error = Some(message.into_owned());
        }
    }

    fn result(&mut self, r: Result<Value<'static>, rt::OpError>) -> u32 {
        match r {
            Ok(v) => self.push_value(v),
            Err(e) => {
                self.fail(e.0);
                NULL
            }
        }
    }

    fn reset_slots(&mut self) {
        self.slots.truncate(3);
        if self.slots.len() < 3 {
            self.slots.clear();
            self.slots.push(Slot::Val(Value::Null));
            self.slots.push(Slot::Val(Value::Bool(true)));
            self.slots.push(Slot::Val(Value::Bool(false)));
        }
    }

    /// Ends the current event: an event that failed loses its outputs and
    /// gets the error.
    fn end_event(&mut self) {
        if let Some((index, mark)) = self.current.take() {
            if let Some((open, _)) = self.open.take() {
                self.frame.abandon_output(open);
            }
            if let Some(message) = self.error.take() {
                self.frame.rollback(mark);
                self.frame
                    .error(event_index(index), abi::code::RULE, &message);
            }
        }
    }

    fn field(&self, id: u32) -> Option<Raw> {
        let at = if id >= u32::from(abi::PATH_FIELD_BASE) {
            self.paths
                .get((id - u32::from(abi::PATH_FIELD_BASE)) as usize)
        } else {
            self.table.get(id as usize)
        };
        at.filter(|i| **i != ABSENT)
            .and_then(|i| self.fields.get(*i as usize))
            .map(|(_, raw)| *raw)
    }
}

fn event_index(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

/// Reads the whole batch into `events` and `fields` (spans of the input).
fn decode_batch(st: &mut State, len: usize) {
    st.events.clear();
    st.fields.clear();
    st.next = 0;
    let frame = st.input.get(..len).unwrap_or_default();
    let base = frame.as_ptr() as usize;
    let offset = |p: *const u8| u32::try_from(p as usize - base).unwrap_or(0);
    let size = |n: usize| u32::try_from(n).unwrap_or(0);
    let Ok(mut reader) = BatchReader::new(frame) else {
        return;
    };
    while let Some(event) = reader.next_event() {
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                // The rest of the batch cannot be found: report this event.
                st.events.push(EventEntry {
                    kind: Kind::MessagePublish,
                    first: 0,
                    count: 0,
                    bad: Some(e.to_string()),
                });
                return;
            }
        };
        let first = st.fields.len();
        let mut bad = None;
        for field in event.fields() {
            match field {
                Ok((id, value)) => {
                    let raw = match value {
                        abi::Value::Null => Raw::Null,
                        abi::Value::Bool(b) => Raw::Bool(b),
                        abi::Value::I64(n) => Raw::Int(n),
                        abi::Value::F64(x) if x.is_finite() => Raw::Float(x),
                        abi::Value::F64(_) => Raw::Null,
                        abi::Value::Str(s) => Raw::Str(offset(s.as_ptr()), size(s.len())),
                        abi::Value::Bytes(b) => Raw::Bytes(offset(b.as_ptr()), size(b.len())),
                        abi::Value::Json(j) => Raw::Json(offset(j.as_ptr()), size(j.len())),
                    };
                    st.fields.push((u32::from(id), raw));
                }
                Err(e) => {
                    bad = Some(e.to_string());
                    break;
                }
            }
        }
        st.events.push(EventEntry {
            kind: event.kind,
            first,
            count: st.fields.len() - first,
            bad,
        });
    }
}

// ---------------------------------------------------------------------------
// ABI v1 exports kept in the final module.
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// The runtime API of generated code.
// ---------------------------------------------------------------------------

/// Makes room for `len` bytes of constants and returns where generated code
/// must copy them (once, in `weir_init`).
#[unsafe(no_mangle)]
pub extern "C" fn rt_consts(len: u32) -> u32 {
    with(|st| {
        st.consts.clear();
        st.consts.resize(len as usize, 0);
        st.reset_slots();
        st.consts.as_mut_ptr() as u32
    })
}

/// Starts a batch of `len` bytes in the input buffer.
#[unsafe(no_mangle)]
pub extern "C" fn rt_begin(len: u32) {
    with(|st| {
        st.frame.reset();
        st.current = None;
        st.open = None;
        st.error = None;
        decode_batch(st, len as usize);
    })
}

/// Moves to the next event; 0 when the batch is done.
#[unsafe(no_mangle)]
pub extern "C" fn rt_next() -> u32 {
    with(|st| {
        st.end_event();
        while let Some(entry) = st.events.get(st.next) {
            let index = st.next;
            st.next += 1;
            if let Some(bad) = &entry.bad {
                let message = format!("undecodable event: {bad}");
                st.frame
                    .error(event_index(index), abi::code::BAD_EVENT, &message);
                continue;
            }
            let (first, count, kind) = (entry.first, entry.count, entry.kind);
            st.kind = kind as u32;
            st.table.clear();
            st.table.resize(abi::field::COUNT, ABSENT);
            st.paths.clear();
            for i in first..first + count {
                let Some((id, _)) = st.fields.get(i) else {
                    break;
                };
                let id = *id;
                let at = u32::try_from(i).unwrap_or(ABSENT);
                if id >= u32::from(abi::PATH_FIELD_BASE) {
                    let p = (id - u32::from(abi::PATH_FIELD_BASE)) as usize;
                    if p < abi::MAX_PATHS {
                        if st.paths.len() <= p {
                            st.paths.resize(p + 1, ABSENT);
                        }
                        st.paths[p] = at;
                    }
                } else if let Some(slot) = st.table.get_mut(id as usize) {
                    *slot = at;
                }
            }
            st.reset_slots();
            st.error = None;
            st.current = Some((index, st.frame.mark()));
            return 1;
        }
        0
    })
}

/// Ends the batch and returns the output frame, packed.
#[unsafe(no_mangle)]
pub extern "C" fn rt_finish() -> u64 {
    with(|st| {
        st.end_event();
        let frame = st.frame.finish();
        abi::pack(
            frame.as_ptr() as u32,
            u32::try_from(frame.len()).unwrap_or(0),
        )
    })
}

/// The current event's kind (0 publish, 1 connected, 2 disconnected).
#[unsafe(no_mangle)]
pub extern "C" fn rt_kind() -> u32 {
    with(|st| st.kind)
}

/// Whether the current event has field `id`.
#[unsafe(no_mangle)]
pub extern "C" fn rt_has(id: u32) -> u32 {
    with(|st| match id {
        FIELD_EVENT => 1,
        FIELD_FLAGS => u32::from(
            st.field(u32::from(abi::field::FLAGS_DUP)).is_some()
                || st.field(u32::from(abi::field::FLAGS_RETAIN)).is_some(),
        ),
        _ => u32::from(st.field(id).is_some()),
    })
}

/// The value of field `id` (NULL when absent).
#[unsafe(no_mangle)]
pub extern "C" fn rt_field(id: u32) -> u32 {
    with(|st| {
        if id == FIELD_EVENT {
            let name = Kind::name(match st.kind {
                1 => Kind::ClientConnected,
                2 => Kind::ClientDisconnected,
                _ => Kind::MessagePublish,
            });
            return st.push(Slot::Val(Value::Str(Cow::Borrowed(name))));
        }
        if id == FIELD_FLAGS {
            let flag = |st: &State, id: u16| match st.field(u32::from(id)) {
                Some(Raw::Bool(b)) => Some(b),
                _ => None,
            };
            let (dup, retain) = (
                flag(st, abi::field::FLAGS_DUP),
                flag(st, abi::field::FLAGS_RETAIN),
            );
            if dup.is_none() && retain.is_none() {
                return NULL;
            }
            let text = |b: Option<bool>| match b {
                Some(true) => "true",
                Some(false) => "false",
                None => "null",
            };
            let json = format!("{{\"dup\":{},\"retain\":{}}}", text(dup), text(retain));
            return st.push(Slot::Val(Value::Json(Cow::Owned(json))));
        }
        match st.field(id) {
            None | Some(Raw::Null) => NULL,
            Some(Raw::Bytes(s, l)) if id == u32::from(abi::field::ID) => {
                let hex = match st.val_raw_bytes(s, l) {
                    Some(bytes) if bytes.len() == 16 => {
                        const HEX: &[u8; 16] = b"0123456789ABCDEF";
                        let mut out = String::with_capacity(32);
                        for b in bytes {
                            out.push(char::from(HEX[usize::from(b >> 4)]));
                            out.push(char::from(HEX[usize::from(b & 15)]));
                        }
                        out
                    }
                    _ => return NULL,
                };
                st.push(Slot::Val(Value::Str(Cow::Owned(hex))))
            }
            Some(raw) => st.push(Slot::Raw(raw)),
        }
    })
}

impl State {
    fn val_raw_bytes(&self, start: u32, len: u32) -> Option<&[u8]> {
        let start = start as usize;
        self.input.get(start..start.checked_add(len as usize)?)
    }
}

/// A string constant at `off` in the constants area.
#[unsafe(no_mangle)]
pub extern "C" fn rt_const(off: u32, len: u32) -> u32 {
    with(|st| st.push(Slot::Const(off, len)))
}

#[unsafe(no_mangle)]
pub extern "C" fn rt_int(n: i64) -> u32 {
    with(|st| st.push(Slot::Val(Value::Int(n))))
}

#[unsafe(no_mangle)]
pub extern "C" fn rt_float(x: f64) -> u32 {
    with(|st| match Value::float(x) {
        Ok(v) => st.push(Slot::Val(v)),
        Err(_) => NULL,
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn rt_is_null(h: u32) -> u32 {
    with(|st| u32::from(st.val(h).is_null()))
}

/// A condition's truth (0 false, 1 true, 2 unknown); anything but a
/// boolean or NULL fails the event.
#[unsafe(no_mangle)]
pub extern "C" fn rt_truth(h: u32) -> u32 {
    with(|st| match rt::truth(&st.val(h)) {
        Ok(t) => t as u32,
        Err(e) => {
            st.fail(e.0);
            Tri::Unknown as u32
        }
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn rt_cmp(op: u32, a: u32, b: u32) -> u32 {
    with(|st| {
        let Some(op) = CmpOp::from_i32(op as i32) else {
            return Tri::Unknown as u32;
        };
        rt::compare(op, &st.val(a), &st.val(b)) as u32
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn rt_arith(op: u32, a: u32, b: u32) -> u32 {
    with(|st| {
        let r = match ArithOp::from_i32(op as i32) {
            Some(op) => rt::arith(op, &st.val(a), &st.val(b)),
            None => Err(rt::OpError::new("unknown operator")),
        };
        st.result(r)
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn rt_neg(a: u32) -> u32 {
    with(|st| {
        let r = rt::neg(&st.val(a));
        st.result(r)
    })
}

/// Function `f` with `argc` (at most 3) of the arguments `a`, `b`, `c`.
#[unsafe(no_mangle)]
pub extern "C" fn rt_call(f: u32, argc: u32, a: u32, b: u32, c: u32) -> u32 {
    with(|st| {
        let r = match Func::from_i32(f as i32) {
            Some(func) => {
                let handles = [a, b, c];
                let n = (argc as usize).min(3);
                let args: Vec<Value<'_>> = handles[..n].iter().map(|h| st.val(*h)).collect();
                rt::call(func, &args, &now_ms)
            }
            None => Err(rt::OpError::new("unknown function")),
        };
        st.result(r)
    })
}

/// Member `key` (a constant) of `h`.
#[unsafe(no_mangle)]
pub extern "C" fn rt_get(h: u32, off: u32, len: u32) -> u32 {
    with(|st| {
        let slot = {
            let key_bytes = st.val_const(off, len);
            let Ok(key) = std::str::from_utf8(key_bytes) else {
                return NULL;
            };
            let base = st.val(h);
            to_slot(&st.input, rt::get(&base, key))
        };
        st.store(slot)
    })
}

/// Element `i` (0-based) of `h`.
#[unsafe(no_mangle)]
pub extern "C" fn rt_index(h: u32, i: u32) -> u32 {
    with(|st| {
        let slot = {
            let base = st.val(h);
            to_slot(&st.input, rt::index(&base, i as usize))
        };
        st.store(slot)
    })
}

impl State {
    fn val_const(&self, off: u32, len: u32) -> &[u8] {
        let start = off as usize;
        self.consts
            .get(start..start.saturating_add(len as usize))
            .unwrap_or_default()
    }
}

/// A span of the input when `v` borrows from it, else an owned copy.
fn to_slot(input: &[u8], v: Value<'_>) -> Slot {
    let range = input.as_ptr() as usize..input.as_ptr() as usize + input.len();
    let within =
        |p: *const u8, n: usize| range.contains(&(p as usize)) && p as usize + n <= range.end;
    let at = |p: *const u8| u32::try_from(p as usize - range.start).unwrap_or(0);
    let n = |len: usize| u32::try_from(len).unwrap_or(0);
    match &v {
        Value::Str(Cow::Borrowed(s)) if within(s.as_ptr(), s.len()) => {
            Slot::Raw(Raw::Str(at(s.as_ptr()), n(s.len())))
        }
        Value::Json(Cow::Borrowed(s)) if within(s.as_ptr(), s.len()) => {
            Slot::Raw(Raw::Json(at(s.as_ptr()), n(s.len())))
        }
        _ => Slot::Val(v.into_owned()),
    }
}

/// Starts rendering the partition key of an output.
#[unsafe(no_mangle)]
pub extern "C" fn rt_key_begin() {
    with(|st| {
        st.key.clear();
        st.target = Target::Key;
    })
}

/// Starts an output with the rendered key; the record follows.
#[unsafe(no_mangle)]
pub extern "C" fn rt_out_begin(flag: u32) {
    with(|st| {
        let Some((index, _)) = st.current else { return };
        if let Some((open, _)) = st.open.take() {
            st.frame.abandon_output(open);
        }
        let flag = if flag == Flag::Raw as u32 {
            Flag::Raw
        } else {
            Flag::Json
        };
        let key = String::from_utf8_lossy(&st.key).into_owned();
        let open = st.frame.begin_output(event_index(index), flag, "", &key);
        let start = st.frame.record_buf().len();
        st.open = Some((open, start));
        st.target = Target::Record;
    })
}

/// Ends the output. With `check_object`, a record that is not a JSON
/// object fails the event (a template that is one placeholder).
#[unsafe(no_mangle)]
pub extern "C" fn rt_out_end(check_object: u32) {
    with(|st| {
        let Some((open, start)) = st.open.take() else {
            return;
        };
        if check_object != 0 {
            let record = st.frame.record_buf().get(start..).unwrap_or_default();
            if record.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
                st.frame.abandon_output(open);
                st.fail(Cow::Borrowed(
                    "the record template gave a value that is not a JSON object, which an HRecord must be",
                ));
                return;
            }
        }
        st.frame.end_output(open);
        st.target = Target::Key;
    })
}

/// Appends constant bytes to the key or record being rendered.
#[unsafe(no_mangle)]
pub extern "C" fn rt_lit(off: u32, len: u32) {
    with(|st| {
        let start = off as usize;
        let State {
            consts,
            target,
            key,
            frame,
            ..
        } = st;
        let bytes = consts
            .get(start..start.saturating_add(len as usize))
            .unwrap_or_default();
        match target {
            Target::Key => key.extend_from_slice(bytes),
            Target::Record => frame.record_buf().extend_from_slice(bytes),
        }
    })
}

/// Appends a value in `mode` (see `weir_rules_runtime::Mode`).
#[unsafe(no_mangle)]
pub extern "C" fn rt_emit(h: u32, mode: u32) {
    with(|st| {
        let mode = Mode::from_i32(mode as i32).unwrap_or(Mode::Text);
        let State {
            slots,
            input,
            consts,
            target,
            key,
            frame,
            ..
        } = st;
        let v = resolve(input, consts, slots, h);
        let out = match target {
            Target::Key => key,
            Target::Record => frame.record_buf(),
        };
        rt::emit(out, &v, mode);
    })
}
