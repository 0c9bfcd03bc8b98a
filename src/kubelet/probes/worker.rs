//! Periodic probing of one container, as kubelet's prober `worker`.
//!
//! The worker probes at once and then every `periodSeconds` (default 10), skipping
//! ticks until `initialDelaySeconds` have passed since it was spawned (kelp spawns
//! it when the container starts). A result only changes after `successThreshold`
//! (1) consecutive successes or `failureThreshold` (3) consecutive failures.
//! Initial results are upstream's: readiness `false`, liveness `true`, startup
//! unknown (`None`). Once liveness or startup has failed past its threshold the
//! worker stops and the failure stands until the kubelet makes a new worker for
//! the restarted container; once startup succeeds it stops probing too. A probe
//! that could not be run at all (e.g. the runtime's exec failed) is thrown away,
//! as upstream does. Gating liveness/readiness on startup success is the caller's
//! job: spawn those workers once the startup worker reports `Some(true)`.

use std::time::Duration;

use k8s_openapi::api::core::v1::Probe;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use super::{ProbeKind, ProbeResult, ProbeTarget, run_probe};

/// What a worker has concluded so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProbeStatus {
    /// The current result: `Some(true)` healthy/ready/started, `Some(false)` not,
    /// `None` not decided yet (startup probes before their first decisive result).
    pub result: Option<bool>,
    /// The latest probe's failure message (empty after a success).
    pub last_message: String,
    /// Failed probes in a row, up to the latest one.
    pub consecutive_failures: u32,
    /// Successful probes in a row, up to the latest one.
    pub consecutive_successes: u32,
}

/// A running probe worker; dropping it stops the probing.
pub struct ProbeWorker {
    task: JoinHandle<()>,
    results: watch::Receiver<ProbeStatus>,
}

impl ProbeWorker {
    /// A receiver of the worker's status, updated after every probe.
    pub fn results(&self) -> watch::Receiver<ProbeStatus> {
        self.results.clone()
    }
}

impl Drop for ProbeWorker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts probing `target` with `probe` on the current tokio runtime.
pub fn spawn_worker(kind: ProbeKind, probe: Probe, target: ProbeTarget) -> ProbeWorker {
    let initial = match kind {
        ProbeKind::Readiness => Some(false),
        ProbeKind::Liveness => Some(true),
        ProbeKind::Startup => None,
    };
    let (tx, results) = watch::channel(ProbeStatus {
        result: initial,
        ..Default::default()
    });
    let task = tokio::spawn(run(kind, probe, target, tx));
    ProbeWorker { task, results }
}

fn positive(v: Option<i32>, default: u32) -> u32 {
    v.and_then(|v| u32::try_from(v).ok())
        .filter(|v| *v > 0)
        .unwrap_or(default)
}

async fn run(kind: ProbeKind, probe: Probe, target: ProbeTarget, tx: watch::Sender<ProbeStatus>) {
    let start = Instant::now();
    let period = Duration::from_secs(u64::from(positive(probe.period_seconds, 10)));
    let initial_delay = Duration::from_secs(u64::from(positive(probe.initial_delay_seconds, 0)));
    let success_threshold = positive(probe.success_threshold, 1);
    let failure_threshold = positive(probe.failure_threshold, 3);
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let (mut last, mut run_len) = (None::<bool>, 0u32);
    loop {
        ticker.tick().await;
        if start.elapsed() < initial_delay {
            continue;
        }
        let (ok, message) = match run_probe(&probe, &target).await {
            Ok(ProbeResult::Success) => (true, String::new()),
            Ok(ProbeResult::Failure(m)) => (false, m),
            Err(e) => {
                tracing::debug!(?kind, error = %e, "probe errored; result discarded");
                continue;
            }
        };
        if last == Some(ok) {
            run_len = run_len.saturating_add(1);
        } else {
            (last, run_len) = (Some(ok), 1);
        }
        let decisive = run_len
            >= if ok {
                success_threshold
            } else {
                failure_threshold
            };
        tx.send_modify(|s| {
            s.last_message = message;
            (s.consecutive_successes, s.consecutive_failures) =
                if ok { (run_len, 0) } else { (0, run_len) };
            if decisive {
                s.result = Some(ok);
            }
        });
        let hold = decisive && !ok && kind != ProbeKind::Readiness;
        let started = decisive && ok && kind == ProbeKind::Startup;
        if hold || started {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kubelet::probes::ExecProber;
    use futures::future::BoxFuture;
    use k8s_openapi::api::core::v1::ExecAction;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::sync::mpsc;

    /// Exit codes to return in turn (the last one repeats); -1 means "exec error".
    struct Script {
        codes: Vec<i32>,
        next: AtomicUsize,
        calls: mpsc::UnboundedSender<Duration>,
        start: Instant,
    }

    impl ExecProber for Script {
        fn exec(
            &self,
            _cmd: Vec<String>,
            _t: Duration,
        ) -> BoxFuture<'static, Result<(i32, Vec<u8>), String>> {
            let i = self.next.fetch_add(1, Ordering::SeqCst);
            let code = self
                .codes
                .get(i)
                .or(self.codes.last())
                .copied()
                .unwrap_or(0);
            let _ = self.calls.send(self.start.elapsed());
            Box::pin(async move {
                if code < 0 {
                    Err("container not found".to_string())
                } else {
                    Ok((code, b"boom".to_vec()))
                }
            })
        }
    }

    fn setup(codes: &[i32]) -> (ProbeTarget, mpsc::UnboundedReceiver<Duration>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let script = Script {
            codes: codes.to_vec(),
            next: AtomicUsize::new(0),
            calls: tx,
            start: Instant::now(),
        };
        let target = ProbeTarget {
            netns: None,
            pod_ip: None,
            container_ports: vec![],
            exec: Arc::new(script),
        };
        (target, rx)
    }

    fn exec_probe(tweak: impl FnOnce(&mut Probe)) -> Probe {
        let mut p = Probe {
            exec: Some(ExecAction {
                command: Some(vec!["check".into()]),
            }),
            ..Default::default()
        };
        tweak(&mut p);
        p
    }

    /// Lets the worker run for `secs` of (paused) time; returns the statuses seen.
    async fn watch_for(rx: &mut watch::Receiver<ProbeStatus>, secs: u64) -> Vec<ProbeStatus> {
        let mut seen = Vec::new();
        let deadline = tokio::time::sleep(Duration::from_secs(secs));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut deadline => return seen,
                r = rx.changed() => match r {
                    Ok(()) => seen.push(rx.borrow_and_update().clone()),
                    Err(_) => { (&mut deadline).await; return seen; }
                },
            }
        }
    }

    fn results(seen: &[ProbeStatus]) -> Vec<Option<bool>> {
        seen.iter().map(|s| s.result).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn readiness_starts_false_and_follows_thresholds() {
        let (target, _calls) = setup(&[0, 0, 1, 1, 1, 0]);
        let probe = exec_probe(|p| p.success_threshold = Some(2));
        let w = spawn_worker(ProbeKind::Readiness, probe, target);
        let mut rx = w.results();
        assert_eq!(rx.borrow().result, Some(false));
        let seen = watch_for(&mut rx, 55).await;
        assert_eq!(
            results(&seen),
            [
                Some(false),
                Some(true),
                Some(true),
                Some(true),
                Some(false),
                Some(false)
            ]
        );
        assert_eq!(seen[4].consecutive_failures, 3);
        assert_eq!(seen[4].last_message, "boom");
        assert_eq!(seen[5].last_message, "", "success clears the message");
    }

    #[tokio::test(start_paused = true)]
    async fn liveness_failure_holds_until_worker_is_recreated() {
        let (target, mut calls) = setup(&[1, 1, 1, 0]);
        let w = spawn_worker(ProbeKind::Liveness, exec_probe(|_| {}), target);
        let mut rx = w.results();
        assert_eq!(rx.borrow().result, Some(true));
        let seen = watch_for(&mut rx, 100).await;
        assert_eq!(results(&seen), [Some(true), Some(true), Some(false)]);
        let mut n = 0;
        while calls.try_recv().is_ok() {
            n += 1;
        }
        assert_eq!(n, 3, "no probing while on hold");
    }

    #[tokio::test(start_paused = true)]
    async fn startup_is_unknown_until_it_succeeds_then_stops() {
        let (target, mut calls) = setup(&[1, 0]);
        let w = spawn_worker(
            ProbeKind::Startup,
            exec_probe(|p| p.period_seconds = Some(1)),
            target,
        );
        let mut rx = w.results();
        assert_eq!(rx.borrow().result, None);
        let seen = watch_for(&mut rx, 30).await;
        assert_eq!(results(&seen), [None, Some(true)]);
        let mut n = 0;
        while calls.try_recv().is_ok() {
            n += 1;
        }
        assert_eq!(n, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn initial_delay_skips_ticks_before_it() {
        let (target, mut calls) = setup(&[0]);
        let probe = exec_probe(|p| {
            p.initial_delay_seconds = Some(15);
            p.period_seconds = Some(10);
        });
        let w = spawn_worker(ProbeKind::Readiness, probe, target);
        let mut rx = w.results();
        let _ = watch_for(&mut rx, 45).await;
        let mut times = Vec::new();
        while let Ok(t) = calls.try_recv() {
            times.push(t.as_secs());
        }
        assert_eq!(times, [20, 30, 40]);
    }

    #[tokio::test(start_paused = true)]
    async fn exec_errors_are_discarded() {
        let (target, _calls) = setup(&[-1, -1, -1, -1]);
        let w = spawn_worker(ProbeKind::Readiness, exec_probe(|_| {}), target);
        let mut rx = w.results();
        let seen = watch_for(&mut rx, 35).await;
        assert!(seen.is_empty(), "{seen:?}");
        assert_eq!(
            *rx.borrow(),
            ProbeStatus {
                result: Some(false),
                ..Default::default()
            }
        );
    }
}
