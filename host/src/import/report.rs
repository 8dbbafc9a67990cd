//! The import's report: one entry per EMQX setting, rule and action, in the
//! five groups the user needs to act on.

use std::fmt;

/// What became of one EMQX setting, rule or action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum EntryKind {
    /// A file weir will run with was written.
    Written,
    /// Carried over to a weir setting (or weir's default is the same).
    Mapped,
    /// Carried over, but weir behaves differently; the entry says how.
    Differs,
    /// Nothing in weir corresponds; the entry says why.
    NoEquivalent,
    /// A rule (or rule and action) written, but disabled as it was in EMQX.
    Disabled,
    /// A rule and action not written, with the reason.
    Refused,
}

impl EntryKind {
    fn heading(self) -> &'static str {
        match self {
            EntryKind::Written => "written",
            EntryKind::Mapped => "mapped",
            EntryKind::Differs => "behaves differently",
            EntryKind::NoEquivalent => "no weir equivalent",
            EntryKind::Disabled => "disabled",
            EntryKind::Refused => "refused",
        }
    }
}

/// One line of the report: what (`file:line: key`, or a rule) and the
/// outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub kind: EntryKind,
    pub subject: String,
    pub text: String,
}

/// Everything the import did and did not do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Report {
    pub entries: Vec<Entry>,
}

impl Report {
    pub(crate) fn add(
        &mut self,
        kind: EntryKind,
        subject: impl Into<String>,
        text: impl Into<String>,
    ) {
        self.entries.push(Entry {
            kind,
            subject: subject.into(),
            text: text.into(),
        });
    }

    /// The entries of one kind.
    pub(crate) fn of(&self, kind: EntryKind) -> impl Iterator<Item = &Entry> {
        self.entries.iter().filter(move |e| e.kind == kind)
    }

    /// Whether a rule was refused: the import then did not carry everything.
    pub(crate) fn refused_any(&self) -> bool {
        self.of(EntryKind::Refused).next().is_some()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for kind in [
            EntryKind::Written,
            EntryKind::Mapped,
            EntryKind::Differs,
            EntryKind::NoEquivalent,
            EntryKind::Disabled,
            EntryKind::Refused,
        ] {
            let mut entries = self.of(kind).peekable();
            if entries.peek().is_none() {
                continue;
            }
            writeln!(f, "{}:", kind.heading())?;
            for entry in entries {
                writeln!(f, "  {}: {}", entry.subject, entry.text)?;
            }
        }
        Ok(())
    }
}
