//! Did-you-mean: the known names nearest to a name nobody defined.
//!
//! One policy for every message that names something unknown (a column or
//! template placeholder of a rule, a rule function, a key of weir.toml), so
//! a typo gets the same help wherever it is made. Nearness is the edit
//! distance (`strsim`'s Levenshtein, over characters), allowed to grow with
//! the length of the known name, so `batch_sise` finds `batch_size` while
//! `url` does not find `uri`-like strangers two edits away from anything.

/// The known name nearest to `name`, when one is near enough to be the
/// likely meaning; ties go to the first.
pub(crate) fn nearest<'n>(name: &str, known: impl IntoIterator<Item = &'n str>) -> Option<&'n str> {
    known
        .into_iter()
        .map(|k| (strsim::levenshtein(name, k), k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4) && *d < name.len().max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// ` (did you mean `x`?)` when a known name is near `name`, else nothing:
/// the tail of a message that names `name`.
pub(crate) fn did_you_mean<'n>(name: &str, known: impl IntoIterator<Item = &'n str>) -> String {
    nearest(name, known)
        .map(|k| format!(" (did you mean `{k}`?)"))
        .unwrap_or_default()
}

/// Up to `count` known names near `name`, nearest first: the candidates
/// when a short list helps more than one guess (a function name, where
/// several functions differ by a letter). Looser than [`nearest`]: a third
/// of the name may differ.
pub(crate) fn closest<'n>(
    name: &str,
    known: impl IntoIterator<Item = &'n str>,
    count: usize,
) -> Vec<&'n str> {
    let mut near: Vec<(usize, &str)> = known
        .into_iter()
        .map(|k| (strsim::levenshtein(name, k), k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 3))
        .collect();
    near.sort();
    near.into_iter().take(count).map(|(_, k)| k).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_near_name_is_suggested_and_a_stranger_is_not() {
        let keys = ["batch_size", "linger_ms", "max_bytes"];
        assert_eq!(nearest("batch_sise", keys), Some("batch_size"));
        assert_eq!(nearest("linger", keys), None, "three edits from linger_ms");
        assert_eq!(nearest("colour", keys), None);
        assert_eq!(
            did_you_mean("max_byte", keys),
            " (did you mean `max_bytes`?)"
        );
        assert_eq!(did_you_mean("zzz", keys), "");
    }

    #[test]
    fn a_one_letter_name_is_never_corrected_into_another() {
        assert_eq!(nearest("a", ["b", "c"]), None);
    }

    #[test]
    fn closest_lists_the_nearest_first() {
        assert_eq!(
            closest("lenght", ["lower", "length", "ltrim"], 3),
            ["length"]
        );
        assert_eq!(closest("ab", ["cc", "bb", "aa", "ab"], 2), ["ab", "aa"]);
    }
}
