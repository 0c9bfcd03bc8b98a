//! Kubernetes resource quantities ("100m", "1Gi", "1e3", "0.5"): parsing, comparison, the
//! canonical string form the apiserver writes back, and the integer projections the
//! scheduler and the kubelet use ([`parse_value`], [`parse_milli_value`]). One parser for
//! the apiserver and its clients.
//!
//! Mirrors apimachinery's `resource.Quantity`: the same grammar, the same three formats
//! (decimal SI, binary SI, decimal exponent), rounding of sub-nano values up to 1n, and the
//! same canonicalisation (so "0.5" is stored as "500m" and "1536Mi" survives). A value is
//! kept as an `i128` mantissa and a power-of-ten exponent; the rare quantity with more than
//! 38 significant digits is refused with the numeric-part error, where upstream would fall
//! back to arbitrary precision.

use std::cmp::Ordering;

/// How a quantity was written, which decides how it is written back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Powers of 1000: n, u, m, "", k, M, G, T, P, E.
    DecimalSi,
    /// Powers of 1024: Ki, Mi, Gi, Ti, Pi, Ei.
    BinarySi,
    /// `e`/`E` followed by a power of ten.
    DecimalExponent,
}

/// Why a string is not a quantity; the texts are upstream's error values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuantityError {
    /// The string does not match the quantity grammar.
    Format,
    /// The suffix is not a known one.
    Suffix,
    /// The numeric part could not be represented.
    Numeric,
}

impl QuantityError {
    /// Upstream's message for this error.
    pub fn message(self) -> &'static str {
        match self {
            QuantityError::Format => {
                "quantities must match the regular expression \
                 '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
            }
            QuantityError::Suffix => "unable to parse quantity's suffix",
            QuantityError::Numeric => "unable to parse numeric part of quantity",
        }
    }
}

/// A parsed quantity: `mantissa × 10^exp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quantity {
    mantissa: i128,
    exp: i32,
    format: Format,
}

struct Parts<'a> {
    negative: bool,
    num: &'a str,
    denom: &'a str,
    suffix: &'a str,
}

fn split(s: &str) -> Result<Parts<'_>, QuantityError> {
    let b = s.as_bytes();
    let mut pos = 0;
    let negative = b.first() == Some(&b'-');
    if matches!(b.first(), Some(b'-' | b'+')) {
        pos += 1;
    }
    while pos < b.len() && b[pos] == b'0' {
        pos += 1;
    }
    let num_start = pos;
    while pos < b.len() && b[pos].is_ascii_digit() {
        pos += 1;
    }
    let num = if pos == num_start {
        "0"
    } else {
        &s[num_start..pos]
    };
    let mut denom = "";
    if pos < b.len() && b[pos] == b'.' {
        pos += 1;
        let start = pos;
        while pos < b.len() && b[pos].is_ascii_digit() {
            pos += 1;
        }
        denom = &s[start..pos];
    }
    let suffix_start = pos;
    while pos < b.len() && b"eEinumkKMGTP".contains(&b[pos]) {
        pos += 1;
    }
    if pos < b.len() && matches!(b[pos], b'-' | b'+') {
        pos += 1;
    }
    while pos < b.len() && b[pos].is_ascii_digit() {
        pos += 1;
    }
    if pos < b.len() {
        return Err(QuantityError::Format);
    }
    Ok(Parts {
        negative,
        num,
        denom,
        suffix: &s[suffix_start..],
    })
}

/// `(base, exponent, format)` of a suffix, as upstream's `suffixHandler.interpret`.
fn interpret(suffix: &str) -> Option<(u32, i32, Format)> {
    let dec = [
        ("n", -9),
        ("u", -6),
        ("m", -3),
        ("", 0),
        ("k", 3),
        ("M", 6),
        ("G", 9),
    ];
    let dec_big = [("T", 12), ("P", 15), ("E", 18)];
    if let Some((_, e)) = dec.iter().chain(dec_big.iter()).find(|(s, _)| *s == suffix) {
        return Some((10, *e, Format::DecimalSi));
    }
    let bin = [
        ("Ki", 10),
        ("Mi", 20),
        ("Gi", 30),
        ("Ti", 40),
        ("Pi", 50),
        ("Ei", 60),
    ];
    if let Some((_, e)) = bin.iter().find(|(s, _)| *s == suffix) {
        return Some((2, *e, Format::BinarySi));
    }
    let rest = suffix.strip_prefix(['e', 'E'])?;
    let exp: i32 = rest.parse().ok()?;
    Some((10, exp, Format::DecimalExponent))
}

fn pow10(n: u32) -> Option<i128> {
    10i128.checked_pow(n)
}

/// Parses a quantity string.
pub fn parse(s: &str) -> Result<Quantity, QuantityError> {
    if s.is_empty() {
        return Err(QuantityError::Format);
    }
    let parts = split(s)?;
    let (base, exponent, mut format) = interpret(parts.suffix).ok_or(QuantityError::Suffix)?;
    let digits = format!("{}{}", parts.num, parts.denom);
    let mut mantissa: i128 = digits.parse().map_err(|_| QuantityError::Numeric)?;
    let denom_len = i32::try_from(parts.denom.len()).map_err(|_| QuantityError::Numeric)?;
    let mut exp = -denom_len;
    if base == 10 {
        exp = exp.checked_add(exponent).ok_or(QuantityError::Numeric)?;
    } else {
        mantissa = mantissa
            .checked_mul(1i128 << exponent)
            .ok_or(QuantityError::Numeric)?;
    }
    if parts.negative {
        mantissa = -mantissa;
    }
    let mut q = Quantity {
        mantissa,
        exp,
        format,
    };
    q.round_up(-9);
    let magnitude = Quantity {
        mantissa: q.mantissa.abs(),
        ..q
    };
    if format == Format::BinarySi && q.mantissa != 0 && magnitude.cmp_int(1) == Ordering::Less {
        format = Format::DecimalSi;
        q.format = format;
    }
    Ok(q)
}

impl Quantity {
    /// Whether the value is zero.
    pub fn is_zero(&self) -> bool {
        self.mantissa == 0
    }

    /// Whether the value is below zero.
    pub fn is_negative(&self) -> bool {
        self.mantissa < 0
    }

    /// Rounds away from zero so that no digit is finer than `10^scale` (upstream `RoundUp`).
    pub fn round_up(&mut self, scale: i32) {
        if self.exp >= scale {
            return;
        }
        let shift = u32::try_from(scale - self.exp).unwrap_or(u32::MAX);
        let Some(div) = pow10(shift) else {
            self.mantissa = self.mantissa.signum();
            self.exp = scale;
            return;
        };
        let (q, r) = (self.mantissa / div, self.mantissa % div);
        self.mantissa = if r == 0 {
            q
        } else {
            q + self.mantissa.signum()
        };
        self.exp = scale;
    }

    /// The value times 1000, if it is a whole number of thousandths and fits.
    pub fn milli_value(&self) -> Option<i128> {
        let e = self.exp + 3;
        if e >= 0 {
            self.mantissa.checked_mul(pow10(e.unsigned_abs())?)
        } else {
            let d = pow10(e.unsigned_abs())?;
            (self.mantissa % d == 0).then_some(self.mantissa / d)
        }
    }

    /// The value as a whole number, if it is one and fits.
    pub fn int_value(&self) -> Option<i128> {
        if self.exp >= 0 {
            self.mantissa.checked_mul(pow10(self.exp.unsigned_abs())?)
        } else {
            let d = pow10(self.exp.unsigned_abs())?;
            (self.mantissa % d == 0).then_some(self.mantissa / d)
        }
    }

    fn cmp_int(&self, v: i128) -> Ordering {
        self.cmp_value(&Quantity {
            mantissa: v,
            exp: 0,
            format: Format::DecimalSi,
        })
    }

    /// Numeric comparison, ignoring format.
    pub fn cmp_value(&self, other: &Quantity) -> Ordering {
        let (a, b) = (self.mantissa, other.mantissa);
        if a.signum() != b.signum() || a == 0 {
            return a.signum().cmp(&b.signum());
        }
        let magnitude = |m: i128, e: i32| m.unsigned_abs().to_string().len() as i64 + i64::from(e);
        let (ma, mb) = (magnitude(a, self.exp), magnitude(b, other.exp));
        let by_abs = if ma != mb {
            ma.cmp(&mb)
        } else {
            let e = self.exp.min(other.exp);
            let scale =
                |m: i128, ex: i32| pow10((ex - e).unsigned_abs()).and_then(|p| m.checked_mul(p));
            match (scale(a.abs(), self.exp), scale(b.abs(), other.exp)) {
                (Some(x), Some(y)) => x.cmp(&y),
                _ => Ordering::Equal,
            }
        };
        if a < 0 { by_abs.reverse() } else { by_abs }
    }

    /// Zero, in decimal SI.
    pub fn zero() -> Self {
        Quantity {
            mantissa: 0,
            exp: 0,
            format: Format::DecimalSi,
        }
    }

    /// A whole number of units, in decimal SI (object counts).
    pub fn from_int(v: i64) -> Self {
        Quantity {
            mantissa: i128::from(v),
            exp: 0,
            format: Format::DecimalSi,
        }
    }

    /// `self + other`, or None if it does not fit. The result keeps `self`'s
    /// format unless `self` is zero (upstream `Quantity.Add`), so summing
    /// "1Gi" values stays binary.
    pub fn checked_add(&self, other: &Quantity) -> Option<Quantity> {
        let exp = self.exp.min(other.exp);
        let align = |m: i128, e: i32| m.checked_mul(pow10((e - exp).unsigned_abs())?);
        let mantissa =
            align(self.mantissa, self.exp)?.checked_add(align(other.mantissa, other.exp)?)?;
        let format = if self.mantissa == 0 {
            other.format
        } else {
            self.format
        };
        Some(Quantity {
            mantissa,
            exp,
            format,
        })
    }

    /// `self - other`, or None if it does not fit.
    pub fn checked_sub(&self, other: &Quantity) -> Option<Quantity> {
        let negated = Quantity {
            mantissa: other.mantissa.checked_neg()?,
            ..*other
        };
        let mut q = self.checked_add(&negated)?;
        if self.mantissa == 0 {
            q.format = self.format;
        }
        Some(q)
    }

    /// The canonical string form (upstream `CanonicalizeBytes`).
    pub fn canonical(&self) -> String {
        if self.mantissa == 0 {
            return "0".to_string();
        }
        if self.format == Format::BinarySi
            && (self.cmp_int(-1024) != Ordering::Greater || self.cmp_int(1024) != Ordering::Less)
            && let Some(v) = self.int_value()
        {
            return binary_form(v);
        }
        let format = if self.format == Format::DecimalExponent {
            self.format
        } else {
            Format::DecimalSi
        };
        decimal_form(self.mantissa, self.exp, format)
    }
}

fn binary_form(mut v: i128) -> String {
    let suffixes = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
    let mut k = 0;
    while k + 1 < suffixes.len() && v % 1024 == 0 {
        v /= 1024;
        k += 1;
    }
    format!("{v}{}", suffixes[k])
}

fn decimal_form(mut m: i128, mut e: i32, format: Format) -> String {
    while m % 10 == 0 {
        m /= 10;
        e += 1;
    }
    match e % 3 {
        1 | -2 => {
            if let Some(x) = m.checked_mul(10) {
                m = x;
                e -= 1;
            }
        }
        2 | -1 => {
            if let Some(x) = m.checked_mul(100) {
                m = x;
                e -= 2;
            }
        }
        _ => {}
    }
    let si = [
        (-9, "n"),
        (-6, "u"),
        (-3, "m"),
        (0, ""),
        (3, "k"),
        (6, "M"),
        (9, "G"),
    ];
    let si_big = [(12, "T"), (15, "P"), (18, "E")];
    match format {
        Format::DecimalExponent if e == 0 => m.to_string(),
        Format::DecimalExponent => format!("{m}e{e}"),
        _ => match si.iter().chain(si_big.iter()).find(|(x, _)| *x == e) {
            Some((_, s)) => format!("{m}{s}"),
            None => format!("{m}e{e}"),
        },
    }
}

/// Parses `s` and returns its value in whole units, rounded up (apimachinery's
/// `Quantity.Value()`): memory, storage, pods, extended resources.
///
/// Values saturate at the `i64` range, so absurd inputs ("1e100") cannot wrap around into
/// small numbers that would make a node look free; a numeric part too long to represent
/// (which upstream would keep in arbitrary precision) saturates too.
pub fn parse_value(s: &str) -> Result<i64, QuantityError> {
    scaled(s, 0)
}

/// Parses `s` and returns its value in thousandths of a unit, rounded up
/// (`Quantity.MilliValue()`): cpu.
pub fn parse_milli_value(s: &str) -> Result<i64, QuantityError> {
    scaled(s, 3)
}

/// The value of `s` times `10^digits`, rounded up and saturated.
fn scaled(s: &str, digits: i32) -> Result<i64, QuantityError> {
    let negative = s.starts_with('-');
    let saturated = if negative { i64::MIN } else { i64::MAX };
    let mut q = match parse(s) {
        Ok(q) => q,
        Err(QuantityError::Numeric) if s.bytes().any(|b| b.is_ascii_digit()) => {
            return Ok(saturated);
        }
        Err(e) => return Err(e),
    };
    q.round_up(-digits);
    let scaled = if digits == 0 {
        q.int_value()
    } else {
        q.milli_value()
    };
    Ok(scaled
        .and_then(|v| i64::try_from(v).ok())
        .unwrap_or(if q.is_negative() { i64::MIN } else { saturated }))
}

#[cfg(test)]
mod projection_tests {
    use super::*;

    #[test]
    fn sums_keep_the_first_format_and_align_exponents() {
        let sum = |a: &str, b: &str| {
            parse(a)
                .unwrap()
                .checked_add(&parse(b).unwrap())
                .unwrap()
                .canonical()
        };
        assert_eq!(sum("1Gi", "1Gi"), "2Gi");
        assert_eq!(sum("100m", "1"), "1100m");
        assert_eq!(sum("0", "512Mi"), "512Mi");
        assert_eq!(sum("1", "500m"), "1500m");
        let diff = parse("1")
            .unwrap()
            .checked_sub(&parse("250m").unwrap())
            .unwrap();
        assert_eq!(diff.canonical(), "750m");
    }

    #[test]
    fn cpu_quantities_parse_to_millicores() {
        assert_eq!(parse_milli_value("100m"), Ok(100));
        assert_eq!(parse_milli_value("1"), Ok(1000));
        assert_eq!(parse_milli_value("0.5"), Ok(500));
        assert_eq!(parse_milli_value("1.5"), Ok(1500));
        assert_eq!(parse_milli_value("2k"), Ok(2_000_000));
        assert_eq!(parse_milli_value(".25"), Ok(250));
    }

    #[test]
    fn memory_quantities_parse_to_bytes() {
        assert_eq!(parse_value("1Gi"), Ok(1 << 30));
        assert_eq!(parse_value("200Mi"), Ok(200 << 20));
        assert_eq!(parse_value("1e3"), Ok(1000));
        assert_eq!(parse_value("1E3"), Ok(1000));
        assert_eq!(parse_value("1M"), Ok(1_000_000));
        assert_eq!(parse_value("1.5Gi"), Ok(3 << 29));
        assert_eq!(parse_value("129e6"), Ok(129_000_000));
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
        for bad in ["", "abc", "1.2.3", "1Gb", "1 Gi", "--1", "1e+"] {
            assert!(parse_value(bad).is_err(), "{bad:?} should fail");
        }
        // Upstream reads an empty numeric part as 0 ("Gi" is 0Gi).
        assert_eq!(parse_value("Gi"), Ok(0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        parse(s).unwrap_or_else(|e| panic!("{s}: {}", e.message()))
    }

    fn canon(s: &str) -> String {
        parse(s)
            .map(|q| q.canonical())
            .unwrap_or_else(|e| e.message().to_string())
    }

    #[test]
    fn canonical_forms_match_apiserver_output() {
        assert_eq!(canon("100m"), "100m");
        assert_eq!(canon("0.5"), "500m");
        assert_eq!(canon("1000m"), "1");
        assert_eq!(canon("1000"), "1k");
        assert_eq!(canon("1Gi"), "1Gi");
        assert_eq!(canon("1.5Gi"), "1536Mi");
        assert_eq!(canon("1024Ki"), "1Mi");
        assert_eq!(canon("1e3"), "1e3");
        assert_eq!(canon("1E3"), "1e3");
        assert_eq!(canon("100u"), "100u");
        assert_eq!(canon("0.0000000001"), "1n");
        assert_eq!(canon("0"), "0");
        assert_eq!(canon("-1"), "-1");
        assert_eq!(canon("+2"), "2");
        assert_eq!(canon("512"), "512");
        assert_eq!(canon("1E"), "1E");
        assert_eq!(canon("-1Mi"), "-1Mi");
        assert_eq!(canon("0.5Ki"), "512");
    }

    #[test]
    fn bad_strings_report_upstream_errors() {
        assert_eq!(parse("abc"), Err(QuantityError::Format));
        assert_eq!(parse("1Xi"), Err(QuantityError::Format));
        assert_eq!(parse("1e"), Err(QuantityError::Suffix));
        assert_eq!(parse("1kk"), Err(QuantityError::Suffix));
        assert_eq!(parse(""), Err(QuantityError::Format));
        assert!(
            QuantityError::Format
                .message()
                .starts_with("quantities must match")
        );
    }

    #[test]
    fn comparison_is_numeric() {
        let a = q("1Gi");
        let b = q("1G");
        assert_eq!(a.cmp_value(&b), Ordering::Greater);
        let c = q("500m");
        let d = q("0.5");
        assert_eq!(c.cmp_value(&d), Ordering::Equal);
        let e = q("-1");
        assert_eq!(e.cmp_value(&c), Ordering::Less);
    }

    #[test]
    fn round_up_to_milli_rounds_away_from_zero() {
        let mut micro = q("100u");
        micro.round_up(-3);
        assert_eq!(micro.canonical(), "1m");
        assert_eq!(micro.milli_value(), Some(1));
        let mut n = q("-1500u");
        n.round_up(-3);
        assert_eq!(n.canonical(), "-2m");
    }
}
