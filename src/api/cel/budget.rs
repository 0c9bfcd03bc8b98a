//! Runtime cost accounting for one evaluation.
//!
//! The `cel` interpreter has no cancellation hook, so compilation rewrites
//! every comprehension to pass through [`CHARGE_FN`], an identity overload
//! that charges the iteration's approximate cost. The overload is a plain `fn` pointer, shared by all
//! programs, so the meter lives in a thread local: an evaluation runs start
//! to end on the calling thread.

use std::cell::Cell;

/// The overload the compiler wraps around per-iteration expressions. Its name
/// starts with `@`, so no expression can call it itself.
pub(super) const CHARGE_FN: &str = "@kelp_charge";

/// The error text of cel-go when an evaluation exceeds its cost limit;
/// callers match on this prefix, as upstream does.
pub(super) const LIMIT_EXCEEDED: &str = "operation cancelled: actual cost limit exceeded";

thread_local! {
    static REMAINING: Cell<u64> = const { Cell::new(u64::MAX) };
    static EXHAUSTED: Cell<bool> = const { Cell::new(false) };
}

/// The outcome of a metered evaluation.
pub(super) struct Metered<T> {
    /// What the evaluation returned.
    pub result: T,
    /// Units used.
    pub used: u64,
    /// Whether the limit was reached; the result is then meaningless,
    /// whatever it is, since `||`/`&&` may have absorbed the error.
    pub exhausted: bool,
}

/// Runs `f` with at most `limit` units to spend.
pub(super) fn metered<T>(limit: u64, f: impl FnOnce() -> T) -> Metered<T> {
    // Nested evaluations (none today) must not leak their meter outwards.
    let saved = (REMAINING.get(), EXHAUSTED.get());
    REMAINING.set(limit);
    EXHAUSTED.set(false);
    let result = f();
    let used = limit - REMAINING.get();
    let exhausted = EXHAUSTED.get();
    REMAINING.set(saved.0);
    EXHAUSTED.set(saved.1);
    Metered {
        result,
        used,
        exhausted,
    }
}

/// Charges `cost` units; false once the meter is exhausted.
pub(super) fn charge(cost: u64) -> bool {
    let left = REMAINING.get();
    if left < cost {
        REMAINING.set(0);
        EXHAUSTED.set(true);
        return false;
    }
    REMAINING.set(left - cost);
    true
}
