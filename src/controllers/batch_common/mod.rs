//! Machinery shared by the batch controllers (Job, CronJob, DaemonSet, StatefulSet).
//!
//! Each controller is a kube-runtime `applier` fed by its own reflectors (see [`runtime`]):
//! one watch per resource type, whose store doubles as the controller's cache. What the
//! controllers have in common beyond that lives here: the error type, expectations that
//! paper over cache lag after writes, pod predicates and orderings, ownership
//! (adopt/release), label selectors, ControllerRevision history and event recording.
//! Nothing here talks to a specific controller's objects beyond generic `Resource`s.

pub mod error;
pub mod expectations;
pub mod history;
pub mod intstr;
pub mod ownership;
pub mod pods;
pub mod runtime;
pub mod selector;
pub mod time;

pub use error::ControllerError;
