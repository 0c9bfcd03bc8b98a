use super::*;
use crate::kubelet::logs::cri_format::encode_line;
use futures::StreamExt;
use std::io::Write;
use std::path::Path;
use std::time::UNIX_EPOCH;

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

/// (seconds offset, stream, partial, message)
type Entry<'a> = (u64, LogStream, bool, &'a str);

fn encode(entries: &[Entry<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for (t, s, p, m) in entries {
        encode_line(&mut out, at(*t), *s, *p, m.as_bytes());
    }
    out
}

fn write(path: &Path, entries: &[Entry<'_>]) {
    std::fs::write(path, encode(entries)).expect("write");
}

fn append(path: &Path, entries: &[Entry<'_>]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open");
    f.write_all(&encode(entries)).expect("append");
}

async fn collect(files: Vec<PathBuf>, opts: LogOptions, running: watch::Receiver<bool>) -> String {
    let chunks: Vec<io::Result<Bytes>> = read_log(files, opts, running).collect().await;
    let mut out = Vec::new();
    for c in chunks {
        out.extend_from_slice(&c.expect("no read error"));
    }
    String::from_utf8(out).expect("utf8")
}

fn stopped() -> watch::Receiver<bool> {
    watch::channel(false).1
}

const O: LogStream = LogStream::Stdout;
const E: LogStream = LogStream::Stderr;

/// Three files: two rotated ones and the current one, lines a..g (f is split).
fn three_files(dir: &Path) -> Vec<PathBuf> {
    let files: Vec<PathBuf> = ["0.log.20260101-000000", "0.log.20260101-000001", "0.log"]
        .iter()
        .map(|n| dir.join(n))
        .collect();
    write(&files[0], &[(1, O, false, "a"), (2, O, false, "b")]);
    write(&files[1], &[(3, E, false, "c"), (4, O, false, "d")]);
    write(
        &files[2],
        &[
            (5, O, false, "e"),
            (6, O, true, "f1-"),
            (7, E, false, "x"),
            (8, O, false, "f2"),
        ],
    );
    files
}

#[tokio::test]
async fn reads_all_files_joining_partial_lines_per_stream() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = three_files(dir.path());
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&files[2])
        .expect("open");
    f.write_all(b"not a cri line\n").expect("append");
    let got = collect(files, LogOptions::default(), stopped()).await;
    assert_eq!(got, "a\nb\nc\nd\ne\nx\nf1-f2\n");
}

#[tokio::test]
async fn tail_counts_whole_lines_across_rotated_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = three_files(dir.path());
    let tail = |n| LogOptions {
        tail_lines: Some(n),
        ..Default::default()
    };
    assert_eq!(
        collect(files.clone(), tail(2), stopped()).await,
        "x\nf1-f2\n"
    );
    assert_eq!(
        collect(files.clone(), tail(1), stopped()).await,
        "f2\n",
        "pieces before the tail start are not looked for"
    );
    assert_eq!(
        collect(files.clone(), tail(4), stopped()).await,
        "d\ne\nx\nf1-f2\n"
    );
    assert_eq!(
        collect(files.clone(), tail(5), stopped()).await,
        "c\nd\ne\nx\nf1-f2\n"
    );
    assert_eq!(collect(files.clone(), tail(0), stopped()).await, "");
    assert_eq!(
        collect(files, tail(100), stopped()).await,
        "a\nb\nc\nd\ne\nx\nf1-f2\n"
    );
}

#[tokio::test]
async fn since_timestamps_and_limit_apply_like_kubelet() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = three_files(dir.path());
    let since = LogOptions {
        since: Some(at(4)),
        ..Default::default()
    };
    assert_eq!(
        collect(files.clone(), since, stopped()).await,
        "d\ne\nx\nf1-f2\n"
    );
    let ts = LogOptions {
        timestamps: true,
        tail_lines: Some(2),
        ..Default::default()
    };
    let want = format!(
        "{} x\n{} f1-f2\n",
        format_rfc3339_nano(at(7)),
        format_rfc3339_nano(at(6))
    );
    assert_eq!(collect(files.clone(), ts, stopped()).await, want);
    let limit = LogOptions {
        limit_bytes: Some(5),
        ..Default::default()
    };
    assert_eq!(collect(files, limit, stopped()).await, "a\nb\nc");
}

#[tokio::test]
async fn missing_current_file_is_an_error_without_follow() {
    let dir = tempfile::tempdir().expect("tempdir");
    let items: Vec<_> = read_log(
        vec![dir.path().join("0.log")],
        LogOptions::default(),
        stopped(),
    )
    .collect()
    .await;
    assert_eq!(items.len(), 1);
    assert!(matches!(&items[0], Err(e) if e.kind() == io::ErrorKind::NotFound));
}

#[tokio::test]
async fn follow_streams_new_lines_across_rotation_until_stopped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("0.log");
    write(&path, &[(1, O, false, "old")]);
    let (tx, rx) = watch::channel(true);
    let opts = LogOptions {
        follow: true,
        tail_lines: Some(1),
        ..Default::default()
    };
    let mut stream = Box::pin(read_log(vec![path.clone()], opts, rx));
    let first = stream.next().await.expect("chunk").expect("ok");
    assert_eq!(&first[..], b"old\n");

    append(
        &path,
        &[(2, O, false, "before rotation"), (3, O, true, "split-")],
    );
    let next = tokio::time::timeout(Duration::from_secs(2), stream.next()).await;
    let next = next
        .expect("follower sees new lines promptly")
        .expect("chunk")
        .expect("ok");
    assert_eq!(&next[..], b"before rotation\n");

    std::fs::rename(&path, dir.path().join("0.log.20260101-000000")).expect("rotate");
    write(&path, &[(4, O, false, "after"), (5, E, false, "err")]);
    append(&path, &[(6, O, false, "last")]);
    tx.send(false).expect("stop");
    let mut rest = Vec::new();
    while let Some(c) = stream.next().await {
        rest.extend_from_slice(&c.expect("ok"));
    }
    assert_eq!(String::from_utf8_lossy(&rest), "split-after\nerr\nlast\n");
}

#[tokio::test]
async fn follow_waits_for_a_current_file_that_does_not_exist_yet() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("0.log");
    let (tx, rx) = watch::channel(true);
    let opts = LogOptions {
        follow: true,
        ..Default::default()
    };
    let reader = tokio::spawn(collect(vec![path.clone()], opts, rx));
    tokio::time::sleep(FOLLOW_POLL * 2).await;
    write(&path, &[(1, O, false, "late")]);
    tokio::time::sleep(FOLLOW_POLL * 2).await;
    tx.send(false).expect("stop");
    let got = reader.await.expect("join");
    assert_eq!(got, "late\n");
}
