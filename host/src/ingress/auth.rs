//! Who may connect to the listener: its users, each with a password given
//! as plain text or as a PBKDF2 hash in PHC string form (what `weir passwd`
//! writes), and the check of a CONNECT's username and password against them.
//!
//! Both kinds are compared in time that does not depend on the password
//! given: a plain password as a `crate::secret::Secret` (digests compared in
//! constant time), a hash by the `password-hash` crate's constant-time
//! equality. A PBKDF2 check costs CPU
//! by design (hundreds of thousands of HMAC rounds), so checks run on
//! tokio's blocking pool, a few at a time: a burst of CONNECTs with guessed
//! passwords queues there instead of stalling the workers that serve the
//! connected clients.

use super::config::{ConfigError, UserConfig, config_error};
use crate::secret::Secret;
use pbkdf2::phc::PasswordHash;
use pbkdf2::{Algorithm, Params, PasswordHasher, PasswordVerifier, Pbkdf2};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// The PHC algorithm identifiers a `password_hash` may name.
const ALGORITHMS: [&str; 2] = ["pbkdf2-sha256", "pbkdf2-sha512"];

/// The PBKDF2-SHA256 rounds `weir passwd` uses unless told otherwise:
/// OWASP's recommendation.
pub(crate) const DEFAULT_ROUNDS: u32 = Params::RECOMMENDED_ROUNDS;

/// The fewest rounds PBKDF2 takes (the crate refuses fewer).
pub(crate) const MIN_ROUNDS: u32 = Params::MIN_ROUNDS;

/// A user's password as weir keeps it.
#[derive(Debug, Clone)]
enum Credential {
    Plain(Secret),
    /// Shared, so a check on the blocking pool takes it without a copy.
    Hash(Arc<PasswordHash>),
}

impl Credential {
    fn matches(&self, given: &[u8]) -> bool {
        match self {
            Credential::Plain(secret) => secret.matches(given),
            Credential::Hash(hash) => Pbkdf2::default().verify_password(given, &**hash).is_ok(),
        }
    }
}

/// The listener's users, ready to check CONNECTs against.
#[derive(Debug, Clone)]
pub(crate) struct Users {
    by_name: Arc<HashMap<String, Credential>>,
    /// Password checks running at once, at most.
    checks: Arc<Semaphore>,
}

impl Users {
    /// Reads `users` (`listener.users`), refusing empty or repeated names,
    /// a user with both or neither of `password` and `password_hash`, and a
    /// hash weir cannot check.
    pub(crate) fn from_config(users: &[UserConfig]) -> Result<Users, ConfigError> {
        let mut by_name = HashMap::with_capacity(users.len());
        for (i, user) in users.iter().enumerate() {
            let field = |name: &str| format!("listener.users[{i}].{name}");
            if user.username.is_empty() {
                return Err(config_error(&field("username"), "is empty"));
            }
            let secret = match (&user.password, &user.password_hash) {
                (Some(password), None) => Credential::Plain(Secret::new(password.as_bytes())),
                (None, Some(hash)) => {
                    Credential::Hash(Arc::new(parse_hash(&field("password_hash"), hash)?))
                }
                (Some(_), Some(_)) => {
                    return Err(config_error(
                        &field("password_hash"),
                        "give either password or password_hash, not both",
                    ));
                }
                (None, None) => {
                    return Err(config_error(
                        &field("password"),
                        "is missing: give password or password_hash (`weir passwd` makes one)",
                    ));
                }
            };
            if by_name.insert(user.username.clone(), secret).is_some() {
                return Err(config_error(
                    &field("username"),
                    format!("{:?} is listed twice", user.username),
                ));
            }
        }
        let parallel = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(Users {
            by_name: Arc::new(by_name),
            checks: Arc::new(Semaphore::new(parallel)),
        })
    }

    /// Whether `username` is a user whose password is `password`.
    pub(crate) async fn verify(&self, username: &str, password: Option<&str>) -> bool {
        let (Some(secret), Some(password)) = (self.by_name.get(username), password) else {
            return false;
        };
        if let Credential::Plain(_) = secret {
            return secret.matches(password.as_bytes());
        }
        let Ok(_permit) = self.checks.acquire().await else {
            return false;
        };
        let secret = secret.clone();
        let password = password.as_bytes().to_vec();
        tokio::task::spawn_blocking(move || secret.matches(&password))
            .await
            .unwrap_or(false)
    }
}

/// Reads a `password_hash` value, naming `field` when it cannot be used.
fn parse_hash(field: &str, text: &str) -> Result<PasswordHash, ConfigError> {
    let supported = || ALGORITHMS.map(|a| format!("${a}$")).join(" and ");
    let algorithm = text
        .strip_prefix('$')
        .and_then(|rest| rest.split('$').next())
        .filter(|id| !id.is_empty());
    match algorithm {
        None => {
            return Err(config_error(
                field,
                "is not a PHC string like $pbkdf2-sha256$i=600000,l=32$SALT$HASH (`weir passwd` makes one)",
            ));
        }
        Some(id) if !ALGORITHMS.contains(&id) => {
            return Err(config_error(
                field,
                format!("uses ${id}$; weir checks {}", supported()),
            ));
        }
        Some(_) => {}
    }
    let hash = PasswordHash::new(text)
        .map_err(|error| config_error(field, format!("is not a valid PHC string: {error}")))?;
    if hash.salt.is_none() || hash.hash.is_none() {
        return Err(config_error(field, "has no salt or no hash part"));
    }
    if let Err(error) = Params::try_from(&hash) {
        return Err(config_error(
            field,
            format!("has parameters PBKDF2 cannot use ({error})"),
        ));
    }
    Ok(hash)
}

/// Why a password could not be hashed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HashError {
    #[error("PBKDF2 needs at least {MIN_ROUNDS} rounds, not {0}")]
    TooFewRounds(u32),
    #[error("could not hash the password: {0}")]
    Hashing(String),
}

/// `password` hashed with PBKDF2-SHA256, `rounds` rounds and a random salt,
/// as the PHC string a `password_hash` takes.
pub(crate) fn hash_password(password: &str, rounds: u32) -> Result<String, HashError> {
    let params = Params::new(rounds).map_err(|_| HashError::TooFewRounds(rounds))?;
    Pbkdf2::new(Algorithm::Pbkdf2Sha256, params)
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|error| HashError::Hashing(error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hashed(username: &str, password: &str) -> UserConfig {
        UserConfig {
            username: username.into(),
            password: None,
            password_hash: Some(hash_password(password, MIN_ROUNDS).expect("hash")),
        }
    }

    #[tokio::test]
    async fn plain_and_hashed_passwords_are_checked() {
        let users = Users::from_config(&[
            UserConfig::with_password("plain", "s3cret"),
            hashed("hashed", "correct horse"),
        ])
        .expect("valid users");
        assert!(users.verify("plain", Some("s3cret")).await);
        assert!(!users.verify("plain", Some("s3creT")).await);
        assert!(!users.verify("plain", Some("s3cre")).await);
        assert!(!users.verify("plain", None).await);
        assert!(users.verify("hashed", Some("correct horse")).await);
        assert!(!users.verify("hashed", Some("correct horsE")).await);
        assert!(!users.verify("hashed", Some("")).await);
        assert!(!users.verify("nobody", Some("s3cret")).await);
    }

    #[test]
    fn a_hash_keeps_its_rounds_and_a_fresh_salt() {
        let one = hash_password("pw", 1000).expect("hash");
        let two = hash_password("pw", 1000).expect("hash");
        assert!(one.starts_with("$pbkdf2-sha256$i=1000,"), "{one}");
        assert_ne!(one, two, "each hash has its own salt");
        assert!(matches!(
            hash_password("pw", 10),
            Err(HashError::TooFewRounds(10))
        ));
    }

    #[tokio::test]
    async fn a_hash_made_elsewhere_is_checked() {
        // RFC 6070-style test vector as the pbkdf2 crate writes it:
        // password "passwordPASSWORDpassword", 4096 rounds.
        let users = Users::from_config(&[UserConfig {
            username: "u".into(),
            password: None,
            password_hash: Some(
                "$pbkdf2-sha256$i=4096,l=40\
                 $c2FsdFNBTFRzYWx0U0FMVHNhbHRTQUxUc2FsdFNBTFRzYWx0\
                 $NIyJ28vTKy8y2BS4EW6EzysXNH68GAAYHE4qH7jdU+HGNVGMfaxH6Q"
                    .into(),
            ),
        }])
        .expect("valid hash");
        assert!(users.verify("u", Some("passwordPASSWORDpassword")).await);
        assert!(!users.verify("u", Some("password")).await);
    }

    #[test]
    fn bad_users_name_the_field() {
        let error = |users: &[UserConfig]| Users::from_config(users).expect_err("invalid");
        let both = UserConfig {
            password: Some("p".into()),
            ..hashed("u", "p")
        };
        assert_eq!(error(&[both]).field, "listener.users[0].password_hash");
        let neither = UserConfig {
            username: "u".into(),
            password: None,
            password_hash: None,
        };
        assert_eq!(error(&[neither]).field, "listener.users[0].password");
        let twice = [
            UserConfig::with_password("u", "a"),
            UserConfig::with_password("u", "b"),
        ];
        assert_eq!(error(&twice).field, "listener.users[1].username");
        assert_eq!(
            error(&[UserConfig::with_password("", "a")]).field,
            "listener.users[0].username"
        );
        for (hash, words) in [
            ("s3cret", "PHC string"),
            ("$2b$12$abcdefghijklmnopqrstuu", "$2b$"),
            (
                "$argon2id$v=19$m=65536,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g",
                "argon2id",
            ),
            ("$pbkdf2-sha256$i=1000,l=32", "no salt"),
            (
                "$pbkdf2-sha256$i=10,l=32$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
                "parameters",
            ),
        ] {
            let user = UserConfig {
                username: "u".into(),
                password: None,
                password_hash: Some(hash.into()),
            };
            let error = error(&[user]);
            assert_eq!(error.field, "listener.users[0].password_hash", "{hash}");
            assert!(error.reason.contains(words), "{hash}: {error}");
        }
    }

    #[test]
    fn debug_output_hides_the_secrets() {
        let text = format!("{:?}", hashed("u", "topsecret"));
        assert!(
            !text.contains("pbkdf2") && !text.contains("topsecret"),
            "{text}"
        );
    }
}
