//! The CRI container log line format: `<RFC3339Nano> <stream> <tag> <message>\n`.
//!
//! This is the on-disk contract between the writer (kelp's logger, standing where
//! containerd's CRI plugin would) and the reader behind `kubectl logs`. Tag `F`
//! closes a line; tag `P` marks a piece of a line longer than [`MAX_LINE_BYTES`]
//! (or one cut short by end of input), to be joined with what follows on the same
//! stream. Parsing never panics: a malformed line is a [`ParseError`], which the
//! reader skips as kubelet does.

use std::time::SystemTime;

use super::timestamp::{format_rfc3339_nano, parse_rfc3339};

/// Longest message written on one line; longer lines are split into `P` pieces
/// (containerd's default `max_container_log_line_size`).
pub const MAX_LINE_BYTES: usize = 16 * 1024;

/// Which output of the container a line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stream {
    /// The container's standard output.
    Stdout,
    /// The container's standard error.
    Stderr,
}

impl Stream {
    /// The word used for this stream in the log file.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Why a log line could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    /// The line has fewer than the four space-separated fields.
    #[error("log line has too few fields")]
    MissingField,
    /// The first field is not an RFC 3339 timestamp.
    #[error("invalid timestamp in log line")]
    Timestamp,
    /// The second field is neither `stdout` nor `stderr`.
    #[error("unexpected stream type in log line")]
    Stream,
}

/// One parsed line of a CRI log file.
#[derive(Debug, PartialEq, Eq)]
pub struct CriLine<'a> {
    /// When the runtime read the message.
    pub time: SystemTime,
    /// Which stream it came from.
    pub stream: Stream,
    /// True for a `P` piece that continues on the next line of the same stream.
    pub partial: bool,
    /// The message, without the trailing newline.
    pub message: &'a [u8],
}

/// Appends one encoded line to `out`.
pub fn encode_line(out: &mut Vec<u8>, time: SystemTime, stream: Stream, partial: bool, msg: &[u8]) {
    out.extend_from_slice(format_rfc3339_nano(time).as_bytes());
    out.push(b' ');
    out.extend_from_slice(stream.as_str().as_bytes());
    out.extend_from_slice(if partial { b" P " } else { b" F " });
    out.extend_from_slice(msg);
    out.push(b'\n');
}

fn split_field(s: &[u8]) -> Result<(&[u8], &[u8]), ParseError> {
    let i = s
        .iter()
        .position(|&c| c == b' ')
        .ok_or(ParseError::MissingField)?;
    Ok((&s[..i], &s[i + 1..]))
}

/// Parses one line (with or without its trailing newline).
pub fn parse_line(line: &[u8]) -> Result<CriLine<'_>, ParseError> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let (ts, rest) = split_field(line)?;
    let time = parse_rfc3339(ts).ok_or(ParseError::Timestamp)?;
    let (stream, rest) = split_field(rest)?;
    let stream = match stream {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        _ => return Err(ParseError::Stream),
    };
    let (tags, message) = split_field(rest)?;
    // Tags are `:`-separated for forward compatibility; only the first one matters.
    let partial = tags.split(|&c| c == b':').next() == Some(b"P");
    Ok(CriLine {
        time,
        stream,
        partial,
        message,
    })
}

/// Cuts a byte stream into log messages the way containerd does: at `\n` (dropping
/// it and a `\r` before it), and every [`MAX_LINE_BYTES`] inside longer lines.
#[derive(Debug, Default)]
pub struct LineSplitter {
    buf: Vec<u8>,
}

impl LineSplitter {
    /// Feeds `data`, calling `emit(message, partial)` for each complete piece.
    pub fn push(&mut self, mut data: &[u8], emit: &mut impl FnMut(&[u8], bool)) {
        while !data.is_empty() {
            let room = MAX_LINE_BYTES - self.buf.len();
            match data.iter().take(room + 1).position(|&c| c == b'\n') {
                Some(nl) => {
                    self.buf.extend_from_slice(&data[..nl]);
                    if self.buf.last() == Some(&b'\r') {
                        self.buf.pop();
                    }
                    emit(&self.buf, false);
                    self.buf.clear();
                    data = &data[nl + 1..];
                }
                None if data.len() > room => {
                    self.buf.extend_from_slice(&data[..room]);
                    emit(&self.buf, true);
                    self.buf.clear();
                    data = &data[room..];
                }
                None => {
                    self.buf.extend_from_slice(data);
                    data = &[];
                }
            }
        }
    }

    /// Emits what is left at end of input as a partial piece, like containerd.
    pub fn finish(&mut self, emit: &mut impl FnMut(&[u8], bool)) {
        if !self.buf.is_empty() {
            emit(&self.buf, true);
            self.buf.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn pieces(input: &[&[u8]]) -> Vec<(Vec<u8>, bool)> {
        let mut out = Vec::new();
        let mut s = LineSplitter::default();
        let mut emit = |m: &[u8], p: bool| out.push((m.to_vec(), p));
        for chunk in input {
            s.push(chunk, &mut emit);
        }
        s.finish(&mut emit);
        out
    }

    #[test]
    fn encodes_and_parses_a_line() {
        let t = UNIX_EPOCH + Duration::new(1_475_713_029, 669_794_202);
        let mut out = Vec::new();
        encode_line(&mut out, t, Stream::Stderr, false, b"hello world");
        assert_eq!(
            out,
            b"2016-10-06T00:17:09.669794202Z stderr F hello world\n"
        );
        let l = parse_line(&out).expect("parses");
        assert_eq!(l.time, t);
        assert_eq!(l.stream, Stream::Stderr);
        assert!(!l.partial);
        assert_eq!(l.message, b"hello world");
    }

    #[test]
    fn parses_partial_tag_with_extra_tags_and_empty_message() {
        let l = parse_line(b"2016-10-06T00:17:09Z stdout P:x \n").expect("parses");
        assert!(l.partial);
        assert_eq!(l.message, b"");
        assert_eq!(
            parse_line(b"2016-10-06T00:17:09Z stdin F x"),
            Err(ParseError::Stream)
        );
        assert_eq!(
            parse_line(b"yesterday stdout F x"),
            Err(ParseError::Timestamp)
        );
        assert_eq!(
            parse_line(b"2016-10-06T00:17:09Z stdout"),
            Err(ParseError::MissingField)
        );
    }

    #[test]
    fn splits_lines_across_chunks_and_strips_crlf() {
        let got = pieces(&[b"ab", b"c\r\nde\n", b"f"]);
        let want = vec![
            (b"abc".to_vec(), false),
            (b"de".to_vec(), false),
            (b"f".to_vec(), true),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn splits_long_lines_into_partial_pieces() {
        let long = vec![b'x'; MAX_LINE_BYTES * 2 + 5];
        let mut input = long.clone();
        input.push(b'\n');
        let got = pieces(&[&input[..100], &input[100..]]);
        assert_eq!(got.len(), 3);
        assert!(got[0].1 && got[1].1 && !got[2].1);
        assert_eq!(got[0].0.len(), MAX_LINE_BYTES);
        assert_eq!(got[2].0.len(), 5);
        let exact = [vec![b'y'; MAX_LINE_BYTES], vec![b'\n']].concat();
        assert_eq!(pieces(&[&exact]), vec![(vec![b'y'; MAX_LINE_BYTES], false)]);
    }
}
