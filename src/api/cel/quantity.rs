//! `resource.Quantity` for CEL's `quantity()` library.
//!
//! Upstream keeps quantities as arbitrary-precision decimals. We keep an
//! exact `i128` mantissa and a power-of-ten scale, which covers every value
//! that fits a Kubernetes resource in practice; values beyond that are
//! refused as unparseable rather than silently rounded.

use std::cmp::Ordering;
use std::fmt;

/// A parsed quantity: `mantissa * 10^scale`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Quantity {
    mantissa: i128,
    scale: i32,
}

/// The error upstream reports for unparseable quantities.
pub(super) const UNPARSEABLE: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

impl Quantity {
    /// Parses a quantity string as `resource.ParseQuantity` does.
    pub(super) fn parse(s: &str) -> Result<Quantity, String> {
        let err = || UNPARSEABLE.to_string();
        let bytes = s.as_bytes();
        let mut i = 0;
        let negative = match bytes.first() {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let mut mantissa: i128 = 0;
        let mut scale: i32 = 0;
        let mut digits = 0;
        let mut seen_dot = false;
        while i < bytes.len() {
            match bytes[i] {
                b'0'..=b'9' => {
                    digits += 1;
                    // Leading zeros cost nothing; others must fit the mantissa.
                    if mantissa != 0 || bytes[i] != b'0' {
                        mantissa = mantissa
                            .checked_mul(10)
                            .and_then(|m| m.checked_add(i128::from(bytes[i] - b'0')))
                            .ok_or_else(err)?;
                    }
                    if seen_dot {
                        scale -= 1;
                    }
                }
                b'.' if !seen_dot => seen_dot = true,
                _ => break,
            }
            i += 1;
        }
        if digits == 0 {
            return Err(err());
        }
        let suffix = &s[i..];
        let (binary_pow, decimal_pow): (u32, i32) = match suffix {
            "" => (0, 0),
            "Ki" => (1, 0),
            "Mi" => (2, 0),
            "Gi" => (3, 0),
            "Ti" => (4, 0),
            "Pi" => (5, 0),
            "Ei" => (6, 0),
            "n" => (0, -9),
            "u" => (0, -6),
            "m" => (0, -3),
            "k" => (0, 3),
            "M" => (0, 6),
            "G" => (0, 9),
            "T" => (0, 12),
            "P" => (0, 15),
            "E" => (0, 18),
            _ => {
                let exp = suffix
                    .strip_prefix('e')
                    .or_else(|| suffix.strip_prefix('E'))
                    .ok_or_else(err)?;
                let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(err());
                }
                let e: i32 = exp.parse().map_err(|_| err())?;
                if e.abs() > 1000 {
                    return Err(err());
                }
                (0, e)
            }
        };
        for _ in 0..binary_pow {
            mantissa = mantissa.checked_mul(1024).ok_or_else(err)?;
        }
        if negative {
            mantissa = -mantissa;
        }
        Ok(Quantity {
            mantissa,
            scale: scale + decimal_pow,
        }
        .normalized())
    }

    /// Strips trailing decimal zeros so mantissas stay small.
    fn normalized(mut self) -> Self {
        if self.mantissa == 0 {
            self.scale = 0;
            return self;
        }
        while self.mantissa % 10 == 0 {
            self.mantissa /= 10;
            self.scale += 1;
        }
        self
    }

    /// Both mantissas at a common scale, or `None` on overflow.
    fn aligned(&self, other: &Quantity) -> Option<(i128, i128, i32)> {
        let scale = self.scale.min(other.scale);
        let up = |q: &Quantity| -> Option<i128> {
            let shift = u32::try_from(q.scale - scale).ok()?;
            q.mantissa.checked_mul(10i128.checked_pow(shift)?)
        };
        Some((up(self)?, up(other)?, scale))
    }

    /// Compares by value, as `Quantity.Cmp`.
    pub(super) fn compare(&self, other: &Quantity) -> Ordering {
        match self.aligned(other) {
            Some((a, b, _)) => a.cmp(&b),
            // Only reachable with wildly different scales: then the sign and
            // magnitude approximations cannot both be wrong.
            None => self
                .approximate_float()
                .partial_cmp(&other.approximate_float())
                .unwrap_or(Ordering::Equal),
        }
    }

    /// `self + other`, or `None` on overflow.
    pub(super) fn add(&self, other: &Quantity) -> Option<Quantity> {
        let (a, b, scale) = self.aligned(other)?;
        Some(
            Quantity {
                mantissa: a.checked_add(b)?,
                scale,
            }
            .normalized(),
        )
    }

    /// `-self`.
    pub(super) fn negated(&self) -> Quantity {
        Quantity {
            mantissa: -self.mantissa,
            scale: self.scale,
        }
    }

    /// An integer quantity.
    pub(super) fn from_int(i: i64) -> Quantity {
        Quantity {
            mantissa: i128::from(i),
            scale: 0,
        }
        .normalized()
    }

    /// The value as an `i64`, if it is a whole number in range.
    pub(super) fn as_integer(&self) -> Option<i64> {
        let whole = if self.scale >= 0 {
            self.mantissa
                .checked_mul(10i128.checked_pow(u32::try_from(self.scale).ok()?)?)?
        } else {
            // Normalized mantissas have no trailing zeros: a negative scale
            // means a fractional part.
            return None;
        };
        i64::try_from(whole).ok()
    }

    /// The nearest `f64`.
    pub(super) fn approximate_float(&self) -> f64 {
        (self.mantissa as f64) * 10f64.powi(self.scale)
    }

    /// -1, 0 or 1.
    pub(super) fn sign(&self) -> i64 {
        match self.mantissa.cmp(&0) {
            Ordering::Less => -1,
            Ordering::Equal => 0,
            Ordering::Greater => 1,
        }
    }
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.compare(other) == Ordering::Equal
    }
}

impl Eq for Quantity {}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.scale >= 0 && self.scale <= 18 {
            let mut s = self.mantissa.to_string();
            s.extend(std::iter::repeat_n('0', self.scale as usize));
            f.write_str(&s)
        } else if self.scale < 0 && self.scale >= -9 {
            // Upstream prints sub-unit values with the smallest SI suffix
            // that keeps them whole.
            let (suffix, exp) = match -self.scale {
                1..=3 => ("m", -3),
                4..=6 => ("u", -6),
                _ => ("n", -9),
            };
            let shift = (self.scale - exp) as u32;
            write!(f, "{}{}", self.mantissa * 10i128.pow(shift), suffix)
        } else {
            write!(f, "{}e{}", self.mantissa, self.scale)
        }
    }
}

impl cel::objects::Opaque for Quantity {
    fn runtime_type_name(&self) -> &str {
        "kubernetes.Quantity"
    }
}
