//! The evaluator: what a [`Program`] makes of one event, with EMQX's rule
//! semantics.
//!
//! The order of work is EMQX's: the SELECT list is evaluated field by field
//! into the output (each field sees the output so far, then the event's
//! columns), WHERE sees the output over the columns, and FOREACH makes one
//! output per element of its collection that INCASE lets through. An
//! operation that fails fails the whole event, naming the clause, as an
//! exception does in EMQX: the event gets an error and no output.

use crate::emit::emit;
use crate::funcs::{self, Env};
use crate::json;
use crate::ops;
use crate::path::{self, Get};
use crate::program::{Expr, Field, Literal, Part, Program, Record, Step, Template};
use crate::value::{Map, OpError, Value};

/// The event's columns (and, in FOREACH, what stands over them): where a
/// name is looked up when the SELECT output does not have it.
pub trait Scope {
    /// The value of `name`; `Undefined` when there is none.
    fn get(&self, name: &str) -> Value;
    /// Every entry, for `SELECT *` and the outputs of FOREACH without DO.
    fn entries(&self) -> Map;
}

/// What the host gives an evaluation.
pub trait Host {
    /// Wall clock, ms since the Unix epoch.
    fn now_ms(&self) -> i64;
    /// Fills `buf` with random bytes.
    fn random(&self, buf: &mut [u8]);
}

/// One output of an event: its partition key and record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub key: String,
    pub record: Vec<u8>,
}

/// What a program makes of an event: its outputs (none when WHERE is not
/// true or FOREACH has nothing), or why the event failed.
pub fn run(program: &Program, scope: &dyn Scope, host: &dyn Host) -> Result<Vec<Rendered>, String> {
    let ev = Evaluator { host };
    if program.foreach.is_none() {
        let mut out = Output::new(scope);
        ev.select(&program.fields, &mut out)
            .map_err(within("SELECT"))?;
        if let Some(c) = &program.condition {
            let ctx = Layered { output: &out };
            if !ev.passes(c, &ctx).map_err(within("WHERE"))? {
                return Ok(Vec::new());
            }
        }
        return Ok(vec![render_output(program, &out)?]);
    }
    ev.foreach(program, scope)?
        .iter()
        .map(|map| render_output(program, map))
        .collect()
}

/// What a template reads from: an output.
trait Source {
    fn get(&self, name: &str) -> Value;
    fn whole(&self) -> Map;
}

impl Source for Output<'_> {
    fn get(&self, name: &str) -> Value {
        Output::get(self, name)
    }

    fn whole(&self) -> Map {
        self.materialize()
    }
}

impl Source for Map {
    fn get(&self, name: &str) -> Value {
        self.get(name).cloned().unwrap_or(Value::Undefined)
    }

    fn whole(&self) -> Map {
        self.clone()
    }
}

fn render_output(program: &Program, out: &dyn Source) -> Result<Rendered, String> {
    let key = match &program.key {
        Some(t) => {
            let mut k = Vec::new();
            render(&mut k, t, out);
            String::from_utf8(k)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
        }
        None => String::new(),
    };
    let mut record = Vec::new();
    match &program.record {
        Record::Template(t) => render(&mut record, t, out),
        Record::Output => json::encode_into(&mut record, &Value::object(out.whole())),
    }
    if program.check_object && record.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(
            "the record template gave a value that is not a JSON object, which an HRecord must be"
                .into(),
        );
    }
    Ok(Rendered { key, record })
}

/// Renders `t` over the output `out`; each placeholder carries its mode.
fn render(buf: &mut Vec<u8>, t: &Template, out: &dyn Source) {
    for part in &t.parts {
        match part {
            Part::Lit(text) => buf.extend_from_slice(text.as_bytes()),
            Part::Var { path, mode } => {
                let v = match path.split_first() {
                    None => Value::object(out.whole()),
                    Some((Step::Key(root), rest)) => {
                        let base = out.get(root);
                        let steps: Vec<Get<'_>> = rest
                            .iter()
                            .map(|s| match s {
                                Step::Key(k) => Get::Key(k),
                                Step::Index(i) => Get::Index(Value::Int(*i)),
                                Step::Dynamic(_) => Get::Index(Value::Undefined),
                            })
                            .collect();
                        path::get(&base, &steps)
                    }
                    Some(_) => Value::Undefined,
                };
                emit(buf, &v, *mode);
            }
        }
    }
}

/// An output being built (EMQX's "selected" map). After `*`, every entry
/// of the scope belongs to it without being copied; `map` holds what the
/// fields put, over the scope.
struct Output<'s> {
    scope: &'s dyn Scope,
    star: bool,
    map: Map,
}

impl<'s> Output<'s> {
    fn new(scope: &'s dyn Scope) -> Self {
        Output {
            scope,
            star: false,
            map: Map::new(),
        }
    }

    fn get(&self, name: &str) -> Value {
        match self.map.get(name) {
            Some(v) => v.clone(),
            None if self.star => self.scope.get(name),
            None => Value::Undefined,
        }
    }

    /// `*`: the scope's entries join the output and win over what the
    /// fields before put under the same names.
    fn star(&mut self) {
        if !self.star {
            let scope = self.scope;
            self.map.retain(|k, _| scope.get(k).is_undefined());
            self.star = true;
        }
    }

    fn put(&mut self, at: &[crate::program::PutStep], value: Value) {
        use crate::program::PutStep;
        let Some(PutStep::Key(root)) = at.first() else {
            return;
        };
        if value.is_undefined() {
            return;
        }
        let current = match self.map.remove(root) {
            Some(v) => v,
            None if self.star => self.scope.get(root),
            None => Value::Undefined,
        };
        // A payload that is JSON is decoded before something is put into it.
        let current = match current {
            Value::Bytes(_) | Value::Str(_) if root == "payload" && at.len() > 1 => {
                match current.as_binary().map(json::decode) {
                    Some(Ok(decoded)) => decoded,
                    _ => current,
                }
            }
            other => other,
        };
        let updated = path::put(current, &at[1..], value);
        if !updated.is_undefined() {
            self.map.insert(root.clone(), updated);
        }
    }

    fn materialize(&self) -> Map {
        let mut all = if self.star {
            self.scope.entries()
        } else {
            Map::new()
        };
        for (k, v) in &self.map {
            all.insert(k.clone(), v.clone());
        }
        all
    }
}

/// The output over a scope: how WHERE and later fields see names.
struct Layered<'a> {
    output: &'a Output<'a>,
}

impl Scope for Layered<'_> {
    fn get(&self, name: &str) -> Value {
        match self.output.get(name) {
            Value::Undefined => self.output.scope.get(name),
            v => v,
        }
    }

    fn entries(&self) -> Map {
        let mut all = self.output.scope.entries();
        for (k, v) in self.output.materialize() {
            all.insert(k, v);
        }
        all
    }
}

/// A scope with some entries standing over another (FOREACH's item).
struct Over<'a> {
    base: &'a dyn Scope,
    top: Map,
}

impl Scope for Over<'_> {
    fn get(&self, name: &str) -> Value {
        match self.top.get(name) {
            Some(v) => v.clone(),
            None => self.base.get(name),
        }
    }

    fn entries(&self) -> Map {
        let mut all = self.base.entries();
        for (k, v) in &self.top {
            all.insert(k.clone(), v.clone());
        }
        all
    }
}

/// Names the clause an error came from.
fn within(clause: &'static str) -> impl Fn(OpError) -> String {
    move |e| format!("in {clause}: {e}")
}

struct Evaluator<'e> {
    host: &'e dyn Host,
}

/// Where names are looked up: the output being built, then the scope.
struct Ctx<'a> {
    output: Option<&'a Output<'a>>,
    scope: &'a dyn Scope,
}

impl Evaluator<'_> {
    /// FOREACH's outputs, one per element that INCASE lets through.
    fn foreach(&self, p: &Program, scope: &dyn Scope) -> Result<Vec<Map>, String> {
        let Some(fe) = &p.foreach else {
            return Ok(Vec::new());
        };
        // The fields before the last are evaluated as SELECT's are; the
        // last is the collection (and joins the output under its name).
        let (last, before) = p
            .fields
            .split_last()
            .ok_or_else(|| "FOREACH has no collection".to_owned())?;
        let mut out = Output::new(scope);
        self.select(before, &mut out).map_err(within("FOREACH"))?;
        let collection = match last {
            Field::Star => {
                out.star();
                Value::Undefined
            }
            Field::Expr { expr, at } => {
                let ctx = Ctx {
                    output: Some(&out),
                    scope,
                };
                let v = self.eval(expr, &ctx).map_err(within("FOREACH"))?;
                out.put(at, v.clone());
                v
            }
        };
        let selected = Layered { output: &out };
        if let Some(c) = &p.condition
            && !self.passes(c, &selected).map_err(within("WHERE"))?
        {
            return Ok(Vec::new());
        }
        let items = match collection {
            Value::Array(items) => items,
            _ => return Ok(Vec::new()),
        };
        let mut outputs = Vec::new();
        for item in items.iter() {
            let mut top = Map::new();
            top.insert(fe.item.clone(), item.clone());
            let with_item = Over {
                base: &selected,
                top,
            };
            if let Some(c) = &fe.incase
                && !self.passes(c, &with_item).map_err(within("INCASE"))?
            {
                continue;
            }
            if fe.each.is_empty() {
                outputs.push(with_item.entries());
            } else {
                let mut each = Output::new(&with_item);
                self.select(&fe.each, &mut each).map_err(within("DO"))?;
                outputs.push(each.materialize());
            }
        }
        Ok(outputs)
    }

    fn select(&self, fields: &[Field], out: &mut Output<'_>) -> Result<(), OpError> {
        for field in fields {
            self.field(field, out)?;
        }
        Ok(())
    }

    fn field(&self, field: &Field, out: &mut Output<'_>) -> Result<(), OpError> {
        match field {
            Field::Star => out.star(),
            Field::Expr { expr, at } => {
                let v = self.eval(
                    expr,
                    &Ctx {
                        output: Some(out),
                        scope: out.scope,
                    },
                )?;
                out.put(at, v);
            }
        }
        Ok(())
    }

    /// Whether a condition lets the event (or element) through: only
    /// `true` does; anything but `true` or `false` is an error, as in EMQX.
    fn passes(&self, c: &Expr, scope: &dyn Scope) -> Result<bool, OpError> {
        match self.cond(
            c,
            &Ctx {
                output: None,
                scope,
            },
        )? {
            Value::Bool(b) => Ok(b),
            other => Err(OpError(
                format!("the condition gave {}, not true or false", other.kind()).into(),
            )),
        }
    }

    /// A condition's value (EMQX's `match_conditions`).
    fn cond(&self, c: &Expr, ctx: &Ctx<'_>) -> Result<Value, OpError> {
        let side = |v: Value, op: &str| match v {
            Value::Bool(b) => Ok(b),
            other => Err(OpError(
                format!(
                    "`{op}` joins conditions, but one side gave {}",
                    other.kind()
                )
                .into(),
            )),
        };
        match c {
            Expr::And(a, b) => {
                if side(self.cond(a, ctx)?, "and")? {
                    self.cond(b, ctx)
                } else {
                    Ok(Value::Bool(false))
                }
            }
            Expr::Or(a, b) => {
                if side(self.cond(a, ctx)?, "or")? {
                    Ok(Value::Bool(true))
                } else {
                    self.cond(b, ctx)
                }
            }
            Expr::Not(x) => Ok(match self.cond(x, ctx)? {
                Value::Bool(b) => Value::Bool(!b),
                _ => Value::Bool(false),
            }),
            other => self.eval(other, ctx),
        }
    }

    fn lookup(&self, name: &str, ctx: &Ctx<'_>) -> Value {
        if let Some(out) = ctx.output {
            let v = out.get(name);
            if !v.is_undefined() {
                return v;
            }
        }
        ctx.scope.get(name)
    }

    fn eval(&self, e: &Expr, ctx: &Ctx<'_>) -> Result<Value, OpError> {
        Ok(match e {
            Expr::Const(l) => literal(l),
            Expr::Var(name) => self.lookup(name, ctx),
            Expr::Path(root, steps) => self.path(root, steps, ctx)?,
            Expr::Range(a, b) => path::range(*a, *b)?,
            Expr::Slice(x, a, b) => path::slice(&self.eval(x, ctx)?, *a, *b)?,
            Expr::List(items) => Value::array(
                items
                    .iter()
                    .map(|x| self.eval(x, ctx))
                    .collect::<Result<_, _>>()?,
            ),
            Expr::Neg(x) => ops::neg(&self.eval(x, ctx)?)?,
            Expr::Arith(op, a, b) => ops::arith(*op, &self.eval(a, ctx)?, &self.eval(b, ctx)?)?,
            Expr::Cmp(op, a, b) => {
                Value::Bool(ops::compare(*op, &self.eval(a, ctx)?, &self.eval(b, ctx)?)?)
            }
            Expr::And(..) | Expr::Or(..) | Expr::Not(_) => self.cond(e, ctx)?,
            Expr::In(x, list) => {
                let v = self.eval(x, ctx)?;
                let mut found = false;
                for item in list {
                    // Every element is evaluated, as EMQX does.
                    if self.eval(item, ctx)?.exact_eq(&v) {
                        found = true;
                    }
                }
                Value::Bool(found)
            }
            Expr::Case {
                operand,
                whens,
                otherwise,
            } => {
                for (when, then) in whens {
                    let hit = match operand {
                        None => matches!(self.cond(when, ctx)?, Value::Bool(true)),
                        Some(x) => {
                            let w = self.eval(when, ctx)?;
                            self.eval(x, ctx)?.exact_eq(&w)
                        }
                    };
                    if hit {
                        return self.eval(then, ctx);
                    }
                }
                match otherwise {
                    Some(x) => self.eval(x, ctx)?,
                    None => Value::Undefined,
                }
            }
            Expr::Call(call) => {
                let f = call.func()?;
                let args = call
                    .args
                    .iter()
                    .map(|x| self.eval(x, ctx))
                    .collect::<Result<Vec<_>, _>>()?;
                let env = CallEnv {
                    host: self.host,
                    ctx,
                    ev: self,
                };
                (f.call)(&args, &env)?
            }
        })
    }

    /// A path: the first layer (output, then scope) where it finds
    /// something. Rooted at `payload`, the payload must be JSON.
    fn path(&self, root: &str, steps: &[Step], ctx: &Ctx<'_>) -> Result<Value, OpError> {
        let mut evaluated = Vec::with_capacity(steps.len());
        for s in steps {
            evaluated.push(match s {
                Step::Key(k) => Get::Key(k),
                Step::Index(i) => Get::Index(Value::Int(*i)),
                Step::Dynamic(x) => Get::Index(self.eval(x, ctx)?),
            });
        }
        let layers: [Option<Value>; 2] =
            [ctx.output.map(|o| o.get(root)), Some(ctx.scope.get(root))];
        for base in layers.into_iter().flatten() {
            if base.is_undefined() {
                continue;
            }
            let base = if root == "payload" {
                match &base {
                    Value::Bytes(_) | Value::Str(_) => {
                        json::decode(base.as_binary().unwrap_or_default()).map_err(|e| {
                            OpError(
                                format!("the payload is {e}, so `payload.…` cannot be read").into(),
                            )
                        })?
                    }
                    _ => base,
                }
            } else {
                base
            };
            let v = path::get(&base, &evaluated);
            if !v.is_undefined() {
                return Ok(v);
            }
        }
        Ok(Value::Undefined)
    }
}

fn literal(l: &Literal) -> Value {
    match l {
        Literal::Undefined => Value::Undefined,
        Literal::Bool(b) => Value::Bool(*b),
        Literal::Int(n) => Value::Int(*n),
        Literal::Big(text) => crate::conv::parse_integer(text).unwrap_or(Value::Undefined),
        Literal::Float(x) => Value::Float(*x),
        Literal::Str(s) => Value::str(s.as_str()),
    }
}

/// The environment functions see: the host's clock and randomness, and
/// names looked up as the rule sees them.
struct CallEnv<'a> {
    host: &'a dyn Host,
    ctx: &'a Ctx<'a>,
    ev: &'a Evaluator<'a>,
}

impl Env for CallEnv<'_> {
    fn now_ms(&self) -> i64 {
        self.host.now_ms()
    }

    fn random(&self, buf: &mut [u8]) {
        self.host.random(buf)
    }

    fn column(&self, name: &str) -> Value {
        self.ev.lookup(name, self.ctx)
    }
}

impl crate::program::Call {
    /// The library function this call names.
    pub fn func(&self) -> Result<&'static funcs::Func, OpError> {
        if let Some(f) = self.resolved.get() {
            return Ok(f);
        }
        let f = funcs::lookup(&self.name)
            .ok_or_else(|| OpError(format!("unknown function `{}`", self.name).into()))?;
        Ok(self.resolved.get_or_init(|| f))
    }
}
