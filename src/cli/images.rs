//! `kelp images list|pull|rm|import`: what users reach for `crictl images`
//! or `ctr images` to do, against this node's containerd (kelp's own, or
//! `--container-runtime-endpoint`), in the `k8s.io` namespace the kubelet
//! uses. Pulls go through the same code as the kubelet's, so
//! `registries.yaml` mirrors and credentials apply.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::kubelet::CONTAINERD_NAMESPACE;
use crate::kubelet::containerd::Runtime;
use crate::kubelet::containerd::images::PullProgress;
use crate::kubelet::registry::ImagePuller;
use crate::kubelet::registry::credentials::RegistryCredential;

/// Flags of `kelp images`.
#[derive(Debug, Args)]
pub struct ImagesArgs {
    #[command(subcommand)]
    command: ImagesCommand,
    /// containerd socket (default: kelp's own under --run-dir).
    #[arg(
        long,
        env = "KELP_CONTAINER_RUNTIME_ENDPOINT",
        value_name = "SOCKET",
        global = true
    )]
    container_runtime_endpoint: Option<PathBuf>,
    /// kelp's runtime state directory, where its containerd socket is.
    #[arg(
        long,
        env = "KELP_RUN_DIR",
        value_name = "DIR",
        default_value = "/run/kelp",
        hide = true,
        global = true
    )]
    run_dir: PathBuf,
}

#[derive(Debug, Subcommand)]
enum ImagesCommand {
    /// List images (name, image ID, size).
    #[command(alias = "ls")]
    List {
        /// Print only names.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Pull an image (registries.yaml mirrors and auth apply).
    Pull {
        /// Image reference, e.g. busybox:1.36 or registry.example/app@sha256:…
        image: String,
        /// Credentials for the image's registry, USER:PASSWORD.
        #[arg(long, value_name = "USER:PASSWORD")]
        creds: Option<String>,
        /// Registry mirrors, auth and TLS (registries.yaml).
        #[arg(
            long,
            env = "KELP_PRIVATE_REGISTRY",
            value_name = "FILE",
            default_value = crate::kubelet::registry::config::DEFAULT_REGISTRIES_FILE
        )]
        private_registry: PathBuf,
    },
    /// Remove images by name or image ID.
    #[command(alias = "rmi")]
    Rm {
        /// Image names or IDs.
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Import image archives (docker save or OCI layout; plain, gzip or zstd).
    Import {
        /// Archive files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// Runs `kelp images`.
pub(super) fn run(args: ImagesArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(run_async(args))
}

async fn run_async(args: ImagesArgs) -> anyhow::Result<()> {
    let socket = args
        .container_runtime_endpoint
        .clone()
        .unwrap_or_else(|| args.run_dir.join("containerd/containerd.sock"));
    let runtime = Runtime::connect(&socket, CONTAINERD_NAMESPACE)
        .await
        .with_context(|| {
            format!(
                "cannot reach containerd at {} (is kelp running on this node? else give --container-runtime-endpoint)",
                socket.display()
            )
        })?;
    match args.command {
        ImagesCommand::List { quiet } => list(&runtime, quiet).await,
        ImagesCommand::Pull {
            image,
            creds,
            private_registry,
        } => pull(runtime, &image, creds, private_registry).await,
        ImagesCommand::Rm { images } => remove(&runtime, &images).await,
        ImagesCommand::Import { files } => {
            for file in files {
                let names = runtime
                    .import_archive(&file)
                    .await
                    .with_context(|| format!("cannot import {}", file.display()))?;
                for name in names {
                    println!("imported {name}");
                }
            }
            Ok(())
        }
    }
}

async fn list(runtime: &Runtime, quiet: bool) -> anyhow::Result<()> {
    let mut images = runtime.list_images().await?;
    images.sort_by(|a, b| a.name.cmp(&b.name));
    let mut out = std::io::stdout().lock();
    if quiet {
        for i in images {
            writeln!(out, "{}", i.name)?;
        }
        return Ok(());
    }
    writeln!(out, "{:<60} {:<13} {:>10}", "IMAGE", "IMAGE ID", "SIZE")?;
    for i in images {
        let id = i.config_digest.trim_start_matches("sha256:");
        writeln!(
            out,
            "{:<60} {:<13} {:>10}",
            i.name,
            &id[..id.len().min(13)],
            human_size(i.size)
        )?;
    }
    Ok(())
}

async fn pull(
    runtime: Runtime,
    image: &str,
    creds: Option<String>,
    registries: PathBuf,
) -> anyhow::Result<()> {
    let reference = crate::kubelet::registry::parse_reference(image)
        .map_err(|f| anyhow::anyhow!("{}", f.message))?;
    let credentials = match creds {
        None => vec![],
        Some(c) => {
            let (username, password) = c
                .split_once(':')
                .ok_or_else(|| anyhow::anyhow!("--creds: expected USER:PASSWORD"))?;
            vec![RegistryCredential {
                key: reference
                    .repository
                    .split('/')
                    .next()
                    .unwrap_or_default()
                    .to_string(),
                username: username.into(),
                password: password.into(),
            }]
        }
    };
    let puller = ImagePuller::new(runtime, registries);
    let progress = Arc::new(PullProgress::default());
    let started = Instant::now();
    let ticker = tokio::spawn(show_progress(image.to_string(), progress.clone()));
    let result = puller.pull(image, &credentials, &progress).await;
    ticker.abort();
    if std::io::stderr().is_terminal() {
        eprintln!();
    }
    let (info, report) = result.map_err(|f| anyhow::anyhow!("{}: {}", f.reason, f.message))?;
    println!(
        "pulled {} ({}) from {}: {} in {:.2}s, {} downloaded",
        info.name,
        report.digest,
        report.endpoint,
        human_size(report.size),
        started.elapsed().as_secs_f64(),
        human_size(report.fetched)
    );
    Ok(())
}

/// A progress bar on a terminal, a line every few seconds otherwise.
async fn show_progress(image: String, progress: Arc<PullProgress>) {
    let tty = std::io::stderr().is_terminal();
    let period = if tty {
        Duration::from_millis(200)
    } else {
        Duration::from_secs(5)
    };
    loop {
        tokio::time::sleep(period).await;
        let total = progress.total.load(Ordering::Relaxed);
        let done = progress.done.load(Ordering::Relaxed).min(total);
        if total == 0 {
            continue;
        }
        let percent = done * 100 / total;
        if tty {
            let filled = (percent / 4) as usize;
            eprint!(
                "\r{image} [{}{}] {percent:>3}% {}/{}",
                "#".repeat(filled),
                " ".repeat(25 - filled.min(25)),
                human_size(done),
                human_size(total)
            );
        } else {
            eprintln!(
                "{image}: {percent}% ({} of {})",
                human_size(done),
                human_size(total)
            );
        }
    }
}

async fn remove(runtime: &Runtime, images: &[String]) -> anyhow::Result<()> {
    let mut missing = Vec::new();
    for image in images {
        let name = match runtime.image(image).await? {
            Some(info) => info.name,
            None => {
                missing.push(image.clone());
                continue;
            }
        };
        if runtime.remove_image(&name).await? {
            println!("deleted {name}");
        } else {
            missing.push(image.clone());
        }
    }
    if !missing.is_empty() {
        anyhow::bail!("no such image: {}", missing.join(", "));
    }
    Ok(())
}

/// Bytes as `12.3MB` (decimal units, as crictl prints them).
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        format!("{value:.1}{}", UNITS[unit])
    }
}
