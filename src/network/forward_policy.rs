//! Hosts whose iptables `FORWARD` policy is DROP (Docker sets it so):
//! there, every routed pod packet (to another node, or to a Service
//! endpoint behind the node's own bridge) would be dropped, whatever
//! kelp's own nftables table says, because a drop in any base chain on
//! the forward hook is final. flannel answers with two ACCEPT rules for
//! the cluster CIDR in that chain; kelp adds the same ones.
//!
//! Those rules belong to the iptables ruleset the host's own tools
//! manage, so they are written with the host's `iptables` binary (a host
//! with a DROP policy has one), never by hand: rules that iptables-nft did
//! not write itself would break its listing. Without the binary, or with
//! an ACCEPT policy, nothing is done. Docker rewrites its chains when it
//! restarts, so the check is repeated.

use std::time::Duration;

use ipnet::Ipv4Net;
use tokio_util::sync::CancellationToken;

/// How often the policy is checked again.
const RECHECK: Duration = Duration::from_secs(60);
/// The comment on kelp's rules, to find and remove them.
pub const COMMENT: &str = "kelp: pod traffic";

/// Runs `iptables -w ARGS`: Some(stdout) on success, None if it failed or
/// is not installed.
async fn iptables(args: &[&str]) -> Option<String> {
    let out = tokio::process::Command::new("iptables")
        .arg("-w")
        .args(args)
        .output()
        .await
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn rule(direction: &str, cidr: &str) -> Vec<String> {
    [
        "FORWARD",
        direction,
        cidr,
        "-m",
        "comment",
        "--comment",
        COMMENT,
        "-j",
        "ACCEPT",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Adds the ACCEPT rules for `cluster_cidr` if the FORWARD policy is
/// DROP and they are missing. Returns whether the policy is DROP.
pub async fn allow_pod_forwarding(cluster_cidr: Ipv4Net) -> bool {
    let Some(chain) = iptables(&["-S", "FORWARD"]).await else {
        return false;
    };
    if !chain.lines().any(|l| l.trim() == "-P FORWARD DROP") {
        return false;
    }
    let cidr = cluster_cidr.to_string();
    for direction in ["-s", "-d"] {
        let rule = rule(direction, &cidr);
        let args: Vec<&str> = rule.iter().map(String::as_str).collect();
        let check: Vec<&str> = std::iter::once("-C").chain(args.iter().copied()).collect();
        if iptables(&check).await.is_none() {
            let append: Vec<&str> = std::iter::once("-A").chain(args.iter().copied()).collect();
            match iptables(&append).await {
                Some(_) => {
                    tracing::info!(%cidr, direction, "FORWARD policy is DROP: pod traffic accepted")
                }
                None => {
                    tracing::warn!(%cidr, "FORWARD policy is DROP and the ACCEPT rule could not be added: pods cannot reach other nodes or Services")
                }
            }
        }
    }
    true
}

/// Keeps the rules in place until `cancel`.
pub async fn run(cluster_cidr: Ipv4Net, cancel: CancellationToken) {
    loop {
        allow_pod_forwarding(cluster_cidr).await;
        tokio::select! {
            _ = tokio::time::sleep(RECHECK) => {}
            _ = cancel.cancelled() => return,
        }
    }
}

/// Removes kelp's rules (reset); true if there were any.
pub async fn remove() -> bool {
    let Some(chain) = iptables(&["-S", "FORWARD"]).await else {
        return false;
    };
    let mut removed = false;
    for line in chain.lines().filter(|l| l.contains(COMMENT)) {
        // `-A FORWARD -s 10.42.0.0/16 -m comment --comment "kelp: pod traffic" -j ACCEPT`
        let Some(direction) = ["-s", "-d"]
            .into_iter()
            .find(|d| line.contains(&format!(" {d} ")))
        else {
            continue;
        };
        let Some(cidr) = line
            .split_whitespace()
            .skip_while(|w| *w != direction)
            .nth(1)
        else {
            continue;
        };
        let rule = rule(direction, cidr);
        let args: Vec<&str> = std::iter::once("-D")
            .chain(rule.iter().map(String::as_str))
            .collect();
        removed |= iptables(&args).await.is_some();
    }
    removed
}
