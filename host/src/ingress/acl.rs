//! The listener's per-topic authorization: which client may publish to,
//! and subscribe to, which topics.
//!
//! It reads as EMQX's file authorizer and mosquitto's ACL file do: an
//! ordered list of rules (`listener.acl`), each for everyone or for one
//! username or client id, about publishing, subscribing or both, naming
//! topic filters; the first rule whose client, action and a topic match
//! decides, and `listener.acl_no_match` decides when none does. Matching is
//! the one topic matcher's (`weir_guest_sdk::topic`), as EMQX does it: a
//! published topic against the rule's filter, and a SUBSCRIBE's filter taken
//! as a topic against it, so `sensors/+/temp` is inside the rule `sensors/#`
//! but `#` is not inside `secret/#` (deny `eq #` to stop a client
//! subscribing to everything).
//!
//! `${username}` and `${clientid}` in a filter stand for the client's own,
//! filled in once when the client connects ([`Acl::for_client`]), so a
//! publish is checked against ready filters and never renders one.
//! A value that is missing (no username) or could change what the filter
//! means (empty, or containing `/`, `+`, `#`) makes an allow rule not match
//! and a deny rule match: a crafted client id never widens what a client
//! may do. `eq FILTER` is the filter's text exactly, with no wildcards and no
//! placeholders.

use super::config::{AclAction, AclPermission, AclRule, ConfigError, config_error};
use weir_guest_sdk::topic::TopicFilter;

/// What a client asks to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Publish,
    Subscribe,
}

impl Action {
    /// The `action` label of `weir_ingress_acl_denied_total`.
    pub(crate) fn word(self) -> &'static str {
        match self {
            Action::Publish => "publish",
            Action::Subscribe => "subscribe",
        }
    }
}

/// Who asks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Client<'a> {
    pub(crate) username: Option<&'a str>,
    pub(crate) clientid: &'a str,
}

/// The listener's rules, checked once at load.
#[derive(Debug, Clone, Default)]
pub(crate) struct Acl {
    rules: Vec<Rule>,
    no_match: AclPermission,
    /// How many patterns have placeholders; each has a slot in
    /// [`ClientAcl::filled`].
    templates: usize,
}

/// The ACL as it applies to one connected client: the rules about it, and
/// its placeholder patterns filled in with its username and client id.
#[derive(Debug, Clone, Default)]
pub(crate) struct ClientAcl {
    /// The rules whose username and client id fit this client, in order.
    rules: Vec<usize>,
    /// Each placeholder pattern's filter for this client, by slot; `None`
    /// when the client has no safe value for it (or the rule is not about
    /// this client).
    filled: Vec<Option<TopicFilter>>,
}

#[derive(Debug, Clone)]
struct Rule {
    permission: AclPermission,
    action: AclAction,
    username: Option<String>,
    clientid: Option<String>,
    topics: Vec<Pattern>,
}

#[derive(Debug, Clone)]
enum Pattern {
    /// `eq FILTER`: this text exactly.
    Exactly(String),
    /// A filter without placeholders.
    Filter(TopicFilter),
    /// A filter with placeholders, made for each client; its filter for a
    /// client is in the client's `filled[slot]`.
    Template { pieces: Vec<Piece>, slot: usize },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Username,
    ClientId,
}

/// How a pattern relates to a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Match {
    Yes,
    No,
    /// The client has no safe value for a placeholder.
    Unknown,
}

impl Acl {
    /// Checks `rules` (`listener.acl`), naming the first bad field.
    pub(crate) fn from_config(
        rules: &[AclRule],
        no_match: AclPermission,
    ) -> Result<Acl, ConfigError> {
        let mut templates = 0;
        let rules = rules
            .iter()
            .enumerate()
            .map(|(i, rule)| Rule::from_config(&format!("listener.acl[{i}]"), rule, &mut templates))
            .collect::<Result<_, _>>()?;
        Ok(Acl {
            rules,
            no_match,
            templates,
        })
    }

    /// The rules about `client`, with its placeholders filled in: made once
    /// per connection, when the client's username and client id are known.
    pub(crate) fn for_client(&self, client: Client<'_>) -> ClientAcl {
        let mut filled = vec![None; self.templates];
        let mut rules = Vec::new();
        for (index, rule) in self.rules.iter().enumerate() {
            if !rule.is_about(client) {
                continue;
            }
            rules.push(index);
            for pattern in &rule.topics {
                if let Pattern::Template { pieces, slot } = pattern {
                    filled[*slot] =
                        render(pieces, client).and_then(|f| TopicFilter::parse(&f).ok());
                }
            }
        }
        ClientAcl { rules, filled }
    }

    /// Whether the client `client` was made for may do `action` on `topic`
    /// (a topic name to publish to, or a filter to subscribe to).
    pub(crate) fn allows(&self, client: &ClientAcl, action: Action, topic: &str) -> bool {
        for rule in client.rules.iter().filter_map(|&i| self.rules.get(i)) {
            if !rule.covers(action) {
                continue;
            }
            let matched = rule.topics.iter().any(|pattern| {
                match pattern.matches(client, topic) {
                    Match::Yes => true,
                    Match::No => false,
                    // Unsure: deny rather than allow.
                    Match::Unknown => rule.permission == AclPermission::Deny,
                }
            });
            if matched {
                return rule.permission == AclPermission::Allow;
            }
        }
        self.no_match == AclPermission::Allow
    }
}

impl Rule {
    fn from_config(
        field: &str,
        rule: &AclRule,
        templates: &mut usize,
    ) -> Result<Rule, ConfigError> {
        for (name, value) in [("username", &rule.username), ("clientid", &rule.clientid)] {
            if value.as_deref() == Some("") {
                return Err(config_error(
                    &format!("{field}.{name}"),
                    "is empty: leave it out for a rule about every client",
                ));
            }
        }
        if rule.topics.is_empty() {
            return Err(config_error(
                &format!("{field}.topics"),
                "is empty: the rule would match nothing",
            ));
        }
        let topics = rule
            .topics
            .iter()
            .enumerate()
            .map(|(j, text)| {
                Pattern::parse(text, templates)
                    .map_err(|e| config_error(&format!("{field}.topics[{j}]"), e))
            })
            .collect::<Result<_, _>>()?;
        Ok(Rule {
            permission: rule.permission,
            action: rule.action,
            username: rule.username.clone(),
            clientid: rule.clientid.clone(),
            topics,
        })
    }

    fn covers(&self, action: Action) -> bool {
        matches!(
            (self.action, action),
            (AclAction::All, _)
                | (AclAction::Publish, Action::Publish)
                | (AclAction::Subscribe, Action::Subscribe)
        )
    }

    fn is_about(&self, client: Client<'_>) -> bool {
        self.username
            .as_deref()
            .is_none_or(|u| client.username == Some(u))
            && self
                .clientid
                .as_deref()
                .is_none_or(|c| client.clientid == c)
    }
}

impl Pattern {
    fn parse(text: &str, templates: &mut usize) -> Result<Pattern, String> {
        if let Some(exact) = text.strip_prefix("eq ") {
            TopicFilter::parse(exact).map_err(|e| e.to_string())?;
            return Ok(Pattern::Exactly(exact.to_owned()));
        }
        let pieces = pieces(text)?;
        if let [Piece::Text(filter)] = pieces.as_slice() {
            return TopicFilter::parse(filter)
                .map(Pattern::Filter)
                .map_err(|e| e.to_string());
        }
        // A safe value stands in for each placeholder, so the filter is
        // checked as any client's will be.
        let sample = render(
            &pieces,
            Client {
                username: Some("u"),
                clientid: "c",
            },
        )
        .unwrap_or_default();
        TopicFilter::parse(&sample).map_err(|e| e.to_string())?;
        let slot = *templates;
        *templates += 1;
        Ok(Pattern::Template { pieces, slot })
    }

    fn matches(&self, client: &ClientAcl, topic: &str) -> Match {
        let yes = |b: bool| if b { Match::Yes } else { Match::No };
        match self {
            Pattern::Exactly(exact) => yes(topic == exact),
            Pattern::Filter(filter) => yes(filter.matches(topic)),
            Pattern::Template { slot, .. } => match client.filled.get(*slot) {
                Some(Some(filter)) => yes(filter.matches(topic)),
                _ => Match::Unknown,
            },
        }
    }
}

/// `text` split at its `${username}` and `${clientid}` placeholders.
fn pieces(text: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        if start > 0 {
            pieces.push(Piece::Text(rest[..start].to_owned()));
        }
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("`{text}` has a `${{` without its `}}`"))?;
        pieces.push(match &after[..end] {
            "username" => Piece::Username,
            "clientid" => Piece::ClientId,
            other => {
                return Err(format!(
                    "`{text}` names the placeholder ${{{other}}}; the listener knows ${{username}} and ${{clientid}}"
                ));
            }
        });
        rest = &after[end + 1..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest.to_owned()));
    }
    Ok(pieces)
}

/// The filter `pieces` make for `client`, or `None` when a placeholder has
/// no value that keeps the filter's meaning.
fn render(pieces: &[Piece], client: Client<'_>) -> Option<String> {
    let safe = |value: &str| !value.is_empty() && !value.contains(['/', '+', '#', '\0']);
    let mut filter = String::new();
    for piece in pieces {
        let value = match piece {
            Piece::Text(text) => {
                filter.push_str(text);
                continue;
            }
            Piece::Username => client.username?,
            Piece::ClientId => client.clientid,
        };
        if !safe(value) {
            return None;
        }
        filter.push_str(value);
    }
    Some(filter)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(permission: AclPermission, action: AclAction, topics: &[&str]) -> AclRule {
        AclRule {
            permission,
            action,
            username: None,
            clientid: None,
            topics: topics.iter().map(|t| (*t).to_owned()).collect(),
        }
    }

    fn acl(rules: &[AclRule], no_match: AclPermission) -> Acl {
        Acl::from_config(rules, no_match).expect("valid rules")
    }

    const ALICE: Client<'static> = Client {
        username: Some("alice"),
        clientid: "sensor-1",
    };
    const ANONYMOUS: Client<'static> = Client {
        username: None,
        clientid: "anon",
    };

    /// Whether `client` may do `action` on `topic`, through the ACL made
    /// for it as a connection makes it.
    fn allows(acl: &Acl, client: Client<'_>, action: Action, topic: &str) -> bool {
        acl.allows(&acl.for_client(client), action, topic)
    }

    use AclAction::{All, Publish, Subscribe};
    use AclPermission::{Allow, Deny};
    use Action::{Publish as Pub, Subscribe as Sub};

    #[test]
    fn no_rules_follow_no_match() {
        let (allow, deny) = (acl(&[], Allow), acl(&[], Deny));
        assert!(allows(&allow, ALICE, Pub, "any/topic"));
        assert!(!allows(&deny, ALICE, Sub, "#"));
    }

    #[test]
    fn the_first_matching_rule_decides() {
        let acl = acl(
            &[
                rule(Deny, Publish, &["sensors/secret"]),
                rule(Allow, Publish, &["sensors/#"]),
                rule(Allow, Subscribe, &["commands/+"]),
            ],
            Deny,
        );
        assert!(allows(&acl, ALICE, Pub, "sensors/a"));
        assert!(!allows(&acl, ALICE, Pub, "sensors/secret"));
        assert!(!allows(&acl, ALICE, Pub, "commands/a"), "subscribe only");
        assert!(allows(&acl, ALICE, Sub, "commands/a"));
        assert!(!allows(&acl, ALICE, Sub, "sensors/a"), "publish only");
        assert!(!allows(&acl, ALICE, Pub, "other"), "no match: deny");
    }

    #[test]
    fn rules_apply_to_their_username_or_client_id() {
        let for_alice = AclRule {
            username: Some("alice".into()),
            ..rule(Allow, All, &["alice/#"])
        };
        let for_sensor_2 = AclRule {
            clientid: Some("sensor-2".into()),
            ..rule(Allow, All, &["alice/#"])
        };
        let acl = acl(&[for_alice, for_sensor_2], Deny);
        assert!(allows(&acl, ALICE, Pub, "alice/x"));
        assert!(!allows(&acl, ANONYMOUS, Pub, "alice/x"));
        let sensor_2 = Client {
            username: Some("bob"),
            clientid: "sensor-2",
        };
        assert!(allows(&acl, sensor_2, Sub, "alice/x"));
    }

    #[test]
    fn a_subscription_is_allowed_inside_the_rules_filter_only() {
        let acl = acl(&[rule(Allow, Subscribe, &["sensors/#"])], Deny);
        assert!(allows(&acl, ALICE, Sub, "sensors/#"));
        assert!(allows(&acl, ALICE, Sub, "sensors/+/temp"));
        assert!(!allows(&acl, ALICE, Sub, "#"));
        assert!(!allows(&acl, ALICE, Sub, "+/temp"));
    }

    #[test]
    fn eq_is_the_text_exactly() {
        let acl = acl(
            &[
                rule(Deny, Subscribe, &["eq #"]),
                rule(Allow, Subscribe, &["eq sensors/+"]),
            ],
            Allow,
        );
        assert!(!allows(&acl, ALICE, Sub, "#"));
        assert!(allows(&acl, ALICE, Sub, "sensors/+"));
        let acl = self::acl(&[rule(Allow, Subscribe, &["eq sensors/+"])], Deny);
        assert!(allows(&acl, ALICE, Sub, "sensors/+"));
        assert!(!allows(&acl, ALICE, Sub, "sensors/a"), "not a wildcard");
    }

    #[test]
    fn placeholders_are_the_clients_own() {
        let acl = acl(
            &[rule(
                Allow,
                All,
                &["users/${username}/#", "devices/${clientid}/up"],
            )],
            Deny,
        );
        assert!(allows(&acl, ALICE, Pub, "users/alice/x"));
        assert!(!allows(&acl, ALICE, Pub, "users/bob/x"));
        assert!(allows(&acl, ALICE, Pub, "devices/sensor-1/up"));
        assert!(!allows(&acl, ALICE, Pub, "devices/sensor-2/up"));
        assert!(!allows(&acl, ANONYMOUS, Pub, "users/anon/x"), "no username");
        assert!(allows(&acl, ANONYMOUS, Pub, "devices/anon/up"));
    }

    #[test]
    fn an_unsafe_placeholder_value_never_widens_access() {
        let allow = acl(&[rule(Allow, All, &["devices/${clientid}/#"])], Deny);
        let deny = acl(&[rule(Deny, All, &["devices/${clientid}/#"])], Allow);
        for clientid in ["+", "#", "a/b", ""] {
            let client = Client {
                username: None,
                clientid,
            };
            assert!(!allows(&allow, client, Pub, "devices/x/y"), "{clientid:?}");
            assert!(!allows(&allow, client, Sub, "devices/+/#"), "{clientid:?}");
            assert!(!allows(&deny, client, Pub, "devices/x/y"), "{clientid:?}");
        }
    }

    #[test]
    fn bad_rules_name_the_field() {
        let error = |rules: &[AclRule]| Acl::from_config(rules, Allow).expect_err("invalid");
        let e = error(&[rule(Allow, All, &["ok/#"]), rule(Allow, All, &[])]);
        assert_eq!(e.field, "listener.acl[1].topics");
        for (topic, words) in [
            ("a/#/b", "`#` must be"),
            ("a/${user}", "${user}"),
            ("a/${username", "without its"),
            ("a/x${clientid}+", "`+` must be"),
            ("eq ", "empty"),
        ] {
            let e = error(&[rule(Allow, All, &["fine", topic])]);
            assert_eq!(e.field, "listener.acl[0].topics[1]", "{topic}");
            assert!(e.reason.contains(words), "{topic}: {e}");
        }
        let empty_user = AclRule {
            username: Some(String::new()),
            ..rule(Allow, All, &["t"])
        };
        assert_eq!(error(&[empty_user]).field, "listener.acl[0].username");
    }

    #[test]
    fn rules_read_from_toml() {
        let rules: Vec<AclRule> = toml::from_str::<toml::Table>(
            r#"
            [[acl]]
            permission = "deny"
            action = "subscribe"
            topics = ["eq #"]

            [[acl]]
            permission = "allow"
            username = "alice"
            topics = ["users/${username}/#"]
            "#,
        )
        .expect("toml")["acl"]
            .clone()
            .try_into()
            .expect("rules");
        assert_eq!(rules[1].action, All, "all by default");
        let acl = acl(&rules, Deny);
        assert!(allows(&acl, ALICE, Sub, "users/alice/+"));
        assert!(!allows(&acl, ALICE, Sub, "#"));
    }
}
