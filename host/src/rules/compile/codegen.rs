//! Wasm code generation: a [`Program`] becomes the two ABI functions
//! `weir_init` and `weir_process`, merged with the runtime library into one
//! module.
//!
//! The generated code is the rule's control flow: a loop over the batch's
//! events, the WHERE condition with short-circuit `and` / `or` in SQL's
//! three-valued logic (0 false, 1 true, 2 unknown), CASE and `coalesce` as
//! branches, `IN` as a chain of comparisons that stops at the first match,
//! and the templates as a sequence of writes. Values are handles (i32)
//! into the runtime library's per-event table; every operation on a value
//! is a call to one of the library's `rt_*` functions, found by export
//! name and called by index.
//!
//! Merging copies the library's sections as they are (code bodies byte for
//! byte: no index changes, because generated functions and types are only
//! appended), keeps only the ABI exports, adds the constants (literal text
//! of templates and SQL) as a passive data segment copied by `weir_init`
//! into a buffer the library owns, and adds the `weir.fields` section.

use super::ir::{Expr, Part, Program, Record, Step};
use std::collections::HashMap;
use std::ops::Range;
use std::sync::OnceLock;
use wasm_encoder::reencode::{Reencode, RoundtripReencoder};
use wasm_encoder::{
    BlockType, CodeSection, CustomSection, DataCountSection, DataSection, ExportKind,
    ExportSection, Function, FunctionSection, Ieee64, Instruction as I, Module, RawSection,
    SectionId, TypeSection, ValType,
};
use weir_guest_sdk::abi::{self, FieldsSpec};
use weir_rules_runtime::{CmpOp, Mode, Tri};

/// Why the module could not be put together (a broken runtime library;
/// not something a rule file can cause).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub(crate) struct CodegenError(String);

/// The runtime library, parsed once.
struct Library {
    bytes: &'static [u8],
    types: Range<usize>,
    type_count: u32,
    imports: Option<Range<usize>>,
    func_imports: u32,
    functions: Vec<u32>,
    /// Table, memory, global, element: copied as they are.
    table: Option<Range<usize>>,
    memory: Option<Range<usize>>,
    global: Option<Range<usize>>,
    element: Option<Range<usize>>,
    exports: HashMap<String, (wasmparser::ExternalKind, u32)>,
    code: Vec<Range<usize>>,
    data: Option<Range<usize>>,
    data_count: u32,
}

fn library() -> Result<&'static Library, CodegenError> {
    static LIBRARY: OnceLock<Result<Library, String>> = OnceLock::new();
    LIBRARY
        .get_or_init(|| parse_library(weir_rules_runtime::WASM))
        .as_ref()
        .map_err(|e| CodegenError(format!("the rule runtime library is unusable: {e}")))
}

fn parse_library(bytes: &'static [u8]) -> Result<Library, String> {
    use wasmparser::Payload;
    let mut lib = Library {
        bytes,
        types: 0..0,
        type_count: 0,
        imports: None,
        func_imports: 0,
        functions: Vec::new(),
        table: None,
        memory: None,
        global: None,
        element: None,
        exports: HashMap::new(),
        code: Vec::new(),
        data: None,
        data_count: 0,
    };
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        match payload.map_err(|e| e.to_string())? {
            Payload::TypeSection(r) => {
                lib.type_count = r.count();
                lib.types = r.range();
            }
            Payload::ImportSection(r) => {
                lib.imports = Some(r.range());
                for import in r.into_imports() {
                    if matches!(
                        import.map_err(|e| e.to_string())?.ty,
                        wasmparser::TypeRef::Func(_)
                    ) {
                        lib.func_imports += 1;
                    }
                }
            }
            Payload::FunctionSection(r) => {
                for ty in r {
                    lib.functions.push(ty.map_err(|e| e.to_string())?);
                }
            }
            Payload::TableSection(r) => lib.table = Some(r.range()),
            Payload::MemorySection(r) => lib.memory = Some(r.range()),
            Payload::GlobalSection(r) => lib.global = Some(r.range()),
            Payload::ElementSection(r) => lib.element = Some(r.range()),
            Payload::ExportSection(r) => {
                for export in r {
                    let export = export.map_err(|e| e.to_string())?;
                    lib.exports
                        .insert(export.name.to_owned(), (export.kind, export.index));
                }
            }
            Payload::CodeSectionEntry(body) => lib.code.push(body.range()),
            Payload::DataSection(r) => {
                lib.data_count = r.count();
                lib.data = Some(r.range());
            }
            Payload::StartSection { .. } => return Err("it has a start function".into()),
            Payload::TagSection(_) => return Err("it uses exception tags".into()),
            _ => {}
        }
    }
    if lib.memory.is_none() {
        return Err("it defines no memory".into());
    }
    Ok(lib)
}

/// Indexes of the runtime library's functions that generated code calls.
struct Rt {
    consts: u32,
    begin: u32,
    next: u32,
    finish: u32,
    has: u32,
    field: u32,
    constant: u32,
    int: u32,
    float: u32,
    is_null: u32,
    truth: u32,
    cmp: u32,
    arith: u32,
    neg: u32,
    call: u32,
    get: u32,
    index: u32,
    key_begin: u32,
    out_begin: u32,
    out_end: u32,
    lit: u32,
    emit: u32,
}

impl Library {
    fn func(&self, name: &str) -> Result<u32, CodegenError> {
        match self.exports.get(name) {
            Some((wasmparser::ExternalKind::Func, index)) => Ok(*index),
            _ => Err(CodegenError(format!(
                "the rule runtime library does not export `{name}`"
            ))),
        }
    }

    fn rt(&self) -> Result<Rt, CodegenError> {
        Ok(Rt {
            consts: self.func("rt_consts")?,
            begin: self.func("rt_begin")?,
            next: self.func("rt_next")?,
            finish: self.func("rt_finish")?,
            has: self.func("rt_has")?,
            field: self.func("rt_field")?,
            constant: self.func("rt_const")?,
            int: self.func("rt_int")?,
            float: self.func("rt_float")?,
            is_null: self.func("rt_is_null")?,
            truth: self.func("rt_truth")?,
            cmp: self.func("rt_cmp")?,
            arith: self.func("rt_arith")?,
            neg: self.func("rt_neg")?,
            call: self.func("rt_call")?,
            get: self.func("rt_get")?,
            index: self.func("rt_index")?,
            key_begin: self.func("rt_key_begin")?,
            out_begin: self.func("rt_out_begin")?,
            out_end: self.func("rt_out_end")?,
            lit: self.func("rt_lit")?,
            emit: self.func("rt_emit")?,
        })
    }
}

/// Generates the module for `program`.
pub(crate) fn generate(program: &Program) -> Result<Vec<u8>, CodegenError> {
    let lib = library()?;
    let rt = lib.rt()?;
    let mut g = Gen {
        rt: &rt,
        code: Vec::new(),
        locals: 0,
        consts: Vec::new(),
        interned: HashMap::new(),
        columns: vec![None; program.columns.len()],
    };
    g.process(program);
    let process = g.finish_function();
    let init = g.init_function(lib.data_count);
    assemble(lib, program, init, process, &g.consts)
}

struct Gen<'r> {
    rt: &'r Rt,
    code: Vec<I<'static>>,
    /// i32 locals after the one parameter.
    locals: u32,
    consts: Vec<u8>,
    interned: HashMap<Vec<u8>, (i32, i32)>,
    columns: Vec<Option<u32>>,
}

fn i32_of(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn u32_of(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl Gen<'_> {
    fn emit(&mut self, i: I<'static>) {
        self.code.push(i);
    }

    fn call(&mut self, f: u32) {
        self.emit(I::Call(f));
    }

    fn i32(&mut self, n: i32) {
        self.emit(I::I32Const(n));
    }

    fn local(&mut self) -> u32 {
        self.locals += 1;
        self.locals
    }

    /// Offset and length of `bytes` in the constants area.
    fn constant(&mut self, bytes: &[u8]) -> (i32, i32) {
        if let Some(at) = self.interned.get(bytes) {
            return *at;
        }
        let at = (i32_of(self.consts.len()), i32_of(bytes.len()));
        self.consts.extend_from_slice(bytes);
        self.interned.insert(bytes.to_vec(), at);
        at
    }

    fn finish_function(&mut self) -> Function {
        let mut f = Function::new([(self.locals, ValType::I32)]);
        for i in std::mem::take(&mut self.code) {
            f.instruction(&i);
        }
        f
    }

    /// `weir_init`: copies the constants (data segment `segment`) into the
    /// library's buffer.
    fn init_function(&mut self, segment: u32) -> Function {
        let len = i32_of(self.consts.len());
        let mut f = Function::new([]);
        f.instruction(&I::I32Const(len));
        f.instruction(&I::Call(self.rt.consts));
        if len > 0 {
            f.instruction(&I::I32Const(0));
            f.instruction(&I::I32Const(len));
            f.instruction(&I::MemoryInit {
                mem: 0,
                data_index: segment,
            });
        } else {
            f.instruction(&I::Drop);
        }
        f.instruction(&I::I64Const(0));
        f.instruction(&I::End);
        f
    }

    /// `weir_process`: the event loop.
    fn process(&mut self, p: &Program) {
        self.emit(I::LocalGet(0));
        self.call(self.rt.begin);
        self.emit(I::Block(BlockType::Empty));
        self.emit(I::Loop(BlockType::Empty));
        self.call(self.rt.next);
        self.emit(I::I32Eqz);
        self.emit(I::BrIf(1));
        self.emit(I::Block(BlockType::Empty));
        for &i in &p.before {
            self.column(p, i);
        }
        if let Some(c) = &p.condition {
            self.cond(c);
            self.i32(Tri::True as i32);
            self.emit(I::I32Ne);
            self.emit(I::BrIf(0));
        }
        for &i in &p.after {
            self.column(p, i);
        }
        self.output(p);
        self.emit(I::End);
        self.emit(I::Br(0));
        self.emit(I::End);
        self.emit(I::End);
        self.call(self.rt.finish);
        self.emit(I::End);
    }

    fn column(&mut self, p: &Program, i: usize) {
        let local = self.local();
        self.value(&p.columns[i].expr);
        self.emit(I::LocalSet(local));
        self.columns[i] = Some(local);
    }

    fn output(&mut self, p: &Program) {
        self.call(self.rt.key_begin);
        self.parts(&p.key);
        self.i32(i32::from(p.raw));
        self.call(self.rt.out_begin);
        match &p.record {
            Record::Template(parts) => self.parts(parts),
            Record::Object { star, columns } => {
                let mode = if p.raw { Mode::Text } else { Mode::Json };
                let first = self.local();
                self.i32(1);
                self.emit(I::LocalSet(first));
                self.lit(b"{");
                for (id, name) in star {
                    self.i32(*id as i32);
                    self.call(self.rt.has);
                    self.emit(I::If(BlockType::Empty));
                    self.member(first, name, &Expr::Field(*id), mode);
                    self.emit(I::End);
                }
                for (name, e) in columns {
                    self.member(first, name, e, mode);
                }
                self.lit(b"}");
            }
        }
        self.i32(i32::from(p.check_object));
        self.call(self.rt.out_end);
    }

    /// `,"name":value` (no comma before the first member).
    fn member(&mut self, first: u32, name: &str, e: &Expr, mode: Mode) {
        self.emit(I::LocalGet(first));
        self.emit(I::I32Eqz);
        self.emit(I::If(BlockType::Empty));
        self.lit(b",");
        self.emit(I::End);
        self.i32(0);
        self.emit(I::LocalSet(first));
        let mut key = vec![b'"'];
        weir_rules_runtime::json::escape_into(&mut key, name);
        key.extend_from_slice(b"\":");
        self.lit(&key);
        self.value(e);
        self.i32(mode as i32);
        self.call(self.rt.emit);
    }

    fn lit(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let (off, len) = self.constant(bytes);
        self.i32(off);
        self.i32(len);
        self.call(self.rt.lit);
    }

    fn parts(&mut self, parts: &[Part]) {
        for part in parts {
            match part {
                Part::Lit(bytes) => self.lit(bytes),
                Part::Value(e, mode) => {
                    self.value(e);
                    self.i32(*mode as i32);
                    self.call(self.rt.emit);
                }
            }
        }
    }

    /// Pushes the handle of `e`'s value.
    fn value(&mut self, e: &Expr) {
        match e {
            Expr::Null => self.i32(0),
            Expr::Bool(true) => self.i32(1),
            Expr::Bool(false) => self.i32(2),
            Expr::Int(n) => {
                self.emit(I::I64Const(*n));
                self.call(self.rt.int);
            }
            Expr::Float(x) => {
                self.emit(I::F64Const(Ieee64::from(*x)));
                self.call(self.rt.float);
            }
            Expr::Str(s) => {
                let (off, len) = self.constant(s.as_bytes());
                self.i32(off);
                self.i32(len);
                self.call(self.rt.constant);
            }
            Expr::Field(id) => {
                self.i32(*id as i32);
                self.call(self.rt.field);
            }
            Expr::Get(base, steps) => {
                self.value(base);
                for step in steps {
                    match step {
                        Step::Key(k) => {
                            let (off, len) = self.constant(k.as_bytes());
                            self.i32(off);
                            self.i32(len);
                            self.call(self.rt.get);
                        }
                        Step::Index(i) => {
                            self.i32(i32_of(*i));
                            self.call(self.rt.index);
                        }
                    }
                }
            }
            Expr::Column(i) => match self.columns.get(*i).copied().flatten() {
                Some(local) => self.emit(I::LocalGet(local)),
                // Unreachable by construction (columns are computed before
                // use); NULL keeps the module valid regardless.
                None => self.i32(0),
            },
            Expr::Neg(x) => {
                self.value(x);
                self.call(self.rt.neg);
            }
            Expr::Arith(op, a, b) => {
                self.i32(*op as i32);
                self.value(a);
                self.value(b);
                self.call(self.rt.arith);
            }
            Expr::Case {
                operand,
                whens,
                otherwise,
            } => {
                let subject = operand.as_ref().map(|o| {
                    let local = self.local();
                    self.value(o);
                    self.emit(I::LocalSet(local));
                    local
                });
                self.emit(I::Block(BlockType::Result(ValType::I32)));
                for (when, then) in whens {
                    match subject {
                        Some(local) => {
                            self.i32(CmpOp::Eq as i32);
                            self.emit(I::LocalGet(local));
                            self.value(when);
                            self.call(self.rt.cmp);
                        }
                        None => self.cond(when),
                    }
                    self.i32(Tri::True as i32);
                    self.emit(I::I32Eq);
                    self.emit(I::If(BlockType::Empty));
                    self.value(then);
                    self.emit(I::Br(1));
                    self.emit(I::End);
                }
                self.value(otherwise);
                self.emit(I::End);
            }
            Expr::Call(f, args) => {
                self.i32(*f as i32);
                self.i32(i32_of(args.len().min(3)));
                for a in args.iter().take(3) {
                    self.value(a);
                }
                for _ in args.len()..3 {
                    self.i32(0);
                }
                self.call(self.rt.call);
            }
            Expr::Coalesce(args) => {
                let tmp = self.local();
                self.emit(I::Block(BlockType::Result(ValType::I32)));
                if let Some((last, rest)) = args.split_last() {
                    for a in rest {
                        self.value(a);
                        self.emit(I::LocalTee(tmp));
                        self.call(self.rt.is_null);
                        self.emit(I::I32Eqz);
                        self.emit(I::If(BlockType::Empty));
                        self.emit(I::LocalGet(tmp));
                        self.emit(I::Br(1));
                        self.emit(I::End);
                    }
                    self.value(last);
                } else {
                    self.i32(0);
                }
                self.emit(I::End);
            }
            cond => {
                // A condition used as a value: true, false or NULL.
                let t = self.local();
                self.cond(cond);
                self.emit(I::LocalSet(t));
                self.i32(1);
                self.i32(2);
                self.i32(0);
                self.emit(I::LocalGet(t));
                self.emit(I::I32Eqz);
                self.emit(I::Select);
                self.emit(I::LocalGet(t));
                self.i32(Tri::True as i32);
                self.emit(I::I32Eq);
                self.emit(I::Select);
            }
        }
    }

    /// Pushes `e`'s truth: 0 false, 1 true, 2 unknown.
    fn cond(&mut self, e: &Expr) {
        match e {
            Expr::Bool(b) => self.i32(i32::from(*b)),
            Expr::Null => self.i32(Tri::Unknown as i32),
            Expr::Cmp(op, a, b) => {
                self.i32(*op as i32);
                self.value(a);
                self.value(b);
                self.call(self.rt.cmp);
            }
            Expr::And(a, b) => {
                let (ta, tb) = (self.local(), self.local());
                self.cond(a);
                self.emit(I::LocalTee(ta));
                self.emit(I::I32Eqz);
                self.emit(I::If(BlockType::Result(ValType::I32)));
                self.i32(0);
                self.emit(I::Else);
                self.cond(b);
                self.emit(I::LocalTee(tb));
                self.emit(I::I32Eqz);
                self.emit(I::If(BlockType::Result(ValType::I32)));
                self.i32(0);
                self.emit(I::Else);
                // Both are 1 or 2: true only when both are 1.
                self.i32(1);
                self.i32(2);
                self.emit(I::LocalGet(ta));
                self.emit(I::LocalGet(tb));
                self.emit(I::I32Or);
                self.i32(1);
                self.emit(I::I32Eq);
                self.emit(I::Select);
                self.emit(I::End);
                self.emit(I::End);
            }
            Expr::Or(a, b) => {
                let (ta, tb) = (self.local(), self.local());
                self.cond(a);
                self.emit(I::LocalTee(ta));
                self.i32(1);
                self.emit(I::I32Eq);
                self.emit(I::If(BlockType::Result(ValType::I32)));
                self.i32(1);
                self.emit(I::Else);
                self.cond(b);
                self.emit(I::LocalTee(tb));
                self.i32(1);
                self.emit(I::I32Eq);
                self.emit(I::If(BlockType::Result(ValType::I32)));
                self.i32(1);
                self.emit(I::Else);
                // Both are 0 or 2: unknown if either is.
                self.emit(I::LocalGet(ta));
                self.emit(I::LocalGet(tb));
                self.emit(I::I32Or);
                self.emit(I::End);
                self.emit(I::End);
            }
            Expr::Not(a) => {
                let t = self.local();
                self.cond(a);
                self.emit(I::LocalSet(t));
                self.not_of(t);
            }
            Expr::IsNull(x, negated) => {
                self.value(x);
                self.call(self.rt.is_null);
                if *negated {
                    self.emit(I::I32Eqz);
                }
            }
            Expr::In(x, list, negated) => {
                let (subject, acc, t) = (self.local(), self.local(), self.local());
                self.value(x);
                self.emit(I::LocalSet(subject));
                self.i32(0);
                self.emit(I::LocalSet(acc));
                self.emit(I::Block(BlockType::Empty));
                for item in list {
                    self.i32(CmpOp::Eq as i32);
                    self.emit(I::LocalGet(subject));
                    self.value(item);
                    self.call(self.rt.cmp);
                    self.emit(I::LocalTee(t));
                    self.i32(1);
                    self.emit(I::I32Eq);
                    self.emit(I::If(BlockType::Empty));
                    self.i32(1);
                    self.emit(I::LocalSet(acc));
                    self.emit(I::Br(1));
                    self.emit(I::End);
                    self.emit(I::LocalGet(acc));
                    self.emit(I::LocalGet(t));
                    self.emit(I::I32Or);
                    self.emit(I::LocalSet(acc));
                }
                self.emit(I::End);
                if *negated {
                    self.not_of(acc);
                } else {
                    self.emit(I::LocalGet(acc));
                }
            }
            value => {
                self.value(value);
                self.call(self.rt.truth);
            }
        }
    }

    /// Pushes NOT of the truth in local `t`: 0→1, 1→0, 2→2.
    fn not_of(&mut self, t: u32) {
        self.i32(2);
        self.emit(I::LocalGet(t));
        self.i32(1);
        self.emit(I::I32Xor);
        self.emit(I::LocalGet(t));
        self.i32(2);
        self.emit(I::I32Eq);
        self.emit(I::Select);
    }
}

fn assemble(
    lib: &Library,
    program: &Program,
    init: Function,
    process: Function,
    consts: &[u8],
) -> Result<Vec<u8>, CodegenError> {
    let fail = |what: &str, e: &dyn std::fmt::Display| CodegenError(format!("{what}: {e}"));
    let bytes = lib.bytes;
    let reader =
        |range: &Range<usize>| wasmparser::BinaryReader::new(&bytes[range.clone()], range.start);
    let mut module = Module::new();

    let mut types = TypeSection::new();
    let section =
        wasmparser::TypeSectionReader::new(reader(&lib.types)).map_err(|e| fail("types", &e))?;
    RoundtripReencoder
        .parse_type_section(&mut types, section)
        .map_err(|e| fail("types", &e))?;
    let abi_type = lib.type_count;
    types.ty().function([ValType::I32], [ValType::I64]);
    module.section(&types);

    let raw = |module: &mut Module, id: SectionId, range: &Option<Range<usize>>| {
        if let Some(r) = range {
            module.section(&RawSection {
                id: id as u8,
                data: &bytes[r.clone()],
            });
        }
    };
    raw(&mut module, SectionId::Import, &lib.imports);

    let mut functions = FunctionSection::new();
    for ty in &lib.functions {
        functions.function(*ty);
    }
    functions.function(abi_type);
    functions.function(abi_type);
    module.section(&functions);
    raw(&mut module, SectionId::Table, &lib.table);
    raw(&mut module, SectionId::Memory, &lib.memory);
    raw(&mut module, SectionId::Global, &lib.global);

    let first_new = lib.func_imports + u32_of(lib.functions.len());
    let mut exports = ExportSection::new();
    match lib.exports.get(abi::EXPORT_MEMORY) {
        Some((wasmparser::ExternalKind::Memory, index)) => {
            exports.export(abi::EXPORT_MEMORY, ExportKind::Memory, *index);
        }
        _ => {
            return Err(CodegenError(
                "the rule runtime library does not export its memory".into(),
            ));
        }
    }
    exports.export(
        abi::EXPORT_BUFFER,
        ExportKind::Func,
        lib.func(abi::EXPORT_BUFFER)?,
    );
    exports.export(
        abi::VERSION_EXPORT,
        ExportKind::Func,
        lib.func(abi::VERSION_EXPORT)?,
    );
    exports.export(abi::EXPORT_INIT, ExportKind::Func, first_new);
    exports.export(abi::EXPORT_PROCESS, ExportKind::Func, first_new + 1);
    module.section(&exports);
    raw(&mut module, SectionId::Element, &lib.element);
    module.section(&DataCountSection {
        count: lib.data_count + 1,
    });

    let mut code = CodeSection::new();
    for body in &lib.code {
        code.raw(&bytes[body.clone()]);
    }
    code.function(&init);
    code.function(&process);
    module.section(&code);

    let mut data = DataSection::new();
    if let Some(range) = &lib.data {
        let section =
            wasmparser::DataSectionReader::new(reader(range)).map_err(|e| fail("data", &e))?;
        RoundtripReencoder
            .parse_data_section(&mut data, section)
            .map_err(|e| fail("data", &e))?;
    }
    // Ours is the last segment, number `lib.data_count`.
    data.passive(consts.iter().copied());
    module.section(&data);

    let spec = FieldsSpec {
        fields: program.fields.clone(),
        paths: program.paths.clone(),
    };
    let spec = serde_json::to_vec(&spec).map_err(|e| fail("weir.fields", &e))?;
    module.section(&CustomSection {
        name: abi::FIELDS_SECTION.into(),
        data: spec.into(),
    });
    Ok(module.finish())
}
