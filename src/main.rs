//! The `kelp` binary: see [`kelp::cli`].

fn main() -> std::process::ExitCode {
    // containerd's shim runs the log writer as `<agent>/bin/kelp-logger`, a
    // link to this binary; it is not a user-facing command.
    let mut args = std::env::args_os();
    let called_as = args.next().unwrap_or_default();
    if std::path::Path::new(&called_as).file_name() == Some("kelp-logger".as_ref()) {
        return kelp::kubelet::logs::run_logger(args.collect());
    }
    kelp::cli::main()
}
