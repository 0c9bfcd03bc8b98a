//! Parsing of Kubernetes resource quantities ("100m", "1Gi", "1e3", "0.5") into integers.
//!
//! The scheduler only needs two projections of a quantity, both rounded up like
//! apimachinery's `Quantity.Value()` / `MilliValue()`: whole units (memory, storage, pods,
//! extended resources) and thousandths (cpu). Values are computed exactly with 128-bit
//! rational arithmetic and saturate at `i64::MAX`, so absurd inputs ("1e100") cannot wrap
//! around into small numbers that would make a node look free. Strings outside the grammar are
//! a [`QuantityError`].

use super::error::QuantityError;

/// A parsed quantity: `mantissa / 10^frac_digits * 2^(10*bin_exp) * 10^dec_exp`, with a sign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Parsed {
    negative: bool,
    mantissa: u128,
    frac_digits: u32,
    bin_exp: u32,
    dec_exp: i32,
}

/// Mantissas longer than this are truncated (precision far beyond any real request).
const MAX_MANTISSA_DIGITS: u32 = 30;

/// Parses `s` and returns its value in whole units, rounded up.
pub fn parse_value(s: &str) -> Result<i64, QuantityError> {
    parse(s).map(|p| scaled(&p, 0))
}

/// Parses `s` and returns its value in thousandths of a unit, rounded up.
pub fn parse_milli_value(s: &str) -> Result<i64, QuantityError> {
    parse(s).map(|p| scaled(&p, 3))
}

fn parse(s: &str) -> Result<Parsed, QuantityError> {
    let err = || QuantityError(s.to_string());
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut negative = false;
    if let Some(&c) = bytes.first()
        && (c == b'+' || c == b'-')
    {
        negative = c == b'-';
        i = 1;
    }
    let mut mantissa: u128 = 0;
    let mut digits = 0u32;
    let mut frac_digits = 0u32;
    let mut dropped_int_digits = 0i32;
    let mut seen_dot = false;
    let mut any_digit = false;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_digit() {
            any_digit = true;
            if digits < MAX_MANTISSA_DIGITS {
                mantissa = mantissa * 10 + u128::from(c - b'0');
                if mantissa > 0 {
                    digits += 1;
                }
                if seen_dot {
                    frac_digits += 1;
                }
            } else if !seen_dot {
                dropped_int_digits += 1;
            }
        } else if c == b'.' && !seen_dot {
            seen_dot = true;
        } else {
            break;
        }
        i += 1;
    }
    if !any_digit {
        return Err(err());
    }
    let (bin_exp, dec_exp) = parse_suffix(&s[i..]).ok_or_else(err)?;
    Ok(Parsed {
        negative,
        mantissa,
        frac_digits,
        bin_exp,
        dec_exp: dec_exp.saturating_add(dropped_int_digits),
    })
}

/// Returns (binary exponent in units of 2^10, decimal exponent) of a suffix.
fn parse_suffix(suffix: &str) -> Option<(u32, i32)> {
    let r = match suffix {
        "" => (0, 0),
        "n" => (0, -9),
        "u" => (0, -6),
        "m" => (0, -3),
        "k" => (0, 3),
        "M" => (0, 6),
        "G" => (0, 9),
        "T" => (0, 12),
        "P" => (0, 15),
        "E" => (0, 18),
        "Ki" => (1, 0),
        "Mi" => (2, 0),
        "Gi" => (3, 0),
        "Ti" => (4, 0),
        "Pi" => (5, 0),
        "Ei" => (6, 0),
        _ => {
            let rest = suffix
                .strip_prefix('e')
                .or_else(|| suffix.strip_prefix('E'))?;
            let digits = rest.strip_prefix(['+', '-']).unwrap_or(rest);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            // Exponents beyond any representable value only need to saturate.
            let exp: i32 = rest
                .parse()
                .unwrap_or(if rest.starts_with('-') { -1000 } else { 1000 });
            (0, exp.clamp(-1000, 1000))
        }
    };
    Some(r)
}

/// `ceil(value * 10^extra_dec)` as i64, saturating.
fn scaled(p: &Parsed, extra_dec: i32) -> i64 {
    if p.mantissa == 0 {
        return 0;
    }
    let exp10 = p.dec_exp + extra_dec - p.frac_digits as i32;
    let Some(num) = p.mantissa.checked_mul(1u128 << (10 * p.bin_exp).min(127)) else {
        return saturate(p.negative);
    };
    let magnitude = if exp10 >= 0 {
        match pow10(exp10 as u32).and_then(|m| num.checked_mul(m)) {
            Some(v) => v,
            None => return saturate(p.negative),
        }
    } else {
        match pow10(exp10.unsigned_abs()) {
            // Round away from zero for positives (ceil); negatives truncate toward zero,
            // which is the ceiling of a negative number.
            Some(den) if p.negative => num / den,
            Some(den) => num.div_ceil(den),
            None => u128::from(!p.negative),
        }
    };
    match i64::try_from(magnitude) {
        Ok(v) if p.negative => -v,
        Ok(v) => v,
        Err(_) => saturate(p.negative),
    }
}

fn saturate(negative: bool) -> i64 {
    if negative { i64::MIN } else { i64::MAX }
}

fn pow10(exp: u32) -> Option<u128> {
    10u128.checked_pow(exp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_quantities_parse_to_millicores() {
        assert_eq!(parse_milli_value("100m"), Ok(100));
        assert_eq!(parse_milli_value("1"), Ok(1000));
        assert_eq!(parse_milli_value("0.5"), Ok(500));
        assert_eq!(parse_milli_value("1.5"), Ok(1500));
        assert_eq!(parse_milli_value("2k"), Ok(2_000_000));
        assert_eq!(parse_milli_value(".25"), Ok(250));
        assert_eq!(parse_milli_value("4"), Ok(4000));
    }

    #[test]
    fn memory_quantities_parse_to_bytes() {
        assert_eq!(parse_value("1Gi"), Ok(1 << 30));
        assert_eq!(parse_value("8Gi"), Ok(8 << 30));
        assert_eq!(parse_value("200Mi"), Ok(200 << 20));
        assert_eq!(parse_value("1e3"), Ok(1000));
        assert_eq!(parse_value("1E3"), Ok(1000));
        assert_eq!(parse_value("1M"), Ok(1_000_000));
        assert_eq!(parse_value("1.5Gi"), Ok(3 << 29));
        assert_eq!(parse_value("128974848"), Ok(128_974_848));
        assert_eq!(parse_value("129e6"), Ok(129_000_000));
        assert_eq!(parse_value("123Mi"), Ok(123 << 20));
    }

    #[test]
    fn fractional_values_round_up() {
        assert_eq!(parse_value("0.5"), Ok(1));
        assert_eq!(parse_value("100m"), Ok(1));
        assert_eq!(parse_milli_value("1u"), Ok(1));
        assert_eq!(parse_milli_value("0.0001"), Ok(1));
        assert_eq!(parse_value("1e-3"), Ok(1));
    }

    #[test]
    fn capital_e_alone_is_exa() {
        assert_eq!(parse_value("1E"), Ok(1_000_000_000_000_000_000));
        assert!(parse_value("1e").is_err());
    }

    #[test]
    fn huge_values_saturate_instead_of_wrapping() {
        assert_eq!(parse_value("1e100"), Ok(i64::MAX));
        assert_eq!(parse_milli_value("100Ei"), Ok(i64::MAX));
        assert_eq!(
            parse_value("99999999999999999999999999999999999999999"),
            Ok(i64::MAX)
        );
    }

    #[test]
    fn zero_and_signs() {
        assert_eq!(parse_value("0"), Ok(0));
        assert_eq!(parse_value("0Gi"), Ok(0));
        assert_eq!(parse_value("+5"), Ok(5));
        assert_eq!(parse_value("-5"), Ok(-5));
        assert_eq!(parse_milli_value("-0.5"), Ok(-500));
    }

    #[test]
    fn malformed_quantities_are_errors() {
        for bad in ["", "abc", "1.2.3", "Gi", "1Gb", "1 Gi", "--1", "1e+", "."] {
            assert!(parse_value(bad).is_err(), "{bad:?} should fail");
        }
    }
}
