//! Connection hygiene for the HTTPS listener: how long a client may take to
//! say something, and how many connections may be open at once.
//!
//! kube-apiserver relies on Go's server timeouts (a 32 s header read
//! timeout, TLS handshake timeout, HTTP/2 pings). kelp uses the same
//! figures, and also caps the connections it holds below the process's
//! file-descriptor limit: a flood of idle clients can then never take the
//! descriptors the store, containerd and the watch machinery need. At the
//! cap the oldest connection that has not sent a request yet makes room;
//! if there is none, the new connection is accepted and closed at once, so
//! clients see a reset instead of hanging in the listen backlog.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

/// Time for the TLS handshake.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time for a request's headers, also the idle time allowed between
/// requests on a kept-alive HTTP/1.1 connection (kube-apiserver's
/// `ReadHeaderTimeout`).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(32);
/// HTTP/2 keep-alive: a ping after this much silence...
pub const H2_PING_INTERVAL: Duration = Duration::from_secs(30);
/// ...which must be answered within this.
pub const H2_PING_TIMEOUT: Duration = Duration::from_secs(15);
/// The listen backlog: Go's `net.Listen` (kube-apiserver's) asks for the
/// kernel's `somaxconn`, commonly 4096. Rust's default of 128 overflows in
/// a burst of connects, and each dropped SYN costs its client a 1 s
/// retransmission.
pub const LISTEN_BACKLOG: u32 = 4096;
/// File descriptors kept out of the connection budget for everything else.
pub const RESERVED_FDS: usize = 1024;

/// A listener on `addr` with [`LISTEN_BACKLOG`] (the kernel caps it at
/// `net.core.somaxconn`).
pub fn listen(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Counts open connections against the budget, and knows which are still
/// on probation (no request yet, maybe still in the TLS handshake).
///
/// When the budget is full, the oldest connection on probation is evicted
/// to make room: a flood of silent clients then cannot lock out a real one,
/// which finishes its handshake and sends its request in milliseconds.
/// Only when every connection has sent a request is a new one refused.
#[derive(Clone, Debug, Default)]
pub struct ConnectionBudget {
    open: Arc<AtomicUsize>,
    probation: Arc<Mutex<BTreeMap<u64, CancellationToken>>>,
    next: Arc<AtomicU64>,
    /// A fixed cap instead of the descriptor limit (tests).
    fixed: Option<usize>,
}

/// One admitted connection; dropping it frees its place.
#[derive(Debug)]
pub struct Admitted {
    budget: ConnectionBudget,
    id: u64,
    /// Cancelled when the connection is evicted while on probation.
    pub evicted: CancellationToken,
}

impl Admitted {
    /// The connection sent a request: it can no longer be evicted.
    pub fn graduate(&self) {
        self.budget.probation.lock().remove(&self.id);
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.budget.probation.lock().remove(&self.id);
        self.budget.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl ConnectionBudget {
    /// Admits a connection, evicting the oldest one on probation when the
    /// budget ([`ConnectionBudget::limit`]) is full; None when nothing can go.
    pub fn admit(&self) -> Option<Admitted> {
        if self.open.load(Ordering::Relaxed) >= self.limit() {
            let (_, victim) = self.probation.lock().pop_first()?;
            // Its task drops the socket (and its place) at once.
            victim.cancel();
        }
        self.open.fetch_add(1, Ordering::Relaxed);
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let evicted = CancellationToken::new();
        self.probation.lock().insert(id, evicted.clone());
        Some(Admitted {
            budget: self.clone(),
            id,
            evicted,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// A budget of exactly `limit` connections.
    pub fn with_limit(limit: usize) -> Self {
        Self {
            fixed: Some(limit),
            ..Self::default()
        }
    }

    /// The cap: the soft descriptor limit (read each time, so a limit
    /// changed while running counts) less [`RESERVED_FDS`], at least 64.
    pub fn limit(&self) -> usize {
        if let Some(fixed) = self.fixed {
            return fixed;
        }
        let soft = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .map(|(soft, _)| soft)
            .unwrap_or(1024);
        let soft = usize::try_from(soft).unwrap_or(usize::MAX);
        soft.saturating_sub(RESERVED_FDS).max(64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admitted_connections_count_until_dropped() {
        let budget = ConnectionBudget::default();
        let a = budget.admit().expect("room");
        let b = budget.admit().expect("room");
        assert_eq!(budget.open(), 2);
        a.graduate();
        assert_eq!(budget.probation.lock().len(), 1);
        drop(a);
        drop(b);
        assert_eq!(budget.open(), 0);
        assert!(budget.limit() >= 64);
        assert!(budget.probation.lock().is_empty());
    }

    #[test]
    fn a_full_budget_evicts_the_oldest_silent_connection() {
        let limit = 8;
        let budget = ConnectionBudget::with_limit(limit);
        let held: Vec<Admitted> = (0..limit).map(|_| budget.admit().expect("room")).collect();
        for a in &held[1..] {
            a.graduate();
        }
        let newcomer = budget.admit().expect("room made by eviction");
        assert!(held[0].evicted.is_cancelled(), "the silent one goes");
        assert!(!held[1].evicted.is_cancelled());
        newcomer.graduate();
        drop(held);
        let held: Vec<Admitted> = (0..limit).map(|_| budget.admit().expect("room")).collect();
        for a in &held {
            a.graduate();
        }
        assert!(budget.admit().is_none(), "everyone talks: refused");
    }
}
