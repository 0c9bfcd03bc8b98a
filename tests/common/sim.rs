//! Fake nodes (`kelp sim nodes`) joined to a test server: Ready nodes whose
//! pods become Running and Ready without containers. Killed on drop.

use std::process::{Child, Command, Stdio};

use super::cluster::Server;

/// A running `kelp sim nodes` process.
pub struct SimNodes(Child);

impl SimNodes {
    /// `count` nodes named `<prefix>0…`, with extra `kelp sim nodes` flags
    /// (`--cpu 1`, …).
    pub fn start(s: &Server, prefix: &str, count: usize, extra: &[&str]) -> SimNodes {
        SimNodes(
            Command::new(env!("CARGO_BIN_EXE_kelp"))
                .args([
                    "sim",
                    "nodes",
                    "--count",
                    &count.to_string(),
                    "--prefix",
                    prefix,
                ])
                .args(["--lease-interval", "1"])
                .args(extra)
                .arg("--kubeconfig")
                .arg(&s.kubeconfig)
                .arg("--data-dir")
                .arg(s.data_dir())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("kelp sim nodes"),
        )
    }
}

impl Drop for SimNodes {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
