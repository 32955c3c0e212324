//! Restarts change nothing (issue 12), against a real Apache Kafka broker:
//! one source topic, read by an uninterrupted run and by a run that stops
//! after every window and starts again, as an operator's restarts would. The
//! two publish the same batches, record by record, because a window's output
//! depends only on its contents (canonical row order, split seeded by the
//! window's start) and the drift monitor's streak and the model versions are
//! resumed from the engine state committed in Kafka. The same holds for
//! the real binary killed (SIGKILL, as `kill -9`) at each of its kill points
//! in turn: mid-fit, mid-gate, between `send_offsets_to_transaction` and
//! the commit, right after the commit and part-way through the audit
//! entries that follow it.

mod common;

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use resynth::engine::{self, RunOptions, RunSummary};
use resynth::schema::RecordSchema;
use resynth::source::load::{LoadPlan, load_topic};
use resynth::source::simulator::{DriftSpec, Simulator, SimulatorConfig};
use resynth::topology::{EventFormat, Topology};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Key → (payload, batch id) of every committed record of `topic`.
fn by_key(brokers: &str, topic: &str) -> BTreeMap<Vec<u8>, (Vec<u8>, Option<String>)> {
    let records = common::read_all(brokers, topic);
    let n = records.len();
    let map: BTreeMap<_, _> = records
        .into_iter()
        .map(|r| {
            let batch = r.header("resynth.batch_id");
            (r.key.clone().unwrap_or_default(), (r.payload, batch))
        })
        .collect();
    assert_eq!(map.len(), n, "{topic}: a key published twice");
    map
}

/// Version → model content hash of every model record in the registry.
fn registry(audit_dir: &Path, name: &str) -> BTreeMap<u64, String> {
    let dir = audit_dir.join("models").join(name);
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        if let Some(v) = file.strip_prefix('v').and_then(|s| s.strip_suffix(".json")) {
            let record: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            out.insert(
                v.parse().unwrap(),
                record["sha256"].as_str().unwrap().to_string(),
            );
        }
    }
    out
}

/// Audit entries of `kind` in a log whose chain verifies.
fn audited(audit_dir: &Path, kind: &str) -> usize {
    resynth::audit::verify(&audit_dir.join("audit.jsonl"))
        .expect("the audit chain verifies")
        .iter()
        .filter(|e| e.kind == kind)
        .count()
}

/// Two runs of one topology (same name, so the same batch ids; each with
/// its own group, transactional id, outputs and audit dir, `a` and `second`)
/// over one 3-partition source topic, loaded with `windows` windows of a
/// simulated population drifting from `drift_from`, 3 corrupt and 2 late
/// events. Three partitions: the two runs' consumers interleave them
/// differently.
struct Scenario {
    brokers: &'static str,
    rt: tokio::runtime::Runtime,
    dir: tempfile::TempDir,
    id: String,
    a: Topology,
    b: Topology,
    loaded: resynth::source::load::Loaded,
}

fn scenario(
    tag: &str,
    second: &str,
    patients: usize,
    drift_from: usize,
    seed: u64,
    windows: usize,
) -> Scenario {
    let brokers = common::kafka();
    let rt = rt();
    let id = common::unique(tag);
    let dir = tempfile::tempdir().unwrap();
    let source = format!("{id}.labs");
    let topology = |run: &str| -> Topology {
        let mut t = common::topology(brokers, &format!("{id}-{run}"), &dir.path().join(run));
        t.name = id.clone();
        t.kafka.source_topic = source.clone();
        t.kafka.transactional_id = Some(format!("{id}-{run}"));
        t
    };
    let (a, b) = (topology("a"), topology(second));
    let mut topics = common::all_topics(&a);
    topics.extend(common::all_topics(&b).into_iter().skip(1));
    rt.block_on(common::create_topics(
        brokers,
        &topics.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        3,
    ));
    let schema = RecordSchema::load(&a.source.schema).unwrap();
    let sim = Simulator::new(SimulatorConfig {
        patients,
        window_ms: (a.window.size_secs * 1000) as i64,
        drift: Some(DriftSpec {
            start_window: drift_from,
            columns: vec!["hba1c".into(), "glucose".into()],
            size: 1.0,
        }),
        seed,
        ..Default::default()
    });
    let loaded = load_topic(
        brokers,
        &source,
        &sim,
        &schema,
        &LoadPlan {
            windows,
            max_events: None,
            corrupt: 3,
            late: 2,
            format: EventFormat::Avro,
        },
    )
    .unwrap();
    Scenario {
        brokers,
        rt,
        dir,
        id,
        a,
        b,
        loaded,
    }
}

#[test]
fn restarting_after_every_window_publishes_what_an_uninterrupted_run_does() {
    // Persistent from window 2: with persist_k = 2 of 3, the refit is
    // decided on window 3, one restart after window 2 drifted first.
    let Scenario {
        brokers,
        rt,
        dir,
        id,
        a,
        b,
        loaded,
    } = scenario("restore", "b", 3000, 2, 23, 5);

    let run = |t: &Topology, max_windows: Option<u64>| -> RunSummary {
        let options = RunOptions {
            max_windows,
            idle_exit: Some(Duration::from_secs(3)),
            ..Default::default()
        };
        engine::run(t, brokers, &options, rt.handle(), &mut |_| {}).unwrap()
    };
    let whole = run(&a, None);
    assert_eq!(whole.windows_closed, 5, "{whole:?}");
    assert!(
        whole.refits >= 2,
        "an initial fit and a drift refit: {whole:?}"
    );

    let mut restarts = Vec::new();
    loop {
        let s = run(&b, Some(1));
        if s.windows_closed == 0 && s.events_in == 0 {
            break;
        }
        restarts.push(s);
        assert!(restarts.len() <= 10, "the restarted run never drains");
    }
    let sum = |f: fn(&RunSummary) -> u64| restarts.iter().map(f).sum::<u64>();
    assert_eq!(
        sum(|s| s.windows_closed),
        5,
        "each window once: {restarts:?}"
    );
    assert_eq!(sum(|s| s.refits), whole.refits, "the drift refit survives");
    assert_eq!(sum(|s| s.batches_published), whole.batches_published);
    assert_eq!(sum(|s| s.late), whole.late);
    assert_eq!(whole.late, loaded.late as u64);

    // Record by record, byte for byte.
    let (out_a, out_b) = (
        by_key(brokers, &a.output.topic),
        by_key(brokers, &b.output.topic),
    );
    assert!(!out_a.is_empty());
    assert_eq!(
        out_a.keys().collect::<Vec<_>>(),
        out_b.keys().collect::<Vec<_>>(),
        "the same records"
    );
    for (k, (payload, batch)) in &out_a {
        let (p, bt) = &out_b[k];
        assert_eq!(batch, bt, "batch of {k:?}");
        assert!(payload == p, "record {k:?} differs between the runs");
    }
    // Dead letters and late events, each exactly once, with their bytes.
    let dlq_a = common::sorted_payloads(brokers, &a.kafka.dead_letter_topic);
    assert_eq!(dlq_a.len(), loaded.corrupt_payloads.len());
    assert_eq!(
        dlq_a,
        common::sorted_payloads(brokers, &b.kafka.dead_letter_topic)
    );
    let late =
        |t: &Topology| common::sorted_payloads(brokers, t.kafka.late_topic.as_ref().unwrap());
    assert_eq!(late(&a).len(), loaded.late);
    assert_eq!(late(&a), late(&b));
    // The same registry versions with the same model contents.
    let reg_a = registry(&dir.path().join("a"), &id);
    assert_eq!(reg_a.len() as u64, whole.refits);
    assert_eq!(reg_a, registry(&dir.path().join("b"), &id));
    // Audit chains that verify, one batch_published entry per batch.
    for run in ["a", "b"] {
        assert_eq!(
            audited(&dir.path().join(run), "batch_published") as u64,
            whole.batches_published,
            "run {run}"
        );
    }
}

/// Every committed output of a run, for comparing two runs.
struct Outputs {
    /// Key → (payload, batch id); a key seen twice counts as a duplicate.
    records: BTreeMap<Vec<u8>, (Vec<u8>, Option<String>)>,
    duplicates: usize,
    dead_letters: Vec<Vec<u8>>,
    late: Vec<Vec<u8>>,
    registry: BTreeMap<u64, String>,
    batches_audited: usize,
}

fn outputs(brokers: &str, t: &Topology) -> Outputs {
    let read = common::read_all(brokers, &t.output.topic);
    let n = read.len();
    let records: BTreeMap<_, _> = read
        .into_iter()
        .map(|r| {
            let batch = r.header("resynth.batch_id");
            (r.key.clone().unwrap_or_default(), (r.payload, batch))
        })
        .collect();
    Outputs {
        duplicates: n - records.len(),
        records,
        dead_letters: common::sorted_payloads(brokers, &t.kafka.dead_letter_topic),
        late: common::sorted_payloads(brokers, t.kafka.late_topic.as_ref().unwrap()),
        registry: registry(&t.audit.dir, &t.name),
        batches_audited: audited(&t.audit.dir, "batch_published"),
    }
}

/// How one run ends: at a kill point's n-th arrival, or `kill -9` after a
/// delay (wherever it lands).
#[derive(Debug, Clone)]
enum Kill {
    At(String),
    After(Duration),
    /// Frozen (SIGSTOP) at a kill point for `hold`, then SIGCONT: the run
    /// must go on to the end by itself.
    Freeze {
        at: String,
        hold: Duration,
    },
}

/// One `resynth run` of the real binary: whether it was killed, and its
/// `--json` summary if it ran to the end of the input.
fn run_binary(
    topology: &Path,
    kill: Option<&Kill>,
    log: &Path,
) -> (bool, Option<serde_json::Value>) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_resynth"));
    c.args([
        "run",
        topology.to_str().unwrap(),
        "--until-idle",
        "3",
        "--json",
    ])
    .env("RUST_LOG", "warn")
    .stdout(Stdio::piped())
    .stderr(std::fs::File::create(log).unwrap());
    match kill {
        Some(Kill::At(k)) => {
            c.env("RESYNTH_KILL_AT", k);
        }
        Some(Kill::Freeze { at, .. }) => {
            c.env("RESYNTH_KILL_AT", at)
                .env("RESYNTH_KILL_SIGNAL", "SIGSTOP");
        }
        _ => {}
    }
    let child = c.spawn().unwrap();
    let pid = child.id();
    // The timed kill and the hold are the faults injected, not waits for
    // anything; both are called off once the run has ended, so they never
    // hit a reused pid.
    let (ended, ends) = std::sync::mpsc::channel::<()>();
    let timer = match kill {
        Some(Kill::After(d)) => {
            let d = *d;
            Some(std::thread::spawn(move || {
                if ends.recv_timeout(d).is_err() {
                    let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
                }
            }))
        }
        Some(Kill::Freeze { hold, .. }) => {
            let hold = *hold;
            Some(std::thread::spawn(move || {
                // Until the engine stops itself at its point (or ends
                // without reaching it)...
                while !stopped(pid) {
                    if ends.recv_timeout(Duration::from_millis(20)).is_ok() {
                        return;
                    }
                }
                // ...then frozen for `hold`, as a long GC pause would.
                std::thread::sleep(hold);
                let _ = Command::new("kill")
                    .args(["-CONT", &pid.to_string()])
                    .status();
            }))
        }
        _ => None,
    };
    let out = child.wait_with_output().unwrap();
    let _ = ended.send(());
    if let Some(t) = timer {
        t.join().unwrap();
    }
    // SIGKILL: sent only by a kill point or the timer.
    if out.status.signal() == Some(9) {
        return (true, None);
    }
    let err = std::fs::read_to_string(log).unwrap_or_default();
    assert!(
        out.status.success(),
        "run (kill {kill:?}) exited {:?}: {err}",
        out.status
    );
    (
        false,
        Some(common::json_summary(&String::from_utf8_lossy(&out.stdout))),
    )
}

/// Whether `pid` is stopped by a signal (state `T` in /proc/<pid>/stat).
fn stopped(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // The state follows the command name's closing parenthesis.
            let rest = &s[s.rfind(')')? + 1..];
            rest.split_whitespace().next().map(|st| st == "T")
        })
        .unwrap_or(false)
}

/// What a run with kills changed against the uninterrupted one.
#[derive(Debug, Default, PartialEq)]
struct Figures {
    kills: usize,
    /// Starts again after a Kafka error, inside the runs (`restarts`).
    restarts: u64,
    batches_expected: usize,
    batches_seen: usize,
    records_lost: usize,
    records_duplicated: usize,
    records_changed: usize,
    dead_letter_mismatches: usize,
    /// Late events not routed exactly as the uninterrupted run routed them.
    late_mismatches: usize,
    registry_mismatches: usize,
    audit_mismatches: usize,
}

fn batches(o: &Outputs) -> usize {
    o.records
        .values()
        .filter_map(|(_, b)| b.as_ref())
        .collect::<std::collections::BTreeSet<_>>()
        .len()
}

/// Loads one source, runs it uninterrupted in process, then with the real
/// binary killed by each of `schedule` in turn (then unharmed runs until
/// one finds nothing to do), and compares every committed output.
fn killed_run(tag: &str, schedule: &[Kill]) -> Figures {
    killed_run_with(tag, schedule, &[])
}

/// [`killed_run`] with extra client properties for the harmed runs.
fn killed_run_with(tag: &str, schedule: &[Kill], properties: &[(&str, &str)]) -> Figures {
    let Scenario {
        brokers,
        rt,
        dir,
        a,
        b: mut c,
        loaded,
        ..
    } = scenario(tag, "c", 2000, 1, 29, 4);
    for (k, v) in properties {
        c.kafka.properties.insert(*k, *v);
    }
    let options = RunOptions {
        idle_exit: Some(Duration::from_secs(3)),
        ..Default::default()
    };
    let whole = engine::run(&a, brokers, &options, rt.handle(), &mut |_| {}).unwrap();
    assert_eq!(whole.windows_closed, 4, "{whole:?}");
    assert!(
        whole.refits >= 2,
        "an initial fit and a drift refit: {whole:?}"
    );

    let file = dir.path().join("c.toml");
    std::fs::write(&file, toml::to_string(&c).unwrap()).unwrap();
    let (mut kills, mut restarts) = (0, 0);
    for (i, k) in schedule.iter().enumerate() {
        let (killed, s) = run_binary(&file, Some(k), &dir.path().join(format!("c{i}.log")));
        kills += killed as usize;
        restarts += s.map_or(0, |s| s["restarts"].as_u64().unwrap());
    }
    for i in 0.. {
        assert!(i < 5, "the killed run never drains");
        let (_, s) = run_binary(&file, None, &dir.path().join(format!("end{i}.log")));
        let s = s.unwrap();
        if s["windows_closed"] == 0 && s["events_in"] == 0 {
            break;
        }
    }

    let (oa, oc) = (outputs(brokers, &a), outputs(brokers, &c));
    eprintln!(
        "late events: uninterrupted {}, killed {}",
        oa.late.len(),
        oc.late.len()
    );
    assert!(!oa.records.is_empty() && oa.duplicates == 0);
    assert_eq!(oa.dead_letters.len(), loaded.corrupt_payloads.len());
    // Lateness is decided in each partition's own order, so the planted
    // late events (window 0's first events, sent again after window 3's) are
    // late in every run, however the consumer interleaves the partitions.
    assert_eq!(oa.late.len(), loaded.late, "{whole:?}");
    assert_eq!(oa.late.len() as u64, whole.late);
    assert_eq!(oa.registry.len() as u64, whole.refits);
    assert_eq!(oa.batches_audited as u64, whole.batches_published);
    // The log must also agree with the anchors on the topics.
    let verify = Command::new(env!("CARGO_BIN_EXE_resynth"))
        .args(["audit", "verify"])
        .arg(c.audit.dir.join("audit.jsonl"))
        .args(["--brokers", brokers, "--topology"])
        .arg(&file)
        .output()
        .unwrap();
    if !verify.status.success() {
        eprintln!(
            "audit verify --brokers: {}{}",
            String::from_utf8_lossy(&verify.stdout),
            String::from_utf8_lossy(&verify.stderr)
        );
    }
    Figures {
        kills,
        restarts,
        batches_expected: batches(&oa),
        batches_seen: batches(&oc),
        records_lost: oa
            .records
            .keys()
            .filter(|k| !oc.records.contains_key(*k))
            .count(),
        records_duplicated: oc.duplicates
            + oc.records
                .keys()
                .filter(|k| !oa.records.contains_key(*k))
                .count(),
        records_changed: oa
            .records
            .iter()
            .filter(|(k, v)| oc.records.get(*k).is_some_and(|w| w != *v))
            .count(),
        dead_letter_mismatches: mismatches(&oa.dead_letters, &oc.dead_letters),
        late_mismatches: mismatches(&oa.late, &oc.late),
        registry_mismatches: oa
            .registry
            .iter()
            .filter(|(v, h)| oc.registry.get(*v) != Some(*h))
            .count()
            + oc.registry
                .keys()
                .filter(|v| !oa.registry.contains_key(*v))
                .count(),
        audit_mismatches: oa.batches_audited.abs_diff(oc.batches_audited)
            + usize::from(!verify.status.success()),
    }
}

/// Payloads in one sorted list and not the other, as multisets (one
/// routed twice counts once).
fn mismatches(x: &[Vec<u8>], y: &[Vec<u8>]) -> usize {
    let (mut i, mut j, mut n) = (0, 0, 0);
    while i < x.len() && j < y.len() {
        match x[i].cmp(&y[j]) {
            std::cmp::Ordering::Equal => (i, j) = (i + 1, j + 1),
            std::cmp::Ordering::Less => (i, n) = (i + 1, n + 1),
            std::cmp::Ordering::Greater => (j, n) = (j + 1, n + 1),
        }
    }
    n + (x.len() - i) + (y.len() - j)
}

/// The figures of a run with kills, against what an unharmed one gives.
fn assert_unchanged(f: &Figures) {
    let clean = Figures {
        kills: f.kills,
        restarts: f.restarts,
        batches_expected: f.batches_expected,
        batches_seen: f.batches_expected,
        ..Figures::default()
    };
    assert_eq!(f, &clean, "kills changed what was published");
}

/// Each kill point in turn, at its first and at a later arrival (a run that
/// never reaches its point runs to the end of the input).
#[test]
fn kill_9_at_every_kill_point_changes_nothing() {
    let schedule: Vec<Kill> = [
        "fitted:1",
        "gated:1",
        "before_commit:1",
        "after_commit:1",
        "mid_audit:1",
        "gated:2",
        "before_commit:2",
        "after_commit:2",
        "fitted:2",
        "mid_audit:2",
    ]
    .iter()
    .map(|k| Kill::At(k.to_string()))
    .collect();
    let f = killed_run("kill9", &schedule);
    eprintln!("{f:?}");
    assert!(f.kills >= 6, "the schedule must mostly kill: {f:?}");
    assert_unchanged(&f);
}

/// Issue 12, defect 6: frozen mid-window past `session.timeout.ms` (as a
/// broker pause or a long GC pause freezes the heartbeats), the engine loses
/// its group membership; its transaction is refused ("Unknown member"), and
/// before the supervisor it exited 2. Now the same process starts again from
/// the committed state and the output is what an unharmed run publishes.
#[test]
fn frozen_past_the_session_timeout_the_run_goes_on_and_changes_nothing() {
    let schedule = [Kill::Freeze {
        at: "gated:2".into(),
        hold: Duration::from_secs(10),
    }];
    let f = killed_run_with(
        "freeze",
        &schedule,
        &[
            ("session.timeout.ms", "6000"),
            ("heartbeat.interval.ms", "1000"),
        ],
    );
    eprintln!("{f:?}");
    assert_eq!(f.kills, 0, "{f:?}");
    assert!(
        f.restarts >= 1,
        "a membership lost mid-window costs the run one start: {f:?}"
    );
    assert_unchanged(&f);
}

/// The bench: `RESYNTH_KILLS` (default 100) kills, half at random kill
/// points and arrivals, half by `kill -9` after a random delay, seeded by
/// `RESYNTH_KILL_SEED`; prints the figures, then requires them clean.
/// `cargo test --release --test restore_kafka kill_bench -- --ignored --nocapture`
#[test]
#[ignore = "bench: minutes per hundred kills"]
fn kill_bench() {
    let n: usize = std::env::var("RESYNTH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let mut seed: u64 = std::env::var("RESYNTH_KILL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    // splitmix64: no dependency for a handful of draws.
    let mut next = move || {
        seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let schedule: Vec<Kill> = (0..n)
        .map(|i| {
            if i % 2 == 0 {
                let points = resynth::kill_point::POINTS;
                let p = points[(next() % points.len() as u64) as usize];
                Kill::At(format!("{p}:{}", 1 + next() % 3))
            } else {
                Kill::After(Duration::from_millis(500 + next() % 8_000))
            }
        })
        .collect();
    let started = std::time::Instant::now();
    let f = killed_run("kill-bench", &schedule);
    println!(
        "kill bench: {} kills of {n} runs in {:.0} s; batches expected {} / seen {}; \
         records lost {}, duplicated {}, changed {}; dead-letter mismatches {}, late {}, \
         registry {}, audit {} (target: all 0)",
        f.kills,
        started.elapsed().as_secs_f64(),
        f.batches_expected,
        f.batches_seen,
        f.records_lost,
        f.records_duplicated,
        f.records_changed,
        f.dead_letter_mismatches,
        f.late_mismatches,
        f.registry_mismatches,
        f.audit_mismatches
    );
    assert_unchanged(&f);
}
