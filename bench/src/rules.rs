//! The rules scenario (`--rules N`): the listener's run with N rule files
//! instead of the one seed rule, to see what a rule costs when it matches
//! nothing (distinct filters: the router should skip it) and when every
//! rule matches (the same filter: N records per message). Each rule is the
//! seed rule (in the run's record format) with its own filter and
//! description, writing to the one bench stream.

use crate::keys::PREFIX;
use crate::services::{Gateway, RuleFile};
use anyhow::{Context, bail};
use clap::ValueEnum;
use std::time::{Duration, Instant};

/// Which topics the N rules read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum RuleFilters {
    /// Rule `i` reads `t/bench/r<i>/#`: only rule 0 matches the load.
    Distinct,
    /// Every rule reads `t/bench/r0/#`: each message is stored N times.
    Same,
}

/// The prefix of the load's topics: under rule 0's filter.
pub(crate) fn load_prefix() -> String {
    format!("{PREFIX}/r0")
}

impl RuleFilters {
    /// Records stored per message with `count` rules.
    pub(crate) fn copies(self, count: u32) -> u32 {
        match self {
            RuleFilters::Distinct => 1,
            RuleFilters::Same => count,
        }
    }

    fn filter(self, rule: u32) -> String {
        match self {
            RuleFilters::Distinct => format!("{PREFIX}/r{rule}/#"),
            RuleFilters::Same => format!("{}/#", load_prefix()),
        }
    }
}

/// The rule files of a run: `r0` … `r<count-1>`.
pub(crate) fn rule_files(
    seed: &str,
    count: u32,
    filters: RuleFilters,
) -> anyhow::Result<Vec<RuleFile>> {
    (0..count)
        .map(|i| Ok(RuleFile::new(rule_name(i), rule_text(seed, i, filters, 1)?)))
        .collect()
}

fn rule_name(rule: u32) -> String {
    format!("r{rule}")
}

/// Rule `rule`'s file at `revision`: the seed rule reading the rule's own
/// filter, its description naming both, so that a new revision is a new
/// text (and a new version once loaded).
fn rule_text(seed: &str, rule: u32, filters: RuleFilters, revision: u32) -> anyhow::Result<String> {
    let (mut described, mut filtered) = (false, false);
    let text: Vec<String> = seed
        .lines()
        .map(|line| {
            if line.starts_with("description = ") {
                described = true;
                format!("description = \"weir-bench rule {rule}, revision {revision}\"")
            } else if line.starts_with("sql = ") && line.contains(r#"FROM "t/#""#) {
                filtered = true;
                line.replace(
                    r#"FROM "t/#""#,
                    &format!(r#"FROM "{}""#, filters.filter(rule)),
                )
            } else {
                line.to_owned()
            }
        })
        .collect();
    if !described || !filtered {
        bail!(
            "the seed rule no longer has a `description = ` line and a `sql = ` line reading \"t/#\"; weir-bench derives its N rules from them"
        );
    }
    Ok(text.join("\n") + "\n")
}

/// Rewrites the last rule's file and waits until weir runs its next
/// version (the file watcher reloads it): what an operator waits for after
/// editing one rule among N. Returns how long that took.
pub(crate) async fn reload_one(
    gateway: &Gateway,
    seed: &str,
    count: u32,
    filters: RuleFilters,
    deadline: Duration,
) -> anyhow::Result<Duration> {
    let rule = count.saturating_sub(1);
    let name = rule_name(rule);
    let before = gateway
        .rule_version(&name)
        .await?
        .with_context(|| format!("rule {name} is not running before its reload"))?;
    let path = gateway.plugins.join(format!("{name}.rule.toml"));
    let text = rule_text(seed, rule, filters, 2)?;
    let started = Instant::now();
    std::fs::write(&path, text).with_context(|| format!("cannot rewrite {}", path.display()))?;
    loop {
        if gateway.rule_version(&name).await? > Some(before) {
            return Ok(started.elapsed());
        }
        if started.elapsed() > deadline {
            bail!("rule {name} was still at version {before} {deadline:?} after its file changed");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::SEED_RULE;
    use weir::rules::compile::CompiledRule;

    #[test]
    fn distinct_rules_read_their_own_filter_and_compile() {
        let rules = rule_files(SEED_RULE, 3, RuleFilters::Distinct).expect("derived");
        assert_eq!(rules.len(), 3);
        for (i, rule) in rules.iter().enumerate() {
            assert_eq!(rule.name, format!("r{i}"));
            assert!(
                rule.text.contains(&format!(r#"FROM "t/bench/r{i}/#""#)),
                "{}",
                rule.text
            );
            let path = format!("{}.rule.toml", rule.name);
            CompiledRule::compile(&rule.text, std::path::Path::new(&path)).expect("compiles");
        }
    }

    #[test]
    fn same_rules_all_read_the_loads_filter() {
        let rules = rule_files(SEED_RULE, 2, RuleFilters::Same).expect("derived");
        for rule in &rules {
            assert!(
                rule.text.contains(r#"FROM "t/bench/r0/#""#),
                "{}",
                rule.text
            );
        }
        assert_eq!(RuleFilters::Same.copies(2), 2);
        assert_eq!(RuleFilters::Distinct.copies(2), 1);
        assert!(
            crate::keys::Topics::new(&load_prefix(), 1, None)
                .expect("valid")
                .topic(0, 0)
                .starts_with("t/bench/r0/")
        );
    }

    #[test]
    fn a_new_revision_is_a_new_text() {
        let first = rule_text(SEED_RULE, 5, RuleFilters::Distinct, 1).expect("derived");
        let second = rule_text(SEED_RULE, 5, RuleFilters::Distinct, 2).expect("derived");
        assert_ne!(first, second);
        assert!(rule_text("sql = 'SELECT 1'", 0, RuleFilters::Same, 1).is_err());
    }
}
