//! The consumer side of a store watch.
//!
//! A backend feeds a bounded channel from its own task; the consumer reads
//! [`WatchStream`] as a `Stream`. The bound is the backpressure: a consumer
//! that stops reading stalls only its own feeder, which then falls back to
//! re-reading the log rather than holding events in memory. Dropping the
//! stream stops the feeder.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use tokio::sync::mpsc;

use super::{Event, Result};

/// Events of one watch, in revision order. Ends after an error.
pub struct WatchStream {
    rx: mpsc::Receiver<Result<Event>>,
}

impl WatchStream {
    /// Wraps the receiving end of a feeder channel.
    pub(crate) fn new(rx: mpsc::Receiver<Result<Event>>) -> Self {
        WatchStream { rx }
    }

    /// The next event; `None` when the store shut down.
    ///
    /// # Cancel safety
    /// Cancel safe: an event is never lost if the future is dropped.
    pub async fn next_event(&mut self) -> Option<Result<Event>> {
        self.rx.recv().await
    }
}

impl Stream for WatchStream {
    type Item = Result<Event>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}
