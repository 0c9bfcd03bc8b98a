//! Reading CRI log files for `kubectl logs`, as kubelet's `ReadLogs` does.
//!
//! The reader walks the given files in order (rotated ones oldest first, then the
//! current one), decodes CRI lines, joins `P` pieces with the `F` line that ends
//! them (per stream, so interleaved stdout/stderr pieces stay apart), and applies
//! the options as kubelet does: `tailLines` picks the last N whole lines (counted
//! backwards over all files without reading them whole), `since` drops lines
//! stamped earlier, `timestamps` prefixes the line's time, `limitBytes` cuts the
//! output (prefixes included) and ends it.
//!
//! With `follow`, the reader keeps polling the current file at end of file (every
//! [`FOLLOW_POLL`]); when the path names a new inode the old file was rotated, so it
//! drains the old handle and continues with the new file from its start. It ends
//! once `running` is false and a last pass found nothing more. Polling rather than
//! inotify keeps it simple and is cheap next to `kubectl logs -f` latency needs.
//! Malformed lines are skipped (as upstream); I/O errors end the stream with `Err`.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::Stream;
use tokio::io::{AsyncBufReadExt, AsyncSeekExt, BufReader};
use tokio::sync::watch;

use super::cri_format::{Stream as LogStream, parse_line};
use super::options::LogOptions;
use super::timestamp::format_rfc3339_nano;

/// How often a follower looks for new data at end of file.
pub const FOLLOW_POLL: Duration = Duration::from_millis(50);
/// Output is handed out in chunks of about this size.
const CHUNK: usize = 32 * 1024;
/// A joined line longer than this is sent in pieces rather than buffered whole.
const MAX_JOIN: usize = 1024 * 1024;

/// Streams the log held in `files` (rotated files oldest first, then the current
/// file) according to `opts`; with `opts.follow`, until `running` turns false.
pub fn read_log(
    files: Vec<PathBuf>,
    opts: LogOptions,
    running: watch::Receiver<bool>,
) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
    let reader = Reader::new(files, opts, running);
    futures::stream::unfold(reader, |mut r| async move {
        let item = r.next_chunk().await?;
        Some((item, r))
    })
}

/// A line being joined from `P` pieces.
struct Joining {
    time: SystemTime,
    buf: Vec<u8>,
    /// Part of this line was already sent (it was too long to buffer).
    started: bool,
}

struct Reader {
    files: Vec<PathBuf>,
    opts: LogOptions,
    running: watch::Receiver<bool>,
    /// Opened files still to read after the active one.
    queue: Vec<File>,
    active: Option<BufReader<tokio::fs::File>>,
    /// Inode of the active handle when it is the current (last) file.
    current_ino: Option<u64>,
    started: bool,
    finished: bool,
    stopping: bool,
    rotated: bool,
    line: Vec<u8>,
    joining: [Option<Joining>; 2],
    out: Vec<u8>,
    remaining: Option<u64>,
}

impl Reader {
    fn new(files: Vec<PathBuf>, opts: LogOptions, running: watch::Receiver<bool>) -> Self {
        let remaining = opts.limit_bytes;
        Reader {
            files,
            opts,
            running,
            queue: Vec::new(),
            active: None,
            current_ino: None,
            started: false,
            finished: false,
            stopping: false,
            rotated: false,
            line: Vec::new(),
            joining: [None, None],
            out: Vec::new(),
            remaining,
        }
    }

    /// The next chunk of output, `None` at the end.
    async fn next_chunk(&mut self) -> Option<io::Result<Bytes>> {
        if !self.started {
            self.started = true;
            if let Err(e) = self.open_all().await {
                self.finished = true;
                return Some(Err(e));
            }
        }
        loop {
            if self.finished || self.out.len() >= CHUNK {
                return (!self.out.is_empty())
                    .then(|| Ok(Bytes::from(std::mem::take(&mut self.out))));
            }
            match self.step().await {
                Ok(true) => {}
                Ok(false) if !self.out.is_empty() => {
                    return Some(Ok(Bytes::from(std::mem::take(&mut self.out))));
                }
                Ok(false) => self.wait().await,
                Err(e) => {
                    self.finished = true;
                    return Some(Err(e));
                }
            }
        }
    }

    /// Opens every file up front (so rotation cannot pull one away mid-read) and
    /// positions the reader at the start of the requested tail.
    async fn open_all(&mut self) -> io::Result<()> {
        let files = self.files.clone();
        let tail = self.opts.tail_lines;
        let follow = self.opts.follow;
        let (mut opened, start, current_ino) = tokio::task::spawn_blocking(move || {
            let last = files.len().saturating_sub(1);
            let mut opened = Vec::new();
            let mut current_ino = None;
            for (i, path) in files.iter().enumerate() {
                match File::open(path) {
                    Ok(f) => {
                        if i == last {
                            current_ino = Some(f.metadata()?.ino());
                        }
                        opened.push(f);
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound && (i < last || follow) => {}
                    Err(e) => return Err(e),
                }
            }
            let start = match tail {
                Some(n) => tail_start(&opened, n)?,
                None => (0, 0),
            };
            Ok((opened, start, current_ino))
        })
        .await
        .map_err(io::Error::other)??;
        self.current_ino = current_ino;
        let mut rest = opened.split_off(start.0.min(opened.len()));
        rest.reverse();
        self.queue = rest;
        if let Some(first) = self.queue.pop() {
            self.activate(first, start.1).await?;
        }
        Ok(())
    }

    async fn activate(&mut self, file: File, offset: u64) -> io::Result<()> {
        let mut f = tokio::fs::File::from_std(file);
        f.seek(io::SeekFrom::Start(offset)).await?;
        self.active = Some(BufReader::new(f));
        Ok(())
    }

    /// Makes progress; `Ok(false)` means "at the end of the current file, wait".
    async fn step(&mut self) -> io::Result<bool> {
        if let Some(active) = self.active.as_mut() {
            let n = active.read_until(b'\n', &mut self.line).await?;
            if n > 0 && self.line.last() == Some(&b'\n') {
                let line = std::mem::take(&mut self.line);
                self.handle_line(&line);
                return Ok(true);
            }
        }
        // End of the active file (a trailing incomplete line stays in `self.line`).
        if let Some(next) = self.queue.pop() {
            self.line.clear();
            self.activate(next, 0).await?;
            return Ok(true);
        }
        if !self.opts.follow {
            self.finished = true;
            return Ok(true);
        }
        if self.rotated {
            // The old file was drained after the rotation was seen: switch over.
            self.rotated = false;
            self.line.clear();
            return self.open_current().await.map(|()| true);
        }
        if self.current_file_changed().await {
            self.rotated = true;
            return Ok(true);
        }
        if self.stopping {
            self.finished = true;
            return Ok(true);
        }
        if !*self.running.borrow() {
            // One more pass after seeing the stop, so nothing written before it is lost.
            self.stopping = true;
            return Ok(true);
        }
        Ok(false)
    }

    async fn current_file_changed(&self) -> bool {
        let Some(path) = self.files.last() else {
            return false;
        };
        match tokio::fs::metadata(path).await {
            Ok(m) => Some(m.ino()) != self.current_ino,
            Err(_) => false,
        }
    }

    async fn open_current(&mut self) -> io::Result<()> {
        let Some(path) = self.files.last().cloned() else {
            return Ok(());
        };
        let file = tokio::task::spawn_blocking(move || File::open(path))
            .await
            .map_err(io::Error::other)??;
        self.current_ino = Some(file.metadata()?.ino());
        self.activate(file, 0).await
    }

    async fn wait(&mut self) {
        tokio::select! {
            _ = tokio::time::sleep(FOLLOW_POLL) => {}
            _ = self.running.changed() => {}
        }
    }

    fn handle_line(&mut self, raw: &[u8]) {
        let Ok(line) = parse_line(raw) else {
            tracing::debug!("skipping malformed log line");
            return;
        };
        let slot = &mut self.joining[usize::from(line.stream == LogStream::Stderr)];
        let mut joined = slot.take().unwrap_or(Joining {
            time: line.time,
            buf: Vec::new(),
            started: false,
        });
        joined.buf.extend_from_slice(line.message);
        if let Some(tty) = self.opts.attach_tty {
            // Attached: show everything at once, as the terminal would.
            let time = joined.time;
            self.emit(time, &joined.buf, false, false);
            if !line.partial {
                self.out
                    .extend_from_slice(if tty { b"\r\n" } else { b"\n" });
            }
            return;
        }
        if line.partial {
            if joined.buf.len() >= MAX_JOIN {
                let buf = std::mem::take(&mut joined.buf);
                self.emit(joined.time, &buf, !joined.started, false);
                joined.started = true;
            }
            self.joining[usize::from(line.stream == LogStream::Stderr)] = Some(joined);
            return;
        }
        self.emit(joined.time, &joined.buf, !joined.started, true);
    }

    /// Appends one (piece of a) line to the output, applying since/timestamps/limit.
    fn emit(&mut self, time: SystemTime, msg: &[u8], prefix: bool, newline: bool) {
        if self.opts.since.is_some_and(|since| time < since) {
            return;
        }
        let start = self.out.len();
        if prefix && self.opts.timestamps {
            self.out
                .extend_from_slice(format_rfc3339_nano(time).as_bytes());
            self.out.push(b' ');
        }
        self.out.extend_from_slice(msg);
        if newline {
            self.out.push(b'\n');
        }
        if let Some(remaining) = self.remaining.as_mut() {
            let added = (self.out.len() - start) as u64;
            if added >= *remaining {
                self.out.truncate(start + *remaining as usize);
                *remaining = 0;
                self.finished = true;
            } else {
                *remaining -= added;
            }
        }
    }
}

/// Where to start reading to get the last `n` whole lines: (file index, offset).
/// Counts `F` lines backwards; the start is just after the `n+1`-th from the end.
fn tail_start(files: &[File], n: u64) -> io::Result<(usize, u64)> {
    let mut need = n + 1;
    let mut buf = vec![0u8; 64 * 1024];
    for (idx, f) in files.iter().enumerate().rev() {
        let mut pos = f.metadata()?.len();
        // End of the line being walked back over; unset until the first newline,
        // so a trailing incomplete line is never counted.
        let mut line_end: Option<u64> = None;
        while pos > 0 {
            let start = pos.saturating_sub(buf.len() as u64);
            let chunk = &mut buf[..(pos - start) as usize];
            f.read_exact_at(chunk, start)?;
            for i in (0..chunk.len()).rev() {
                if chunk[i] != b'\n' {
                    continue;
                }
                let nl_end = start + i as u64 + 1;
                if let Some(end) = line_end
                    && is_full_line(f, nl_end, end)?
                {
                    need -= 1;
                    if need == 0 {
                        return Ok((idx, end));
                    }
                }
                line_end = Some(nl_end);
            }
            pos = start;
        }
        if let Some(end) = line_end
            && is_full_line(f, 0, end)?
        {
            need -= 1;
            if need == 0 {
                return Ok((idx, end));
            }
        }
    }
    Ok((0, 0))
}

/// Whether the line at `[start, end)` is a well-formed `F` line.
fn is_full_line(f: &File, start: u64, end: u64) -> io::Result<bool> {
    let mut head = [0u8; 96];
    let len = (end - start).min(head.len() as u64) as usize;
    let n = f.read_at(&mut head[..len], start)?;
    let mut fields = head[..n].splitn(4, |&c| c == b' ');
    let (_, _, tag) = (fields.next(), fields.next(), fields.next());
    Ok(
        fields.next().is_some()
            && tag.is_some_and(|t| t.split(|&c| c == b':').next() == Some(b"F")),
    )
}

#[cfg(test)]
#[path = "reader_tests.rs"]
mod tests;
