//! What a rule file compiles to before code generation: checked, resolved
//! expressions over numbered fields, shared by the Wasm code generator and
//! the native evaluator so that both run exactly the same program.

use weir_rules_runtime::{ArithOp, CmpOp, Func, Mode};

/// Pseudo field ids (not ABI fields; the runtime library knows them).
pub(crate) const FIELD_EVENT: u32 = 0x7001;
pub(crate) const FIELD_FLAGS: u32 = 0x7002;

/// A step into a JSON value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    Key(String),
    Index(usize),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    /// An ABI field id, a pseudo field, or `PATH_FIELD_BASE + i` for the
    /// host-extracted payload path `i`.
    Field(u32),
    /// Navigation at run time into a JSON value (or a string holding JSON).
    Get(Box<Expr>, Vec<Step>),
    /// The value of SELECT column `i` (computed once per event).
    Column(usize),
    Neg(Box<Expr>),
    Arith(ArithOp, Box<Expr>, Box<Expr>),
    Cmp(CmpOp, Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    IsNull(Box<Expr>, bool),
    In(Box<Expr>, Vec<Expr>, bool),
    Case {
        operand: Option<Box<Expr>>,
        whens: Vec<(Expr, Expr)>,
        otherwise: Box<Expr>,
    },
    /// A function other than `coalesce`, with at least its minimum arity.
    Call(Func, Vec<Expr>),
    /// `coalesce`: arguments are evaluated until one is not NULL.
    Coalesce(Vec<Expr>),
}

impl Expr {
    /// Calls `f` on every SELECT column this expression reads.
    pub(crate) fn columns(&self, f: &mut dyn FnMut(usize)) {
        self.walk(&mut |e| {
            if let Expr::Column(i) = e {
                f(*i);
            }
        });
    }

    /// Calls `f` on every field id this expression reads.
    pub(crate) fn fields(&self, f: &mut dyn FnMut(u32)) {
        self.walk(&mut |e| {
            if let Expr::Field(id) = e {
                f(*id);
            }
        });
    }

    fn walk(&self, f: &mut dyn FnMut(&Expr)) {
        f(self);
        match self {
            Expr::Get(e, _) | Expr::Neg(e) | Expr::Not(e) | Expr::IsNull(e, _) => e.walk(f),
            Expr::Arith(_, a, b) | Expr::Cmp(_, a, b) | Expr::And(a, b) | Expr::Or(a, b) => {
                a.walk(f);
                b.walk(f);
            }
            Expr::In(e, list, _) => {
                e.walk(f);
                list.iter().for_each(|x| x.walk(f));
            }
            Expr::Case {
                operand,
                whens,
                otherwise,
            } => {
                if let Some(o) = operand {
                    o.walk(f);
                }
                for (w, r) in whens {
                    w.walk(f);
                    r.walk(f);
                }
                otherwise.walk(f);
            }
            Expr::Call(_, args) | Expr::Coalesce(args) => args.iter().for_each(|x| x.walk(f)),
            _ => {}
        }
    }
}

/// One piece of a rendered template.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Part {
    Lit(Vec<u8>),
    Value(Expr, Mode),
}

/// How a record is made.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Record {
    /// A template.
    Template(Vec<Part>),
    /// No template: a JSON object of the SELECT output. `star` fields (ABI
    /// field or pseudo id, name) are written when the event has them, then
    /// the named columns.
    Object {
        star: Vec<(u32, &'static str)>,
        columns: Vec<(String, Expr)>,
    },
}

/// A SELECT column.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Column {
    pub name: String,
    pub expr: Expr,
}

/// A compiled rule, ready for code generation or native evaluation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Program {
    pub columns: Vec<Column>,
    pub condition: Option<Expr>,
    /// Columns computed before the condition (it reads them), then after.
    pub before: Vec<usize>,
    pub after: Vec<usize>,
    pub key: Vec<Part>,
    pub record: Record,
    /// `flag` of the outputs: 0 JSON, 1 raw.
    pub raw: bool,
    /// The record must be checked to be a JSON object at run time (a
    /// JSON template that is a single placeholder).
    pub check_object: bool,
    /// The `weir.fields` declaration.
    pub fields: Vec<String>,
    pub paths: Vec<String>,
}
