//! The command line: `kelp server|agent|token|reset|check-config|snapshot|version`.
//!
//! This is the only place that reads flags, environment and the config
//! file; everything below takes plain config structs. Errors leave here as
//! one line naming the flag, key or file at fault, with exit code 1 —
//! never a panic or a debug dump.

mod agent;
mod check_config;
pub mod config_file;
mod data_dir;
pub mod flag_values;
mod host;
mod images;
mod kubectl;
mod node_args;
mod reset;
mod secrets_encrypt;
mod server;
mod service_notify;
mod sim;
mod snapshot;
mod token;
mod version;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

pub use version::{KELP_VERSION, version_string};

/// kelp: a whole Kubernetes distribution in one binary.
#[derive(Debug, Parser)]
#[command(name = "kelp", version = version::KELP_VERSION, args_override_self = true, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a server: apiserver, store, scheduler, controllers and (unless --disable-agent) a node.
    Server(server::ServerArgs),
    /// Run a worker node that joins a server.
    Agent(agent::AgentArgs),
    /// Manage join tokens.
    Token(token::TokenArgs),
    /// List, pull, remove and import images on this node.
    Images(images::ImagesArgs),
    /// Check that this host has what kelp needs (kernel features, tools).
    CheckConfig(check_config::CheckConfigArgs),
    /// Run the kubectl on PATH with the admin kubeconfig (/etc/kelp/kelp.yaml).
    Kubectl(kubectl::KubectlArgs),
    /// Stop kelp and remove what it set up on this machine (processes,
    /// mounts, links, routes, nftables), and with --remove-data its data.
    Reset(reset::ResetArgs),
    /// Show or rotate the keys Secrets are encrypted with at rest.
    SecretsEncrypt(secrets_encrypt::SecretsEncryptArgs),
    /// Save or restore a consistent copy of the store.
    Snapshot(snapshot::SnapshotArgs),
    /// Print version information.
    Version,
    /// Test and benchmark tools: fake nodes (like kwok). Not for production clusters.
    Sim(sim::SimArgs),
}

/// Parses `std::env::args_os()` (with env and config file) and runs the
/// chosen command.
pub fn main() -> ExitCode {
    let argv: Vec<OsString> = std::env::args_os().collect();
    // Installed as a `kubectl` symlink: behave as `kelp kubectl`.
    if argv
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .is_some_and(|name| name == "kubectl")
    {
        let e = kubectl::exec(argv[1..].to_vec());
        eprintln!("error: {}", one_line(&e));
        return ExitCode::from(1);
    }
    let cli = match parse(&argv) {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let result = match cli.command {
        Command::Server(args) => server::run(args),
        Command::Agent(args) => agent::run(args),
        Command::Token(args) => token::run(args),
        Command::Images(args) => images::run(args),
        Command::CheckConfig(args) => check_config::run(args),
        Command::Kubectl(args) => kubectl::run(args),
        Command::Snapshot(args) => snapshot::run(args),
        Command::SecretsEncrypt(args) => secrets_encrypt::run(args),
        Command::Reset(args) => reset::run(args),
        Command::Sim(args) => sim::run(args),
        Command::Version => {
            println!("{}", version_string());
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::from(1)
        }
    }
}

/// Parses argv, layering in the config file. On failure prints the help,
/// the version, or a one-line error, and returns the exit code.
pub fn parse(argv: &[OsString]) -> Result<Cli, ExitCode> {
    let root = Cli::command();
    let first = root.clone().try_get_matches_from(argv).map_err(report)?;
    let (argv, file) = match config_file::layer(&root, argv, &first) {
        Ok(layered) => layered,
        Err(e) => {
            eprintln!("error: {e}");
            return Err(ExitCode::from(1));
        }
    };
    let matches = match root.try_get_matches_from(&argv) {
        Ok(m) => m,
        Err(e)
            if file.is_some()
                && !matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) =>
        {
            let file = file.unwrap_or_default();
            eprintln!(
                "error: config file {}: {}",
                file.display(),
                clap_one_line(&e)
            );
            return Err(ExitCode::from(1));
        }
        Err(e) => return Err(report(e)),
    };
    Cli::from_arg_matches(&matches).map_err(report)
}

fn report(e: clap::Error) -> ExitCode {
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            ExitCode::from(if e.use_stderr() { 1 } else { 0 })
        }
        _ => {
            eprintln!("error: {}", clap_one_line(&e));
            ExitCode::from(1)
        }
    }
}

/// clap's message without its "error: " prefix, usage block and tips.
fn clap_one_line(e: &clap::Error) -> String {
    let rendered = e.render().to_string();
    let first = rendered.lines().next().unwrap_or("invalid arguments");
    let first = first.strip_prefix("error: ").unwrap_or(first);
    let tip = rendered
        .lines()
        .find_map(|l| l.trim().strip_prefix("tip: "))
        .map(|t| format!(" ({t})"));
    format!("{first}{}", tip.unwrap_or_default())
}

/// An anyhow chain as one line: "outer: cause: root cause".
fn one_line(e: &anyhow::Error) -> String {
    e.chain()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
}

/// Installs the log subscriber (`RUST_LOG` overrides; `--debug` = debug).
fn init_logging(debug: bool) {
    let default = if debug { "debug" } else { "info" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colours only on a terminal: logs redirected to a file stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .try_init();
}
