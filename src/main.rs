//! The `kelp` binary: see [`kelp::cli`].

/// mimalloc instead of glibc malloc: under load (10 000 pods on 5 000
/// nodes) glibc's malloc/free took about 30 % of the server's CPU in a perf
/// profile, and its per-thread arenas fragment the heap of a long-running
/// process. The allocator is the binary's choice, so the library stays
/// neutral and tests run on the default one.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
