//! kelp: a whole Kubernetes distribution in one binary.
//!
//! The modules follow the processes of a cluster (see DESIGN.md in the
//! project docs): the [`store`] under the [`api`] server, the cluster
//! [`pki`], the node agent in [`kubelet`], and the command line in
//! [`cli`]. Components meet only at the
//! Kubernetes API.

pub mod agent;
pub mod api;
pub mod cli;
pub mod client;
pub mod controllers;
pub mod kubelet;
pub mod network;
pub mod pki;
pub mod scheduler;
pub mod sim;
pub mod store;
