//! `kelp snapshot save|restore`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};

use super::node_args::CommonArgs;
use crate::store::sled::{SledConfig, SledStore};
use crate::store::snapshot;

/// Flags of `kelp snapshot`.
#[derive(Debug, Args)]
pub struct SnapshotArgs {
    #[command(subcommand)]
    command: SnapshotCommand,
}

#[derive(Debug, Subcommand)]
enum SnapshotCommand {
    /// Write a consistent copy of the store to FILE.
    Save {
        /// Snapshot file to write.
        file: PathBuf,
        #[command(flatten)]
        dirs: CommonArgs,
    },
    /// Replace the store with the contents of FILE.
    Restore {
        /// Snapshot file to read.
        file: PathBuf,
        #[command(flatten)]
        dirs: CommonArgs,
        /// Overwrite an existing, non-empty store.
        #[arg(long, num_args = 0..=1, default_missing_value = "true", default_value_t = false, action = clap::ArgAction::Set)]
        force: bool,
    },
}

pub(super) fn run(args: SnapshotArgs) -> anyhow::Result<()> {
    match args.command {
        SnapshotCommand::Save { file, dirs } => save(&file, &dirs.data_dir),
        SnapshotCommand::Restore { file, dirs, force } => restore(&file, &dirs.data_dir, force),
    }
}

fn db_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("server/db")
}

fn save(file: &Path, data_dir: &Path) -> anyhow::Result<()> {
    let db = db_dir(data_dir);
    if !db.exists() {
        anyhow::bail!("no store at {} (wrong --data-dir?)", db.display());
    }
    // Opening takes sled's lock: a running server holds it and is reported
    // as such by the store error.
    let store = SledStore::open(SledConfig::new(&db))
        .with_context(|| format!("cannot open store {}", db.display()))?;
    let tmp = file.with_extension("partial");
    let out =
        std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let info = snapshot::save(&store, &out)
        .with_context(|| format!("cannot write snapshot {}", file.display()))?;
    out.sync_all()
        .with_context(|| format!("cannot sync {}", tmp.display()))?;
    std::fs::rename(&tmp, file)
        .with_context(|| format!("cannot rename {} to {}", tmp.display(), file.display()))?;
    println!(
        "saved {} keys at revision {} to {}",
        info.keys,
        info.revision,
        file.display()
    );
    Ok(())
}

fn restore(file: &Path, data_dir: &Path, force: bool) -> anyhow::Result<()> {
    let db = db_dir(data_dir);
    let non_empty = std::fs::read_dir(&db)
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    if non_empty && !force {
        anyhow::bail!(
            "{} already holds a store; pass --force to replace it",
            db.display()
        );
    }
    let input = std::fs::File::open(file)
        .with_context(|| format!("cannot open snapshot {}", file.display()))?;
    // Restore next to the target, then swap, so a bad snapshot or a crash
    // never leaves the data dir without a store.
    let staging = data_dir.join("server/db.restoring");
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(data_dir.join("server"))
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let info = snapshot::restore(input, &staging)
        .with_context(|| format!("cannot restore {}", file.display()))?;
    if non_empty {
        // Fail early if a running server holds the store.
        drop(
            SledStore::open(SledConfig::new(&db))
                .with_context(|| format!("cannot replace store {}", db.display()))?,
        );
        let old = data_dir.join("server/db.old");
        let _ = std::fs::remove_dir_all(&old);
        std::fs::rename(&db, &old)
            .with_context(|| format!("cannot move {} aside", db.display()))?;
        std::fs::rename(&staging, &db)
            .with_context(|| format!("cannot move restored store into {}", db.display()))?;
        let _ = std::fs::remove_dir_all(&old);
    } else {
        let _ = std::fs::remove_dir_all(&db);
        std::fs::rename(&staging, &db)
            .with_context(|| format!("cannot move restored store into {}", db.display()))?;
    }
    println!(
        "restored {} keys at revision {} into {}",
        info.keys,
        info.revision,
        db.display()
    );
    Ok(())
}
