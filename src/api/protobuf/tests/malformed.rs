//! Malformed input: every defect is an error naming the field, never a panic.

use super::*;

#[test]
fn missing_magic_is_reported() {
    let err = decode(b"{\"kind\":\"Pod\"}").unwrap_err();
    assert!(matches!(err, ProtobufError::MissingMagic));
}

#[test]
fn missing_kind_is_reported() {
    let unknown = Enc::default()
        .msg(1, Enc::default().str(1, "v1"))
        .msg(2, Enc::default());
    let err = decode(&[MAGIC, &unknown.0].concat()).unwrap_err();
    assert_eq!(err.to_string(), "protobuf envelope names no kind");
}

#[test]
fn unknown_kind_is_reported() {
    let err = decode_err("example.com/v1", "Widget", Enc::default());
    assert_eq!(
        err,
        "protobuf body for example.com/v1 Widget: kind is not known to the protobuf decoder"
    );
}

#[test]
fn wrong_wire_type_names_the_field() {
    let err = decode_err("apps/v1", "Deployment", Enc::default().int(2, 3));
    assert_eq!(
        err,
        "protobuf body for apps/v1 Deployment: spec: field 2 has wire type 0, expected length-delimited"
    );
}

#[test]
fn truncated_varint_is_an_error() {
    let mut object = Enc::default().key(2, 2);
    object.0.extend_from_slice(&[0x02, 0x08, 0x80]);
    let err = decode_err("apps/v1", "Deployment", object);
    assert!(err.contains("truncated varint"), "{err}");
}

#[test]
fn absurd_length_is_an_error() {
    let mut object = Enc::default().key(1, 2);
    push_varint(&mut object.0, u64::MAX);
    let err = decode_err("v1", "ConfigMap", object);
    assert!(err.contains("exceeds the 0 bytes left"), "{err}");
}

#[test]
fn truncated_envelope_is_an_error() {
    let mut bytes = body("v1", "ConfigMap", Enc::default().msg(1, meta("x")));
    bytes.truncate(bytes.len() - 3);
    assert!(matches!(decode(&bytes), Err(ProtobufError::Envelope(_))));
}

#[test]
fn deep_nesting_is_refused() {
    let mut schema = Enc::default().str(5, "string");
    for _ in 0..200 {
        schema = Enc::default().msg(28, schema);
    }
    let validation = Enc::default().msg(1, schema);
    let spec = Enc::default().msg(7, Enc::default().str(1, "v1").msg(4, validation));
    let err = decode_err(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        Enc::default().msg(2, spec),
    );
    assert!(err.contains("nested deeper than 100"), "{err}");
}

#[test]
fn zero_value_inflation_is_capped() {
    let mut list = Enc::default();
    for _ in 0..5_000 {
        list = list.msg(2, Enc::default());
    }
    let err = decode_err("v1", "NodeList", list);
    assert!(err.contains("too many absent fields"), "{err}");
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

#[test]
fn garbage_and_mutated_bodies_never_panic() {
    let spec = Enc::default()
        .int(1, 3)
        .msg(2, Enc::default().entry(1, "app", "web"));
    let valid = body(
        "apps/v1",
        "Deployment",
        Enc::default().msg(1, meta("d")).msg(2, spec),
    );
    for seed in 0..2_000u64 {
        let garbage = [MAGIC, &noise(seed, (seed % 200) as usize)].concat();
        let _ = decode(&garbage);
        let mut mutated = valid.clone();
        let flips = noise(seed.wrapping_mul(7919), 3);
        let at = usize::from(flips[0]) * 31 % mutated.len();
        mutated[at] ^= flips[1] | 1;
        mutated.truncate(mutated.len() - usize::from(flips[2]) % 4);
        let _ = decode(&mutated);
        let raw = Enc(noise(seed ^ 0xdead_beef, (seed % 300) as usize));
        let _ = decode(&body("v1", "Pod", raw.clone()));
        let _ = decode(&body(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            raw,
        ));
    }
    assert!(decode(&valid).is_ok());
}
