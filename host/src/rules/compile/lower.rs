//! From the parsed SQL and templates to the checked [`Program`]: every name
//! resolved to an event column, an earlier field of the output or a
//! FOREACH item, every function to the library with its argument count
//! checked, conditions only where EMQX takes conditions, template
//! placeholders against what the output will hold, each with the position
//! of anything wrong and a suggestion when a near name exists.
//!
//! What is refused here, EMQX would have evaluated to `undefined` or failed
//! on at run time; weir says so when the rule is loaded instead.

use super::Located;
use super::sql::{Arith, Cmp, Node, NodeKind, Seg, SelectField, Statement};
use super::template::{TPart, Var};
use crate::suggest;
use std::collections::BTreeSet;
use weir_guest_sdk::abi::Kind;
use weir_guest_sdk::schema;
use weir_rules_runtime::funcs;
use weir_rules_runtime::program::{
    Call, Expr, Field, Foreach, Literal, Part, Program, PutStep, Record, Step, Template,
};
use weir_rules_runtime::{ArithOp, CmpOp, Mode};

/// Event kinds a rule's FROM lets through, as a bit set by kind number.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Kinds(u32);

/// Functions of the library that read the event themselves (so the rule
/// needs the event's columns sent whatever it names).
const READS_EVENT: &[&str] = &[
    "msgid", "qos", "flags", "flag", "topic", "clientip", "peerhost", "username", "payload",
];

/// Whether any kind of event has column `name`.
fn is_column(name: &str) -> bool {
    schema::EVENTS.iter().any(|s| s.has(name))
}

/// Columns EMQX 5 gives some events that weir has no value for: a rule
/// naming one would get undefined where EMQX has a value, so it is refused.
const EMQX_ONLY_COLUMNS: &[&str] = &[
    "client_attrs",
    "mountpoint",
    "is_bridge",
    "conn_props",
    "disconn_props",
    "sub_props",
    "unsub_props",
    "puback_props",
    "metadata",
    "action",
    "result",
    "authz_source",
    "is_anonymous",
    "is_superuser",
    "validation",
    "transformation",
];

impl Kinds {
    pub(crate) fn insert(&mut self, kind: Kind) {
        self.0 |= 1 << kind as u32;
    }

    fn iter(&self) -> impl Iterator<Item = Kind> + '_ {
        Kind::ALL
            .into_iter()
            .filter(|k| self.0 & (1 << *k as u32) != 0)
    }

    /// The names of the columns the kinds have, each once, in the schema's
    /// order.
    pub(crate) fn columns(&self) -> impl Iterator<Item = &'static str> + '_ {
        let mut seen = BTreeSet::new();
        self.iter()
            .flat_map(|k| schema::schema(k).columns.iter().copied())
            .filter(move |c| seen.insert(*c))
    }

    fn text(&self) -> String {
        self.iter().map(Kind::name).collect::<Vec<_>>().join(", ")
    }
}

/// The ABI field names that carry the columns `names`.
pub(crate) fn abi_fields<'a>(names: impl Iterator<Item = &'a str>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for name in names {
        match name {
            "event" => {}
            "flags" => {
                out.insert("flags.dup".to_owned());
                out.insert("flags.retain".to_owned());
            }
            other => {
                out.insert(other.to_owned());
            }
        }
    }
    out
}

/// A rule's parts to lower.
pub(crate) struct Input<'a> {
    pub sql: &'a str,
    pub statement: &'a Statement,
    pub kinds: Kinds,
    /// The record template and whether it is an HRecord (JSON) template.
    pub record: Option<(&'a str, bool)>,
    pub key: Option<&'a str>,
}

/// A lowering error: where (the SQL, the record template or the key
/// template) and what.
#[derive(Debug)]
pub(crate) enum LowerError {
    Sql(Located),
    Record(Located),
    Key(Located),
}

/// The checked program and the ABI fields it needs.
#[derive(Debug)]
pub(crate) struct Lowered {
    pub program: Program,
    pub fields: Vec<String>,
    /// What is legal but probably not meant (a name no event has).
    pub warnings: Vec<String>,
}

pub(crate) fn lower(input: Input<'_>) -> Result<Lowered, LowerError> {
    let st = input.statement;
    let mut cx = Cx {
        sql: input.sql,
        kinds: input.kinds,
        defined: Vec::new(),
        extra: Vec::new(),
        star: false,
        used: BTreeSet::new(),
        all_fields: false,
        warnings: Vec::new(),
    };
    let fields = cx.fields(&st.fields).map_err(LowerError::Sql)?;
    // WHERE sees every field of the SELECT (or FOREACH) list over the
    // columns.
    let selected = cx.defined.clone();
    let selected_star = cx.star;
    let condition = match &st.condition {
        Some(c) => Some(cx.condition(c).map_err(LowerError::Sql)?),
        None => None,
    };
    let (foreach, output_names, output_star) = if st.foreach {
        let item = match st.fields.last() {
            Some(SelectField::Expr { alias: Some(a), .. }) => match &a.kind {
                NodeKind::Name { name, .. } => name.clone(),
                _ => {
                    return Err(LowerError::Sql(cx.err(
                        a.at,
                        "the FOREACH list's alias must be a name (it names each element)",
                    )));
                }
            },
            Some(SelectField::Expr { .. }) => "item".to_owned(),
            _ => {
                return Err(LowerError::Sql(cx.err(
                    st.fields.last().map_or(0, field_at),
                    "FOREACH needs an expression that gives the list to iterate, e.g. FOREACH payload.sensors",
                )));
            }
        };
        // INCASE and DO see the columns, the FOREACH fields and the item.
        cx.extra = selected.clone();
        cx.extra.push(item.clone());
        cx.defined.clear();
        let incase = match &st.incase {
            Some(c) => Some(cx.condition(c).map_err(LowerError::Sql)?),
            None => None,
        };
        cx.star = false;
        let each = cx.fields(&st.each).map_err(LowerError::Sql)?;
        let (names, star) = if each.is_empty() {
            // Each output is every column, the FOREACH fields and the item.
            (cx.extra.clone(), true)
        } else if cx.star {
            let mut names = cx.defined.clone();
            names.extend(cx.extra.iter().cloned());
            (names, true)
        } else {
            (cx.defined.clone(), false)
        };
        cx.star = cx.star || selected_star;
        (Some(Foreach { item, each, incase }), names, star)
    } else {
        (None, selected, selected_star)
    };
    let out = OutputNames {
        names: output_names,
        star: output_star,
    };

    let (record, check_object, raw) = match input.record {
        Some((text, hrecord)) => {
            let parts = if hrecord {
                super::template::parse_json(text)
            } else {
                super::template::parse_text(text)
            }
            .map_err(LowerError::Record)?;
            let single = hrecord
                && parts
                    .iter()
                    .filter(|p| !matches!(p, TPart::Lit(l) if l.trim().is_empty()))
                    .count()
                    == 1
                && parts.iter().any(|p| matches!(p, TPart::Var { .. }));
            let (value, inside) = if hrecord {
                (Mode::Json, Mode::InString)
            } else {
                (Mode::Raw, Mode::Raw)
            };
            let t = cx
                .template(parts, &out, value, inside)
                .map_err(LowerError::Record)?;
            (Record::Template(t), single, !hrecord)
        }
        None => (Record::Output, false, false),
    };
    let key = match input.key {
        Some(text) => {
            let parts = super::template::parse_text(text).map_err(LowerError::Key)?;
            Some(
                cx.template(parts, &out, Mode::Text, Mode::Text)
                    .map_err(LowerError::Key)?,
            )
        }
        None => None,
    };
    let names: Vec<&str> = if cx.all_fields || cx.star || out.star {
        cx.kinds.columns().collect()
    } else {
        cx.used.iter().copied().collect()
    };
    let mut fields_read: Vec<String> = abi_fields(names.into_iter()).into_iter().collect();
    if fields_read.is_empty() {
        // An empty list would mean "every field": ask for the cheapest one.
        fields_read.push("timestamp".to_owned());
    }
    Ok(Lowered {
        program: Program {
            fields,
            foreach,
            condition,
            key,
            record,
            raw,
            check_object,
        },
        fields: fields_read,
        warnings: cx.warnings,
    })
}

fn field_at(f: &SelectField) -> usize {
    match f {
        SelectField::Star(at) => *at,
        SelectField::Expr { expr, .. } => expr.at,
    }
}

/// What the output of each event will hold, for checking templates.
struct OutputNames {
    names: Vec<String>,
    /// It also holds every column.
    star: bool,
}

struct Cx<'a> {
    sql: &'a str,
    kinds: Kinds,
    /// Roots the fields so far put into the output.
    defined: Vec<String>,
    /// Names standing over the columns (FOREACH's item and leading fields).
    extra: Vec<String>,
    star: bool,
    /// Columns the rule names.
    used: BTreeSet<&'static str>,
    /// The rule needs every column (a function that reads the event).
    all_fields: bool,
    warnings: Vec<String>,
}

impl Cx<'_> {
    fn err(&self, at: usize, message: impl Into<String>) -> Located {
        Located::at_offset(self.sql, at, message)
    }

    fn fields(&mut self, fields: &[SelectField]) -> Result<Vec<Field>, Located> {
        let mut out = Vec::with_capacity(fields.len());
        for f in fields {
            match f {
                SelectField::Star(_) => {
                    self.star = true;
                    out.push(Field::Star);
                }
                SelectField::Expr { expr, alias, text } => {
                    let lowered = self.value(expr, 0)?;
                    let at = match alias {
                        Some(a) => self.put_path(a)?,
                        None => unaliased(expr, text),
                    };
                    if let Some(PutStep::Key(root)) = at.first()
                        && !self.defined.contains(root)
                    {
                        self.defined.push(root.clone());
                    }
                    out.push(Field::Expr { expr: lowered, at });
                }
            }
        }
        Ok(out)
    }

    /// Where an alias puts its value.
    fn put_path(&self, alias: &Node) -> Result<Vec<PutStep>, Located> {
        match &alias.kind {
            NodeKind::Name { name, .. } => Ok(vec![PutStep::Key(name.clone())]),
            NodeKind::Path(root, segs) => {
                let mut steps = vec![PutStep::Key(root.clone())];
                for seg in segs {
                    steps.push(match seg {
                        Seg::Key(k) => PutStep::Key(k.clone()),
                        Seg::Index { n: 0, negative: false } => PutStep::Head,
                        Seg::Index { n: 0, negative: true } => PutStep::Tail,
                        Seg::Index { n, .. } => PutStep::Index(*n),
                        Seg::Dynamic(_) => {
                            return Err(self.err(
                                alias.at,
                                "an index in an alias must be a number: [1], [-1], [0] (insert first) or [-0] (append)",
                            ));
                        }
                    });
                }
                Ok(steps)
            }
            _ => Err(self.err(alias.at, "an alias is a name or a path (AS a.b)")),
        }
    }

    /// A condition (WHERE, CASE WHEN, INCASE): `and`, `or`, `not` of
    /// comparisons, IN tests, function calls and `true`/`false`.
    fn condition(&mut self, c: &Node) -> Result<Expr, Located> {
        self.cond_at(c, 0)
    }

    fn cond_at(&mut self, c: &Node, depth: usize) -> Result<Expr, Located> {
        let sub = |cx: &mut Self, x: &Node| cx.cond_at(x, depth + 1).map(Box::new);
        Ok(match &c.kind {
            NodeKind::And(a, b) => Expr::And(sub(self, a)?, sub(self, b)?),
            NodeKind::Or(a, b) => Expr::Or(sub(self, a)?, sub(self, b)?),
            NodeKind::Not(x) => Expr::Not(match &x.kind {
                NodeKind::And(..) | NodeKind::Or(..) | NodeKind::Not(_) | NodeKind::In { .. } => {
                    sub(self, x)?
                }
                _ => Box::new(self.value(x, depth + 1)?),
            }),
            NodeKind::In { x, list, negated } => {
                let x = self.value(x, depth + 1)?;
                let list = list
                    .iter()
                    .map(|i| self.value(i, depth + 1))
                    .collect::<Result<Vec<_>, _>>()?;
                let test = Expr::In(Box::new(x), list);
                if *negated {
                    Expr::Not(Box::new(test))
                } else {
                    test
                }
            }
            NodeKind::Cmp(..) | NodeKind::Call { .. } => self.value(c, depth)?,
            NodeKind::Name {
                name,
                quoted: false,
            } if is_bool_name(name).is_some() => self.value(c, depth)?,
            _ => {
                return Err(self.err(
                    c.at,
                    format!(
                        "a condition must be a comparison, IN (...), a function such as is_null(x), or true/false; `{}` is a value (compare it: ... = true)",
                        snippet(self.sql, c.at)
                    ),
                ));
            }
        })
    }

    fn value(&mut self, e: &Node, depth: usize) -> Result<Expr, Located> {
        if depth > 64 {
            return Err(self.err(e.at, "the expression nests deeper than 64 levels"));
        }
        let sub = |cx: &mut Self, x: &Node| cx.value(x, depth + 1).map(Box::new);
        Ok(match &e.kind {
            NodeKind::Int(text) => int_literal(text, false)
                .ok_or_else(|| self.err(e.at, format!("`{text}` is not an integer")))?,
            NodeKind::Float(x) => Expr::Const(Literal::Float(*x)),
            NodeKind::Str(s) => Expr::Const(Literal::Str(s.clone())),
            NodeKind::Name { name, quoted } => {
                if !quoted {
                    if let Some(b) = is_bool_name(name) {
                        return Ok(Expr::Const(Literal::Bool(b)));
                    }
                    if name == "null" || name == "undefined" {
                        return Ok(Expr::Const(Literal::Undefined));
                    }
                }
                self.name(name, *quoted, e.at)?;
                Expr::Var(name.clone())
            }
            NodeKind::Path(root, segs) => {
                self.name(root, false, e.at)?;
                let mut steps = Vec::with_capacity(segs.len());
                for seg in segs {
                    steps.push(match seg {
                        Seg::Key(k) => Step::Key(k.clone()),
                        Seg::Index { n: 0, .. } => {
                            return Err(self.err(
                                e.at,
                                "indexes count from 1 in rule SQL: [1] is the first element and [-1] the last ([0] means 'insert first' only in AS)",
                            ));
                        }
                        Seg::Index { n, .. } => Step::Index(*n),
                        Seg::Dynamic(x) => Step::Dynamic(sub(self, x)?),
                    });
                }
                Expr::Path(root.clone(), steps)
            }
            NodeKind::List(items) => Expr::List(
                items
                    .iter()
                    .map(|i| self.value(i, depth + 1))
                    .collect::<Result<_, _>>()?,
            ),
            NodeKind::Range(a, b) => Expr::Range(*a, *b),
            NodeKind::Slice(x, a, b) => {
                if *a == 0 || *b == 0 {
                    return Err(self.err(e.at, "range indexes count from 1 ([1..2], [1..-1])"));
                }
                Expr::Slice(sub(self, x)?, *a, *b)
            }
            NodeKind::Neg(x) => match &x.kind {
                NodeKind::Int(text) => int_literal(text, true)
                    .ok_or_else(|| self.err(e.at, format!("`-{text}` is not an integer")))?,
                NodeKind::Float(v) => Expr::Const(Literal::Float(-v)),
                _ => Expr::Neg(sub(self, x)?),
            },
            NodeKind::Arith(op, a, b) => Expr::Arith(arith(*op), sub(self, a)?, sub(self, b)?),
            NodeKind::Cmp(op, a, b) => Expr::Cmp(cmp(*op), sub(self, a)?, sub(self, b)?),
            NodeKind::And(..) | NodeKind::Or(..) | NodeKind::Not(_) | NodeKind::In { .. } => {
                return Err(self.err(
                    e.at,
                    "`and`, `or`, `not` and `in` make conditions, which rule SQL takes only in WHERE, CASE WHEN and INCASE; for a value write CASE WHEN ... THEN true ELSE false END",
                ));
            }
            NodeKind::Case {
                operand,
                whens,
                otherwise,
            } => {
                let operand = match operand {
                    Some(o) => Some(sub(self, o)?),
                    None => None,
                };
                let mut lowered = Vec::with_capacity(whens.len());
                for (when, then) in whens {
                    let when = if operand.is_some() {
                        self.value(when, depth + 1)?
                    } else {
                        self.cond_at(when, depth + 1)?
                    };
                    lowered.push((when, self.value(then, depth + 1)?));
                }
                let otherwise = match otherwise {
                    Some(x) => Some(sub(self, x)?),
                    None => None,
                };
                Expr::Case {
                    operand,
                    whens: lowered,
                    otherwise,
                }
            }
            NodeKind::Call { name, module, args } => {
                if let Some(m) = module {
                    return Err(self.err(
                        e.at,
                        format!("`{m}.{name}()`: module-qualified functions are EMQX plugins weir does not have; call {name}() if it is one of the rule functions"),
                    ));
                }
                if let Some(why) = broken_in_emqx(name, args.len()) {
                    return Err(self.err(e.at, why));
                }
                let Some(f) = funcs::lookup(name) else {
                    return Err(self.err(e.at, self.unknown_function(name)));
                };
                let (min, max) = f.arity;
                if args.len() < min || args.len() > max {
                    let expected = if min == max {
                        format!("{min}")
                    } else if max == usize::MAX {
                        format!("at least {min}")
                    } else {
                        format!("{min} to {max}")
                    };
                    return Err(self.err(
                        e.at,
                        format!(
                            "{}() takes {expected} argument(s), not {}: {} gives {}",
                            f.name,
                            args.len(),
                            f.signature,
                            f.doc
                        ),
                    ));
                }
                if READS_EVENT.contains(&f.name) {
                    self.all_fields = true;
                }
                let args = args
                    .iter()
                    .map(|a| self.value(a, depth + 1))
                    .collect::<Result<_, _>>()?;
                Expr::Call(Call::new(f.name, args))
            }
        })
    }

    fn unknown_function(&self, name: &str) -> String {
        let lower = name.to_ascii_lowercase();
        if is_column(&lower) {
            return format!("`{name}()` is not a function: {lower} is a column, write {lower}");
        }
        let names: Vec<String> = suggest::closest(&lower, funcs::all().map(|f| f.name), 3)
            .into_iter()
            .map(|n| format!("`{n}`"))
            .collect();
        if names.is_empty() {
            format!("unknown function `{name}` (docs/rules.md lists the functions)")
        } else {
            format!("unknown function `{name}` (closest: {})", names.join(", "))
        }
    }

    /// Checks that a name means something: an earlier field, a FOREACH
    /// name, or a column of the rule's events.
    fn name(&mut self, name: &str, quoted: bool, at: usize) -> Result<(), Located> {
        let column = self.kinds.columns().find(|c| *c == name);
        if let Some(col) = column {
            // Even under an alias of the same name: an alias that turns out
            // undefined falls back to the column.
            self.used.insert(col);
        }
        if self.defined.iter().any(|d| d == name) || self.extra.iter().any(|d| d == name) {
            return Ok(());
        }
        if is_column(name) {
            if column.is_some() {
                return Ok(());
            }
            return Err(self.err(
                at,
                format!(
                    "`{name}` is not a column of the events this rule's FROM selects ({})",
                    self.kinds.text()
                ),
            ));
        }
        if quoted {
            return Err(self.err(
                at,
                format!(
                    "\"{name}\" names a column in rule SQL (double quotes), and there is none: write '{name}' for a string"
                ),
            ));
        }
        if EMQX_ONLY_COLUMNS.contains(&name) {
            return Err(self.err(
                at,
                format!(
                    "`{name}` is a column of EMQX's events that weir has no value for (docs/rules.md, Columns)"
                ),
            ));
        }
        if name.eq_ignore_ascii_case("retain") || name.eq_ignore_ascii_case("dup") {
            return Err(self.err(
                at,
                format!(
                    "unknown column `{name}` (EMQX has no top-level retain: use flags.retain / flags.dup)"
                ),
            ));
        }
        // EMQX reads a name that is neither a column nor an earlier field
        // as undefined, and so does weir; it is most likely a typo, so
        // the rule loads with a warning that says so.
        let mut known: Vec<&str> = self.kinds.columns().collect();
        known.extend(self.defined.iter().map(String::as_str));
        known.extend(self.extra.iter().map(String::as_str));
        let hint = suggest::did_you_mean(name, known);
        let warning = self.err(
            at,
            format!(
                "`{name}` is not a column of these events nor an earlier field, so it is always undefined (as in EMQX){hint}"
            ),
        );
        self.warnings.push(format!(
            "sql: line {}, column {}: {}",
            warning.line, warning.column, warning.message
        ));
        Ok(())
    }

    /// Resolves a template's placeholders into parts.
    fn template(
        &mut self,
        parts: Vec<TPart>,
        out: &OutputNames,
        value_mode: Mode,
        in_string_mode: Mode,
    ) -> Result<Template, Located> {
        let mut lowered = Vec::with_capacity(parts.len());
        for part in parts {
            lowered.push(match part {
                TPart::Lit(text) => Part::Lit(text),
                TPart::Var {
                    var,
                    in_string,
                    line,
                    column,
                } => {
                    self.placeholder(&var, out).map_err(|message| Located {
                        line,
                        column,
                        message,
                    })?;
                    let mut path = Vec::with_capacity(var.steps.len() + 1);
                    if !var.root.is_empty() {
                        path.push(Step::Key(var.root.clone()));
                    }
                    path.extend(var.steps.iter().cloned());
                    Part::Var {
                        path,
                        mode: if in_string {
                            in_string_mode
                        } else {
                            value_mode
                        },
                    }
                }
            });
        }
        Ok(Template { parts: lowered })
    }

    fn placeholder(&mut self, var: &Var, out: &OutputNames) -> Result<(), String> {
        if var.root.is_empty() || out.names.contains(&var.root) {
            return Ok(());
        }
        if out.star
            && let Some(col) = self.kinds.columns().find(|c| *c == var.root)
        {
            self.used.insert(col);
            return Ok(());
        }
        let mut names: Vec<&str> = out.names.iter().map(String::as_str).collect();
        if out.star {
            for c in self.kinds.columns() {
                names.push(c);
            }
        }
        Err(format!(
            "`${{{}}}` is not in the rule's output{}; the output has {}",
            var.text,
            suggest::did_you_mean(&var.root, names.iter().copied()),
            if names.is_empty() {
                "nothing".into()
            } else {
                names.join(", ")
            }
        ))
    }
}

/// Where an unaliased field goes in the output: a name or path under
/// itself, a string constant under its text, anything else under the
/// field's text (EMQX makes up a name no one can use).
fn unaliased(expr: &Node, text: &str) -> Vec<PutStep> {
    match &expr.kind {
        NodeKind::Name { name, .. } => vec![PutStep::Key(name.clone())],
        NodeKind::Path(root, segs) => {
            let mut steps = vec![PutStep::Key(root.clone())];
            for seg in segs {
                steps.push(match seg {
                    Seg::Key(k) => PutStep::Key(k.clone()),
                    Seg::Index {
                        n: 0,
                        negative: false,
                    } => PutStep::Head,
                    Seg::Index {
                        n: 0,
                        negative: true,
                    } => PutStep::Tail,
                    Seg::Index { n, .. } => PutStep::Index(*n),
                    Seg::Dynamic(_) => return vec![PutStep::Key(text.to_owned())],
                });
            }
            steps
        }
        NodeKind::Slice(x, ..) => unaliased(x, text),
        NodeKind::Str(s) => vec![PutStep::Key(s.clone())],
        _ => vec![PutStep::Key(text.to_owned())],
    }
}

/// Why a call of a function EMQX 5 has but that never works there is
/// refused (rather than given EMQX's useless result).
fn broken_in_emqx(name: &str, args: usize) -> Option<String> {
    match name.to_ascii_lowercase().as_str() {
        "payload" if args > 0 => Some(
            "payload(path) is always undefined in EMQX 5 (it reads only a payload that is already a map): write the path, payload.a.b".into(),
        ),
        f @ ("contains_topic" | "contains_topic_match") => Some(format!(
            "{f}() never matches in EMQX 5 (its filters must be Erlang maps with atom keys, which no column or JSON value is); compare with =~ instead"
        )),
        _ => None,
    }
}

fn is_bool_name(name: &str) -> Option<bool> {
    match name {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

fn int_literal(text: &str, negative: bool) -> Option<Expr> {
    let signed = if negative {
        format!("-{text}")
    } else {
        text.to_owned()
    };
    match weir_rules_runtime::conv::parse_integer(&signed)? {
        weir_rules_runtime::Value::Int(n) => Some(Expr::Const(Literal::Int(n))),
        _ => Some(Expr::Const(Literal::Big(signed))),
    }
}

fn arith(op: Arith) -> ArithOp {
    match op {
        Arith::Add => ArithOp::Add,
        Arith::Sub => ArithOp::Sub,
        Arith::Mul => ArithOp::Mul,
        Arith::Div => ArithOp::Div,
        Arith::IntDiv => ArithOp::IntDiv,
        Arith::Mod => ArithOp::Mod,
    }
}

fn cmp(op: Cmp) -> CmpOp {
    match op {
        Cmp::Eq => CmpOp::Eq,
        Cmp::Ne => CmpOp::Ne,
        Cmp::Lt => CmpOp::Lt,
        Cmp::Le => CmpOp::Le,
        Cmp::Gt => CmpOp::Gt,
        Cmp::Ge => CmpOp::Ge,
        Cmp::TopicMatch => CmpOp::TopicMatch,
    }
}

/// The start of the source text at `at`, for messages.
fn snippet(sql: &str, at: usize) -> String {
    let rest = sql.get(at..).unwrap_or_default();
    let end = rest
        .find(|c: char| c.is_whitespace() || c == ')' || c == ',')
        .unwrap_or(rest.len());
    rest[..end.min(40)].to_owned()
}
