//! The consumer side of a store watch.
//!
//! A backend feeds a bounded channel from its own task; the consumer reads
//! [`WatchStream`] as a `Stream`. The bound is the backpressure: a consumer
//! that stops reading stalls only its own feeder, which then falls back to
//! re-reading the log rather than holding events in memory. Dropping the
//! stream stops the feeder.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::Stream;
use tokio::sync::mpsc;

use super::{Event, Result};

/// Events of one watch, in revision order. Ends after an error.
pub struct WatchStream {
    rx: mpsc::Receiver<Result<Event>>,
    /// Applied to each event as it is read (encryption at rest opens
    /// values here, so the feeder never holds plaintext).
    transform: Option<EventTransform>,
}

/// A per-event rewrite of a [`WatchStream`].
pub type EventTransform = Arc<dyn Fn(Event) -> Result<Event> + Send + Sync>;

impl WatchStream {
    /// Wraps the receiving end of a feeder channel.
    pub(crate) fn new(rx: mpsc::Receiver<Result<Event>>) -> Self {
        WatchStream {
            rx,
            transform: None,
        }
    }

    /// This stream with `transform` applied to every event.
    pub fn map(mut self, transform: EventTransform) -> Self {
        self.transform = Some(match self.transform.take() {
            Some(first) => Arc::new(move |e| first(e).and_then(|e| transform(e))),
            None => transform,
        });
        self
    }

    fn apply(&self, item: Option<Result<Event>>) -> Option<Result<Event>> {
        match (&self.transform, item) {
            (Some(transform), Some(Ok(event))) => Some(transform(event)),
            (_, item) => item,
        }
    }

    /// The next event; `None` when the store shut down.
    ///
    /// # Cancel safety
    /// Cancel safe: an event is never lost if the future is dropped.
    pub async fn next_event(&mut self) -> Option<Result<Event>> {
        let item = self.rx.recv().await;
        self.apply(item)
    }
}

impl Stream for WatchStream {
    type Item = Result<Event>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.rx.poll_recv(cx);
        polled.map(|item| self.apply(item))
    }
}
