//! The `kelp` binary: see [`kelp::cli`].

fn main() -> std::process::ExitCode {
    kelp::cli::main()
}
