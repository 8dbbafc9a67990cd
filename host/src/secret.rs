//! A secret weir checks what a client presents against (the admin API's
//! token, a listener user's plain password), kept and compared so that the
//! time a check takes says nothing about the secret.
//!
//! Only the SHA-256 digest is kept, and digests are compared in constant
//! time (`subtle`): equal-length digests hide both where a guess goes wrong
//! and how long the secret is, which comparing the texts would show.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The digest of a secret.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Secret([u8; 32]);

impl Secret {
    pub(crate) fn new(secret: &[u8]) -> Secret {
        Secret(Sha256::digest(secret).into())
    }

    /// Whether `given` is the secret.
    pub(crate) fn matches(&self, given: &[u8]) -> bool {
        bool::from(self.0.ct_eq(&Secret::new(given).0))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_matches_itself_only() {
        let secret = Secret::new(b"s3cret");
        assert!(secret.matches(b"s3cret"));
        assert!(!secret.matches(b"s3creT"));
        assert!(!secret.matches(b"s3cre"));
        assert!(!secret.matches(b"s3cret-and-more"));
        assert!(!secret.matches(b""));
        assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
    }
}
