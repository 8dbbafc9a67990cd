//! Record and partition-key templates: `${var}` placeholders in JSON or in
//! plain text.
//!
//! A JSON template is parsed as JSON in which a placeholder may stand for a
//! value or appear inside a string, so every placeholder is known to be in
//! one of those two positions (rendering escapes accordingly) and a
//! template that is not JSON is rejected here, with its line and column,
//! not discovered in HStreamDB. A text template (partition keys, raw
//! records) is text with placeholders.
//!
//! A placeholder names an entry of the rule's output, optionally followed
//! by steps into it: `${a}`, `${a.b.c}`, `${pub_props.'a.b'.c}` (quote a
//! key that contains `.` or `[`), `${list[1]}` (1-based, as in rule SQL);
//! `${.}` is the whole output.

use super::Located;
use weir_rules_runtime::program::Step;

/// A placeholder's name, split into its entry and steps; `root` is empty
/// for `${.}`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Var {
    pub root: String,
    pub steps: Vec<Step>,
    /// As written, trimmed.
    pub text: String,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TPart {
    Lit(String),
    Var {
        var: Var,
        in_string: bool,
        line: usize,
        column: usize,
    },
}

/// Deepest JSON nesting of a template.
const MAX_DEPTH: usize = 64;

/// Parses a JSON template whose top level is an object or one placeholder.
pub(crate) fn parse_json(src: &str) -> Result<Vec<TPart>, Located> {
    let mut p = Parser::new(src);
    p.skip_ws();
    match p.peek() {
        Some('{') => {}
        Some('$') if p.rest().starts_with("${") => {}
        None => return Err(p.error_here("the template is empty; an HRecord template is a JSON object such as {\"topic\": ${topic}}")),
        Some(_) => {
            return Err(p.error_here(
                "an HRecord template must be a JSON object (or one placeholder giving an object); use record_format = \"raw\" for other text",
            ));
        }
    }
    p.value(0)?;
    p.skip_ws();
    if p.peek().is_some() {
        return Err(p.error_here("unexpected text after the end of the JSON value"));
    }
    Ok(p.finish())
}

/// Parses a plain-text template.
pub(crate) fn parse_text(src: &str) -> Result<Vec<TPart>, Located> {
    let mut p = Parser::new(src);
    while let Some(c) = p.peek() {
        if c == '$' && p.rest().starts_with("${") {
            p.placeholder(false)?;
        } else {
            p.take(c);
        }
    }
    Ok(p.finish())
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
    lit: String,
    parts: Vec<TPart>,
}

impl<'a> Parser<'a> {
    fn new(src: &'a str) -> Self {
        Parser {
            src,
            pos: 0,
            lit: String::new(),
            parts: Vec::new(),
        }
    }

    fn finish(mut self) -> Vec<TPart> {
        self.flush();
        self.parts
    }

    fn flush(&mut self) {
        if !self.lit.is_empty() {
            self.parts.push(TPart::Lit(std::mem::take(&mut self.lit)));
        }
    }

    fn rest(&self) -> &'a str {
        self.src.get(self.pos..).unwrap_or_default()
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    /// Consumes `c` (the next char) into the current literal.
    fn take(&mut self, c: char) {
        self.lit.push(c);
        self.pos += c.len_utf8();
    }

    fn error_at(&self, pos: usize, message: impl Into<String>) -> Located {
        Located::at_offset(self.src, pos, message)
    }

    fn error_here(&self, message: impl Into<String>) -> Located {
        self.error_at(self.pos, message)
    }

    fn skip_ws(&mut self) {
        while let Some(c @ (' ' | '\t' | '\n' | '\r')) = self.peek() {
            self.take(c);
        }
    }

    fn expect(&mut self, c: char, what: &str) -> Result<(), Located> {
        match self.peek() {
            Some(found) if found == c => {
                self.take(c);
                Ok(())
            }
            Some(found) => Err(self.error_here(format!("expected {what}, found `{found}`"))),
            None => Err(self.error_here(format!("expected {what}, found the end of the template"))),
        }
    }

    fn value(&mut self, depth: usize) -> Result<(), Located> {
        if depth > MAX_DEPTH {
            return Err(
                self.error_here(format!("the template nests deeper than {MAX_DEPTH} levels"))
            );
        }
        self.skip_ws();
        match self.peek() {
            Some('{') => {
                self.take('{');
                self.skip_ws();
                if self.peek() == Some('}') {
                    self.take('}');
                    return Ok(());
                }
                loop {
                    self.skip_ws();
                    match self.peek() {
                        Some('"') => self.string()?,
                        Some('$') if self.rest().starts_with("${") => {
                            return Err(self.error_here(
                                "a placeholder cannot be an object key; put it in quotes: \"${...}\"",
                            ));
                        }
                        _ => return Err(self.error_here("expected a member name in double quotes")),
                    }
                    self.skip_ws();
                    self.expect(':', "`:` after the member name")?;
                    self.value(depth + 1)?;
                    self.skip_ws();
                    match self.peek() {
                        Some(',') => self.take(','),
                        Some('}') => {
                            self.take('}');
                            return Ok(());
                        }
                        _ => return Err(self.error_here("expected `,` or `}` in the object")),
                    }
                }
            }
            Some('[') => {
                self.take('[');
                self.skip_ws();
                if self.peek() == Some(']') {
                    self.take(']');
                    return Ok(());
                }
                loop {
                    self.value(depth + 1)?;
                    self.skip_ws();
                    match self.peek() {
                        Some(',') => self.take(','),
                        Some(']') => {
                            self.take(']');
                            return Ok(());
                        }
                        _ => return Err(self.error_here("expected `,` or `]` in the array")),
                    }
                }
            }
            Some('"') => self.string(),
            Some('$') if self.rest().starts_with("${") => self.placeholder(false),
            Some('t') => self.word("true"),
            Some('f') => self.word("false"),
            Some('n') => self.word("null"),
            Some('-' | '0'..='9') => self.number(),
            Some(c) => Err(self.error_here(format!(
                "expected a JSON value or a placeholder, found `{c}`{}",
                if c == '\'' {
                    " (JSON strings use double quotes)"
                } else {
                    ""
                }
            ))),
            None => Err(self.error_here("expected a JSON value, found the end of the template")),
        }
    }

    fn word(&mut self, word: &str) -> Result<(), Located> {
        if self.rest().starts_with(word) {
            for c in word.chars() {
                self.take(c);
            }
            Ok(())
        } else {
            Err(self.error_here(format!("expected `{word}` or a value")))
        }
    }

    fn number(&mut self) -> Result<(), Located> {
        let start = self.pos;
        let digits = |p: &mut Self| {
            let mut n = 0;
            while let Some(c @ '0'..='9') = p.peek() {
                p.take(c);
                n += 1;
            }
            n
        };
        if self.peek() == Some('-') {
            self.take('-');
        }
        match self.peek() {
            Some('0') => self.take('0'),
            Some('1'..='9') => {
                digits(self);
            }
            _ => return Err(self.error_at(start, "a number needs digits")),
        }
        if self.peek() == Some('.') {
            self.take('.');
            if digits(self) == 0 {
                return Err(self.error_here("expected digits after the decimal point"));
            }
        }
        if let Some(c @ ('e' | 'E')) = self.peek() {
            self.take(c);
            if let Some(c @ ('+' | '-')) = self.peek() {
                self.take(c);
            }
            if digits(self) == 0 {
                return Err(self.error_here("expected digits in the exponent"));
            }
        }
        Ok(())
    }

    fn string(&mut self) -> Result<(), Located> {
        let start = self.pos;
        self.take('"');
        loop {
            match self.peek() {
                None => return Err(self.error_at(start, "unterminated string")),
                Some('"') => {
                    self.take('"');
                    return Ok(());
                }
                Some('\\') => {
                    self.take('\\');
                    match self.peek() {
                        Some(c @ ('"' | '\\' | '/' | 'b' | 'f' | 'n' | 'r' | 't')) => self.take(c),
                        Some('u') => {
                            self.take('u');
                            for _ in 0..4 {
                                match self.peek() {
                                    Some(c) if c.is_ascii_hexdigit() => self.take(c),
                                    _ => return Err(self.error_here("`\\u` needs four hex digits")),
                                }
                            }
                        }
                        _ => return Err(self.error_here("invalid escape in a JSON string")),
                    }
                }
                Some('$') if self.rest().starts_with("${") => self.placeholder(true)?,
                Some(c) if u32::from(c) < 0x20 => {
                    return Err(self.error_here(
                        "a control character (such as a line break) inside a JSON string; write it as an escape (\\n)",
                    ));
                }
                Some(c) => self.take(c),
            }
        }
    }

    fn placeholder(&mut self, in_string: bool) -> Result<(), Located> {
        let start = self.pos;
        let body_start = start + 2;
        let Some(close) = self.rest()[2..].find('}') else {
            return Err(self.error_at(start, "unclosed placeholder: `${` without `}`"));
        };
        let raw = &self.src[body_start..body_start + close];
        let var = parse_var(raw.trim()).map_err(|m| self.error_at(start, m))?;
        let (line, column) = super::line_column(self.src, start);
        self.flush();
        self.parts.push(TPart::Var {
            var,
            in_string,
            line,
            column,
        });
        self.pos = body_start + close + 1;
        Ok(())
    }
}

/// Parses `root.key[1].'quoted key'`, or `.` (the whole output).
pub(crate) fn parse_var(text: &str) -> Result<Var, String> {
    if text.is_empty() {
        return Err("empty placeholder `${}`".into());
    }
    if text == "." {
        return Ok(Var {
            root: String::new(),
            steps: Vec::new(),
            text: text.to_owned(),
        });
    }
    let bad = |why: &str| format!("placeholder `${{{text}}}`: {why}");
    let root_end = text.find(['.', '[']).unwrap_or(text.len());
    let root = &text[..root_end];
    if root.is_empty() {
        return Err(bad("it must start with a column name"));
    }
    let mut steps = Vec::new();
    let mut rest = &text[root_end..];
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix(".'") {
            let end = after
                .find('\'')
                .ok_or_else(|| bad("unterminated quoted key"))?;
            steps.push(Step::Key(after[..end].to_owned()));
            rest = &after[end + 1..];
        } else if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            if end == 0 {
                return Err(bad("empty key after `.`"));
            }
            steps.push(Step::Key(after[..end].to_owned()));
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let end = after.find(']').ok_or_else(|| bad("`[` without `]`"))?;
            let index = after[..end]
                .trim()
                .parse::<i64>()
                .map_err(|_| bad("an index must be `[N]` with N a whole number"))?;
            if index == 0 {
                return Err(bad(
                    "indexes count from 1 (`[1]` is the first element; `[-1]` the last)",
                ));
            }
            steps.push(Step::Index(index));
            rest = &after[end + 1..];
        } else {
            return Err(bad("expected `.key` or `[index]`"));
        }
    }
    Ok(Var {
        root: root.to_owned(),
        steps,
        text: text.to_owned(),
    })
}
