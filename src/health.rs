//! Liveness, readiness and progress of the engines running in this process,
//! and the one HTTP listener that serves them next to `/metrics`.
//!
//! The engine reports a handful of facts here (starting, producer
//! initialised, partitions assigned, broker lost or back, draining, stopped;
//! each successful poll and commit); this module turns them into
//! `/readyz` answers and the progress gauges, so the engine loop stays free
//! of HTTP and the probe semantics live in one place:
//!
//! - `GET /livez`: 200 while the process can answer; no dependency checks, so
//!   a lost broker never makes Kubernetes restart a healthy process.
//! - `GET /readyz`: 200 only when every topology in the process has its
//!   partition assignment and an initialised transactional producer, and the
//!   broker is reachable; otherwise 503 with a short JSON reason (starting,
//!   broker lost, draining on stop, stopped).
//! - `GET /metrics`: the Prometheus text exposition.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::telemetry as t;

/// Where one topology's engine is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Loading state, initialising the producer, joining the group.
    Starting,
    /// Polling and processing.
    Running,
    /// Asked to stop: finishing the current window, committing, leaving.
    Draining,
    /// `engine::run` returned (normally or with an error).
    Stopped,
}

/// What `/readyz` knows about one topology.
#[derive(Debug, Clone, Serialize)]
pub struct TopologyHealth {
    pub phase: Phase,
    /// The startup step in progress (while `Starting`), or why it stopped.
    pub step: String,
    pub producer_ready: bool,
    pub assigned_partitions: usize,
    /// Why the broker is considered lost (None while reachable).
    pub broker_lost: Option<String>,
}

impl TopologyHealth {
    /// None when ready, else the short reason `/readyz` gives.
    pub fn not_ready_reason(&self) -> Option<String> {
        match self.phase {
            Phase::Draining => return Some("draining: stopping after the current window".into()),
            Phase::Stopped => return Some(format!("stopped: {}", self.step)),
            Phase::Starting if !self.producer_ready || self.assigned_partitions == 0 => {
                return Some(format!("starting: {}", self.step));
            }
            _ => {}
        }
        if let Some(why) = &self.broker_lost {
            return Some(format!("broker lost: {why}"));
        }
        if !self.producer_ready {
            return Some("transactional producer not initialised".into());
        }
        if self.assigned_partitions == 0 {
            return Some("no source partitions assigned".into());
        }
        None
    }
}

/// The health of every topology in the process.
#[derive(Debug, Default)]
pub struct Registry {
    topologies: Mutex<BTreeMap<String, TopologyHealth>>,
}

/// The `/readyz` answer.
#[derive(Debug, Clone, Serialize)]
pub struct Readiness {
    pub ready: bool,
    /// The first topology's reason when not ready ("no engine running" when
    /// none has started).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub topologies: BTreeMap<String, TopologyHealth>,
}

impl Registry {
    fn update(&self, topology: &str, f: impl FnOnce(&mut TopologyHealth)) {
        let mut map = self.topologies.lock().unwrap_or_else(|p| p.into_inner());
        let entry = map
            .entry(topology.to_string())
            .or_insert_with(|| TopologyHealth {
                phase: Phase::Starting,
                step: "starting".into(),
                producer_ready: false,
                assigned_partitions: 0,
                broker_lost: None,
            });
        f(entry);
        if entry.phase == Phase::Starting && entry.producer_ready && entry.assigned_partitions > 0 {
            entry.phase = Phase::Running;
            entry.step = "running".into();
        }
        let ready = entry.not_ready_reason().is_none();
        gauge(t::READY, topology, if ready { 1.0 } else { 0.0 });
    }

    /// A run begins (or begins again): everything is unknown until reported.
    pub fn starting(&self, topology: &str, step: &str) {
        self.update(topology, |h| {
            h.phase = Phase::Starting;
            h.step = step.to_string();
            h.producer_ready = false;
            h.assigned_partitions = 0;
            h.broker_lost = None;
        });
    }

    /// The startup step now in progress.
    pub fn step(&self, topology: &str, step: &str) {
        self.update(topology, |h| h.step = step.to_string());
    }

    /// `init_transactions` succeeded.
    pub fn producer_ready(&self, topology: &str) {
        self.update(topology, |h| h.producer_ready = true);
    }

    /// The consumer's assignment changed (0 = none).
    pub fn assigned(&self, topology: &str, partitions: usize) {
        self.update(topology, |h| h.assigned_partitions = partitions);
    }

    /// The client reported every broker down.
    pub fn broker_lost(&self, topology: &str, why: &str) {
        self.update(topology, |h| h.broker_lost = Some(why.to_string()));
    }

    /// The broker answered again.
    pub fn broker_back(&self, topology: &str) {
        self.update(topology, |h| h.broker_lost = None);
    }

    /// A stop was requested; readiness drops before the last commit.
    pub fn draining(&self, topology: &str) {
        self.update(topology, |h| {
            if h.phase != Phase::Stopped {
                h.phase = Phase::Draining;
            }
        });
    }

    /// The run returned; `why` is "finished" or the error.
    pub fn stopped(&self, topology: &str, why: &str) {
        self.update(topology, |h| {
            h.phase = Phase::Stopped;
            h.step = why.to_string();
        });
    }

    pub fn get(&self, topology: &str) -> Option<TopologyHealth> {
        let map = self.topologies.lock().unwrap_or_else(|p| p.into_inner());
        map.get(topology).cloned()
    }

    /// Ready when at least one topology runs and every one is ready.
    pub fn readiness(&self) -> Readiness {
        let map = self.topologies.lock().unwrap_or_else(|p| p.into_inner());
        let reason = if map.is_empty() {
            Some("no engine running".to_string())
        } else {
            map.iter()
                .find_map(|(name, h)| h.not_ready_reason().map(|r| format!("{name}: {r}")))
        };
        Readiness {
            ready: reason.is_none(),
            reason,
            topologies: map.clone(),
        }
    }
}

/// The process-wide registry the engine reports to and `/readyz` reads.
pub fn global() -> &'static Registry {
    static GLOBAL: OnceLock<Registry> = OnceLock::new();
    GLOBAL.get_or_init(Registry::default)
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

fn gauge(name: &'static str, topology: &str, value: f64) {
    metrics::gauge!(name, "topology" => topology.to_string()).set(value);
}

/// One engine run's reports to the [`global`] registry; dropping it without
/// [`Run::finished`] (an error returned early) marks the topology stopped
/// with "failed".
pub struct Run {
    topology: String,
    finished: bool,
}

impl Run {
    pub fn start(topology: &str, step: &str) -> Run {
        global().starting(topology, step);
        Run {
            topology: topology.to_string(),
            finished: false,
        }
    }
    pub fn topology(&self) -> &str {
        &self.topology
    }
    pub fn step(&self, step: &str) {
        global().step(&self.topology, step);
    }
    pub fn producer_ready(&self) {
        global().producer_ready(&self.topology);
    }
    pub fn assigned(&self, partitions: usize) {
        global().assigned(&self.topology, partitions);
    }
    /// Idempotent: the loop calls it on every tick while the broker is lost.
    pub fn broker_lost(&self, why: &str) {
        if global()
            .get(&self.topology)
            .is_some_and(|h| h.broker_lost.is_none())
        {
            tracing::warn!(topology = %self.topology, why, "broker lost: not ready");
            global().broker_lost(&self.topology, why);
        }
    }
    pub fn broker_back(&self) {
        tracing::info!(topology = %self.topology, "broker reachable again");
        global().broker_back(&self.topology);
    }
    pub fn draining(&self) {
        global().draining(&self.topology);
    }
    pub fn finished(&mut self) {
        self.finished = true;
        global().stopped(&self.topology, "finished");
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if !self.finished {
            global().stopped(&self.topology, "failed (see the engine's error)");
        }
    }
}

/// A Kafka transaction of `topology` committed: moves its commit clock.
pub fn committed(topology: &str) {
    gauge(t::LAST_COMMIT, topology, unix_now());
}

/// Progress gauges of one run, as handles (the loop calls them often).
///
/// `resynth_last_poll_timestamp_seconds` moves whenever a poll returns
/// without a client error (a message, a partition end, or nothing while the
/// broker is reachable), so an idle but healthy engine still shows progress;
/// `resynth_last_commit_timestamp_seconds` moves on every committed Kafka
/// transaction. Both start at the run's start, so "stuck since" is measured
/// from there.
pub struct Progress {
    poll: metrics::Gauge,
}

impl Progress {
    /// Starts both clocks at now, exports the alerted counters at zero
    /// ([`t::zero_counters`]) and how long a live stream should
    /// take at most between window closes (`close_interval_secs`), which the
    /// stall alert compares against.
    pub fn start(topology: &str, close_interval_secs: f64) -> Progress {
        let poll = metrics::gauge!(t::LAST_POLL, "topology" => topology.to_string());
        let commit = metrics::gauge!(t::LAST_COMMIT, "topology" => topology.to_string());
        t::zero_counters(topology);
        let now = unix_now();
        poll.set(now);
        commit.set(now);
        gauge(t::WINDOW_CLOSE_INTERVAL, topology, close_interval_secs);
        Progress { poll }
    }

    pub fn polled(&self) {
        self.poll.set(unix_now());
    }
}

/// Counts consecutive windows in DRIFT since the last published batch, so
/// "drift persists past N windows without a published refit" is one
/// comparison (`resynth_drift_unresolved_windows`).
pub struct DriftStreak {
    windows: u64,
    gauge: metrics::Gauge,
}

impl DriftStreak {
    pub fn new(topology: &str) -> DriftStreak {
        let gauge =
            metrics::gauge!(t::DRIFT_UNRESOLVED_WINDOWS, "topology" => topology.to_string());
        gauge.set(0.0);
        DriftStreak { windows: 0, gauge }
    }

    /// After each processed window: in DRIFT or not, and whether it published.
    pub fn window(&mut self, drift: bool, published: bool) -> u64 {
        self.windows = match (published, drift) {
            (true, _) | (false, false) => 0,
            (false, true) => self.windows + 1,
        };
        self.gauge.set(self.windows as f64);
        self.windows
    }
}

/// Most connections served at once; more get 503 at once (a probe storm
/// must not starve the engine of threads).
const MAX_CONNECTIONS: usize = 32;
/// A client that sends nothing for this long is dropped.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Renders the metrics exposition text.
pub type Render = Arc<dyn Fn() -> String + Send + Sync>;

/// Serves `/metrics`, `/livez` and `/readyz` on `listener` from a background
/// thread (one short-lived thread per connection, at most
/// [`MAX_CONNECTIONS`]); returns at once.
pub fn serve(listener: TcpListener, registry: &'static Registry, render: Render) {
    let busy = Arc::new(AtomicUsize::new(0));
    std::thread::Builder::new()
        .name("resynth-http".into())
        .spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                if busy.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
                    busy.fetch_sub(1, Ordering::SeqCst);
                    let _ = respond(&mut stream, 503, "text/plain", b"busy\n", false);
                    continue;
                }
                let (conn_busy, render) = (busy.clone(), render.clone());
                let spawned = std::thread::Builder::new()
                    .name("resynth-http-conn".into())
                    .spawn(move || {
                        handle(&mut stream, registry, &render);
                        conn_busy.fetch_sub(1, Ordering::SeqCst);
                    });
                if spawned.is_err() {
                    busy.fetch_sub(1, Ordering::SeqCst);
                }
            }
        })
        .expect("spawning the HTTP listener thread");
}

/// Reads one request and answers it; the connection is then closed.
fn handle(stream: &mut TcpStream, registry: &Registry, render: &Render) {
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    // Up to the end of the headers (8 KiB at most: probes send a few lines).
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 8192 {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let head = String::from_utf8_lossy(&buf);
    let mut words = head.lines().next().unwrap_or("").split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let head_only = method == "HEAD";
    let _ = match (method, path) {
        ("GET" | "HEAD", _) => {
            let (status, kind, body) = route(path, registry, render);
            respond(stream, status, kind, body.as_bytes(), head_only)
        }
        ("", _) => return,
        _ => respond(stream, 405, "text/plain", b"method not allowed\n", false),
    };
}

/// Status, content type and body for a GET of `path`.
pub fn route(path: &str, registry: &Registry, render: &Render) -> (u16, &'static str, String) {
    match path {
        "/metrics" => (200, "text/plain; version=0.0.4; charset=utf-8", render()),
        "/livez" => (200, "application/json", "{\"status\":\"alive\"}\n".into()),
        "/readyz" => {
            let r = registry.readiness();
            let body = serde_json::to_string(&r).unwrap_or_default() + "\n";
            (if r.ready { 200 } else { 503 }, "application/json", body)
        }
        _ => (
            404,
            "text/plain",
            "not found: try /metrics, /livez or /readyz\n".into(),
        ),
    }
}

fn respond(
    stream: &mut TcpStream,
    status: u16,
    kind: &str,
    body: &[u8],
    head_only: bool,
) -> std::io::Result<()> {
    let text = match status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Service Unavailable",
    };
    write!(
        stream,
        "HTTP/1.1 {status} {text}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    if !head_only {
        stream.write_all(body)?;
    }
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_follows_startup_loss_and_drain() {
        let r = Registry::default();
        assert_eq!(r.readiness().reason.as_deref(), Some("no engine running"));
        r.starting("a", "initialising the transactional producer");
        let not = r.readiness();
        assert!(!not.ready);
        assert_eq!(
            not.reason.as_deref(),
            Some("a: starting: initialising the transactional producer")
        );
        r.producer_ready("a");
        r.step("a", "waiting for a partition assignment");
        assert_eq!(
            r.readiness().reason.as_deref(),
            Some("a: starting: waiting for a partition assignment")
        );
        r.assigned("a", 3);
        assert!(r.readiness().ready, "{:?}", r.readiness());
        assert_eq!(r.get("a").unwrap().phase, Phase::Running);
        // Losing the broker, and getting it back.
        r.broker_lost("a", "1/1 brokers are down");
        assert_eq!(
            r.readiness().reason.as_deref(),
            Some("a: broker lost: 1/1 brokers are down")
        );
        r.broker_back("a");
        assert!(r.readiness().ready);
        // A rebalance that takes every partition away.
        r.assigned("a", 0);
        assert_eq!(
            r.readiness().reason.as_deref(),
            Some("a: no source partitions assigned")
        );
        r.assigned("a", 1);
        // A second topology that is still starting holds the process back.
        r.starting("b", "loading the model registry");
        assert_eq!(
            r.readiness().reason.as_deref(),
            Some("b: starting: loading the model registry")
        );
        r.producer_ready("b");
        r.assigned("b", 1);
        assert!(r.readiness().ready);
        r.draining("a");
        assert_eq!(
            r.readiness().reason.as_deref(),
            Some("a: draining: stopping after the current window")
        );
        r.stopped("a", "finished");
        assert_eq!(
            r.readiness().reason.as_deref(),
            Some("a: stopped: finished")
        );
        // A restart starts from scratch.
        r.starting("a", "initialising the transactional producer");
        r.producer_ready("a");
        r.assigned("a", 2);
        assert!(r.readiness().ready);
    }

    #[test]
    fn drift_streak_counts_until_a_publish() {
        let mut s = DriftStreak::new("streak-test");
        assert_eq!(s.window(true, false), 1);
        assert_eq!(s.window(true, false), 2);
        assert_eq!(s.window(true, true), 0, "a published refit resolves it");
        assert_eq!(s.window(true, false), 1);
        assert_eq!(s.window(false, false), 0, "a window back to OK/WARN too");
    }

    fn get(addr: &str, request: &str) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn listener_serves_metrics_livez_and_readyz() {
        static REG: OnceLock<Registry> = OnceLock::new();
        let reg = REG.get_or_init(Registry::default);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        serve(listener, reg, Arc::new(|| "resynth_up 1\n".to_string()));
        let req = |path: &str| get(&addr, &format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"));

        let live = req("/livez");
        assert!(live.starts_with("HTTP/1.1 200 OK\r\n"), "{live}");
        assert!(live.ends_with("{\"status\":\"alive\"}\n"));
        let ready = req("/readyz");
        assert!(ready.starts_with("HTTP/1.1 503 "), "{ready}");
        assert!(
            ready.contains("\"reason\":\"no engine running\""),
            "{ready}"
        );
        reg.starting("t", "initialising the transactional producer");
        let ready = req("/readyz?verbose=1");
        assert!(ready.starts_with("HTTP/1.1 503 "), "{ready}");
        assert!(ready.contains("t: starting: initialising"), "{ready}");
        assert!(ready.contains("Content-Type: application/json"), "{ready}");
        reg.producer_ready("t");
        reg.assigned("t", 2);
        let ready = req("/readyz");
        assert!(ready.starts_with("HTTP/1.1 200 OK\r\n"), "{ready}");
        assert!(ready.contains("\"ready\":true"), "{ready}");
        assert!(ready.contains("\"assigned_partitions\":2"), "{ready}");
        let m = req("/metrics");
        assert!(m.starts_with("HTTP/1.1 200 OK\r\n"), "{m}");
        assert!(m.contains("text/plain; version=0.0.4"));
        assert!(m.ends_with("\r\n\r\nresynth_up 1\n"), "{m}");
        assert!(m.contains("Content-Length: 13\r\n"), "{m}");
        let head = get(&addr, "HEAD /livez HTTP/1.1\r\n\r\n");
        assert!(
            head.starts_with("HTTP/1.1 200") && head.ends_with("\r\n\r\n"),
            "{head}"
        );
        assert!(req("/nope").starts_with("HTTP/1.1 404 "));
        let post = get(&addr, "POST /readyz HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
        assert!(post.starts_with("HTTP/1.1 405 "), "{post}");
    }
}
