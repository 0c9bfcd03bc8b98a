//! What every in-process API client shares: the controllers, the
//! scheduler, the kubelet and the node network components.
//!
//! [`informer`] is the shared informer factory: one watch and one decoded
//! copy of each object per process, handed to every consumer. Nothing here
//! reaches into the apiserver: the clients meet the apiserver only at the
//! API, over HTTPS.

pub mod informer;
