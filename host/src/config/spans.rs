//! Where a field of weir.toml is written: the dotted path of a field, as
//! serde and the sections' `validate` name it (`sink.batch.max_records`,
//! `mqtt.listener.users[0].username`), mapped back to the line and column
//! of its value or key in the file, so an error points at what to fix.

use crate::rules::compile::line_column;
use std::fmt;
use std::ops::Range;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// A place in the file: 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl Position {
    /// The position of byte `offset` of `text`.
    pub(crate) fn of(text: &str, offset: usize) -> Position {
        let (line, column) = line_column(text, offset);
        Position { line, column }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// Which part of a `key = value` line an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    /// The key: an unknown key, a section.
    Key,
    /// The value: a wrong type, an invalid value. A table's "value" is its
    /// key, where the section is named.
    Value,
}

/// The file's text with the span of every key and value.
pub(crate) struct Spans<'t> {
    text: &'t str,
    document: Spanned<DeTable<'t>>,
}

impl<'t> Spans<'t> {
    /// Parses `text`; the error is TOML's own, with its span.
    pub(crate) fn parse(text: &'t str) -> Result<Spans<'t>, toml::de::Error> {
        Ok(Spans {
            text,
            document: DeTable::parse(text)?,
        })
    }

    /// Where the field at `path` is written, if it is in the file.
    pub(crate) fn find(&self, path: &str, part: Part) -> Option<Position> {
        let mut table = self.document.get_ref();
        let mut found: Option<(Range<usize>, &Spanned<DeValue<'t>>)> = None;
        for segment in path.split('.') {
            if let Some((_, value)) = found {
                table = value.get_ref().as_table()?;
            }
            let (name, indices) = segment.split_once('[').unwrap_or((segment, ""));
            let (key, mut value) = table.get_key_value(name)?;
            let mut key_span = key.span();
            for index in indices.split('[').filter(|i| !i.is_empty()) {
                let index: usize = index.trim_end_matches(']').parse().ok()?;
                value = value.get_ref().as_array()?.get(index)?;
                key_span = value.span();
            }
            found = Some((key_span, value));
        }
        let (key_span, value) = found?;
        let span = match part {
            Part::Value if !value.get_ref().is_table() => value.span(),
            _ => key_span,
        };
        Some(Position::of(self.text, span.start))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "node = \"n\"\n\n[sink.batch]\nmax_records = \"many\"\n\n\
                        [[mqtt.listener.users]]\nusername = \"a\"\n\n\
                        [[mqtt.listener.users]]\nusername = \"\"\n";

    fn find(path: &str, part: Part) -> Option<(usize, usize)> {
        let spans = Spans::parse(FILE).expect("valid TOML");
        spans.find(path, part).map(|p| (p.line, p.column))
    }

    #[test]
    fn values_keys_and_list_items_are_found_where_they_are_written() {
        assert_eq!(find("node", Part::Value), Some((1, 8)));
        assert_eq!(find("node", Part::Key), Some((1, 1)));
        assert_eq!(find("sink.batch.max_records", Part::Value), Some((4, 15)));
        assert_eq!(find("sink.batch.max_records", Part::Key), Some((4, 1)));
        assert_eq!(
            find("mqtt.listener.users[1].username", Part::Value),
            Some((10, 12))
        );
    }

    #[test]
    fn a_section_is_found_at_its_header() {
        assert_eq!(find("sink.batch", Part::Value), Some((3, 7)));
    }

    #[test]
    fn what_the_file_does_not_say_has_no_position() {
        assert_eq!(find("sink.batch.linger_ms", Part::Value), None);
        assert_eq!(find("mqtt.listener.users[2].username", Part::Value), None);
        assert_eq!(find("node.name", Part::Value), None);
    }
}
