//! SPDY/3 name/value header blocks and their zlib compression.
//!
//! A header block is a big-endian count of pairs, each a length-prefixed name and a
//! length-prefixed value (several values joined by NUL). On the wire the block is
//! deflated with the SPDY/3 preset dictionary, and every block of one direction of a
//! connection shares one zlib stream (each block ends with a sync flush), so a
//! [`HeaderCodec`] must live as long as its connection and see every block in order.
//! Malformed or oversized blocks are [`HeaderError`]s; a decompression error leaves the
//! shared zlib stream unusable, so callers tear the connection down on any error.

use std::sync::OnceLock;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// Decompressed header blocks larger than this are refused: real blocks are tiny and the
/// limit keeps a zlib bomb from exhausting memory.
const MAX_BLOCK_LEN: usize = 256 * 1024;

/// The words that open the SPDY/3 dictionary, each stored with a 4-byte length prefix.
const DICTIONARY_WORDS: &[&str] = &[
    "options",
    "head",
    "post",
    "put",
    "delete",
    "trace",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "connection",
    "content-base",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-md5",
    "content-range",
    "content-type",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "location",
    "max-forwards",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "retry-after",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "vary",
    "via",
    "warning",
    "www-authenticate",
    "method",
    "get",
    "status",
    "200 OK",
    "version",
    "HTTP/1.1",
    "url",
    "public",
    "set-cookie",
    "keep-alive",
    "origin",
];

/// The raw tail of the SPDY/3 dictionary that follows the length-prefixed words.
const DICTIONARY_TAIL: &str = "100101201202205206300302303304305306307402405406407408409410\
411412413414415416417502504505203 Non-Authoritative Information204 No Content301 Moved \
Permanently400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server \
Error501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov \
Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,\
image/gif,application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivate\
max-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.";

/// The SPDY/3 zlib preset dictionary (1423 bytes, Adler-32 0xe3c6a7c2), built once.
pub fn dictionary() -> &'static [u8] {
    static DICT: OnceLock<Vec<u8>> = OnceLock::new();
    DICT.get_or_init(|| {
        let mut dict = Vec::with_capacity(1423);
        for word in DICTIONARY_WORDS {
            dict.extend_from_slice(&(word.len() as u32).to_be_bytes());
            dict.extend_from_slice(word.as_bytes());
        }
        dict.extend_from_slice(DICTIONARY_TAIL.as_bytes());
        dict
    })
}

/// Why a header block could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    /// zlib rejected the compressed bytes (or the compressor failed).
    #[error("header compression: {0}")]
    Zlib(String),
    /// The decompressed block is truncated or its lengths do not add up.
    #[error("malformed header block: {0}")]
    Malformed(&'static str),
    /// The decompressed block exceeds [`MAX_BLOCK_LEN`].
    #[error("header block too large")]
    TooLarge,
}

/// Ordered header pairs; names are lowercase as SPDY/3 requires.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderBlock(pub Vec<(String, String)>);

impl HeaderBlock {
    /// The first value of `name`, compared case-insensitively (Go clients send
    /// canonical `streamType`, the wire carries `streamtype`).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Serialises the block uncompressed; values of a repeated name are NUL-joined.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut merged: Vec<(String, String)> = Vec::new();
        for (name, value) in &self.0 {
            let name = name.to_ascii_lowercase();
            match merged.iter_mut().find(|(n, _)| *n == name) {
                Some((_, v)) => {
                    v.push('\0');
                    v.push_str(value);
                }
                None => merged.push((name, value.clone())),
            }
        }
        let mut out = Vec::new();
        out.extend_from_slice(&(merged.len() as u32).to_be_bytes());
        for (name, value) in &merged {
            out.extend_from_slice(&(name.len() as u32).to_be_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&(value.len() as u32).to_be_bytes());
            out.extend_from_slice(value.as_bytes());
        }
        out
    }

    /// Parses an uncompressed block, splitting NUL-joined values into separate pairs.
    pub fn from_bytes(mut raw: &[u8]) -> Result<Self, HeaderError> {
        let count = take_u32(&mut raw)?;
        let mut pairs = Vec::new();
        for _ in 0..count {
            let name = take_string(&mut raw)?.to_ascii_lowercase();
            let value = take_string(&mut raw)?;
            for part in value.split('\0') {
                pairs.push((name.clone(), part.to_string()));
            }
        }
        Ok(Self(pairs))
    }
}

fn take_u32(raw: &mut &[u8]) -> Result<u32, HeaderError> {
    let (head, rest) = raw
        .split_first_chunk::<4>()
        .ok_or(HeaderError::Malformed("truncated"))?;
    *raw = rest;
    Ok(u32::from_be_bytes(*head))
}

fn take_string(raw: &mut &[u8]) -> Result<String, HeaderError> {
    let len = take_u32(raw)? as usize;
    if raw.len() < len {
        return Err(HeaderError::Malformed("length past end of block"));
    }
    let (bytes, rest) = raw.split_at(len);
    *raw = rest;
    String::from_utf8(bytes.to_vec()).map_err(|_| HeaderError::Malformed("not UTF-8"))
}

/// The two zlib streams of one SPDY connection: one deflating what we send, one
/// inflating what we receive.
pub struct HeaderCodec {
    deflate: Compress,
    inflate: Decompress,
}

impl std::fmt::Debug for HeaderCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HeaderCodec")
    }
}

impl HeaderCodec {
    /// A codec at the start of a connection (the deflater already primed with the dictionary).
    pub fn new() -> Result<Self, HeaderError> {
        let mut deflate = Compress::new(Compression::best(), true);
        deflate
            .set_dictionary(dictionary())
            .map_err(|e| HeaderError::Zlib(e.to_string()))?;
        Ok(Self {
            deflate,
            inflate: Decompress::new(true),
        })
    }

    /// Compresses one block, ending with a sync flush so the peer can decode it alone.
    pub fn encode(&mut self, block: &HeaderBlock) -> Result<Vec<u8>, HeaderError> {
        let raw = block.to_bytes();
        let mut out = Vec::with_capacity(raw.len() + 64);
        let start_in = self.deflate.total_in();
        loop {
            let consumed = (self.deflate.total_in() - start_in) as usize;
            let input = raw.get(consumed..).unwrap_or_default();
            out.reserve(256);
            self.deflate
                .compress_vec(input, &mut out, FlushCompress::Sync)
                .map_err(|e| HeaderError::Zlib(e.to_string()))?;
            // A sync flush is complete once all input is taken and zlib left spare room.
            if (self.deflate.total_in() - start_in) as usize == raw.len()
                && out.len() < out.capacity()
            {
                return Ok(out);
            }
        }
    }

    /// Inflates one compressed block and parses it.
    pub fn decode(&mut self, compressed: &[u8]) -> Result<HeaderBlock, HeaderError> {
        let mut out = Vec::with_capacity(1024);
        let start_in = self.inflate.total_in();
        loop {
            let consumed = (self.inflate.total_in() - start_in) as usize;
            let input = compressed.get(consumed..).unwrap_or_default();
            if out.len() == out.capacity() {
                out.reserve(4096);
            }
            match self
                .inflate
                .decompress_vec(input, &mut out, FlushDecompress::Sync)
            {
                Ok(Status::StreamEnd) => return Err(HeaderError::Zlib("stream ended".into())),
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.inflate
                        .set_dictionary(dictionary())
                        .map_err(|e| HeaderError::Zlib(e.to_string()))?;
                    continue;
                }
                Err(e) => return Err(HeaderError::Zlib(e.to_string())),
            }
            if out.len() > MAX_BLOCK_LEN {
                return Err(HeaderError::TooLarge);
            }
            let all_in = (self.inflate.total_in() - start_in) as usize == compressed.len();
            if all_in && out.len() < out.capacity() {
                return HeaderBlock::from_bytes(&out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adler32(bytes: &[u8]) -> u32 {
        let (mut a, mut b) = (1u32, 0u32);
        for byte in bytes {
            a = (a + u32::from(*byte)) % 65_521;
            b = (b + a) % 65_521;
        }
        (b << 16) | a
    }

    fn block(pairs: &[(&str, &str)]) -> HeaderBlock {
        HeaderBlock(
            pairs
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn dictionary_matches_the_spdy3_constant() {
        assert_eq!(dictionary().len(), 1423);
        assert_eq!(adler32(dictionary()), 0xe3c6_a7c2);
    }

    #[test]
    fn blocks_round_trip_over_a_shared_zlib_stream() {
        let mut sender = HeaderCodec::new().unwrap();
        let mut receiver = HeaderCodec::new().unwrap();
        let first = block(&[("streamtype", "data"), ("port", "8080"), ("requestid", "0")]);
        let second = block(&[
            ("streamtype", "error"),
            ("port", "8080"),
            ("requestid", "0"),
        ]);
        for b in [&first, &second, &HeaderBlock::default(), &first] {
            let wire = sender.encode(b).unwrap();
            assert_eq!(&receiver.decode(&wire).unwrap(), b);
        }
    }

    #[test]
    fn decodes_a_block_compressed_by_go_spdystream() {
        // The header block of a SYN_STREAM captured from a Go (moby/spdystream) client.
        let wire = b"\x78\xf9\xe3\xc6\xa7\xc2\x62\x60\x60\x60\x04\xa7\xb3\x92\xa2\xd4\xc4\x5c\
\x68\x51\xc2\x56\x5c\x92\x92\x5f\x5a\x02\x00\x00\x00\xff\xff";
        let decoded = HeaderCodec::new().unwrap().decode(wire).unwrap();
        assert_eq!(decoded.get("streamType"), Some("stdout"));
    }

    #[test]
    fn repeated_names_are_nul_joined_and_split_back() {
        let b = block(&[("x-a", "1"), ("X-A", "2")]);
        let raw = b.to_bytes();
        assert!(raw.windows(3).any(|w| w == b"1\x002"));
        assert_eq!(
            HeaderBlock::from_bytes(&raw).unwrap(),
            block(&[("x-a", "1"), ("x-a", "2")])
        );
    }

    #[test]
    fn truncated_blocks_are_errors() {
        assert!(HeaderBlock::from_bytes(&[0, 0, 0, 1, 0, 0, 0, 9, b'a']).is_err());
        assert!(HeaderBlock::from_bytes(&[0, 0]).is_err());
        assert!(
            HeaderCodec::new()
                .unwrap()
                .decode(b"\x78\xf9garbage")
                .is_err()
        );
    }
}
