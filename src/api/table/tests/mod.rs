//! Behaviour tests of the table printers through the public API, one file per API area.

mod batch;
mod cluster;
mod config;
mod events;
mod network;
mod pods;
mod policy;
mod support;
mod workloads;
