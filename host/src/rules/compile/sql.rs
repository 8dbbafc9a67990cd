//! The SQL front end: EMQX 5's rule SQL, tokenized and parsed by hand.
//!
//! The grammar is EMQX's (its `rulesql` parser): `SELECT` or `FOREACH ...
//! [DO ...] [INCASE ...]`, `FROM` a list of topic filters and `$events/...`
//! sources, `WHERE`; single quotes make strings and double quotes make
//! *names* (a column, as in `FROM "t/#"`); paths step into values
//! (`payload.a.b`, `payload.list[1]`, `pub_props.'User-Property'`,
//! `x[1..3]`); `[1, 2]` is a list and `[1..3]` a range; an alias may be a
//! path (`AS out.a`) and needs no `AS`. `and`, `or`, `not` and `in` join
//! conditions (WHERE, CASE WHEN, INCASE); elsewhere EMQX refuses them, and
//! so does weir. A parser of its own, rather than a general SQL parser, so
//! that exactly EMQX's language is accepted, with positions for every error
//! and hints for what an EMQX user or a SQL user might write instead.

use super::Located;

/// Nesting depth the parser accepts (keeps recursion bounded).
const MAX_DEPTH: usize = 64;

/// A parsed statement.
#[derive(Debug)]
pub(crate) struct Statement {
    pub foreach: bool,
    pub fields: Vec<SelectField>,
    /// FOREACH's `DO` list.
    pub each: Vec<SelectField>,
    pub incase: Option<Node>,
    /// The FROM sources with their byte offsets.
    pub sources: Vec<(String, usize)>,
    pub condition: Option<Node>,
}

#[derive(Debug)]
pub(crate) enum SelectField {
    Star(usize),
    Expr {
        expr: Node,
        alias: Option<Node>,
        /// The field's text, for naming an unaliased expression.
        text: String,
    },
}

/// An expression with the byte offset where it starts.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub at: usize,
    pub kind: NodeKind,
}

#[derive(Debug, Clone)]
pub(crate) enum NodeKind {
    Int(String),
    Float(f64),
    Str(String),
    /// A name; `quoted` when it was written in double quotes.
    Name {
        name: String,
        quoted: bool,
    },
    Path(String, Vec<Seg>),
    List(Vec<Node>),
    Range(i64, i64),
    Slice(Box<Node>, i64, i64),
    Neg(Box<Node>),
    Arith(Arith, Box<Node>, Box<Node>),
    Cmp(Cmp, Box<Node>, Box<Node>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Not(Box<Node>),
    In {
        x: Box<Node>,
        list: Vec<Node>,
        negated: bool,
    },
    Case {
        operand: Option<Box<Node>>,
        whens: Vec<(Node, Node)>,
        otherwise: Option<Box<Node>>,
    },
    Call {
        name: String,
        /// A module-qualified call (`m.f(x)`), which weir refuses.
        module: Option<String>,
        args: Vec<Node>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arith {
    Add,
    Sub,
    Mul,
    Div,
    IntDiv,
    Mod,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    TopicMatch,
}

/// A step of a path.
#[derive(Debug, Clone)]
pub(crate) enum Seg {
    Key(String),
    /// `[n]` with `n` as written: 0 is EMQX's "head", `-0` its "tail".
    Index {
        n: i64,
        negative: bool,
    },
    Dynamic(Box<Node>),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Name { name: String, quoted: bool },
    Str(String),
    Int(String),
    Float(String),
    Range(i64, i64),
    Kw(Kw),
    Punct(&'static str),
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kw {
    Select,
    Foreach,
    Do,
    Incase,
    From,
    Where,
    As,
    Case,
    When,
    Then,
    Else,
    End,
    And,
    Or,
    Not,
    In,
    Div,
    Mod,
}

const KEYWORDS: &[(&str, Kw)] = &[
    ("select", Kw::Select),
    ("foreach", Kw::Foreach),
    ("do", Kw::Do),
    ("incase", Kw::Incase),
    ("from", Kw::From),
    ("where", Kw::Where),
    ("as", Kw::As),
    ("case", Kw::Case),
    ("when", Kw::When),
    ("then", Kw::Then),
    ("else", Kw::Else),
    ("end", Kw::End),
    ("and", Kw::And),
    ("or", Kw::Or),
    ("not", Kw::Not),
    ("in", Kw::In),
    ("div", Kw::Div),
    ("mod", Kw::Mod),
];

/// SQL words EMQX's rule SQL does not have, and what to write instead.
const NOT_EMQX: &[(&str, &str)] = &[
    (
        "like",
        "rule SQL has no LIKE: use `=~` to match a topic against a filter (topic =~ 't/+/x') or regex_match(s, 're')",
    ),
    (
        "is",
        "rule SQL has no IS: use is_null(x) / is_not_null(x), or x = true",
    ),
    (
        "between",
        "rule SQL has no BETWEEN: write x >= a and x <= b",
    ),
    (
        "group",
        "rule SQL has no GROUP BY: a rule sees one event at a time",
    ),
    (
        "order",
        "rule SQL has no ORDER BY: a rule sees one event at a time",
    ),
    (
        "limit",
        "rule SQL has no LIMIT: a rule sees one event at a time",
    ),
    (
        "having",
        "rule SQL has no HAVING: a rule sees one event at a time",
    ),
    (
        "join",
        "rule SQL has no JOIN: list several sources in FROM instead",
    ),
    (
        "distinct",
        "rule SQL has no DISTINCT: a rule sees one event at a time",
    ),
    ("union", "rule SQL is one statement: no UNION"),
];

fn keyword(word: &str) -> Option<Kw> {
    KEYWORDS
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(word))
        .map(|(_, kw)| *kw)
}

fn kw_text(kw: Kw) -> &'static str {
    KEYWORDS
        .iter()
        .find(|(_, k)| *k == kw)
        .map_or("?", |(t, _)| t)
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    fn err(&self, at: usize, message: impl Into<String>) -> Located {
        Located::at_offset(self.src, at, message)
    }

    fn tokens(mut self) -> Result<Vec<(Tok, usize)>, Located> {
        let mut out = Vec::new();
        loop {
            self.skip_space();
            let at = self.pos;
            let tok = self.next_token()?;
            let end = tok == Tok::End;
            out.push((tok, at));
            if end {
                return Ok(out);
            }
        }
    }

    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    fn skip_space(&mut self) {
        loop {
            let rest = self.rest();
            let trimmed = rest.trim_start();
            self.pos += rest.len() - trimmed.len();
            if self.rest().starts_with("--") {
                let line = self.rest().find('\n').map_or(self.rest().len(), |i| i + 1);
                self.pos += line;
            } else {
                return;
            }
        }
    }

    fn next_token(&mut self) -> Result<Tok, Located> {
        let rest = self.rest();
        let Some(c) = rest.chars().next() else {
            return Ok(Tok::End);
        };
        let at = self.pos;
        if c == '\'' {
            return self.quoted('\'').map(|s| Tok::Str(unquote_string(&s)));
        }
        if c == '"' {
            let name = self.quoted('"')?;
            return Ok(Tok::Name {
                name: name.replace("\"\"", "\""),
                quoted: true,
            });
        }
        if c.is_ascii_alphabetic() {
            let len = rest
                .find(|ch: char| !(ch.is_ascii_alphanumeric() || "_$@~".contains(ch)))
                .unwrap_or(rest.len());
            let word = &rest[..len];
            self.pos += len;
            return Ok(match keyword(word) {
                Some(kw) => Tok::Kw(kw),
                None => Tok::Name {
                    name: word.to_owned(),
                    quoted: false,
                },
            });
        }
        // `.5` is a number, but `a.1` is the key "1" of `a`.
        let after_operand = self.src[..at]
            .chars()
            .next_back()
            .is_some_and(|p| p.is_ascii_alphanumeric() || "_$@~)]'\"".contains(p));
        if c.is_ascii_digit()
            || (c == '.' && !after_operand && rest[1..].starts_with(|d: char| d.is_ascii_digit()))
        {
            return self.number();
        }
        if c == '['
            && let Some((a, b, len)) = range_literal(rest)
        {
            self.pos += len;
            return Ok(Tok::Range(a, b));
        }
        for p in [
            "=~", "!=", "<>", "<=", ">=", "=", "<", ">", "(", ")", "[", "]", ",", ".", "*", "+",
            "-", "/",
        ] {
            if rest.starts_with(p) {
                self.pos += p.len();
                return Ok(Tok::Punct(p));
            }
        }
        if rest.starts_with("||") {
            return Err(self.err(
                at,
                "rule SQL has no `||`: concatenate with concat(a, b) or `+` with a string",
            ));
        }
        if c == '~' {
            return Err(self.err(
                at,
                "rule SQL has no `~`: `=~` matches a topic against a filter (topic =~ 't/+')",
            ));
        }
        if c == '%' {
            return Err(self.err(at, "rule SQL has no `%`: the remainder is `mod`"));
        }
        if c == ';' {
            return Err(self.err(at, "a rule is one statement: remove the `;`"));
        }
        Err(self.err(at, format!("unexpected character `{c}`")))
    }

    /// A quoted text (the quote char doubled inside stands for itself);
    /// returns the text between the outer quotes, doubling kept.
    fn quoted(&mut self, q: char) -> Result<String, Located> {
        let start = self.pos;
        let body = &self.rest()[1..];
        let mut i = 0;
        let bytes = body.as_bytes();
        loop {
            match bytes.get(i) {
                None => {
                    return Err(self.err(
                        start,
                        format!(
                            "this {} is never closed",
                            if q == '\'' { "string" } else { "name" }
                        ),
                    ));
                }
                Some(&b) if b == q as u8 => {
                    if bytes.get(i + 1) == Some(&(q as u8)) {
                        i += 2;
                        continue;
                    }
                    let inner = body[..i].to_owned();
                    self.pos += i + 2;
                    return Ok(inner);
                }
                Some(_) => i += 1,
            }
        }
    }

    fn number(&mut self) -> Result<Tok, Located> {
        let rest = self.rest();
        let at = self.pos;
        let digits = |s: &str| s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let mut len = digits(rest);
        let mut float = false;
        if rest[len..].starts_with('.') && rest[len + 1..].starts_with(|c: char| c.is_ascii_digit())
        {
            float = true;
            len += 1 + digits(&rest[len + 1..]);
        }
        let after = &rest[len..];
        if after.starts_with(['e', 'E']) {
            let exp = &after[1..];
            let sign = usize::from(exp.starts_with(['+', '-']));
            let n = digits(&exp[sign..]);
            if n > 0 {
                float = true;
                len += 1 + sign + n;
            }
        }
        let text = &rest[..len];
        if rest[len..].starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
            return Err(self.err(
                at,
                format!("`{text}` is a number; a name cannot start with a digit"),
            ));
        }
        self.pos += len;
        Ok(if float {
            Tok::Float(text.to_owned())
        } else {
            Tok::Int(text.to_owned())
        })
    }
}

/// EMQX's string literal: the text between the quotes with every quote at
/// either end removed, then every double quote at either end (so `'"a"'`
/// is `a`), doubled quotes inside kept as written.
fn unquote_string(inner: &str) -> String {
    let wrapped = format!("'{inner}'");
    wrapped.trim_matches('\'').trim_matches('"').to_owned()
}

/// `[a..b]` with optional minus signs and no spaces, as EMQX's lexer reads
/// a range.
fn range_literal(rest: &str) -> Option<(i64, i64, usize)> {
    let close = rest.find(']')?;
    let inner = &rest[1..close];
    let (a, b) = inner.split_once("..")?;
    let int = |s: &str| {
        let digits = s.strip_prefix('-').unwrap_or(s);
        (!digits.is_empty() && digits.bytes().all(|c| c.is_ascii_digit()))
            .then(|| s.parse::<i64>().ok())
            .flatten()
    };
    Some((int(a)?, int(b)?, close + 1))
}

pub(crate) fn parse(sql: &str) -> Result<Statement, Located> {
    let tokens = Lexer { src: sql, pos: 0 }.tokens()?;
    let mut p = Parser {
        sql,
        tokens,
        i: 0,
        depth: 0,
    };
    p.statement()
}

struct Parser<'a> {
    sql: &'a str,
    tokens: Vec<(Tok, usize)>,
    i: usize,
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        &self.tokens[self.i.min(self.tokens.len() - 1)].0
    }

    fn at(&self) -> usize {
        self.tokens[self.i.min(self.tokens.len() - 1)].1
    }

    fn bump(&mut self) -> (Tok, usize) {
        let t = self.tokens[self.i.min(self.tokens.len() - 1)].clone();
        if self.i < self.tokens.len() - 1 {
            self.i += 1;
        }
        t
    }

    fn err(&self, at: usize, message: impl Into<String>) -> Located {
        Located::at_offset(self.sql, at, message)
    }

    fn describe(t: &Tok) -> String {
        match t {
            Tok::Name { name, quoted: true } => format!("\"{name}\""),
            Tok::Name { name, .. } => format!("`{name}`"),
            Tok::Str(s) => format!("'{s}'"),
            Tok::Int(s) | Tok::Float(s) => format!("`{s}`"),
            Tok::Range(a, b) => format!("`[{a}..{b}]`"),
            Tok::Kw(k) => format!("`{}`", kw_text(*k).to_uppercase()),
            Tok::Punct(p) => format!("`{p}`"),
            Tok::End => "the end".into(),
        }
    }

    /// An error for an unexpected token, with a hint when it is a word of
    /// another SQL.
    fn unexpected(&self, wanted: &str) -> Located {
        let t = self.peek();
        if let Tok::Name {
            name,
            quoted: false,
        } = t
            && let Some((_, hint)) = NOT_EMQX.iter().find(|(w, _)| w.eq_ignore_ascii_case(name))
        {
            return self.err(self.at(), *hint);
        }
        self.err(
            self.at(),
            format!("expected {wanted}, found {}", Self::describe(t)),
        )
    }

    fn eat_kw(&mut self, kw: Kw) -> bool {
        if *self.peek() == Tok::Kw(kw) {
            self.bump();
            true
        } else {
            false
        }
    }

    fn eat_punct(&mut self, p: &str) -> bool {
        if matches!(self.peek(), Tok::Punct(q) if *q == p) {
            self.bump();
            true
        } else {
            false
        }
    }

    fn expect_punct(&mut self, p: &str) -> Result<(), Located> {
        if self.eat_punct(p) {
            Ok(())
        } else {
            Err(self.unexpected(&format!("`{p}`")))
        }
    }

    fn statement(&mut self) -> Result<Statement, Located> {
        let foreach = match self.peek() {
            Tok::Kw(Kw::Select) => false,
            Tok::Kw(Kw::Foreach) => true,
            Tok::End => return Err(self.err(0, "the SQL is empty; a rule is SELECT ... FROM ...")),
            _ => return Err(self.unexpected("SELECT or FOREACH")),
        };
        self.bump();
        let fields = self.fields()?;
        let (mut each, mut incase) = (Vec::new(), None);
        if foreach {
            if self.eat_kw(Kw::Do) {
                each = self.fields()?;
            }
            if self.eat_kw(Kw::Incase) {
                incase = Some(self.condition()?);
            }
        } else if matches!(self.peek(), Tok::Kw(Kw::Do | Kw::Incase)) {
            return Err(self.err(self.at(), "DO and INCASE belong to FOREACH, not SELECT"));
        }
        if !self.eat_kw(Kw::From) {
            return Err(self.unexpected("FROM (a rule needs its sources, e.g. FROM \"t/#\")"));
        }
        let mut sources = Vec::new();
        loop {
            let at = self.at();
            match self.bump().0 {
                Tok::Name { name, .. } => sources.push((name, at)),
                // EMQX 5 takes either quotes here (t_sqlparse_both_string_types_in_from).
                Tok::Str(name) => sources.push((name, at)),
                _ => {
                    self.i -= 1;
                    return Err(self.unexpected(
                        "a source in double quotes, e.g. \"t/#\" or \"$events/client_connected\"",
                    ));
                }
            }
            if !self.eat_punct(",") {
                break;
            }
        }
        let condition = if self.eat_kw(Kw::Where) {
            Some(self.condition()?)
        } else {
            None
        };
        if *self.peek() != Tok::End {
            return Err(self.unexpected("the end of the statement"));
        }
        Ok(Statement {
            foreach,
            fields,
            each,
            incase,
            sources,
            condition,
        })
    }

    fn fields(&mut self) -> Result<Vec<SelectField>, Located> {
        let mut fields = Vec::new();
        loop {
            let at = self.at();
            if self.eat_punct("*") {
                fields.push(SelectField::Star(at));
            } else {
                let expr = self.comparison()?;
                let end = self.at();
                let text = self.sql[at..end].trim().to_owned();
                // `AS` is optional before an alias.
                let alias = if self.eat_kw(Kw::As) || matches!(self.peek(), Tok::Name { .. }) {
                    Some(self.alias()?)
                } else {
                    None
                };
                fields.push(SelectField::Expr { expr, alias, text });
            }
            if !self.eat_punct(",") {
                return Ok(fields);
            }
        }
    }

    fn alias(&mut self) -> Result<Node, Located> {
        if let Tok::Name {
            name,
            quoted: false,
        } = self.peek()
            && let Some((_, hint)) = NOT_EMQX.iter().find(|(w, _)| w.eq_ignore_ascii_case(name))
        {
            return Err(self.err(self.at(), *hint));
        }
        match self.peek() {
            Tok::Name { .. } => self.name_or_path(),
            _ => Err(self.unexpected("a name for the field (AS name, or AS a.path)")),
        }
    }

    fn enter(&mut self) -> Result<(), Located> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err(
                self.at(),
                format!("the expression nests deeper than {MAX_DEPTH} levels"),
            ));
        }
        Ok(())
    }

    /// A condition: `or` of `and` of `not` of comparisons.
    fn condition(&mut self) -> Result<Node, Located> {
        self.enter()?;
        let mut left = self.and()?;
        while self.eat_kw(Kw::Or) {
            let right = self.and()?;
            left = Node {
                at: left.at,
                kind: NodeKind::Or(Box::new(left), Box::new(right)),
            };
        }
        self.depth -= 1;
        Ok(left)
    }

    fn and(&mut self) -> Result<Node, Located> {
        let mut left = self.not()?;
        while self.eat_kw(Kw::And) {
            let right = self.not()?;
            left = Node {
                at: left.at,
                kind: NodeKind::And(Box::new(left), Box::new(right)),
            };
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Node, Located> {
        let at = self.at();
        if self.eat_kw(Kw::Not) {
            self.enter()?;
            let inner = self.not()?;
            self.depth -= 1;
            return Ok(Node {
                at,
                kind: NodeKind::Not(Box::new(inner)),
            });
        }
        self.comparison()
    }

    /// An expression, optionally compared, or tested with IN.
    fn comparison(&mut self) -> Result<Node, Located> {
        let left = self.additive()?;
        let op = match self.peek() {
            Tok::Punct("=") => Some(Cmp::Eq),
            Tok::Punct("!=" | "<>") => Some(Cmp::Ne),
            Tok::Punct("<") => Some(Cmp::Lt),
            Tok::Punct("<=") => Some(Cmp::Le),
            Tok::Punct(">") => Some(Cmp::Gt),
            Tok::Punct(">=") => Some(Cmp::Ge),
            Tok::Punct("=~") => Some(Cmp::TopicMatch),
            _ => None,
        };
        if let Some(op) = op {
            self.bump();
            let right = self.additive()?;
            if matches!(
                self.peek(),
                Tok::Punct("=" | "!=" | "<>" | "<" | "<=" | ">" | ">=" | "=~")
            ) {
                return Err(self.err(
                    self.at(),
                    "comparisons do not chain: write (a = b) and (b = c)",
                ));
            }
            return Ok(Node {
                at: left.at,
                kind: NodeKind::Cmp(op, Box::new(left), Box::new(right)),
            });
        }
        let negated = if *self.peek() == Tok::Kw(Kw::Not)
            && self.tokens.get(self.i + 1).map(|t| &t.0) == Some(&Tok::Kw(Kw::In))
        {
            self.bump();
            true
        } else {
            false
        };
        if self.eat_kw(Kw::In) {
            self.expect_punct("(")?;
            let mut list = vec![self.comparison()?];
            while self.eat_punct(",") {
                list.push(self.comparison()?);
            }
            self.expect_punct(")")?;
            return Ok(Node {
                at: left.at,
                kind: NodeKind::In {
                    x: Box::new(left),
                    list,
                    negated,
                },
            });
        }
        if let Tok::Name {
            name,
            quoted: false,
        } = self.peek()
            && let Some((_, hint)) = NOT_EMQX.iter().find(|(w, _)| {
                w.eq_ignore_ascii_case(name) && ["like", "is", "between"].contains(w)
            })
        {
            return Err(self.err(self.at(), *hint));
        }
        Ok(left)
    }

    fn additive(&mut self) -> Result<Node, Located> {
        let mut left = self.multiplicative()?;
        loop {
            let op = match self.peek() {
                Tok::Punct("+") => Arith::Add,
                Tok::Punct("-") => Arith::Sub,
                _ => return Ok(left),
            };
            self.bump();
            let right = self.multiplicative()?;
            left = Node {
                at: left.at,
                kind: NodeKind::Arith(op, Box::new(left), Box::new(right)),
            };
        }
    }

    fn multiplicative(&mut self) -> Result<Node, Located> {
        let mut left = self.unary()?;
        loop {
            let op = match self.peek() {
                Tok::Punct("*") => Arith::Mul,
                Tok::Punct("/") => Arith::Div,
                Tok::Kw(Kw::Div) => Arith::IntDiv,
                Tok::Kw(Kw::Mod) => Arith::Mod,
                _ => return Ok(left),
            };
            self.bump();
            let right = self.unary()?;
            left = Node {
                at: left.at,
                kind: NodeKind::Arith(op, Box::new(left), Box::new(right)),
            };
        }
    }

    fn unary(&mut self) -> Result<Node, Located> {
        let at = self.at();
        if self.eat_punct("-") {
            self.enter()?;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Node {
                at,
                kind: NodeKind::Neg(Box::new(inner)),
            });
        }
        if self.eat_punct("+") {
            self.enter()?;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(inner);
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Node, Located> {
        let at = self.at();
        let kind = match self.peek().clone() {
            Tok::Int(text) => {
                self.bump();
                NodeKind::Int(text)
            }
            Tok::Float(text) => {
                self.bump();
                let x = text
                    .parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite())
                    .ok_or_else(|| self.err(at, format!("`{text}` is not a finite number")))?;
                NodeKind::Float(x)
            }
            Tok::Str(s) => {
                self.bump();
                NodeKind::Str(s)
            }
            Tok::Range(a, b) => {
                self.bump();
                NodeKind::Range(a, b)
            }
            Tok::Punct("(") => {
                self.bump();
                self.enter()?;
                let inner = self.condition()?;
                self.depth -= 1;
                self.expect_punct(")")?;
                return Ok(inner);
            }
            Tok::Punct("[") => {
                self.bump();
                let mut items = Vec::new();
                if !self.eat_punct("]") {
                    loop {
                        self.enter()?;
                        items.push(self.additive()?);
                        self.depth -= 1;
                        if self.eat_punct("]") {
                            break;
                        }
                        self.expect_punct(",")?;
                    }
                }
                NodeKind::List(items)
            }
            Tok::Kw(Kw::Case) => {
                self.bump();
                return self.case(at);
            }
            Tok::Name { .. } => return self.name_expr(),
            _ => return Err(self.unexpected("a value, a name or `(`")),
        };
        Ok(Node { at, kind })
    }

    fn case(&mut self, at: usize) -> Result<Node, Located> {
        self.enter()?;
        let operand = if *self.peek() == Tok::Kw(Kw::When) {
            None
        } else {
            Some(Box::new(self.additive()?))
        };
        let mut whens = Vec::new();
        while self.eat_kw(Kw::When) {
            let when = if operand.is_some() {
                self.additive()?
            } else {
                self.condition()?
            };
            if !self.eat_kw(Kw::Then) {
                return Err(self.unexpected("THEN"));
            }
            let then = self.comparison()?;
            whens.push((when, then));
        }
        if whens.is_empty() {
            return Err(self.unexpected("WHEN"));
        }
        let otherwise = if self.eat_kw(Kw::Else) {
            Some(Box::new(self.comparison()?))
        } else {
            None
        };
        if !self.eat_kw(Kw::End) {
            return Err(self.unexpected("END (CASE ... END)"));
        }
        self.depth -= 1;
        Ok(Node {
            at,
            kind: NodeKind::Case {
                operand,
                whens,
                otherwise,
            },
        })
    }

    /// A name, a path, a slice of one, or a call.
    fn name_expr(&mut self) -> Result<Node, Located> {
        let at = self.at();
        let base = self.name_or_path()?;
        if self.eat_punct("(") {
            let (name, module) = match base.kind {
                NodeKind::Name { name, .. } => (name, None),
                NodeKind::Path(root, segs) => match segs.as_slice() {
                    [Seg::Key(f)] => (f.clone(), Some(root)),
                    _ => return Err(self.err(at, "only a function name can be called")),
                },
                _ => return Err(self.err(at, "only a function name can be called")),
            };
            let mut args = Vec::new();
            if !self.eat_punct(")") {
                loop {
                    self.enter()?;
                    args.push(self.comparison()?);
                    self.depth -= 1;
                    if self.eat_punct(")") {
                        break;
                    }
                    self.expect_punct(",")?;
                }
            }
            return Ok(Node {
                at,
                kind: NodeKind::Call { name, module, args },
            });
        }
        if let Tok::Range(a, b) = *self.peek() {
            self.bump();
            return Ok(Node {
                at,
                kind: NodeKind::Slice(Box::new(base), a, b),
            });
        }
        Ok(base)
    }

    /// `name`, `name.key`, `name[1]`, `name[other.path]`, ...
    fn name_or_path(&mut self) -> Result<Node, Located> {
        let at = self.at();
        let (root, quoted) = match self.bump().0 {
            Tok::Name { name, quoted } => (name, quoted),
            _ => {
                self.i -= 1;
                return Err(self.unexpected("a name"));
            }
        };
        let mut segs = Vec::new();
        loop {
            if self.eat_punct(".") {
                let seg_at = self.at();
                match self.bump().0 {
                    Tok::Name { name, .. } | Tok::Str(name) | Tok::Int(name) => {
                        segs.push(Seg::Key(name))
                    }
                    Tok::Float(text) => {
                        return Err(self.err(
                            seg_at,
                            format!("`.{text}` is ambiguous: quote the key, e.g. .'{text}'"),
                        ));
                    }
                    _ => {
                        self.i -= 1;
                        return Err(self.unexpected("a key after `.`"));
                    }
                }
            } else if matches!(self.peek(), Tok::Punct("["))
                && !matches!(
                    self.tokens.get(self.i + 1).map(|t| &t.0),
                    Some(Tok::Punct("]"))
                )
            {
                self.bump();
                let seg = match self.peek().clone() {
                    Tok::Int(n) => {
                        self.bump();
                        Seg::Index {
                            n: self.index(&n, at)?,
                            negative: false,
                        }
                    }
                    Tok::Punct("-") => {
                        self.bump();
                        match self.bump().0 {
                            Tok::Int(n) => Seg::Index {
                                n: -self.index(&n, at)?,
                                negative: true,
                            },
                            _ => {
                                self.i -= 1;
                                return Err(self.unexpected("an index"));
                            }
                        }
                    }
                    Tok::Name { .. } => {
                        self.enter()?;
                        let inner = self.name_or_path()?;
                        self.depth -= 1;
                        Seg::Dynamic(Box::new(inner))
                    }
                    _ => return Err(self.unexpected("an index: [1], [-1] or [name]")),
                };
                self.expect_punct("]")?;
                segs.push(seg);
            } else {
                break;
            }
        }
        Ok(Node {
            at,
            kind: if segs.is_empty() {
                NodeKind::Name { name: root, quoted }
            } else {
                NodeKind::Path(root, segs)
            },
        })
    }

    fn index(&self, text: &str, at: usize) -> Result<i64, Located> {
        text.parse::<i64>()
            .map_err(|_| self.err(at, format!("index `{text}` is too large")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(sql: &str) -> Statement {
        parse(sql).unwrap_or_else(|e| panic!("{sql}: {e:?}"))
    }

    fn err(sql: &str) -> Located {
        parse(sql).expect_err(sql)
    }

    #[test]
    fn emqx_statements_parse() {
        let s = ok(r#"SELECT * FROM "t/#""#);
        assert!(matches!(s.fields[0], SelectField::Star(_)));
        assert_eq!(s.sources[0].0, "t/#");
        let s = ok(
            r#"select payload.a.b, payload.x[1] as x, clientid c FROM "t/1", "$events/client_connected" where x = 1 and not (c = 'a')"#,
        );
        assert_eq!(s.fields.len(), 3);
        assert_eq!(s.sources.len(), 2);
        assert!(matches!(
            s.condition.as_ref().map(|c| &c.kind),
            Some(NodeKind::And(..))
        ));
        let s = ok(
            r#"FOREACH payload.sensors as s DO s.name as n, clientid INCASE s.temp > 10 FROM "t/#" WHERE qos = 1"#,
        );
        assert!(s.foreach);
        assert_eq!(s.each.len(), 2);
        assert!(s.incase.is_some());
        ok(r#"SELECT [1..3] as r, payload.l[1..-1] as l, [1, 'a', x] as list FROM "t""#);
        ok(r#"SELECT a.1.'b.c'.d, pub_props.'User-Property'.k FROM "t""#);
        ok(
            r#"SELECT CASE WHEN a > 1 THEN 'x' WHEN a in (1, 2) THEN 'y' ELSE 'z' END as c, CASE qos WHEN 1 THEN 'one' END FROM "t""#,
        );
        ok(r#"SELECT x AS out.list[0], y AS out.list[-0] FROM "t""#);
        ok("SELECT 7 div 2, 7 mod 2, -x, +1 FROM t -- a comment\n");
    }

    #[test]
    fn strings_and_names_are_emqxs() {
        let s = ok(r#"SELECT 'it''s' as a, '"q"' as b, "col" FROM "t""#);
        let lit = |i: usize| match &s.fields[i] {
            SelectField::Expr { expr, .. } => expr.kind.clone(),
            SelectField::Star(_) => panic!("star"),
        };
        assert!(matches!(lit(0), NodeKind::Str(s) if s == "it''s"));
        assert!(matches!(lit(1), NodeKind::Str(s) if s == "q"));
        assert!(matches!(lit(2), NodeKind::Name { name, quoted: true } if name == "col"));
    }

    #[test]
    fn other_sqls_get_hints() {
        for (sql, hint) in [
            (r#"SELECT * FROM "t" WHERE topic LIKE 't/%'"#, "=~"),
            (r#"SELECT * FROM "t" WHERE x IS NULL"#, "is_null"),
            (r#"SELECT * FROM "t" WHERE x BETWEEN 1 AND 2"#, ">="),
            (r#"SELECT a || b FROM "t""#, "concat"),
            (r#"SELECT * FROM "t" ORDER BY x"#, "ORDER BY"),
            (r#"SELECT * FROM "t";"#, "one statement"),
            (r#"SELECT a = b = c FROM "t""#, "chain"),
            (r#"SELECT x"#, "FROM"),
            (r#"SELECT x DO y FROM "t""#, "FOREACH"),
        ] {
            let e = err(sql);
            assert!(e.message.contains(hint), "{sql}: {}", e.message);
        }
        let e = err("SELECT (((( FROM t");
        assert_eq!((e.line, e.column), (1, 13));
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = format!("SELECT {}1{} FROM \"t\"", "(".repeat(100), ")".repeat(100));
        assert!(err(&deep).message.contains("nests deeper"));
    }
}
