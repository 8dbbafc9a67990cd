//! The seed's rules, built into the binary so that `weir dev` works outside
//! the repository: where there is no plugins directory, it writes these.
//! Their one source is the repository's `plugins/*.rule.toml` (the files the
//! README's tutorial and the tests use), included at build time.

use std::path::Path;

/// Each seed rule: its file name and text.
pub(crate) const RULES: [(&str, &str); 2] = [
    (
        "mqtt_message.rule.toml",
        include_str!("../../../plugins/mqtt_message.rule.toml"),
    ),
    (
        "mqtt_connect.rule.toml",
        include_str!("../../../plugins/mqtt_connect.rule.toml"),
    ),
];

/// Creates `dir` with the seed's rules in it.
pub(crate) fn write_plugins_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (name, text) in RULES {
        std::fs::write(dir.join(name), text)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::compile::CompiledRule;

    #[test]
    fn the_seed_rules_compile() {
        for (name, text) in RULES {
            CompiledRule::compile(text, Path::new(name))
                .unwrap_or_else(|e| panic!("the seed rule {name} does not compile: {e}"));
        }
    }
}
