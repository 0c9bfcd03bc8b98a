//! Random names and ids: generateName suffixes, UIDs.
//!
//! The apiserver names objects with them and the clients (kubelet exec
//! sessions, static pod UIDs) use the same forms, so they live here.

use std::time::{SystemTime, UNIX_EPOCH};

/// Random suffix for generateName, from upstream's alphabet (no vowels,
/// no confusable characters).
pub fn random_suffix(len: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut raw = vec![0u8; len * 2];
    if getrandom::fill(&mut raw).is_err() {
        // Fall back to the clock: still unique enough, and create retries on collision.
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        for (i, b) in raw.iter_mut().enumerate() {
            *b = (nanos >> (i % 16 * 8)) as u8;
        }
    }
    raw.iter()
        .take(len)
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

/// An Event's name about `object`: `<object>.<hex nanoseconds>`, as
/// client-go's recorder names them.
pub fn event_name(object: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{object}.{nanos:x}")
}

/// A random number (for jitter).
pub fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    let _ = getrandom::fill(&mut b);
    u64::from_le_bytes(b)
}

/// A random (v4) UUID.
pub fn new_uid() -> String {
    let mut b = [0u8; 16];
    let _ = getrandom::fill(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    uuid_string(&b)
}

/// 16 bytes in UUID form (`8-4-4-4-12` hex digits).
pub fn uuid_string(b: &[u8; 16]) -> String {
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_and_suffixes_look_right() {
        let u = new_uid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert_ne!(new_uid(), u);
        let s = random_suffix(5);
        assert_eq!(s.len(), 5);
        assert!(s.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
    }
}
