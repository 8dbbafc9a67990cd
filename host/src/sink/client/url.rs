//! Server URLs as EMQX's HStreamDB connector and the official clients accept
//! them: `hstream://` and `http://` are plain, `hstreams://` and `https://`
//! are TLS, and one URL may name several seed servers separated by commas
//! (`hstream://h1:6570,h2`), all using the scheme of the first. The port
//! defaults to 6570.
//!
//! Parsing is hand-written rather than delegated to a URL crate because a
//! comma-separated host list is not a URL, and because a user who typed a
//! wrong URL deserves to be told which entry and which part is wrong.

use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

/// HStreamDB's default gRPC port.
pub(crate) const DEFAULT_PORT: u16 = 6570;

/// A server address as dialled: a host name or IP address and a port.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeAddr {
    /// A DNS name or an IP address; IPv6 addresses are kept without brackets.
    pub host: String,
    pub port: u16,
}

impl NodeAddr {
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        NodeAddr {
            host: host.into(),
            port,
        }
    }
}

impl fmt::Display for NodeAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// A parsed server URL: whether to use TLS and the seed servers to discover
/// the cluster from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerUrl {
    tls: bool,
    scheme: String,
    seeds: Vec<NodeAddr>,
}

impl ServerUrl {
    /// Whether connections use TLS (`hstreams://` or `https://`).
    pub fn tls(&self) -> bool {
        self.tls
    }

    /// The seed servers, in the order given; never empty.
    pub fn seeds(&self) -> &[NodeAddr] {
        &self.seeds
    }
}

impl fmt::Display for ServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", self.scheme)?;
        for (i, seed) in self.seeds.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{seed}")?;
        }
        Ok(())
    }
}

/// What is wrong with a server URL. Entries are numbered from 1 in the order
/// they appear in the comma-separated list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("the server URL is empty")]
    Empty,
    #[error(
        "server URL {url:?} has no scheme: write hstream://HOST[:PORT] (or hstreams:// for TLS)"
    )]
    MissingScheme { url: String },
    #[error(
        "server URL {url:?}: unknown scheme {scheme:?}: expected hstream, hstreams, http or https"
    )]
    UnknownScheme { url: String, scheme: String },
    #[error(
        "server URL {url:?}: entry {entry} uses scheme {scheme:?} but the first entry uses {first:?}; all servers must be plain or all TLS"
    )]
    MixedSchemes {
        url: String,
        entry: usize,
        scheme: String,
        first: String,
    },
    #[error("server URL {url:?}: entry {entry} is empty")]
    EmptyEntry { url: String, entry: usize },
    #[error("server URL {url:?}: entry {entry} ({text:?}) has no host")]
    MissingHost {
        url: String,
        entry: usize,
        text: String,
    },
    #[error("server URL {url:?}: entry {entry} ({text:?}): invalid host {host:?}: {why}")]
    BadHost {
        url: String,
        entry: usize,
        text: String,
        host: String,
        why: &'static str,
    },
    #[error(
        "server URL {url:?}: entry {entry} ({text:?}): invalid port {port:?}: expected a number from 1 to 65535"
    )]
    BadPort {
        url: String,
        entry: usize,
        text: String,
        port: String,
    },
    #[error("server URL {url:?}: entry {entry} ({text:?}): {what} is not supported")]
    Unsupported {
        url: String,
        entry: usize,
        text: String,
        what: &'static str,
    },
}

impl FromStr for ServerUrl {
    type Err = UrlError;

    fn from_str(text: &str) -> Result<Self, UrlError> {
        let url = text.trim();
        if url.is_empty() {
            return Err(UrlError::Empty);
        }
        let Some((scheme, _)) = split_scheme(url) else {
            return Err(UrlError::MissingScheme { url: url.into() });
        };
        let scheme = scheme.to_ascii_lowercase();
        let tls = scheme_is_tls(&scheme).ok_or_else(|| UrlError::UnknownScheme {
            url: url.into(),
            scheme: scheme.clone(),
        })?;

        let seeds = url
            .split(',')
            .enumerate()
            .map(|(i, entry)| parse_entry(url, i + 1, entry.trim(), &scheme, tls))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ServerUrl { tls, scheme, seeds })
    }
}

/// Splits `scheme://rest`; `None` when there is no `://`, or when what stands
/// before it cannot be a scheme (so `h1,h2://x` is "missing scheme").
fn split_scheme(text: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = text.split_once("://")?;
    let valid = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then_some((scheme, rest))
}

fn scheme_is_tls(scheme: &str) -> Option<bool> {
    match scheme {
        "hstream" | "http" => Some(false),
        "hstreams" | "https" => Some(true),
        _ => None,
    }
}

fn parse_entry(
    url: &str,
    entry: usize,
    text: &str,
    first_scheme: &str,
    tls: bool,
) -> Result<NodeAddr, UrlError> {
    if text.is_empty() {
        return Err(UrlError::EmptyEntry {
            url: url.into(),
            entry,
        });
    }
    let unsupported = |what| UrlError::Unsupported {
        url: url.into(),
        entry,
        text: text.into(),
        what,
    };

    // Later entries may repeat a scheme, as long as it agrees with the first.
    let mut rest = text;
    if let Some((scheme, after)) = split_scheme(text) {
        let scheme = scheme.to_ascii_lowercase();
        match scheme_is_tls(&scheme) {
            None => {
                return Err(UrlError::UnknownScheme {
                    url: url.into(),
                    scheme,
                });
            }
            Some(entry_tls) if entry_tls != tls => {
                return Err(UrlError::MixedSchemes {
                    url: url.into(),
                    entry,
                    scheme,
                    first: first_scheme.into(),
                });
            }
            Some(_) => rest = after,
        }
    }

    // A single trailing slash is harmless; a real path or query is not
    // something a gRPC server address can have.
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains(['/', '?', '#']) {
        return Err(unsupported("a path, query or fragment"));
    }
    if rest.contains('@') {
        return Err(unsupported("user information (user:password@)"));
    }

    let (host, port) = split_host_port(rest).map_err(|why| UrlError::BadHost {
        url: url.into(),
        entry,
        text: text.into(),
        host: rest.into(),
        why,
    })?;
    if host.is_empty() {
        return Err(UrlError::MissingHost {
            url: url.into(),
            entry,
            text: text.into(),
        });
    }
    if !host.contains(':') {
        check_host_name(host).map_err(|why| UrlError::BadHost {
            url: url.into(),
            entry,
            text: text.into(),
            host: host.into(),
            why,
        })?;
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(port) => port
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0 && !port.starts_with('+'))
            .ok_or_else(|| UrlError::BadPort {
                url: url.into(),
                entry,
                text: text.into(),
                port: port.into(),
            })?,
    };
    Ok(NodeAddr::new(host, port))
}

/// Splits `host[:port]` or `[v6][:port]`; the host is returned without
/// brackets.
fn split_host_port(text: &str) -> Result<(&str, Option<&str>), &'static str> {
    if let Some(inner) = text.strip_prefix('[') {
        let (host, after) = inner
            .split_once(']')
            .ok_or("an IPv6 address opened with '[' must be closed with ']'")?;
        host.parse::<Ipv6Addr>()
            .map_err(|_| "not a valid IPv6 address")?;
        return match after {
            "" => Ok((host, None)),
            _ => match after.strip_prefix(':') {
                Some(port) => Ok((host, Some(port))),
                None => Err("only ':PORT' may follow a bracketed IPv6 address"),
            },
        };
    }
    match text.split_once(':') {
        None => Ok((text, None)),
        Some((_, port)) if port.contains(':') => {
            Err("an IPv6 address must be written in brackets, as in [::1]:6570")
        }
        Some((host, port)) => Ok((host, Some(port))),
    }
}

fn check_host_name(host: &str) -> Result<(), &'static str> {
    if !host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
    {
        return Err("a host name may only contain letters, digits, '-', '_' and '.'");
    }
    if host.split('.').any(str::is_empty) {
        return Err("a host name may not have empty labels (leading, trailing or double dots)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> ServerUrl {
        text.parse()
            .unwrap_or_else(|e| panic!("{text:?} should parse: {e}"))
    }

    fn seeds(text: &str) -> Vec<String> {
        parse(text)
            .seeds()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn schemes_select_tls() {
        for (url, tls) in [
            ("hstream://h", false),
            ("http://h", false),
            ("hstreams://h", true),
            ("https://h", true),
            ("HSTREAMS://h", true),
        ] {
            assert_eq!(parse(url).tls(), tls, "{url}");
        }
    }

    #[test]
    fn default_port_and_lists() {
        assert_eq!(seeds("hstream://h1"), ["h1:6570"]);
        assert_eq!(seeds("hstream://h1:7000"), ["h1:7000"]);
        assert_eq!(
            seeds(" hstream://h1:6570, h2 ,10.0.0.3:1 "),
            ["h1:6570", "h2:6570", "10.0.0.3:1"]
        );
        assert_eq!(seeds("hstream://h1/"), ["h1:6570"]);
        assert_eq!(seeds("http://h1,http://h2:9"), ["h1:6570", "h2:9"]);
        assert_eq!(seeds("hstream://my_host.local"), ["my_host.local:6570"]);
    }

    #[test]
    fn ipv6_needs_brackets() {
        let url = parse("hstreams://[::1]:7000,[fe80::2]");
        assert_eq!(url.seeds()[0], NodeAddr::new("::1", 7000));
        assert_eq!(url.seeds()[1], NodeAddr::new("fe80::2", DEFAULT_PORT));
        assert_eq!(url.to_string(), "hstreams://[::1]:7000,[fe80::2]:6570");
        assert!(matches!(
            "hstream://::1".parse::<ServerUrl>(),
            Err(UrlError::BadHost { why, .. }) if why.contains("brackets")
        ));
        assert!(matches!(
            "hstream://[::1".parse::<ServerUrl>(),
            Err(UrlError::BadHost { .. })
        ));
        assert!(matches!(
            "hstream://[nope]:1".parse::<ServerUrl>(),
            Err(UrlError::BadHost {
                why: "not a valid IPv6 address",
                ..
            })
        ));
        assert!(matches!(
            "hstream://[::1]x".parse::<ServerUrl>(),
            Err(UrlError::BadHost { .. })
        ));
    }

    #[test]
    fn display_round_trips() {
        let url = parse("hstream://a:1,b");
        assert_eq!(url.to_string(), "hstream://a:1,b:6570");
        assert_eq!(parse(&url.to_string()), url);
    }

    #[test]
    fn errors_name_the_wrong_part() {
        let err = |text: &str| {
            text.parse::<ServerUrl>()
                .expect_err(&format!("{text:?} should be rejected"))
        };
        assert_eq!(err("  "), UrlError::Empty);
        assert!(matches!(err("h1:6570"), UrlError::MissingScheme { .. }));
        assert!(matches!(err("h1,h2://x"), UrlError::MissingScheme { .. }));
        assert!(matches!(
            err("grpc://h1"),
            UrlError::UnknownScheme { scheme, .. } if scheme == "grpc"
        ));
        assert!(matches!(
            err("hstream://h1,hstreams://h2"),
            UrlError::MixedSchemes { entry: 2, .. }
        ));
        assert!(matches!(
            err("hstream://h1,ftp://h2"),
            UrlError::UnknownScheme { scheme, .. } if scheme == "ftp"
        ));
        assert!(matches!(
            err("hstream://h1,,h3"),
            UrlError::EmptyEntry { entry: 2, .. }
        ));
        assert!(matches!(
            err("hstream://h1,"),
            UrlError::EmptyEntry { entry: 2, .. }
        ));
        assert!(matches!(
            err("hstream://"),
            UrlError::MissingHost { entry: 1, .. }
        ));
        assert!(matches!(
            err("hstream://:6570"),
            UrlError::MissingHost { entry: 1, .. }
        ));
        for port in ["0", "65536", "x", "", "-1", "+80"] {
            assert!(
                matches!(
                    err(&format!("hstream://h1,h2:{port}")),
                    UrlError::BadPort { entry: 2, port: p, .. } if p == port
                ),
                "port {port:?}"
            );
        }
        assert!(matches!(
            err("hstream://h1/streams"),
            UrlError::Unsupported { .. }
        ));
        assert!(matches!(
            err("hstream://u:p@h1"),
            UrlError::Unsupported { .. }
        ));
        assert!(matches!(err("hstream://h 1"), UrlError::BadHost { .. }));
        assert!(matches!(err("hstream://h1..x"), UrlError::BadHost { .. }));
    }

    #[test]
    fn messages_are_specific() {
        let message = "hstream://h1,h2:99999"
            .parse::<ServerUrl>()
            .expect_err("bad port")
            .to_string();
        assert!(message.contains("entry 2"), "{message}");
        assert!(message.contains("\"99999\""), "{message}");
        assert!(message.contains("port"), "{message}");
    }
}
