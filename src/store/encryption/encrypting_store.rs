//! A [`Store`] that seals values on the way in and opens them on the way
//! out, by the [`Keyring`].

use std::sync::Arc;

use bytes::Bytes;

use super::Keyring;
use crate::store::{
    Deleted, Event, EventKind, KeyValue, RangeRequest, RangeResult, Result, Revision, Store,
    WatchStream,
};

/// Wraps a store with encryption at rest. With a disabled keyring every
/// value passes through unchanged.
#[derive(Clone, Debug)]
pub struct EncryptingStore<S> {
    inner: S,
    keyring: Arc<Keyring>,
}

impl<S> EncryptingStore<S> {
    /// `inner`, sealed by `keyring`.
    pub fn new(inner: S, keyring: Arc<Keyring>) -> Self {
        EncryptingStore { inner, keyring }
    }

    /// The store underneath, which sees sealed values.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The keys in use.
    pub fn keyring(&self) -> &Arc<Keyring> {
        &self.keyring
    }
}

fn open_kv(keyring: &Keyring, mut kv: KeyValue) -> Result<KeyValue> {
    kv.value = keyring.decrypt(&kv.key, kv.value)?;
    Ok(kv)
}

fn open_event(keyring: &Keyring, mut event: Event) -> Result<Event> {
    event.value = event.value.map(|kv| open_kv(keyring, kv)).transpose()?;
    event.prev = match (event.kind, event.prev) {
        // The state before a put is history: after a key rotation it may
        // be sealed with a key that is gone. A put's watchers need only the
        // new state, so that history is dropped rather than failing the
        // watch. A delete's previous state is the object itself: strict.
        (EventKind::Put, Some(prev)) => open_kv(keyring, prev).ok(),
        (_, prev) => prev.map(|kv| open_kv(keyring, kv)).transpose()?,
    };
    Ok(event)
}

impl<S: Store> EncryptingStore<S> {
    fn seal(&self, key: &str, value: Bytes) -> Result<Bytes> {
        Ok(self.keyring.encrypt(key, value)?)
    }
}

impl<S: Store> Store for EncryptingStore<S> {
    async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue> {
        let sealed = self.seal(key, value.clone())?;
        let mut kv = self.inner.create(key, sealed).await?;
        kv.value = value;
        Ok(kv)
    }

    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected: Option<Revision>,
    ) -> Result<KeyValue> {
        let sealed = self.seal(key, value.clone())?;
        let mut kv = self.inner.update(key, sealed, expected).await?;
        kv.value = value;
        Ok(kv)
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<Deleted> {
        let mut deleted = self.inner.delete(key, expected).await?;
        deleted.prev = open_kv(&self.keyring, deleted.prev)?;
        Ok(deleted)
    }

    async fn get(&self, key: &str) -> Result<(Option<KeyValue>, Revision)> {
        let (kv, revision) = self.inner.get(key).await?;
        Ok((
            kv.map(|kv| open_kv(&self.keyring, kv)).transpose()?,
            revision,
        ))
    }

    async fn range(&self, request: RangeRequest) -> Result<RangeResult> {
        let mut result = self.inner.range(request).await?;
        result.kvs = result
            .kvs
            .into_iter()
            .map(|kv| open_kv(&self.keyring, kv))
            .collect::<Result<_>>()?;
        Ok(result)
    }

    fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        let keyring = self.keyring.clone();
        Ok(self
            .inner
            .watch(prefix, after)?
            .map(Arc::new(move |event| open_event(&keyring, event))))
    }

    fn current_revision(&self) -> Revision {
        self.inner.current_revision()
    }

    fn failure(&self) -> Option<String> {
        self.inner.failure()
    }

    fn compacted_revision(&self) -> Revision {
        self.inner.compacted_revision()
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        self.inner.compact(revision).await
    }
}
