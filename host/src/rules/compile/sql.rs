//! The SQL front end: EMQX rule SQL parsed by `sqlparser` and checked.
//!
//! The text is tokenized with sqlparser's generic dialect; two EMQX
//! operators sqlparser does not know are rewritten at the token level,
//! keeping their positions: `=~` (topic match) becomes the `~` operator and
//! `div` / `mod` become sqlparser's integer-division and modulo tokens. The
//! statement must be `SELECT ... FROM "filter", ... [WHERE ...]`; anything
//! else (joins, GROUP BY, LIMIT, ...) is refused with its position. Errors
//! carry a line and column in the SQL text.

use super::Located;
use sqlparser::ast::{self, Spanned};
use sqlparser::dialect::GenericDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Location, Token, TokenWithSpan, Tokenizer};

/// Nesting depth the parser accepts (keeps recursion bounded).
const RECURSION_LIMIT: usize = 48;

/// A parsed SELECT statement.
#[derive(Debug)]
pub(crate) struct Query {
    pub items: Vec<ast::SelectItem>,
    /// Topic filters and `$events/...` sources, with their positions.
    pub sources: Vec<(String, Location)>,
    pub selection: Option<ast::Expr>,
}

/// Turns a position into a `Located` error over `sql`.
pub(crate) fn located(sql: &str, at: Location, message: impl Into<String>) -> Located {
    if at.line == 0 {
        return Located::at_offset(sql, sql.len(), message);
    }
    Located {
        line: usize::try_from(at.line).unwrap_or(usize::MAX),
        column: usize::try_from(at.column).unwrap_or(usize::MAX),
        message: message.into(),
    }
}

pub(crate) fn parse(sql: &str) -> Result<Query, Located> {
    let dialect = GenericDialect {};
    let tokens = Tokenizer::new(&dialect, sql)
        .tokenize_with_location()
        .map_err(|e| located(sql, e.location, e.message))?;
    let tokens = rewrite(sql, tokens)?;
    let mut parser = Parser::new(&dialect)
        .with_recursion_limit(RECURSION_LIMIT)
        .with_tokens_with_locations(tokens);
    let statements = parser
        .parse_statements()
        .map_err(|e| parser_error(sql, &e))?;
    let mut statements = statements.into_iter();
    let (Some(statement), None) = (statements.next(), statements.next()) else {
        return Err(Located::at_offset(
            sql,
            0,
            "a rule is exactly one SELECT statement",
        ));
    };
    let ast::Statement::Query(query) = &statement else {
        return Err(located(
            sql,
            statement.span().start,
            "a rule is a SELECT statement",
        ));
    };
    let ast::SetExpr::Select(select) = query.body.as_ref() else {
        return Err(located(
            sql,
            query.span().start,
            "only SELECT ... FROM ... [WHERE ...] is supported",
        ));
    };
    let unsupported = |what: &str, at: Location| {
        Err(located(
            sql,
            at,
            format!("{what} is not supported in a rule (SELECT ... FROM ... [WHERE ...])"),
        ))
    };
    if select.distinct.is_some() {
        return unsupported("DISTINCT", select.select_token.0.span.end);
    }
    if let Some(h) = &select.having {
        return unsupported("HAVING", h.span().start);
    }
    if !matches!(&select.group_by, ast::GroupByExpr::Expressions(e, m) if e.is_empty() && m.is_empty())
    {
        return unsupported("GROUP BY", select.group_by.span().start);
    }
    if let Some(o) = &query.order_by {
        return unsupported("ORDER BY", o.span().start);
    }
    if let Some(l) = &query.limit_clause {
        return unsupported("LIMIT", l.span().start);
    }
    if select.from.is_empty() {
        return Err(Located::at_offset(
            sql,
            sql.len(),
            "a rule needs FROM with at least one topic filter or $events/... source, e.g. FROM \"t/#\"",
        ));
    }
    let mut sources = Vec::new();
    for table in &select.from {
        if let Some(join) = table.joins.first() {
            return unsupported("JOIN", join.relation.span().start);
        }
        let ast::TableFactor::Table {
            name,
            alias: None,
            args: None,
            ..
        } = &table.relation
        else {
            return Err(located(
                sql,
                table.relation.span().start,
                "FROM takes topic filters in double quotes, e.g. FROM \"t/#\", \"$events/client_connected\"",
            ));
        };
        let parts = &name.0;
        let ident = match parts.as_slice() {
            [ast::ObjectNamePart::Identifier(ident)] if ident.quote_style == Some('"') => ident,
            _ => {
                return Err(located(
                    sql,
                    name.span().start,
                    format!("FROM takes topic filters in double quotes: write \"{name}\""),
                ));
            }
        };
        sources.push((ident.value.clone(), ident.span.start));
    }
    // Anything the checks above did not name (WITH, FETCH, WINDOW, ...)
    // shows up as a difference from the statement rebuilt from its parts.
    let rebuilt = {
        let items: Vec<String> = select.projection.iter().map(ToString::to_string).collect();
        let from: Vec<String> = select.from.iter().map(ToString::to_string).collect();
        let mut s = format!("SELECT {} FROM {}", items.join(", "), from.join(", "));
        if let Some(w) = &select.selection {
            s.push_str(&format!(" WHERE {w}"));
        }
        s
    };
    if statement.to_string() != rebuilt {
        return unsupported("this clause", query.span().start);
    }
    Ok(Query {
        items: select.projection.clone(),
        sources,
        selection: select.selection.clone(),
    })
}

/// sqlparser's parser errors are text ending in " at Line: L, Column: C".
fn parser_error(sql: &str, e: &sqlparser::parser::ParserError) -> Located {
    let text = e.to_string();
    let text = text.strip_prefix("sql parser error: ").unwrap_or(&text);
    if let Some((message, at)) = text.rsplit_once(" at Line: ")
        && let Some((line, column)) = at.split_once(", Column: ")
        && let (Ok(line), Ok(column)) = (line.trim().parse(), column.trim().parse())
    {
        return Located {
            line,
            column,
            message: message.to_owned(),
        };
    }
    Located::at_offset(sql, sql.len(), text)
}

/// Rewrites `=~`, `div` and `mod` into tokens sqlparser parses as binary
/// operators.
fn rewrite(sql: &str, tokens: Vec<TokenWithSpan>) -> Result<Vec<TokenWithSpan>, Located> {
    let mut out: Vec<TokenWithSpan> = Vec::with_capacity(tokens.len());
    for token in tokens {
        match &token.token {
            Token::Tilde => match out.last_mut() {
                Some(prev) if prev.token == Token::Eq && prev.span.end == token.span.start => {
                    prev.token = Token::Tilde;
                    prev.span.end = token.span.end;
                }
                _ => {
                    return Err(located(
                        sql,
                        token.span.start,
                        "`~` is not an operator of rule SQL; `=~` matches a topic against a filter",
                    ));
                }
            },
            Token::Word(w) if w.quote_style.is_none() && ends_operand(&out) => {
                let replacement = match w.value.to_ascii_lowercase().as_str() {
                    "div" => Some(Token::DuckIntDiv),
                    "mod" => Some(Token::Mod),
                    _ => None,
                };
                out.push(TokenWithSpan {
                    token: replacement.unwrap_or(token.token.clone()),
                    span: token.span,
                });
            }
            _ => out.push(token),
        }
    }
    Ok(out)
}

/// Whether the last significant token ends an operand, so that a following
/// `div` or `mod` is an operator.
fn ends_operand(tokens: &[TokenWithSpan]) -> bool {
    let last = tokens
        .iter()
        .rev()
        .find(|t| !matches!(t.token, Token::Whitespace(_)));
    match last.map(|t| &t.token) {
        Some(
            Token::Number(..) | Token::SingleQuotedString(_) | Token::RParen | Token::RBracket,
        ) => true,
        Some(Token::Word(w)) => {
            w.quote_style.is_some()
                || !matches!(
                    w.keyword,
                    Keyword::SELECT
                        | Keyword::FROM
                        | Keyword::WHERE
                        | Keyword::AND
                        | Keyword::OR
                        | Keyword::NOT
                        | Keyword::CASE
                        | Keyword::WHEN
                        | Keyword::THEN
                        | Keyword::ELSE
                        | Keyword::IN
                        | Keyword::IS
                        | Keyword::AS
                        | Keyword::LIKE
                        | Keyword::BETWEEN
                )
        }
        _ => false,
    }
}
