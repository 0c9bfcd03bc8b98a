//! Node passwords: what stops one machine from joining under another's
//! node name.
//!
//! An agent keeps a random password (a [`super::random_secret`]) next to its data and sends it with
//! every join; the server keeps only a salted PBKDF2-HMAC-SHA256 hash of
//! it (in a Secret, as k3s keeps `<node>.node-password.k3s`), so a leaked
//! store does not let anyone impersonate a node.

use std::num::NonZeroU32;

use ring::rand::SecureRandom;

use super::error::PkiError;
use super::token::hex;

const SCHEME: &str = "pbkdf2-sha256";
/// Enough to make guessing slow, little enough that a Raspberry Pi checks a
/// join in a few milliseconds (the password is random, not chosen by a person).
const ITERATIONS: u32 = 10_000;
const SALT_LEN: usize = 16;
const HASH_LEN: usize = 32;

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// `pbkdf2-sha256$<iterations>$<salt hex>$<hash hex>` of `password`.
pub fn hash_node_password(password: &str) -> Result<String, PkiError> {
    let mut salt = [0u8; SALT_LEN];
    ring::rand::SystemRandom::new()
        .fill(&mut salt)
        .map_err(|_| PkiError::Random)?;
    let mut out = [0u8; HASH_LEN];
    ring::pbkdf2::derive(
        ring::pbkdf2::PBKDF2_HMAC_SHA256,
        NonZeroU32::new(ITERATIONS).ok_or(PkiError::Crypto("zero iterations"))?,
        &salt,
        password.as_bytes(),
        &mut out,
    );
    Ok(format!(
        "{SCHEME}${ITERATIONS}${}${}",
        hex(&salt),
        hex(&out)
    ))
}

/// Whether `password` matches `stored` (from [`hash_node_password`]); a
/// malformed stored hash matches nothing.
pub fn verify_node_password(password: &str, stored: &str) -> bool {
    let mut parts = stored.split('$');
    let (Some(SCHEME), Some(iterations), Some(salt), Some(hash), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    let (Some(iterations), Some(salt), Some(hash)) = (
        iterations.parse().ok().and_then(NonZeroU32::new),
        unhex(salt),
        unhex(hash),
    ) else {
        return false;
    };
    ring::pbkdf2::verify(
        ring::pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        &salt,
        password.as_bytes(),
        &hash,
    )
    .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_matches_its_own_hash_only() {
        let password = super::super::random_secret().unwrap();
        assert_eq!(password.len(), 32);
        let stored = hash_node_password(&password).unwrap();
        assert!(stored.starts_with("pbkdf2-sha256$10000$"));
        assert!(verify_node_password(&password, &stored));
        assert!(!verify_node_password("other", &stored));
        // Salted: the same password hashes differently each time.
        assert_ne!(stored, hash_node_password(&password).unwrap());
    }

    #[test]
    fn malformed_hashes_match_nothing() {
        for stored in [
            "",
            "x",
            "pbkdf2-sha256$0$00$00",
            "pbkdf2-sha256$10$zz$00",
            "md5$1$00$00",
        ] {
            assert!(!verify_node_password("", stored), "{stored}");
        }
    }
}
