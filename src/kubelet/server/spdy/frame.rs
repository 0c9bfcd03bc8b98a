//! SPDY/3.1 frames: their in-memory form, wire encoding and decoding.
//!
//! Every frame starts with 8 bytes: control frames carry the control bit, version 3 and
//! a type; data frames a 31-bit stream id. Both then have 8 bits of flags and a 24-bit
//! length. Header-carrying frames (SYN_STREAM, SYN_REPLY, HEADERS) go through the
//! connection's [`HeaderCodec`], so encoding and decoding must happen in wire order.
//! Unknown control types are surfaced as [`Frame::Unknown`] (the spec says to ignore
//! them); short or inconsistent frames are [`FrameError`]s, which end the connection.

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::headers::{HeaderBlock, HeaderCodec, HeaderError};

/// The FIN flag on data and stream-creating control frames.
pub const FLAG_FIN: u8 = 0x01;
/// Largest payload a frame's 24-bit length can describe.
pub const MAX_FRAME_LEN: usize = (1 << 24) - 1;

const VERSION: u16 = 3;
const TYPE_SYN_STREAM: u16 = 1;
const TYPE_SYN_REPLY: u16 = 2;
const TYPE_RST_STREAM: u16 = 3;
const TYPE_SETTINGS: u16 = 4;
const TYPE_PING: u16 = 6;
const TYPE_GOAWAY: u16 = 7;
const TYPE_HEADERS: u16 = 8;
const TYPE_WINDOW_UPDATE: u16 = 9;

/// RST_STREAM status: the stream was refused or is invalid.
pub const RST_PROTOCOL_ERROR: u32 = 1;
/// RST_STREAM status: the frame named a stream that does not exist.
pub const RST_INVALID_STREAM: u32 = 2;
/// RST_STREAM status: the sender no longer wants the stream.
pub const RST_CANCEL: u32 = 5;
/// SETTINGS id of the initial per-stream flow-control window.
pub const SETTINGS_INITIAL_WINDOW_SIZE: u32 = 7;

/// One SPDY frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Opens a stream.
    SynStream {
        /// The new stream's id (odd when the client opened it).
        stream_id: u32,
        /// The stream this one is associated with (0 for none).
        associated_id: u32,
        /// 3-bit priority, 0 highest.
        priority: u8,
        /// FIN / UNIDIRECTIONAL flags.
        flags: u8,
        /// The stream's headers.
        headers: HeaderBlock,
    },
    /// Accepts a stream the peer opened.
    SynReply {
        /// The accepted stream.
        stream_id: u32,
        /// FIN flag.
        flags: u8,
        /// Reply headers.
        headers: HeaderBlock,
    },
    /// Aborts a stream.
    RstStream {
        /// The aborted stream.
        stream_id: u32,
        /// Why (one of the `RST_*` codes).
        status: u32,
    },
    /// Connection parameters as (flags, id, value) triples.
    Settings {
        /// Frame flags (CLEAR_SETTINGS).
        flags: u8,
        /// The settings.
        entries: Vec<(u8, u32, u32)>,
    },
    /// Liveness probe; the receiver echoes a peer-initiated ping.
    Ping {
        /// Ping id (odd from clients, even from servers).
        id: u32,
    },
    /// The sender will accept no more streams.
    GoAway {
        /// Last stream the sender processed.
        last_good_stream_id: u32,
        /// Why.
        status: u32,
    },
    /// Extra headers for an open stream.
    Headers {
        /// The stream.
        stream_id: u32,
        /// FIN flag.
        flags: u8,
        /// The headers.
        headers: HeaderBlock,
    },
    /// Grants the peer more send window on a stream (0 = the whole session).
    WindowUpdate {
        /// The stream, or 0 for the session window.
        stream_id: u32,
        /// Bytes added to the window.
        delta: u32,
    },
    /// Stream payload.
    Data {
        /// The stream.
        stream_id: u32,
        /// FIN flag.
        flags: u8,
        /// Payload.
        data: Bytes,
    },
    /// A control frame of a type this implementation does not know (ignored).
    Unknown {
        /// Its type field.
        frame_type: u16,
    },
}

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The transport failed or closed mid-frame.
    #[error("transport: {0}")]
    Io(#[from] std::io::Error),
    /// A header block failed to (de)compress or parse.
    #[error(transparent)]
    Headers(#[from] HeaderError),
    /// The frame's fields are inconsistent with its type.
    #[error("invalid {0} frame")]
    Invalid(&'static str),
    /// The frame speaks a SPDY version other than 3.
    #[error("unsupported SPDY version {0}")]
    Version(u16),
}

fn control_header(out: &mut Vec<u8>, frame_type: u16, flags: u8, len: usize) {
    out.extend_from_slice(&(0x8000 | VERSION).to_be_bytes());
    out.extend_from_slice(&frame_type.to_be_bytes());
    out.extend_from_slice(&(((flags as u32) << 24) | (len as u32 & 0x00ff_ffff)).to_be_bytes());
}

impl Frame {
    /// Appends the wire form of this frame to `out`, compressing headers with `codec`.
    pub fn encode(&self, codec: &mut HeaderCodec, out: &mut Vec<u8>) -> Result<(), FrameError> {
        match self {
            Frame::SynStream {
                stream_id,
                associated_id,
                priority,
                flags,
                headers,
            } => {
                let block = codec.encode(headers)?;
                control_header(out, TYPE_SYN_STREAM, *flags, 10 + block.len());
                out.extend_from_slice(&(stream_id & 0x7fff_ffff).to_be_bytes());
                out.extend_from_slice(&(associated_id & 0x7fff_ffff).to_be_bytes());
                out.extend_from_slice(&[(priority & 0x7) << 5, 0]);
                out.extend_from_slice(&block);
            }
            Frame::SynReply {
                stream_id,
                flags,
                headers,
            } => stream_with_block(codec, out, TYPE_SYN_REPLY, *stream_id, *flags, headers)?,
            Frame::Headers {
                stream_id,
                flags,
                headers,
            } => stream_with_block(codec, out, TYPE_HEADERS, *stream_id, *flags, headers)?,
            Frame::RstStream { stream_id, status } => {
                two_words(out, TYPE_RST_STREAM, *stream_id & 0x7fff_ffff, *status)
            }
            Frame::GoAway {
                last_good_stream_id,
                status,
            } => two_words(
                out,
                TYPE_GOAWAY,
                *last_good_stream_id & 0x7fff_ffff,
                *status,
            ),
            Frame::WindowUpdate { stream_id, delta } => two_words(
                out,
                TYPE_WINDOW_UPDATE,
                *stream_id & 0x7fff_ffff,
                *delta & 0x7fff_ffff,
            ),
            Frame::Settings { flags, entries } => {
                control_header(out, TYPE_SETTINGS, *flags, 4 + 8 * entries.len());
                out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
                for (flag, id, value) in entries {
                    out.extend_from_slice(
                        &(((*flag as u32) << 24) | (id & 0xff_ffff)).to_be_bytes(),
                    );
                    out.extend_from_slice(&value.to_be_bytes());
                }
            }
            Frame::Ping { id } => {
                control_header(out, TYPE_PING, 0, 4);
                out.extend_from_slice(&id.to_be_bytes());
            }
            Frame::Data {
                stream_id,
                flags,
                data,
            } => {
                if data.len() > MAX_FRAME_LEN {
                    return Err(FrameError::Invalid("oversized DATA"));
                }
                out.extend_from_slice(&(stream_id & 0x7fff_ffff).to_be_bytes());
                out.extend_from_slice(&(((*flags as u32) << 24) | data.len() as u32).to_be_bytes());
                out.extend_from_slice(data);
            }
            Frame::Unknown { .. } => return Err(FrameError::Invalid("unknown")),
        }
        Ok(())
    }

    /// Reads one frame; `Ok(None)` on a clean end of stream between frames.
    pub async fn read<R: AsyncRead + Unpin>(
        reader: &mut R,
        codec: &mut HeaderCodec,
    ) -> Result<Option<Frame>, FrameError> {
        let mut head = [0u8; 8];
        match reader.read_exact(&mut head[..1]).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        reader.read_exact(&mut head[1..]).await?;
        let first = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let flags = head[4];
        let len = u32::from_be_bytes([0, head[5], head[6], head[7]]) as usize;
        let mut payload = vec![0u8; len];
        reader.read_exact(&mut payload).await?;
        if first & 0x8000_0000 == 0 {
            return Ok(Some(Frame::Data {
                stream_id: first,
                flags,
                data: payload.into(),
            }));
        }
        let version = ((first >> 16) & 0x7fff) as u16;
        if version != VERSION {
            return Err(FrameError::Version(version));
        }
        Self::decode_control((first & 0xffff) as u16, flags, &payload, codec).map(Some)
    }

    fn decode_control(
        frame_type: u16,
        flags: u8,
        p: &[u8],
        codec: &mut HeaderCodec,
    ) -> Result<Frame, FrameError> {
        let word = |i: usize, what: &'static str| -> Result<u32, FrameError> {
            p.get(i..i + 4)
                .and_then(|w| w.try_into().ok())
                .map(u32::from_be_bytes)
                .ok_or(FrameError::Invalid(what))
        };
        Ok(match frame_type {
            TYPE_SYN_STREAM => Frame::SynStream {
                stream_id: word(0, "SYN_STREAM")? & 0x7fff_ffff,
                associated_id: word(4, "SYN_STREAM")? & 0x7fff_ffff,
                priority: p.get(8).ok_or(FrameError::Invalid("SYN_STREAM"))? >> 5,
                flags,
                headers: codec.decode(p.get(10..).ok_or(FrameError::Invalid("SYN_STREAM"))?)?,
            },
            TYPE_SYN_REPLY | TYPE_HEADERS => {
                let stream_id = word(0, "SYN_REPLY/HEADERS")? & 0x7fff_ffff;
                let headers = codec.decode(&p[4..])?;
                if frame_type == TYPE_SYN_REPLY {
                    Frame::SynReply {
                        stream_id,
                        flags,
                        headers,
                    }
                } else {
                    Frame::Headers {
                        stream_id,
                        flags,
                        headers,
                    }
                }
            }
            TYPE_RST_STREAM => Frame::RstStream {
                stream_id: word(0, "RST_STREAM")? & 0x7fff_ffff,
                status: word(4, "RST_STREAM")?,
            },
            TYPE_SETTINGS => {
                let count = word(0, "SETTINGS")? as usize;
                let mut entries = Vec::with_capacity(count.min(64));
                for i in 0..count {
                    let id = word(4 + 8 * i, "SETTINGS")?;
                    let value = word(8 + 8 * i, "SETTINGS")?;
                    entries.push(((id >> 24) as u8, id & 0xff_ffff, value));
                }
                Frame::Settings { flags, entries }
            }
            TYPE_PING => Frame::Ping {
                id: word(0, "PING")?,
            },
            TYPE_GOAWAY => Frame::GoAway {
                last_good_stream_id: word(0, "GOAWAY")? & 0x7fff_ffff,
                status: word(4, "GOAWAY").unwrap_or(0),
            },
            TYPE_WINDOW_UPDATE => Frame::WindowUpdate {
                stream_id: word(0, "WINDOW_UPDATE")? & 0x7fff_ffff,
                delta: word(4, "WINDOW_UPDATE")? & 0x7fff_ffff,
            },
            other => Frame::Unknown { frame_type: other },
        })
    }
}

fn stream_with_block(
    codec: &mut HeaderCodec,
    out: &mut Vec<u8>,
    frame_type: u16,
    stream_id: u32,
    flags: u8,
    headers: &HeaderBlock,
) -> Result<(), FrameError> {
    let block = codec.encode(headers)?;
    control_header(out, frame_type, flags, 4 + block.len());
    out.extend_from_slice(&(stream_id & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(&block);
    Ok(())
}

fn two_words(out: &mut Vec<u8>, frame_type: u16, a: u32, b: u32) {
    control_header(out, frame_type, 0, 8);
    out.extend_from_slice(&a.to_be_bytes());
    out.extend_from_slice(&b.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderBlock {
        HeaderBlock(
            pairs
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        )
    }

    async fn round_trip(frames: Vec<Frame>) -> Vec<Frame> {
        let (mut tx, mut rx) = (HeaderCodec::new().unwrap(), HeaderCodec::new().unwrap());
        let mut wire = Vec::new();
        for f in &frames {
            f.encode(&mut tx, &mut wire).unwrap();
        }
        let mut reader = wire.as_slice();
        let mut out = Vec::new();
        while let Some(f) = Frame::read(&mut reader, &mut rx).await.unwrap() {
            out.push(f);
        }
        out
    }

    #[tokio::test]
    async fn every_frame_type_round_trips() {
        let frames = vec![
            Frame::SynStream {
                stream_id: 1,
                associated_id: 0,
                priority: 3,
                flags: FLAG_FIN,
                headers: headers(&[("streamtype", "error"), ("port", "80")]),
            },
            Frame::SynReply {
                stream_id: 1,
                flags: 0,
                headers: HeaderBlock::default(),
            },
            Frame::Headers {
                stream_id: 3,
                flags: FLAG_FIN,
                headers: headers(&[("a", "b")]),
            },
            Frame::RstStream {
                stream_id: 5,
                status: RST_CANCEL,
            },
            Frame::Settings {
                flags: 0,
                entries: vec![(0, SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20)],
            },
            Frame::Ping { id: 7 },
            Frame::GoAway {
                last_good_stream_id: 9,
                status: 0,
            },
            Frame::WindowUpdate {
                stream_id: 0,
                delta: 65_536,
            },
            Frame::Data {
                stream_id: 1,
                flags: FLAG_FIN,
                data: Bytes::from_static(b"hello"),
            },
            Frame::Data {
                stream_id: 3,
                flags: 0,
                data: Bytes::new(),
            },
        ];
        assert_eq!(round_trip(frames.clone()).await, frames);
    }

    #[tokio::test]
    async fn decodes_a_go_spdystream_syn_stream() {
        let wire: &[u8] =
            b"\x80\x03\x00\x01\x00\x00\x00\x2b\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\
\x78\xf9\xe3\xc6\xa7\xc2\x62\x60\x60\x60\x04\xa7\xb3\x92\xa2\xd4\xc4\x5c\x68\x51\xc2\x56\x5c\x92\
\x92\x5f\x5a\x02\x00\x00\x00\xff\xff";
        let mut reader = wire;
        let frame = Frame::read(&mut reader, &mut HeaderCodec::new().unwrap())
            .await
            .unwrap();
        match frame {
            Some(Frame::SynStream {
                stream_id: 1,
                headers,
                ..
            }) => {
                assert_eq!(headers.get("streamtype"), Some("stdout"))
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn data_frame_layout_matches_the_spec() {
        let mut wire = Vec::new();
        let frame = Frame::Data {
            stream_id: 5,
            flags: FLAG_FIN,
            data: Bytes::from_static(b"hi"),
        };
        frame
            .encode(&mut HeaderCodec::new().unwrap(), &mut wire)
            .unwrap();
        assert_eq!(wire, b"\x00\x00\x00\x05\x01\x00\x00\x02hi");
        let mut wu = Vec::new();
        Frame::WindowUpdate {
            stream_id: 3,
            delta: 100,
        }
        .encode(&mut HeaderCodec::new().unwrap(), &mut wu)
        .unwrap();
        assert_eq!(
            wu,
            b"\x80\x03\x00\x09\x00\x00\x00\x08\x00\x00\x00\x03\x00\x00\x00\x64"
        );
    }

    #[tokio::test]
    async fn truncated_and_foreign_frames_are_errors_or_unknown() {
        let mut codec = HeaderCodec::new().unwrap();
        let mut short: &[u8] = b"\x80\x03\x00\x06\x00\x00\x00\x04\x00";
        assert!(Frame::read(&mut short, &mut codec).await.is_err());
        let mut v2: &[u8] = b"\x80\x02\x00\x06\x00\x00\x00\x04\x00\x00\x00\x01";
        assert!(matches!(
            Frame::read(&mut v2, &mut codec).await,
            Err(FrameError::Version(2))
        ));
        let mut unknown: &[u8] = b"\x80\x03\x00\x0a\x00\x00\x00\x00";
        let got = Frame::read(&mut unknown, &mut codec).await.unwrap();
        assert_eq!(got, Some(Frame::Unknown { frame_type: 10 }));
    }
}
