//! `kelp-logger`: the containerd "binary" log driver that writes CRI log files.
//!
//! containerd's runc shim starts the program named by a `binary:///exe?k=v&…`
//! stdout URI with the query pairs as arguments (key, value, key, value, in map
//! order, so any order), the container's stdout pipe on fd 3, stderr on fd 4 and
//! a "ready" pipe on fd 5 that it waits to see closed. kelp's binary is that
//! program when invoked as `kelp-logger` (see [`run_logger`]).
//!
//! Design: one blocking thread per input pipe cuts the bytes into CRI messages and
//! sends them over a channel to the single writer (the main thread), so stdout and
//! stderr interleave line by line and never inside a line. The writer stamps each
//! line, writes it with one unbuffered `write` (a follower sees it at once), and
//! rotates by renaming the file to `<path>.<UTC YYYYMMDD-hhmmss>`. A failed write is
//! reported on stderr and the line dropped: blocking would stall the container on
//! a full pipe, which is worse than a gap in its log.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::SystemTime;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::LogError;
use super::cri_format::{LineSplitter, Stream, encode_line};
use super::rotated_files;
use super::timestamp::format_rotation_suffix;

/// Default rotation size, as kubelet's `containerLogMaxSize` (10 MiB).
pub const DEFAULT_MAX_SIZE: u64 = 10 * 1024 * 1024;
/// Default number of files kept, as kubelet's `containerLogMaxFiles`.
pub const DEFAULT_MAX_FILES: u32 = 5;

const STDOUT_FD: i32 = 3;
const STDERR_FD: i32 = 4;
const READY_FD: i32 = 5;

/// Bytes a URI path may carry unescaped: RFC 3986 unreserved plus `/`.
const PATH_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// Builds the `binary://` URI that makes containerd's shim run `exe` as the logger
/// for a container writing `log_path`.
///
/// `interactive` (containers with stdin or a TTY) writes output that does not
/// end a line at once as a partial (`P`) line, so `kubectl attach` shows a
/// shell prompt before its user presses return.
pub fn logger_uri(
    exe: &Path,
    log_path: &Path,
    max_size: u64,
    max_files: u32,
    interactive: bool,
) -> String {
    let exe = utf8_percent_encode(&exe.to_string_lossy(), PATH_SET).to_string();
    let mut query = form_urlencoded::Serializer::new(String::new());
    query
        .append_pair("--path", &log_path.to_string_lossy())
        .append_pair("--max-size", &max_size.to_string())
        .append_pair("--max-files", &max_files.to_string());
    if interactive {
        query.append_pair("--interactive", "1");
    }
    let query = query.finish();
    format!("binary://{exe}?{query}")
}

/// What the logger was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggerConfig {
    /// The current log file.
    pub path: PathBuf,
    /// Rotate once the file is larger than this; 0 never rotates.
    pub max_size: u64,
    /// Files kept in total, the current one included (at least 1).
    pub max_files: u32,
    /// Write unterminated output at once as partial lines.
    pub interactive: bool,
}

impl LoggerConfig {
    /// Parses the shim's `key value` argument pairs, in any order. Unknown keys are
    /// skipped so that newer kelp versions can add options.
    pub fn from_args(args: &[OsString]) -> Result<Self, LogError> {
        if !args.len().is_multiple_of(2) {
            return Err(LogError::LoggerArgs(
                "arguments must be key/value pairs".into(),
            ));
        }
        let (mut path, mut max_size, mut max_files) = (None, DEFAULT_MAX_SIZE, DEFAULT_MAX_FILES);
        let mut interactive = false;
        for pair in args.chunks_exact(2) {
            let value = pair[1].to_string_lossy();
            let number_err = || LogError::LoggerArgs(format!("bad number {value:?}"));
            match pair[0].to_str() {
                Some("--path") => path = Some(PathBuf::from(&pair[1])),
                Some("--max-size") => max_size = value.parse().map_err(|_| number_err())?,
                Some("--max-files") => max_files = value.parse().map_err(|_| number_err())?,
                Some("--interactive") => interactive = value == "1",
                _ => {}
            }
        }
        let path = path.ok_or_else(|| LogError::LoggerArgs("missing --path".into()))?;
        Ok(Self {
            path,
            max_size,
            max_files: max_files.max(1),
            interactive,
        })
    }
}

/// Entry point of `kelp-logger`: `args` are the arguments after argv[0].
pub fn run_logger(args: Vec<OsString>) -> ExitCode {
    let result = LoggerConfig::from_args(&args).and_then(|config| {
        let stdout = open_inherited(STDOUT_FD);
        let stderr = open_inherited(STDERR_FD);
        serve(config, stdout, stderr, || {
            // Closing our only copy of the ready pipe's write end is the signal.
            let _ = nix::unistd::close(READY_FD);
        })
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kelp-logger: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Opens an inherited pipe by descriptor number without unsafe code: opening
/// `/proc/self/fd/N` yields a new handle on the same pipe, and the number itself is
/// then closed so that only one reader handle stays around.
///
/// The open is non-blocking: opening a pipe by path is a FIFO open, which
/// blocks until the pipe has a writer, and a short-lived container may
/// already have exited (its output still buffered in the pipe) when the
/// logger starts. Once open, the handle is made blocking again.
fn open_inherited(fd: i32) -> Option<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(format!("/proc/self/fd/{fd}"))
        .ok()?;
    let _ = nix::fcntl::fcntl(
        &file,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::empty()),
    );
    let _ = nix::unistd::close(fd);
    Some(file)
}

struct Piece {
    stream: Stream,
    partial: bool,
    message: Vec<u8>,
}

/// Runs the logger on already-open inputs until both reach end of file; `ready` is
/// called once the log file is open and the readers run.
pub fn serve<R: Read + Send + 'static>(
    config: LoggerConfig,
    stdout: Option<R>,
    stderr: Option<R>,
    ready: impl FnOnce(),
) -> Result<(), LogError> {
    let interactive = config.interactive;
    let mut sink = LogSink::open(config)?;
    let (tx, rx) = mpsc::channel::<Piece>();
    let mut readers = Vec::new();
    for (input, stream) in [(stdout, Stream::Stdout), (stderr, Stream::Stderr)] {
        if let Some(input) = input {
            let tx = tx.clone();
            readers.push(std::thread::spawn(move || {
                pump(input, stream, interactive, &tx)
            }));
        }
    }
    drop(tx);
    ready();
    let mut batch = Vec::new();
    while let Ok(first) = rx.recv() {
        // Write whatever is already queued with the first piece in one go, without
        // waiting for more: each batch reaches the file before we block again.
        batch.clear();
        let now = SystemTime::now();
        for p in std::iter::once(first).chain(rx.try_iter()) {
            encode_line(&mut batch, now, p.stream, p.partial, &p.message);
            if sink.is_full_with(batch.len()) {
                // Write now so that rotation happens at this line, not after the batch.
                sink.write(&batch);
                batch.clear();
            }
        }
        if !batch.is_empty() {
            sink.write(&batch);
        }
    }
    for r in readers {
        let _ = r.join();
    }
    Ok(())
}

/// Reads one pipe to end of file, sending its messages to the writer.
fn pump(mut input: impl Read, stream: Stream, interactive: bool, tx: &mpsc::Sender<Piece>) {
    let mut splitter = LineSplitter::default();
    let mut send = |m: &[u8], partial: bool| {
        let _ = tx.send(Piece {
            stream,
            partial,
            message: m.to_vec(),
        });
    };
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                splitter.push(&buf[..n], &mut send);
                if interactive {
                    splitter.finish(&mut send);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                eprintln!("kelp-logger: reading {}: {e}", stream.as_str());
                break;
            }
        }
    }
    splitter.finish(&mut send);
}

/// The current log file plus rotation bookkeeping.
struct LogSink {
    config: LoggerConfig,
    file: Option<File>,
    size: u64,
    /// Suffix and counter of the latest rotation.
    last_rotation: Option<(String, u32)>,
}

impl LogSink {
    fn open(config: LoggerConfig) -> Result<Self, LogError> {
        if let Some(dir) = config.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| LogError::io(dir, e))?;
        }
        let file = open_append(&config.path).map_err(|e| LogError::io(&config.path, e))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(Self {
            config,
            file: Some(file),
            size,
            last_rotation: None,
        })
    }

    /// Whether writing `more` bytes takes the file past its rotation size.
    fn is_full_with(&self, more: usize) -> bool {
        self.config.max_size > 0 && self.size + more as u64 > self.config.max_size
    }

    fn write(&mut self, data: &[u8]) {
        if self.file.is_none() {
            self.file = open_append(&self.config.path).ok();
        }
        let Some(file) = self.file.as_mut() else {
            eprintln!("kelp-logger: cannot open {}", self.config.path.display());
            return;
        };
        if let Err(e) = file.write_all(data) {
            eprintln!("kelp-logger: writing {}: {e}", self.config.path.display());
            self.file = None;
            return;
        }
        self.size += data.len() as u64;
        if self.is_full_with(0)
            && let Err(e) = self.rotate()
        {
            eprintln!("kelp-logger: rotating {}: {e}", self.config.path.display());
        }
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        let path = &self.config.path;
        let stamp = format_rotation_suffix(SystemTime::now());
        // Several rotations within one second get `.001`, `.002`… so that name order
        // stays age order even after the oldest (unsuffixed) one was deleted.
        let mut n = match &self.last_rotation {
            Some((last, n)) if *last == stamp => n + 1,
            _ => 0,
        };
        let mut target = rotated_name(path, &stamp, n);
        while target.exists() {
            n += 1;
            target = rotated_name(path, &stamp, n);
        }
        std::fs::rename(path, &target)?;
        self.last_rotation = Some((stamp, n));
        self.file = Some(open_append(path)?);
        self.size = 0;
        let rotated = rotated_files(path);
        let keep = self.config.max_files.saturating_sub(1) as usize;
        for old in rotated.iter().take(rotated.len().saturating_sub(keep)) {
            std::fs::remove_file(old)?;
        }
        Ok(())
    }
}

fn rotated_name(path: &Path, stamp: &str, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{stamp}"));
    if n > 0 {
        name.push(format!(".{n:03}"));
    }
    PathBuf::from(name)
}

fn open_append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
}

#[cfg(test)]
#[path = "logger_tests.rs"]
mod tests;
