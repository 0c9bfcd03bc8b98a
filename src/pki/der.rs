//! Byte-level encodings the crates at hand do not offer: a few DER
//! constructions and PEM armour.
//!
//! rcgen keeps one value per attribute type in a subject name, but Kubernetes
//! reads a client's groups from *repeated* O attributes. So client
//! certificates are issued by rcgen with a placeholder subject and then the
//! subject is swapped for one with an O per group and the TBS re-signed with the
//! CA key ([`resign_with_subject`]). Everything else in the certificate stays
//! rcgen's. Malformed input yields an error, never a panic.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::rand::SystemRandom;
use ring::signature::EcdsaKeyPair;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::error::PkiError;

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const UTF8_STRING: u8 = 0x0c;
const BIT_STRING: u8 = 0x03;
/// id-at-organizationName (2.5.4.10), encoded.
const OID_ORGANIZATION: [u8; 3] = [0x55, 0x04, 0x0a];
/// id-at-commonName (2.5.4.3), encoded.
const OID_COMMON_NAME: [u8; 3] = [0x55, 0x04, 0x03];
/// AlgorithmIdentifier for ecdsa-with-SHA256, the only CA key type we sign with.
const ECDSA_WITH_SHA256: [u8; 12] = [
    0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02,
];
/// SubjectPublicKeyInfo prefix for an uncompressed P-256 point (id-ecPublicKey, prime256v1).
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// Encodes one tag-length-value element with a definite DER length.
pub(super) fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

fn attribute(oid: &[u8], value: &str) -> Vec<u8> {
    let mut pair = tlv(OID, oid);
    pair.extend(tlv(UTF8_STRING, value.as_bytes()));
    tlv(SET, &tlv(SEQUENCE, &pair))
}

/// A subject Name with one RDN per group (O) followed by the user (CN), the
/// order `openssl` and Go print for Kubernetes client certificates.
pub(super) fn client_subject(user: &str, groups: &[&str]) -> Vec<u8> {
    let mut rdns = Vec::new();
    for group in groups {
        rdns.extend(attribute(&OID_ORGANIZATION, group));
    }
    rdns.extend(attribute(&OID_COMMON_NAME, user));
    tlv(SEQUENCE, &rdns)
}

/// The DER SubjectPublicKeyInfo of an uncompressed P-256 public point.
pub(super) fn p256_spki(point: &[u8]) -> Vec<u8> {
    let mut out = P256_SPKI_PREFIX.to_vec();
    out.extend_from_slice(point);
    out
}

/// Length of the tag and length octets that open a DER element.
fn header_len(der: &[u8]) -> Option<usize> {
    let first = *der.get(1)?;
    if first < 0x80 {
        Some(2)
    } else {
        Some(2 + usize::from(first & 0x7f))
    }
}

/// Replaces the subject of `cert_der` and re-signs it with `ca_key`
/// (ECDSA P-256 with SHA-256, ASN.1 signatures).
pub(super) fn resign_with_subject(
    cert_der: &[u8],
    subject: &[u8],
    ca_key: &EcdsaKeyPair,
) -> Result<Vec<u8>, PkiError> {
    let malformed = |why: &str| PkiError::InvalidInput {
        what: "generated certificate",
        reason: why.to_string(),
    };
    let (_, cert) = X509Certificate::from_der(cert_der).map_err(|e| malformed(&e.to_string()))?;
    let tbs: &[u8] = cert.tbs_certificate.as_ref();
    let old_subject = cert.tbs_certificate.subject.as_raw();
    // Both slices borrow from `cert_der`, so the pointer distance is the
    // subject's exact offset within the TBS.
    let start = (old_subject.as_ptr() as usize)
        .checked_sub(tbs.as_ptr() as usize)
        .ok_or_else(|| malformed("subject lies before the TBS"))?;
    let end = start + old_subject.len();
    let body_start = header_len(tbs).ok_or_else(|| malformed("truncated TBS"))?;
    if end > tbs.len() || start < body_start {
        return Err(malformed("subject lies outside the TBS"));
    }
    let mut body = Vec::with_capacity(tbs.len() + subject.len());
    body.extend_from_slice(&tbs[body_start..start]);
    body.extend_from_slice(subject);
    body.extend_from_slice(&tbs[end..]);
    let new_tbs = tlv(SEQUENCE, &body);

    let signature = ca_key
        .sign(&SystemRandom::new(), &new_tbs)
        .map_err(|_| PkiError::Crypto("sign a client certificate"))?;
    let mut bits = vec![0u8];
    bits.extend_from_slice(signature.as_ref());
    let mut outer = new_tbs;
    outer.extend_from_slice(&ECDSA_WITH_SHA256);
    outer.extend(tlv(BIT_STRING, &bits));
    Ok(tlv(SEQUENCE, &outer))
}

/// PEM armour with 64-column base64 lines, as RFC 7468 prescribes.
pub(super) fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        // base64 output is ASCII, so every chunk is valid UTF-8.
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tlv_uses_short_and_long_length_forms() {
        assert_eq!(tlv(0x04, &[1, 2]), vec![0x04, 2, 1, 2]);
        let long = tlv(0x04, &[0u8; 200]);
        assert_eq!(&long[..3], &[0x04, 0x81, 200]);
        assert_eq!(long.len(), 203);
        let longer = tlv(0x04, &[0u8; 300]);
        assert_eq!(&longer[..4], &[0x04, 0x82, 0x01, 0x2c]);
        assert_eq!(header_len(&longer), Some(4));
        assert_eq!(header_len(&long), Some(3));
        assert_eq!(header_len(&[0x30]), None);
    }

    #[test]
    fn client_subject_parses_back_with_every_group() {
        let name = client_subject("alice", &["dev", "ops"]);
        let (rest, parsed) = x509_parser::x509::X509Name::from_der(&name).unwrap();
        assert!(rest.is_empty());
        let orgs: Vec<_> = parsed
            .iter_organization()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(orgs, vec!["dev", "ops"]);
        let cn: Vec<_> = parsed
            .iter_common_name()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(cn, vec!["alice"]);
    }

    #[test]
    fn pem_encode_wraps_at_64_columns() {
        let pem = pem_encode("CERTIFICATE", &[7u8; 100]);
        let lines: Vec<_> = pem.lines().collect();
        assert_eq!(lines[0], "-----BEGIN CERTIFICATE-----");
        assert_eq!(lines[1].len(), 64);
        assert_eq!(lines.last().copied(), Some("-----END CERTIFICATE-----"));
    }

    #[test]
    fn resign_rejects_garbage() {
        let rng = SystemRandom::new();
        let alg = &ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING;
        let doc = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        let key = EcdsaKeyPair::from_pkcs8(alg, doc.as_ref(), &rng).unwrap();
        assert!(resign_with_subject(b"not a cert", b"", &key).is_err());
    }
}
