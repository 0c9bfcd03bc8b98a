//! Blob transfer with containerd's content store: streaming upload, read, info, labels.
//!
//! Uploads use the bidirectional `Content.Write` stream (STAT → WRITE at the server's
//! offset → COMMIT) under a lease. Blobs whose digest is known up front are skipped when
//! the namespace already has them, which makes re-imports cheap; blobs whose digest is
//! unknown (docker-archive files) are hashed while streaming and committed with the
//! computed digest. Every byte is hashed locally, so a corrupt archive is reported as
//! such rather than as an opaque `FailedPrecondition`.

use std::collections::HashMap;

use containerd_client::services::v1::content_client::ContentClient;
use containerd_client::services::v1::{
    AbortRequest, Info, InfoRequest, ReadContentRequest, UpdateRequest, WriteAction,
    WriteContentRequest, WriteContentResponse,
};
use containerd_client::tonic::{Code, Status, Streaming};
use prost_types::FieldMask;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::super::client::{Lease, MAX_MESSAGE, Runtime, unique_suffix};
use super::super::error::{Result, RuntimeError};

/// WRITE messages sent ahead of their replies.
const WRITES_IN_FLIGHT: usize = 3;

/// Largest chunk sent in one WRITE (containerd accepts 16 MiB messages; stay well below).
pub(crate) const CHUNK: usize = 1024 * 1024;

/// Formats a SHA-256 hash as an OCI digest.
pub(crate) fn sha256_digest(hash: &[u8]) -> String {
    let mut s = String::with_capacity(7 + hash.len() * 2);
    s.push_str("sha256:");
    for b in hash {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// An upload in progress; feed it with [`Upload::push`], then [`Upload::finish`].
pub(crate) struct Upload {
    rt: Runtime,
    stream: Option<(
        mpsc::Sender<WriteContentRequest>,
        Streaming<WriteContentResponse>,
    )>,
    reference: String,
    total: i64,
    received: i64,
    server_offset: i64,
    /// WRITEs sent whose replies have not been read yet.
    in_flight: usize,
    expected: Option<String>,
    hasher: Sha256,
    /// First bytes of the blob, for compression sniffing.
    pub(crate) magic: Vec<u8>,
}

impl Upload {
    /// Starts uploading a blob of `total` bytes (skipped if `expected` is already stored).
    pub(crate) async fn begin(
        rt: &Runtime,
        lease: &Lease,
        total: i64,
        expected: Option<String>,
    ) -> Result<Self> {
        let reference = match &expected {
            Some(d) => format!("kelp-import-{d}"),
            None => format!("kelp-import-{}", unique_suffix()),
        };
        let mut up = Upload {
            rt: rt.clone(),
            stream: None,
            reference,
            total,
            received: 0,
            server_offset: 0,
            in_flight: 0,
            expected,
            hasher: Sha256::new(),
            magic: Vec::new(),
        };
        if let Some(d) = &up.expected
            && info(rt, d).await?.is_some()
        {
            return Ok(up); // already here: hash only, no transfer
        }
        up.open(lease).await?;
        Ok(up)
    }

    async fn open(&mut self, lease: &Lease) -> Result<()> {
        let (tx, rx) = mpsc::channel(4);
        let stat = WriteContentRequest {
            action: WriteAction::Stat as i32,
            r#ref: self.reference.clone(),
            total: self.total,
            expected: self.expected.clone().unwrap_or_default(),
            ..Default::default()
        };
        let _ = tx.send(stat).await;
        let mut client = ContentClient::new(self.rt.channel.clone());
        let mut rs = match client
            .write(self.rt.leased(ReceiverStream::new(rx), lease))
            .await
        {
            Ok(r) => r.into_inner(),
            Err(s) if s.code() == Code::AlreadyExists => return Ok(()),
            Err(s) => return Err(RuntimeError::rpc("Content.Write")(s)),
        };
        match rs.message().await {
            Ok(Some(reply)) => self.server_offset = reply.offset,
            Ok(None) => return Err(write_err("stream closed after STAT")),
            Err(s) if s.code() == Code::AlreadyExists => return Ok(()),
            Err(s) => return Err(RuntimeError::rpc("Content.Write")(s)),
        }
        self.stream = Some((tx, rs));
        Ok(())
    }

    /// Hashes `chunk` and sends whatever part of it the server does not have yet.
    pub(crate) async fn push(&mut self, chunk: &[u8]) -> Result<()> {
        self.hasher.update(chunk);
        if self.magic.len() < 8 {
            let want = (8 - self.magic.len()).min(chunk.len());
            self.magic.extend_from_slice(&chunk[..want]);
        }
        let start = self.received;
        self.received += chunk.len() as i64;
        let Some((tx, rs)) = self.stream.as_mut() else {
            return Ok(());
        };
        if self.received <= self.server_offset {
            return Ok(()); // a resumed ingest already holds these bytes
        }
        let skip = usize::try_from(self.server_offset - start).unwrap_or(0);
        let data = chunk[skip..].to_vec();
        let len = data.len() as i64;
        let req = WriteContentRequest {
            action: WriteAction::Write as i32,
            r#ref: self.reference.clone(),
            offset: self.server_offset,
            data,
            ..Default::default()
        };
        if tx.send(req).await.is_err() {
            // containerd ended the stream: its status says why (ENOSPC…).
            while self.in_flight > 0 {
                Self::confirm(rs, &mut self.in_flight).await?;
            }
            return Err(match rs.message().await {
                Err(status) => RuntimeError::rpc("Content.Write")(status),
                Ok(_) => write_err("stream closed during WRITE"),
            });
        }
        // Writes are pipelined: the next chunk goes out while containerd
        // still writes this one. Each reply must confirm the offset reached.
        self.server_offset += len;
        self.in_flight += 1;
        while self.in_flight > WRITES_IN_FLIGHT {
            Self::confirm(rs, &mut self.in_flight).await?;
        }
        Ok(())
    }

    /// Reads one WRITE reply.
    async fn confirm(
        rs: &mut Streaming<WriteContentResponse>,
        in_flight: &mut usize,
    ) -> Result<()> {
        rs.message()
            .await
            .map_err(RuntimeError::rpc("Content.Write"))?
            .ok_or_else(|| write_err("no reply to WRITE"))?;
        *in_flight -= 1;
        Ok(())
    }

    /// True when [`Upload::begin`] found the expected blob in the store
    /// already: nothing will be sent.
    pub(crate) fn already_stored(&self) -> bool {
        self.stream.is_none()
    }

    /// Bytes fed in so far (where a resumed download continues).
    pub(crate) fn received(&self) -> i64 {
        self.received
    }

    /// Commits the blob and returns its digest; fails if the bytes do not match.
    /// A failed commit aborts the ingest, so no partial or wrong blob is left
    /// for a later write under the same ref to resume from.
    pub(crate) async fn finish(self, labels: HashMap<String, String>) -> Result<String> {
        let rt = self.rt.clone();
        let reference = self.reference.clone();
        let result = self.commit(labels).await;
        if result.is_err() {
            let req = rt.req(AbortRequest { r#ref: reference });
            let _ = ContentClient::new(rt.channel.clone()).abort(req).await;
        }
        result
    }

    async fn commit(mut self, labels: HashMap<String, String>) -> Result<String> {
        let digest = sha256_digest(&self.hasher.clone().finalize());
        if self.received != self.total {
            return Err(write_err("short blob"));
        }
        if let Some(expected) = &self.expected
            && *expected != digest
        {
            return Err(RuntimeError::Image {
                file: expected.clone(),
                reason: format!("content has digest {digest}"),
            });
        }
        let Some((tx, mut rs)) = self.stream.take() else {
            return Ok(digest);
        };
        while self.in_flight > 0 {
            Self::confirm(&mut rs, &mut self.in_flight).await?;
        }
        let commit = WriteContentRequest {
            action: WriteAction::Commit as i32,
            r#ref: self.reference.clone(),
            offset: self.server_offset,
            total: self.total,
            expected: digest.clone(),
            labels,
            ..Default::default()
        };
        tx.send(commit)
            .await
            .map_err(|_| write_err("stream closed before COMMIT"))?;
        drop(tx);
        loop {
            match rs.message().await {
                Ok(Some(_)) => continue, // the commit reply, then a duplicate final one
                Ok(None) => return Ok(digest),
                Err(s) if s.code() == Code::AlreadyExists => return Ok(digest),
                Err(s) => return Err(RuntimeError::rpc("Content.Write")(s)),
            }
        }
    }

    /// Drops the server-side ingest after a failure.
    pub(crate) async fn abort(self) {
        if self.stream.is_some() {
            let req = self.rt.req(AbortRequest {
                r#ref: self.reference.clone(),
            });
            let _ = ContentClient::new(self.rt.channel.clone()).abort(req).await;
        }
    }
}

fn write_err(what: &str) -> RuntimeError {
    RuntimeError::Rpc {
        op: "Content.Write",
        source: Status::internal(what.to_string()),
    }
}

/// The content record for `digest`, or None.
pub(crate) async fn info(rt: &Runtime, digest: &str) -> Result<Option<Info>> {
    let req = rt.req(InfoRequest {
        digest: digest.to_string(),
    });
    match ContentClient::new(rt.channel.clone()).info(req).await {
        Ok(r) => Ok(r.into_inner().info),
        Err(s) if s.code() == Code::NotFound => Ok(None),
        Err(s) => Err(RuntimeError::rpc("Content.Info")(s)),
    }
}

/// Reads a whole blob; refuses blobs larger than `max` bytes (manifests and configs only).
pub(crate) async fn read_blob(rt: &Runtime, digest: &str, max: usize) -> Result<Vec<u8>> {
    let req = rt.req(ReadContentRequest {
        digest: digest.to_string(),
        offset: 0,
        size: 0,
    });
    let mut client = ContentClient::new(rt.channel.clone()).max_decoding_message_size(MAX_MESSAGE);
    let mut rs = match client.read(req).await {
        Ok(r) => r.into_inner(),
        Err(s) if s.code() == Code::NotFound => {
            return Err(RuntimeError::NotFound {
                kind: "blob",
                name: digest.into(),
            });
        }
        Err(s) => return Err(RuntimeError::rpc("Content.Read")(s)),
    };
    let mut out = Vec::new();
    while let Some(msg) = rs
        .message()
        .await
        .map_err(RuntimeError::rpc("Content.Read"))?
    {
        out.extend_from_slice(&msg.data);
        if out.len() > max {
            return Err(RuntimeError::Image {
                file: digest.into(),
                reason: format!("blob larger than {max} bytes"),
            });
        }
    }
    Ok(out)
}

/// Sets (adds or replaces) labels on a stored blob.
pub(crate) async fn set_labels(
    rt: &Runtime,
    digest: &str,
    labels: HashMap<String, String>,
) -> Result<()> {
    if labels.is_empty() {
        return Ok(());
    }
    let paths = labels.keys().map(|k| format!("labels.{k}")).collect();
    let info = Info {
        digest: digest.to_string(),
        labels,
        ..Default::default()
    };
    let req = rt.req(UpdateRequest {
        info: Some(info),
        update_mask: Some(FieldMask { paths }),
    });
    ContentClient::new(rt.channel.clone())
        .update(req)
        .await
        .map_err(RuntimeError::rpc("Content.Update"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_sha256_digests() {
        let d = sha256_digest(&Sha256::digest(b""));
        assert_eq!(
            d,
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
