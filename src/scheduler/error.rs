//! Errors of the scheduler component.
//!
//! Only start-up and shutdown problems surface as [`SchedulerError`]: once running, API
//! failures (watch drops, binding conflicts, event writes) are retried or logged inside the
//! component, because a scheduler that exits on a transient apiserver hiccup would leave
//! every new pod Pending.

/// Why [`run`](super::run) stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// The configuration cannot work (for example an empty scheduler name).
    #[error("invalid scheduler configuration: {0}")]
    Config(String),
    /// A background task of the scheduler panicked or was aborted.
    #[error("scheduler task failed: {0}")]
    Task(String),
    /// A watch stream ended, which kube-runtime watchers never do while healthy.
    #[error("watch of {0} ended unexpectedly")]
    WatchEnded(&'static str),
}
