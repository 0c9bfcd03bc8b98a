//! The official Kubernetes Python client (PyPI `kubernetes`, installed into
//! the test venv by `tests/run.sh`) against a real `kelp server`: every
//! workload kind is created through the typed API and read back into the
//! typed models (`tests/python/workloads.py`). The models refuse objects
//! that lack fields Go always writes, which is what this guards.

mod common;

use std::process::Command;

use common::cluster::Server;

fn python() -> String {
    std::env::var("KELP_TEST_PYTHON").unwrap_or_else(|_| {
        panic!(
            "KELP_TEST_PYTHON is not set: run tests through tests/run.sh, which installs the \
             official client into .venv (or set it to a python with `kubernetes` installed)"
        )
    })
}

#[test]
fn the_python_client_creates_every_workload_kind_and_reads_their_status() {
    let s = Server::start();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/workloads.py");
    let out = Command::new(python())
        .arg(script)
        .arg(&s.kubeconfig)
        .env("HOME", s.data_dir())
        .output()
        .expect("run the python client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("all ok"),
        "python client failed\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
    );
}
