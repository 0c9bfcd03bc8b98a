//! SPDY/3.1, as far as Kubernetes streaming needs it: the server side of connections
//! whose client opens every stream (kubectl's port-forward and exec fallback).
//!
//! [`frame`] is the wire format, [`headers`] the compressed header blocks and
//! [`session`] the connection state machine with flow control. Kept separate from the
//! port-forward logic so the same session can run over a raw upgraded HTTP connection or
//! tunnelled inside WebSocket binary messages.

pub mod frame;
pub mod headers;
pub mod session;
