//! Per-object retry delays after failed reconciles, like client-go's default
//! controller rate limiter: 5ms doubling per consecutive failure, capped at
//! 1000s, reset by the first success.
//!
//! Kept per object key so one failing object backs off without slowing the
//! others.

use std::collections::HashMap;
use std::time::Duration;

use parking_lot::Mutex;

const BASE: Duration = Duration::from_millis(5);
const MAX: Duration = Duration::from_secs(1000);

/// Consecutive failure counts per object key.
#[derive(Debug, Default)]
pub struct RetryBackoff {
    failures: Mutex<HashMap<String, u32>>,
}

impl RetryBackoff {
    /// Records a failure of `key` and returns how long to wait before retrying.
    pub fn next_delay(&self, key: &str) -> Duration {
        let mut failures = self.failures.lock();
        let n = failures.entry(key.to_owned()).or_default();
        let delay = BASE.saturating_mul(2u32.saturating_pow(*n)).min(MAX);
        *n = n.saturating_add(1);
        delay
    }

    /// Forgets the failures of `key` after it reconciled successfully.
    pub fn reset(&self, key: &str) {
        self.failures.lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_per_failure_and_reset_on_success() {
        let b = RetryBackoff::default();
        assert_eq!(b.next_delay("a"), Duration::from_millis(5));
        assert_eq!(b.next_delay("a"), Duration::from_millis(10));
        assert_eq!(b.next_delay("a"), Duration::from_millis(20));
        assert_eq!(b.next_delay("b"), Duration::from_millis(5));
        b.reset("a");
        assert_eq!(b.next_delay("a"), Duration::from_millis(5));
    }

    #[test]
    fn delays_are_capped() {
        let b = RetryBackoff::default();
        let last = (0..64).map(|_| b.next_delay("a")).last();
        assert_eq!(last, Some(MAX));
    }
}
