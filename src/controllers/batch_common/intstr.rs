//! `IntOrString` scaling (upstream `intstr.GetScaledValueFromIntOrPercent`), used for
//! `maxUnavailable`/`maxSurge` of DaemonSets and StatefulSets.
//!
//! A string that is not `<int>%` is an error rather than zero: the apiserver validates these
//! fields, so a bad value means the object bypassed validation and must not be guessed at.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::error::ControllerError;

/// Resolves an int-or-percent against `total`; percentages round up or down as asked.
pub fn scaled_value(
    value: &IntOrString,
    total: i32,
    round_up: bool,
    field: &'static str,
) -> Result<i32, ControllerError> {
    match value {
        IntOrString::Int(i) => Ok(*i),
        IntOrString::String(s) => {
            let pct: i64 = s
                .strip_suffix('%')
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| ControllerError::InvalidSpec {
                    field,
                    reason: format!("invalid value for IntOrString: {s:?} is not a percentage"),
                })?;
            let scaled = pct * i64::from(total);
            let v = if round_up {
                scaled.div_euclid(100) + i64::from(scaled.rem_euclid(100) != 0)
            } else {
                scaled.div_euclid(100)
            };
            Ok(i32::try_from(v).unwrap_or(i32::MAX))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_round_in_the_requested_direction() {
        let pct = IntOrString::String("25%".into());
        assert_eq!(scaled_value(&pct, 10, true, "f").ok(), Some(3));
        assert_eq!(scaled_value(&pct, 10, false, "f").ok(), Some(2));
        assert_eq!(
            scaled_value(&IntOrString::Int(4), 10, true, "f").ok(),
            Some(4)
        );
        assert!(scaled_value(&IntOrString::String("4".into()), 10, true, "f").is_err());
    }
}
