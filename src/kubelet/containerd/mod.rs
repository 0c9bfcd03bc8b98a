//! kelp's container runtime layer: containerd 1.6 driven over gRPC (`containerd-client`).
//!
//! - [`SupervisedContainerd`] runs containerd as a child with a generated config.
//! - [`Runtime`] is a cheap-to-clone handle on one namespace: images (import from
//!   archives, lookup by pod-spec reference), containers and tasks, exec, events.
//!
//! containerd 1.6 has no transfer service, so importing and unpacking images is done
//! here (see `images`). All state lives in containerd and the shims; kelp keeps none, so
//! after a restart it recovers by listing containers by label and reading their tasks.
//! Failures are [`RuntimeError`]s naming the object concerned.

mod client;
mod containers;
mod error;
mod events;
mod exec;
mod fifo;
pub mod images;
mod supervisor;

pub use client::Runtime;
pub use containers::{ContainerRecord, CreateContainer, ExitInfo, Stdio, TaskInfo, TaskStatus};
pub use error::{Result, RuntimeError};
pub use events::RuntimeEvent;
pub use exec::{ExecProcess, ExecRequest};
pub use fifo::make_fifo;
pub use images::{ImageConfig, ImageInfo};
pub use supervisor::{ContainerdConfig, SupervisedContainerd};
