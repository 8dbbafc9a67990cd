//! A checked rule: what weir's compiler makes of a rule file and what the
//! evaluator runs, on the host and inside the rule runtime module alike.
//!
//! The compiler resolves names (an event column or an earlier SELECT
//! alias), functions (by name, with their arity checked) and templates
//! before anything runs, so a rule that cannot work is refused when it is
//! loaded. What stays dynamic is what EMQX decides per event: a name is
//! looked up first in what the SELECT has produced so far, then among the
//! event's columns.
//!
//! A program is plain data (serde), so the host can hand it to the runtime
//! module in the plugin's init document.

use crate::emit::Mode;
use crate::ops::{ArithOp, CmpOp};
use serde::{Deserialize, Serialize};

/// A rule: `SELECT` or `FOREACH`, its `WHERE`, and how each output is
/// written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Program {
    /// The SELECT list; for FOREACH, the list whose last field is the
    /// collection.
    pub fields: Vec<Field>,
    pub foreach: Option<Foreach>,
    pub condition: Option<Expr>,
    /// The partition key template; `None`: the empty key.
    pub key: Option<Template>,
    pub record: Record,
    /// Outputs are raw records (else HRecords).
    pub raw: bool,
    /// The record must turn out to be a JSON object (an HRecord template
    /// that is a single placeholder).
    pub check_object: bool,
}

/// `FOREACH`'s parts after its field list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Foreach {
    /// The name each element of the collection goes by (`item` unless the
    /// collection has an alias).
    pub item: String,
    /// `DO`: the fields of each output; empty: each output is every column
    /// with the SELECT output and the item.
    pub each: Vec<Field>,
    /// `INCASE`: which elements make an output.
    pub incase: Option<Expr>,
}

/// A field of a SELECT (or FOREACH, or DO) list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Field {
    /// `*`: every column (every entry of the scope, in DO).
    Star,
    /// An expression and where its value goes in the output: its alias, or
    /// for an unaliased name or path the path itself (`payload.a.b` puts
    /// `{"payload": {"a": {"b": ...}}}`).
    Expr { expr: Expr, at: Vec<PutStep> },
}

/// A step of an output path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PutStep {
    Key(String),
    /// 1-based, negative from the end.
    Index(i64),
    /// `[0]`: insert at the head; `[-0]`: append at the tail.
    Head,
    Tail,
}

/// A value expression.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Expr {
    Const(Literal),
    /// A name: an entry of the SELECT output so far, else an event column.
    Var(String),
    /// A name followed by steps (`payload.a[1]`). A path rooted at
    /// `payload` decodes the payload as JSON and fails when it is not.
    Path(String, Vec<Step>),
    /// `[a..b]`: the integers from `a` to `b`.
    Range(i64, i64),
    /// `x[a..b]`: the elements `a` to `b` (1-based, negative from the end).
    Slice(Box<Expr>, i64, i64),
    /// `[a, b, ...]`.
    List(Vec<Expr>),
    Neg(Box<Expr>),
    Arith(ArithOp, Box<Expr>, Box<Expr>),
    Cmp(CmpOp, Box<Expr>, Box<Expr>),
    /// A condition joined with `and` (both sides conditions).
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    /// `x IN (a, b, ...)`: exact membership.
    In(Box<Expr>, Vec<Expr>),
    /// `CASE WHEN c THEN v ... ELSE e END` (`operand`: `CASE x WHEN v ...`).
    Case {
        operand: Option<Box<Expr>>,
        whens: Vec<(Expr, Expr)>,
        otherwise: Option<Box<Expr>>,
    },
    /// A function of the library (checked by the compiler).
    Call(Call),
}

/// A call of a library function, found by name once and then remembered.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Call {
    pub name: String,
    pub args: Vec<Expr>,
    #[serde(skip)]
    pub(crate) resolved: std::sync::OnceLock<&'static crate::funcs::Func>,
}

impl Call {
    pub fn new(name: impl Into<String>, args: Vec<Expr>) -> Self {
        Call {
            name: name.into(),
            args,
            resolved: std::sync::OnceLock::new(),
        }
    }
}

impl PartialEq for Call {
    fn eq(&self, other: &Call) -> bool {
        self.name == other.name && self.args == other.args
    }
}

/// A constant of the SQL text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Literal {
    Undefined,
    Bool(bool),
    Int(i64),
    /// An integer outside `i64`, in decimal.
    Big(String),
    Float(f64),
    Str(String),
}

/// A step of a path that reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Step {
    Key(String),
    /// 1-based, negative from the end; never 0 (the compiler refuses it).
    Index(i64),
    /// An index computed from a name or path.
    Dynamic(Box<Expr>),
}

/// How an output's record is made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Record {
    /// A template.
    Template(Template),
    /// The output itself, as a JSON object.
    Output,
}

/// A template: literal text and placeholders.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Template {
    pub parts: Vec<Part>,
}

/// A piece of a template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Part {
    Lit(String),
    /// `${a.b}`: the output's entry `a`, then steps into it; an empty path
    /// (`${.}`) is the whole output.
    Var {
        path: Vec<Step>,
        mode: Mode,
    },
}
