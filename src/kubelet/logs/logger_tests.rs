use super::*;
use crate::kubelet::logs::cri_format::parse_line;
use std::io::Write;
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "KELP_TEST_LOGGER_ARGS";

fn args(v: &[&str]) -> Vec<OsString> {
    v.iter().map(OsString::from).collect()
}

/// Parsed (stream, partial, message) of every line of `files`, in order.
fn lines_of(files: &[PathBuf]) -> Vec<(Stream, bool, String)> {
    let mut out = Vec::new();
    for f in files {
        let data = std::fs::read(f).unwrap_or_default();
        for l in data.split_inclusive(|&c| c == b'\n') {
            let l = parse_line(l).expect("logger writes valid CRI lines");
            out.push((
                l.stream,
                l.partial,
                String::from_utf8_lossy(l.message).into_owned(),
            ));
        }
    }
    out
}

fn all_files(path: &Path) -> Vec<PathBuf> {
    let mut v = rotated_files(path);
    v.push(path.to_path_buf());
    v
}

#[test]
fn parses_argument_pairs_in_any_order() {
    let c = LoggerConfig::from_args(&args(&[
        "--max-files",
        "3",
        "--path",
        "/x/0.log",
        "--max-size",
        "99",
    ]))
    .expect("valid");
    assert_eq!(
        c,
        LoggerConfig {
            path: "/x/0.log".into(),
            max_size: 99,
            max_files: 3,
            interactive: false
        }
    );
    let d = LoggerConfig::from_args(&args(&["--path", "/y", "--future", "z"])).expect("valid");
    assert_eq!(
        (d.max_size, d.max_files),
        (DEFAULT_MAX_SIZE, DEFAULT_MAX_FILES)
    );
    assert!(LoggerConfig::from_args(&args(&["--path"])).is_err());
    assert!(LoggerConfig::from_args(&args(&["--max-size", "1"])).is_err());
    assert!(LoggerConfig::from_args(&args(&["--path", "/p", "--max-size", "big"])).is_err());
}

#[test]
fn uri_round_trips_through_query_decoding() {
    let uri = logger_uri(
        Path::new("/usr/bin/kelp logger"),
        Path::new("/l/a&b=c 1.log"),
        1024,
        4,
        false,
    );
    let rest = uri.strip_prefix("binary://").expect("scheme");
    let (exe, query) = rest.split_once('?').expect("query");
    assert_eq!(exe, "/usr/bin/kelp%20logger");
    let pairs: Vec<OsString> = form_urlencoded::parse(query.as_bytes())
        .flat_map(|(k, v)| [OsString::from(k.as_ref()), OsString::from(v.as_ref())])
        .collect();
    let c = LoggerConfig::from_args(&pairs).expect("valid");
    assert_eq!(
        c,
        LoggerConfig {
            path: "/l/a&b=c 1.log".into(),
            max_size: 1024,
            max_files: 4,
            interactive: false
        }
    );
}

#[test]
fn serve_writes_both_streams_and_closes_partial_tail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ns_p_u/c/0.log");
    let config = LoggerConfig {
        path: path.clone(),
        max_size: 0,
        max_files: 2,
        interactive: false,
    };
    let out: &[u8] = b"one\ntwo\nunterminated";
    let err: &[u8] = b"oops\n";
    let mut ready = false;
    serve(config, Some(out), Some(err), || ready = true).expect("serve");
    assert!(ready);
    let got = lines_of(&[path]);
    let stdout: Vec<_> = got
        .iter()
        .filter(|l| l.0 == Stream::Stdout)
        .cloned()
        .collect();
    assert_eq!(
        stdout,
        vec![
            (Stream::Stdout, false, "one".into()),
            (Stream::Stdout, false, "two".into()),
            (Stream::Stdout, true, "unterminated".into()),
        ]
    );
    assert!(got.contains(&(Stream::Stderr, false, "oops".into())));
}

#[test]
fn rotation_keeps_max_files_and_loses_nothing_in_between() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("0.log");
    let input: String = (0..300).map(|i| format!("line {i:04}\n")).collect();
    let config = LoggerConfig {
        path: path.clone(),
        max_size: 500,
        max_files: 3,
        interactive: false,
    };
    serve(
        config,
        Some(std::io::Cursor::new(input.clone().into_bytes())),
        None,
        || {},
    )
    .expect("serve");
    let files = all_files(&path);
    assert_eq!(files.len(), 3, "{files:?}");
    let got: Vec<String> = lines_of(&files).into_iter().map(|l| l.2).collect();
    assert!(!got.is_empty());
    assert_eq!(got.last().map(String::as_str), Some("line 0299"));
    let first: usize = got[0][5..].parse().expect("number");
    let want: Vec<String> = (first..300).map(|i| format!("line {i:04}")).collect();
    assert_eq!(got, want, "kept files must hold a gapless suffix");

    let dir2 = tempfile::tempdir().expect("tempdir");
    let path2 = dir2.path().join("0.log");
    let config = LoggerConfig {
        path: path2.clone(),
        max_size: 500,
        max_files: 1000,
        interactive: false,
    };
    serve(
        config,
        Some(std::io::Cursor::new(input.clone().into_bytes())),
        None,
        || {},
    )
    .expect("serve");
    let files = all_files(&path2);
    assert!(files.len() > 10);
    let got: Vec<String> = lines_of(&files).into_iter().map(|l| l.2).collect();
    let want: Vec<String> = (0..300).map(|i| format!("line {i:04}")).collect();
    assert_eq!(got, want);
}

/// Not a test on its own: the body of the logger child process that
/// `logger_runs_as_binary_log_driver` starts with pipes on fds 3, 4 and 5.
#[test]
fn logger_child_process() {
    let Ok(list) = std::env::var(CHILD_ENV) else {
        return;
    };
    let code = run_logger(list.split('\n').map(OsString::from).collect());
    std::process::exit(if code == ExitCode::SUCCESS { 0 } else { 1 });
}

fn wait_for_lines(path: &Path, n: usize) -> Vec<(Stream, bool, String)> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = lines_of(&all_files(path));
        if got.len() >= n || Instant::now() > deadline {
            return got;
        }
        std::thread::yield_now();
    }
}

/// Starts this test binary as the logger child with FIFOs on fds 3, 4 and 5, as
/// containerd's shim would; returns it and the FIFO paths (stdout, stderr, ready).
fn spawn_logger_child(dir: &Path, log: &Path) -> (std::process::Child, [PathBuf; 3]) {
    let fifo = |n: &str| {
        let p = dir.join(n);
        nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
        p
    };
    let fifos = [fifo("out"), fifo("err"), fifo("ready")];
    let child_args = format!(
        "--max-files\n3\n--path\n{}\n--max-size\n100000",
        log.display()
    );
    let exe = std::env::current_exe().expect("exe");
    let child = std::process::Command::new("sh")
        .arg("-c")
        .arg(r#"exec 3<"$1" 4<"$2" 5>"$3"; exec "$0" --exact kubelet::logs::logger::tests::logger_child_process --nocapture --test-threads=1"#)
        .arg(&exe)
        .args(&fifos)
        .env(CHILD_ENV, child_args)
        .env("CONTAINER_ID", "abc")
        .env("CONTAINER_NAMESPACE", "k8s.io")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    (child, fifos)
}

#[test]
fn logger_runs_as_binary_log_driver() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("pods/ns_p_u/c/0.log");
    let (mut child, [out_p, err_p, ready_p]) = spawn_logger_child(dir.path(), &log);
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .open(&out_p)
        .expect("open out");
    let mut err = std::fs::OpenOptions::new()
        .write(true)
        .open(&err_p)
        .expect("open err");
    let mut ready = std::fs::File::open(&ready_p).expect("open ready");
    let mut buf = Vec::new();
    ready.read_to_end(&mut buf).expect("ready closes");

    out.write_all(b"hello\n").expect("write");
    let started = Instant::now();
    let got = wait_for_lines(&log, 1);
    assert_eq!(got, vec![(Stream::Stdout, false, "hello".into())]);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "line must be flushed promptly"
    );

    for i in 0..50 {
        writeln!(out, "o{i}").expect("write");
        writeln!(err, "e{i}").expect("write");
    }
    drop(out);
    drop(err);
    let status = child.wait().expect("wait");
    assert!(status.success(), "{status:?}");
    let got = lines_of(&all_files(&log));
    let outs: Vec<String> = got
        .iter()
        .filter(|l| l.0 == Stream::Stdout)
        .map(|l| l.2.clone())
        .collect();
    let errs: Vec<String> = got
        .iter()
        .filter(|l| l.0 == Stream::Stderr)
        .map(|l| l.2.clone())
        .collect();
    let want_out: Vec<String> = std::iter::once("hello".to_string())
        .chain((0..50).map(|i| format!("o{i}")))
        .collect();
    assert_eq!(outs, want_out);
    assert_eq!(errs, (0..50).map(|i| format!("e{i}")).collect::<Vec<_>>());
}
