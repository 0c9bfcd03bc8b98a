//! What every in-process API client shares: the controllers, the
//! scheduler, the kubelet and the node network components.
//!
//! [`informer`] is the shared informer factory: one watch and one decoded
//! copy of each object per process, handed to every consumer. Nothing here
//! reaches into the apiserver: the clients meet the apiserver only at the
//! API, over HTTPS.
//!
//! The rest are the helpers that the apiserver and its clients both need
//! ([`events`], [`quantity`], [`timestamps`], [`calendar`], [`cron_schedule`],
//! [`names`], [`object_metadata`], [`resource_quota`], [`join_protocol`], [`pod_qos`], [`version`], [`health`]): they live here so that
//! the kubelet, the scheduler and the controllers import nothing from
//! `api/` (a test in `tests/module_boundaries.rs` checks it).

pub mod calendar;
pub mod cron_schedule;
pub mod events;
pub mod health;
pub mod informer;
pub mod join_protocol;
pub mod names;
pub mod object_metadata;
pub mod pod_qos;
pub mod quantity;
pub mod resource_quota;
pub mod timestamps;
pub mod version;
