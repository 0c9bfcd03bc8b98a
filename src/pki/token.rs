//! k3s-format join tokens: `K10<sha256 of the CA PEM>::server:<secret>`.
//!
//! The CA hash lets a joining node pin the cluster CA before trusting
//! anything the server sends (k3s hashes the literal bytes of the CA file when
//! it holds one certificate, which is the only case kelp produces). Parsing
//! follows k3s: a bare secret is accepted without a hash; the full form must
//! carry a 64-character hash (or none) and non-empty credentials.

use ring::rand::SecureRandom;

use super::error::PkiError;

const PREFIX: &str = "K10";
const HASH_LEN: usize = 64;

/// Lower-case hex of `bytes`.
pub(super) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Hex SHA-256 of the CA PEM bytes, the hash embedded in join tokens.
pub fn ca_hash(ca_pem: &str) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, ca_pem.as_bytes()).as_ref())
}

/// k3s-format join token: "K10" + hex(sha256(CA PEM bytes)) + "::server:" + secret.
pub fn join_token(ca_pem: &str, secret: &str) -> String {
    format!("{PREFIX}{}::server:{secret}", ca_hash(ca_pem))
}

/// Parses a join token (full K10 form, or a bare secret) into (optional CA hash, secret).
pub fn parse_join_token(token: &str) -> Result<(Option<String>, String), PkiError> {
    if token.is_empty() {
        return Err(PkiError::JoinToken("token must not be empty"));
    }
    let Some(rest) = token.strip_prefix(PREFIX) else {
        return Ok((None, token.to_string()));
    };
    let (hash, creds) = match rest.split_once("::") {
        Some((hash, creds)) => (hash, creds),
        // k3s treats a K10 token without "::" as bare credentials.
        None => ("", rest),
    };
    if !hash.is_empty() && (hash.len() != HASH_LEN || !hash.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(PkiError::JoinToken("invalid token CA hash length"));
    }
    if let Some((id, secret)) = split_bootstrap_token(creds) {
        let hash = (!hash.is_empty()).then(|| hash.to_ascii_lowercase());
        return Ok((hash, format!("{id}.{secret}")));
    }
    match creds.split_once(':') {
        Some((_user, secret)) if !secret.is_empty() => {
            let hash = (!hash.is_empty()).then(|| hash.to_ascii_lowercase());
            Ok((hash, secret.to_string()))
        }
        _ => Err(PkiError::JoinToken("invalid token format")),
    }
}

/// Splits a kubeadm bootstrap token `[a-z0-9]{6}.[a-z0-9]{16}` into its
/// id and secret; None for any other shape.
pub fn split_bootstrap_token(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.split_once('.')?;
    let ok = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    (ok(id, 6) && ok(secret, 16)).then_some((id, secret))
}

/// A new random secret for join tokens: 16 random bytes as 32 hex digits (as k3s).
pub fn random_secret() -> Result<String, PkiError> {
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| PkiError::Random)?;
    Ok(hex(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ABC_SHA256: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn join_token_has_k3s_format() {
        assert_eq!(
            join_token("abc", "s3cret"),
            format!("K10{ABC_SHA256}::server:s3cret")
        );
    }

    #[test]
    fn full_token_round_trips() {
        let token = join_token("-----BEGIN CERTIFICATE-----\n", "topsecret");
        let (hash, secret) = parse_join_token(&token).unwrap();
        assert_eq!(hash, Some(ca_hash("-----BEGIN CERTIFICATE-----\n")));
        assert_eq!(secret, "topsecret");
    }

    #[test]
    fn bare_secret_has_no_hash() {
        assert_eq!(
            parse_join_token("abc123").unwrap(),
            (None, "abc123".to_string())
        );
    }

    #[test]
    fn secret_may_contain_colons() {
        let token = format!("K10{ABC_SHA256}::node:a:b");
        assert_eq!(parse_join_token(&token).unwrap().1, "a:b");
    }

    #[test]
    fn malformed_tokens_are_rejected_with_k3s_messages() {
        let err = |t: &str| parse_join_token(t).unwrap_err().to_string();
        assert_eq!(err(""), "token must not be empty");
        assert_eq!(err("K10abcd::server:x"), "invalid token CA hash length");
        assert_eq!(
            err(&format!("K10{}::server:x", "z".repeat(64))),
            "invalid token CA hash length"
        );
        assert_eq!(
            err(&format!("K10{ABC_SHA256}::server:")),
            "invalid token format"
        );
        assert_eq!(
            err(&format!("K10{ABC_SHA256}::nocolon")),
            "invalid token format"
        );
    }

    #[test]
    fn bootstrap_tokens_parse_with_and_without_a_hash() {
        assert_eq!(
            split_bootstrap_token("abcdef.0123456789abcdef"),
            Some(("abcdef", "0123456789abcdef"))
        );
        for bad in [
            "abcdef.0123456789abcde",
            "ABCDEF.0123456789abcdef",
            "abcdef0123456789abcdef",
            "abc.def",
        ] {
            assert_eq!(split_bootstrap_token(bad), None, "{bad}");
        }
        let token = format!("K10{ABC_SHA256}::abcdef.0123456789abcdef");
        assert_eq!(
            parse_join_token(&token).unwrap(),
            (
                Some(ABC_SHA256.to_string()),
                "abcdef.0123456789abcdef".to_string()
            )
        );
        assert_eq!(
            parse_join_token("abcdef.0123456789abcdef").unwrap().1,
            "abcdef.0123456789abcdef"
        );
    }

    #[test]
    fn random_secrets_are_hex_and_distinct() {
        let a = random_secret().unwrap();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, random_secret().unwrap());
    }
}
