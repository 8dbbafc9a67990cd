//! From parsed SQL and templates to the checked program: names resolved to
//! fields, payload paths and SELECT columns, functions to their numbers,
//! with the position of anything wrong.

use super::Located;
use super::ir::{Expr, FIELD_EVENT, FIELD_FLAGS, Step};
use super::sql::located;
use super::template::{TPart, Var};
use sqlparser::ast::{self, Spanned};
use sqlparser::tokenizer::Location;
use weir_guest_sdk::abi::{self, field};
use weir_rules_runtime::{ArithOp, CmpOp, Func, Mode};

/// Event kinds a rule's FROM lets through.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Kinds {
    pub publish: bool,
    pub connected: bool,
    pub disconnected: bool,
}

/// The columns of each event kind, as (ABI or pseudo field id, name), in
/// the order a `SELECT *` record lists them.
const COLUMNS: &[(u32, &str, [bool; 3])] = &[
    (FIELD_EVENT, "event", [true, true, true]),
    (field::ID as u32, "id", [true, false, false]),
    (field::CLIENTID as u32, "clientid", [true, true, true]),
    (field::USERNAME as u32, "username", [true, true, true]),
    (field::TOPIC as u32, "topic", [true, false, false]),
    (field::QOS as u32, "qos", [true, false, false]),
    (FIELD_FLAGS, "flags", [true, false, false]),
    (field::PAYLOAD as u32, "payload", [true, false, false]),
    (field::PUB_PROPS as u32, "pub_props", [true, false, false]),
    (field::PEERHOST as u32, "peerhost", [true, false, false]),
    (
        field::PUBLISH_RECEIVED_AT as u32,
        "publish_received_at",
        [true, false, false],
    ),
    (field::PEERNAME as u32, "peername", [false, true, true]),
    (field::SOCKNAME as u32, "sockname", [false, true, true]),
    (field::PROTO_NAME as u32, "proto_name", [false, true, true]),
    (field::PROTO_VER as u32, "proto_ver", [false, true, true]),
    (field::KEEPALIVE as u32, "keepalive", [false, true, false]),
    (
        field::CLEAN_START as u32,
        "clean_start",
        [false, true, false],
    ),
    (
        field::EXPIRY_INTERVAL as u32,
        "expiry_interval",
        [false, true, false],
    ),
    (
        field::CONNECTED_AT as u32,
        "connected_at",
        [false, true, false],
    ),
    (field::REASON as u32, "reason", [false, false, true]),
    (
        field::DISCONNECTED_AT as u32,
        "disconnected_at",
        [false, false, true],
    ),
    (field::TIMESTAMP as u32, "timestamp", [true, true, true]),
    (field::NODE as u32, "node", [true, true, true]),
];

impl Kinds {
    fn has(&self, available: [bool; 3]) -> bool {
        (self.publish && available[0])
            || (self.connected && available[1])
            || (self.disconnected && available[2])
    }

    /// The columns a `SELECT *` record lists for these kinds.
    pub(crate) fn star_columns(&self) -> Vec<(u32, &'static str)> {
        COLUMNS
            .iter()
            .filter(|(_, _, k)| self.has(*k))
            .map(|(id, name, _)| (*id, *name))
            .collect()
    }
}

/// A SELECT column during lowering.
#[derive(Debug, Clone)]
pub(crate) struct Col {
    pub name: String,
    /// The column's name as a path (for unaliased `payload.a.b` columns).
    pub path: Option<(String, Vec<Step>)>,
    pub expr: Expr,
}

/// What names mean while lowering.
pub(crate) struct Scope<'a> {
    pub sql: &'a str,
    pub kinds: Kinds,
    pub columns: Vec<Col>,
    /// Columns visible by name (a SELECT item sees the ones before it).
    pub visible: usize,
    pub star: bool,
    pub paths: Vec<String>,
}

const MAX_DEPTH: usize = 64;

impl Scope<'_> {
    fn err(&self, at: Location, message: impl Into<String>) -> Located {
        located(self.sql, at, message)
    }

    pub(crate) fn lower(&mut self, e: &ast::Expr) -> Result<Expr, Located> {
        self.lower_at(e, 0)
    }

    fn lower_at(&mut self, e: &ast::Expr, depth: usize) -> Result<Expr, Located> {
        let at = e.span().start;
        if depth > MAX_DEPTH {
            return Err(self.err(
                at,
                format!("the expression nests deeper than {MAX_DEPTH} levels"),
            ));
        }
        let sub = |s: &mut Self, x: &ast::Expr| s.lower_at(x, depth + 1).map(Box::new);
        Ok(match e {
            ast::Expr::Identifier(ident) if ident.quote_style == Some('"') => {
                Expr::Str(ident.value.clone())
            }
            ast::Expr::Identifier(ident) => self.name(&ident.value, &[], ident.span.start)?,
            ast::Expr::CompoundIdentifier(idents) => {
                let (root, rest) = idents
                    .split_first()
                    .ok_or_else(|| self.err(at, "empty name"))?;
                let steps: Vec<Step> = rest.iter().map(|i| Step::Key(i.value.clone())).collect();
                self.name(&root.value, &steps, root.span.start)?
            }
            ast::Expr::CompoundFieldAccess { root, access_chain } => {
                let (name, mut steps) = match root.as_ref() {
                    ast::Expr::Identifier(i) => (i.value.clone(), Vec::new()),
                    ast::Expr::CompoundIdentifier(ids) if !ids.is_empty() => (
                        ids[0].value.clone(),
                        ids[1..]
                            .iter()
                            .map(|i| Step::Key(i.value.clone()))
                            .collect(),
                    ),
                    other => {
                        return Err(self.err(
                            other.span().start,
                            "only names can be followed by `.key` or `[index]`",
                        ));
                    }
                };
                for access in access_chain {
                    steps.push(self.step(access)?);
                }
                self.name(&name, &steps, root.span().start)?
            }
            ast::Expr::Value(v) => self.literal(&v.value, v.span.start, false)?,
            ast::Expr::Nested(inner) => return self.lower_at(inner, depth + 1),
            ast::Expr::UnaryOp { op, expr } => match op {
                ast::UnaryOperator::Minus => match expr.as_ref() {
                    ast::Expr::Value(v) if matches!(v.value, ast::Value::Number(..)) => {
                        self.literal(&v.value, v.span.start, true)?
                    }
                    other => Expr::Neg(sub(self, other)?),
                },
                ast::UnaryOperator::Plus => *sub(self, expr)?,
                ast::UnaryOperator::Not => Expr::Not(sub(self, expr)?),
                other => return Err(self.err(at, format!("unsupported operator `{other}`"))),
            },
            ast::Expr::BinaryOp { left, op, right } => {
                use ast::BinaryOperator as B;
                let (l, r) = (sub(self, left)?, sub(self, right)?);
                match op {
                    B::Plus => Expr::Arith(ArithOp::Add, l, r),
                    B::Minus => Expr::Arith(ArithOp::Sub, l, r),
                    B::Multiply => Expr::Arith(ArithOp::Mul, l, r),
                    B::Divide => Expr::Arith(ArithOp::Div, l, r),
                    B::DuckIntegerDivide => Expr::Arith(ArithOp::IntDiv, l, r),
                    B::Modulo => Expr::Arith(ArithOp::Mod, l, r),
                    B::StringConcat => Expr::Arith(ArithOp::Concat, l, r),
                    B::Eq => Expr::Cmp(CmpOp::Eq, l, r),
                    B::NotEq => Expr::Cmp(CmpOp::Ne, l, r),
                    B::Lt => Expr::Cmp(CmpOp::Lt, l, r),
                    B::LtEq => Expr::Cmp(CmpOp::Le, l, r),
                    B::Gt => Expr::Cmp(CmpOp::Gt, l, r),
                    B::GtEq => Expr::Cmp(CmpOp::Ge, l, r),
                    B::PGRegexMatch => Expr::Cmp(CmpOp::TopicMatch, l, r),
                    B::And => Expr::And(l, r),
                    B::Or => Expr::Or(l, r),
                    other => return Err(self.err(at, format!("unsupported operator `{other}`"))),
                }
            }
            ast::Expr::IsNull(x) => Expr::IsNull(sub(self, x)?, false),
            ast::Expr::IsNotNull(x) => Expr::IsNull(sub(self, x)?, true),
            ast::Expr::IsTrue(x) => Expr::Cmp(CmpOp::Eq, sub(self, x)?, Box::new(Expr::Bool(true))),
            ast::Expr::IsFalse(x) => {
                Expr::Cmp(CmpOp::Eq, sub(self, x)?, Box::new(Expr::Bool(false)))
            }
            ast::Expr::In {
                expr,
                target: ast::InTarget::List(list),
                negated,
                global: false,
            } => {
                let x = sub(self, expr)?;
                let mut items = Vec::with_capacity(list.len());
                for item in list {
                    items.push(*sub(self, item)?);
                }
                Expr::In(x, items, *negated)
            }
            ast::Expr::Case {
                operand,
                conditions,
                else_result,
                ..
            } => {
                let operand = match operand {
                    Some(o) => Some(sub(self, o)?),
                    None => None,
                };
                let mut whens = Vec::with_capacity(conditions.len());
                for w in conditions {
                    whens.push((*sub(self, &w.condition)?, *sub(self, &w.result)?));
                }
                let otherwise = match else_result {
                    Some(e) => sub(self, e)?,
                    None => Box::new(Expr::Null),
                };
                Expr::Case {
                    operand,
                    whens,
                    otherwise,
                }
            }
            ast::Expr::Function(f) => self.function(f, depth)?,
            // sqlparser gives these functions syntax nodes of their own.
            ast::Expr::Substring {
                expr,
                substring_from: Some(from),
                substring_for,
                ..
            } => {
                let mut args = vec![*sub(self, expr)?, *sub(self, from)?];
                if let Some(n) = substring_for {
                    args.push(*sub(self, n)?);
                }
                Expr::Call(Func::Substr, args)
            }
            // `substr(x)`: sqlparser takes it for SUBSTRING without FROM.
            ast::Expr::Substring {
                substring_from: None,
                ..
            } => {
                let (min, max) = Func::Substr.arity();
                return Err(self.err(
                    at,
                    format!(
                        "{}() takes {min} to {max} argument(s), not 1: {}",
                        Func::Substr.name(),
                        Func::Substr.doc()
                    ),
                ));
            }
            ast::Expr::Trim {
                expr,
                trim_where: None,
                trim_what: None,
                trim_characters: None,
            } => Expr::Call(Func::Trim, vec![*sub(self, expr)?]),
            ast::Expr::Ceil {
                expr,
                field: ast::CeilFloorKind::DateTimeField(ast::DateTimeField::NoDateTime),
            } => Expr::Call(Func::Ceil, vec![*sub(self, expr)?]),
            ast::Expr::Floor {
                expr,
                field: ast::CeilFloorKind::DateTimeField(ast::DateTimeField::NoDateTime),
            } => Expr::Call(Func::Floor, vec![*sub(self, expr)?]),
            other => {
                return Err(self.err(at, format!("`{other}` is not supported in rule SQL")));
            }
        })
    }

    fn step(&self, access: &ast::AccessExpr) -> Result<Step, Located> {
        match access {
            ast::AccessExpr::Dot(ast::Expr::Identifier(i)) => Ok(Step::Key(i.value.clone())),
            ast::AccessExpr::Subscript(ast::Subscript::Index {
                index: ast::Expr::Value(v),
            }) => match &v.value {
                ast::Value::Number(n, _) => n.parse::<usize>().map(Step::Index).map_err(|_| {
                    self.err(
                        v.span.start,
                        "an index must be a whole number: [0], [1], ...",
                    )
                }),
                ast::Value::SingleQuotedString(k) => Ok(Step::Key(k.clone())),
                _ => Err(self.err(
                    v.span.start,
                    "an index must be a whole number: [0], [1], ...",
                )),
            },
            other => Err(self.err(
                other.span().start,
                format!("unsupported access `{other}`; use .key or [number]"),
            )),
        }
    }

    fn literal(&self, v: &ast::Value, at: Location, negative: bool) -> Result<Expr, Located> {
        Ok(match v {
            ast::Value::Number(text, _) => {
                let text = if negative {
                    format!("-{text}")
                } else {
                    text.clone()
                };
                if text.contains(['.', 'e', 'E']) {
                    match text.parse::<f64>() {
                        Ok(x) if x.is_finite() => Expr::Float(x),
                        _ => return Err(self.err(at, format!("`{text}` is not a finite number"))),
                    }
                } else {
                    Expr::Int(text.parse::<i64>().map_err(|_| {
                        self.err(at, format!("integer `{text}` does not fit 64 bits; write it as a float ({text}.0)"))
                    })?)
                }
            }
            ast::Value::SingleQuotedString(s) | ast::Value::DoubleQuotedString(s) => {
                Expr::Str(s.clone())
            }
            ast::Value::Boolean(b) => Expr::Bool(*b),
            ast::Value::Null => Expr::Null,
            other => return Err(self.err(at, format!("unsupported literal `{other}`"))),
        })
    }

    fn function(&mut self, f: &ast::Function, depth: usize) -> Result<Expr, Located> {
        let at = f.name.span().start;
        let name = f.name.to_string();
        let Some(func) = Func::lookup(&name) else {
            let names: Vec<&str> = Func::ALL.iter().map(|f| f.name()).collect();
            return Err(self.err(
                at,
                format!(
                    "unknown function `{name}`{}",
                    suggest(&name, names.iter().copied())
                ),
            ));
        };
        if f.filter.is_some()
            || f.over.is_some()
            || !f.within_group.is_empty()
            || !matches!(f.parameters, ast::FunctionArguments::None)
        {
            return Err(self.err(at, format!("{name}(): only plain arguments are supported")));
        }
        let mut args = Vec::new();
        match &f.args {
            ast::FunctionArguments::None => {}
            ast::FunctionArguments::List(list) => {
                if list.duplicate_treatment.is_some() || !list.clauses.is_empty() {
                    return Err(
                        self.err(at, format!("{name}(): only plain arguments are supported"))
                    );
                }
                for arg in &list.args {
                    match arg {
                        ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) => {
                            args.push(self.lower_at(e, depth + 1)?)
                        }
                        other => {
                            return Err(
                                self.err(at, format!("{name}(): unsupported argument `{other}`"))
                            );
                        }
                    }
                }
            }
            ast::FunctionArguments::Subquery(_) => {
                return Err(self.err(at, "subqueries are not supported"));
            }
        }
        let (min, max) = func.arity();
        if args.len() < min || args.len() > max {
            let expected = if min == max {
                format!("{min}")
            } else if max > 100 {
                format!("at least {min}")
            } else {
                format!("{min} to {max}")
            };
            return Err(self.err(
                at,
                format!(
                    "{}() takes {expected} argument(s), not {}: {}",
                    func.name(),
                    args.len(),
                    func.doc()
                ),
            ));
        }
        Ok(match func {
            Func::Coalesce => Expr::Coalesce(args),
            Func::Topic => {
                self.check_column(field::TOPIC as u32, "topic", at)?;
                let mut with_topic = vec![Expr::Field(u32::from(field::TOPIC))];
                with_topic.extend(args);
                Expr::Call(Func::Topic, with_topic)
            }
            Func::Concat if args.len() > 3 => {
                let mut rest = args.into_iter();
                let mut acc: Vec<Expr> = rest.by_ref().take(3).collect();
                for next in rest {
                    acc = vec![Expr::Call(Func::Concat, acc), next];
                }
                Expr::Call(Func::Concat, acc)
            }
            _ => Expr::Call(func, args),
        })
    }

    fn check_column(&self, id: u32, name: &str, at: Location) -> Result<(), Located> {
        let available = COLUMNS
            .iter()
            .find(|(i, _, _)| *i == id)
            .map_or([true; 3], |c| c.2);
        if self.kinds.has(available) {
            Ok(())
        } else {
            Err(self.err(
                at,
                format!(
                    "`{name}` is not a column of the events this rule's FROM selects ({})",
                    self.kinds_text()
                ),
            ))
        }
    }

    fn kinds_text(&self) -> String {
        let mut k = Vec::new();
        if self.kinds.publish {
            k.push("message.publish");
        }
        if self.kinds.connected {
            k.push("client.connected");
        }
        if self.kinds.disconnected {
            k.push("client.disconnected");
        }
        k.join(", ")
    }

    /// A name with steps: a visible SELECT alias, else an event column.
    fn name(&mut self, root: &str, steps: &[Step], at: Location) -> Result<Expr, Located> {
        if let Some(i) = self.columns[..self.visible]
            .iter()
            .rposition(|c| c.name == root && c.path.is_none())
        {
            return Ok(self.compose(Expr::Column(i), steps));
        }
        self.event_column(root, steps)
            .map_err(|message| self.err(at, message))
    }

    /// An event column by name (with steps into it), or why not.
    pub(crate) fn event_column(&mut self, root: &str, steps: &[Step]) -> Result<Expr, String> {
        let Some((id, name, available)) = COLUMNS.iter().find(|(_, n, _)| *n == root) else {
            let mut names: Vec<&str> = COLUMNS.iter().map(|c| c.1).collect();
            let aliases: Vec<String> = self.columns[..self.visible]
                .iter()
                .map(|c| c.name.clone())
                .collect();
            names.extend(aliases.iter().map(String::as_str));
            let hint = if root.eq_ignore_ascii_case("retain") || root.eq_ignore_ascii_case("dup") {
                " (EMQX has no top-level retain: use flags.retain / flags.dup)".to_owned()
            } else {
                suggest(root, names.into_iter())
            };
            return Err(format!("unknown column `{root}`{hint}"));
        };
        if !self.kinds.has(*available) {
            return Err(format!(
                "`{name}` is not a column of the events this rule's FROM selects ({})",
                self.kinds_text()
            ));
        }
        if *id == FIELD_FLAGS {
            return match steps.split_first() {
                None => Ok(Expr::Field(FIELD_FLAGS)),
                Some((Step::Key(k), rest)) if k == "dup" || k == "retain" => {
                    let id = if k == "dup" {
                        field::FLAGS_DUP
                    } else {
                        field::FLAGS_RETAIN
                    };
                    Ok(self.compose(Expr::Field(u32::from(id)), rest))
                }
                Some(_) => Err("flags has only `dup` and `retain`".into()),
            };
        }
        Ok(self.compose(Expr::Field(*id), steps))
    }

    /// `base` followed by `steps`: payload steps become host-extracted
    /// paths when the ABI's path syntax can say them, other steps run-time
    /// navigation.
    pub(crate) fn compose(&mut self, base: Expr, steps: &[Step]) -> Expr {
        if steps.is_empty() {
            return base;
        }
        let payload_path = match &base {
            Expr::Field(id) if *id == u32::from(field::PAYLOAD) => Some("payload".to_owned()),
            Expr::Field(id) if *id >= u32::from(abi::PATH_FIELD_BASE) => self
                .paths
                .get((*id - u32::from(abi::PATH_FIELD_BASE)) as usize)
                .cloned(),
            _ => None,
        };
        if let Some(mut path) = payload_path
            && let Some(i) = extend_path(&mut path, steps)
                .then(|| self.path_index(path))
                .flatten()
        {
            return Expr::Field(u32::from(abi::PATH_FIELD_BASE) + i);
        }
        match base {
            Expr::Column(i) if matches!(self.columns[i].expr, Expr::Field(_) | Expr::Get(..)) => {
                let inner = self.columns[i].expr.clone();
                self.compose(inner, steps)
            }
            Expr::Get(inner, mut first) => {
                first.extend_from_slice(steps);
                Expr::Get(inner, first)
            }
            other => Expr::Get(Box::new(other), steps.to_vec()),
        }
    }

    fn path_index(&mut self, path: String) -> Option<u32> {
        let i = match self.paths.iter().position(|p| *p == path) {
            Some(i) => i,
            None if self.paths.len() < abi::MAX_PATHS => {
                self.paths.push(path);
                self.paths.len() - 1
            }
            None => return None,
        };
        u32::try_from(i).ok()
    }

    /// Resolves a template placeholder against the SELECT output.
    pub(crate) fn var(&mut self, var: &Var) -> Result<Expr, String> {
        if let Some(i) = self.columns.iter().rposition(|c| c.name == var.text) {
            return Ok(Expr::Column(i));
        }
        // The longest column whose name is a prefix of the placeholder.
        let mut best: Option<(usize, usize)> = None;
        for (i, c) in self.columns.iter().enumerate() {
            let (root, steps) = match &c.path {
                Some((root, steps)) => (root.as_str(), steps.as_slice()),
                None => (c.name.as_str(), &[][..]),
            };
            if root == var.root
                && var.steps.starts_with(steps)
                && best.is_none_or(|(_, n)| steps.len() >= n)
            {
                best = Some((i, steps.len()));
            }
        }
        if let Some((i, n)) = best {
            return Ok(self.compose(Expr::Column(i), &var.steps[n..]));
        }
        if self.star {
            return self
                .event_column(&var.root, &var.steps)
                .map_err(|m| format!("{m} in `${{{}}}`", var.text));
        }
        let names: Vec<String> = self.columns.iter().map(|c| c.name.clone()).collect();
        Err(format!(
            "`${{{}}}` is not in the SELECT output{}; the output has {}",
            var.text,
            suggest(&var.root, names.iter().map(String::as_str)),
            if names.is_empty() {
                "no columns".into()
            } else {
                names.join(", ")
            }
        ))
    }

    /// Resolves a template's placeholders into parts.
    pub(crate) fn parts(
        &mut self,
        parts: Vec<TPart>,
        value_mode: Mode,
        in_string_mode: Mode,
    ) -> Result<Vec<super::ir::Part>, Located> {
        let mut out = Vec::with_capacity(parts.len());
        for part in parts {
            out.push(match part {
                TPart::Lit(text) => super::ir::Part::Lit(text.into_bytes()),
                TPart::Var {
                    var,
                    in_string,
                    line,
                    column,
                } => {
                    let expr = self.var(&var).map_err(|message| Located {
                        line,
                        column,
                        message,
                    })?;
                    super::ir::Part::Value(
                        expr,
                        if in_string {
                            in_string_mode
                        } else {
                            value_mode
                        },
                    )
                }
            });
        }
        Ok(out)
    }
}

/// Appends `steps` to a payload path in the ABI's syntax; false when a key
/// cannot be written in it.
fn extend_path(path: &mut String, steps: &[Step]) -> bool {
    for step in steps {
        match step {
            Step::Index(i) => path.push_str(&format!("[{i}]")),
            Step::Key(k) if !k.is_empty() && !k.contains(['.', '[', '\'']) => {
                path.push('.');
                path.push_str(k);
            }
            Step::Key(k) if !k.contains('\'') => {
                path.push_str(".'");
                path.push_str(k);
                path.push('\'');
            }
            Step::Key(_) => return false,
        }
    }
    // The ABI's parser must read back exactly these steps.
    abi::parse_payload_path(path).is_ok_and(|segs| {
        let tail = &segs[segs.len().saturating_sub(steps.len())..];
        tail.len() == steps.len()
            && tail.iter().zip(steps).all(|(seg, step)| match (seg, step) {
                (abi::PathSeg::Key(a), Step::Key(b)) => a == b,
                (abi::PathSeg::Index(a), Step::Index(b)) => a == b,
                _ => false,
            })
    })
}

/// ` (did you mean `x`?)` when a known name is close to `name`.
pub(crate) fn suggest<'n>(name: &str, known: impl Iterator<Item = &'n str>) -> String {
    known
        .map(|k| (distance(name, k), k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4) && *d < name.len().max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| format!(" (did you mean `{k}`?)"))
        .unwrap_or_default()
}

/// Levenshtein distance over chars.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}
