//! Per-object exponential backoff for transient failures: 1 s, 2 s, 4 s … up to 5 minutes,
//! reset by the next successful reconcile.

use std::{collections::HashMap, sync::Mutex, time::Duration};

/// The first retry delay.
pub const BASE: Duration = Duration::from_secs(1);
/// The longest retry delay.
pub const MAX: Duration = Duration::from_secs(300);

/// The delay before retry number `failures` (1 for the first failure).
pub fn delay(failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(16);
    BASE.saturating_mul(1 << exponent).min(MAX)
}

/// Consecutive failures per object.
#[derive(Debug, Default)]
pub struct Backoff {
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    /// Records a failure of the object `key` and returns how long to wait before retrying.
    pub fn failed(&self, key: &str) -> Duration {
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = failures.entry(key.to_owned()).or_default();
        *count = count.saturating_add(1);
        delay(*count)
    }

    /// Forgets the failures of `key` after a success.
    pub fn succeeded(&self, key: &str) {
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        failures.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_double_from_one_second_up_to_five_minutes() {
        let secs: Vec<u64> = (1..=10).map(|n| delay(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300]);
        assert_eq!(delay(u32::MAX), MAX);
    }

    #[test]
    fn a_success_resets_an_objects_backoff_but_not_others() {
        let backoff = Backoff::default();
        assert_eq!(backoff.failed("a"), Duration::from_secs(1));
        assert_eq!(backoff.failed("a"), Duration::from_secs(2));
        assert_eq!(backoff.failed("b"), Duration::from_secs(1));
        backoff.succeeded("a");
        assert_eq!(backoff.failed("a"), Duration::from_secs(1));
        assert_eq!(backoff.failed("b"), Duration::from_secs(2));
    }
}
