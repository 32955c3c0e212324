//! Event-time window options end to end against a real Apache Kafka broker:
//! sliding windows, merging small windows forward, and backpressure. Each
//! test checks that every event is accounted for and every offset committed.

mod common;

use std::time::Duration;

use resynth::engine::{self, Progress, RunOptions, RunSummary};
use resynth::schema::RecordSchema;
use resynth::source::load::{LoadPlan, Loaded, load_topic};
use resynth::source::simulator::{Simulator, SimulatorConfig};
use resynth::topology::{EventFormat, MinRowsPolicy, Topology};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Windows closed (start, events), in order, plus the run summary.
struct Run {
    windows: Vec<(i64, usize)>,
    summary: RunSummary,
    loaded: Loaded,
    sim: Simulator,
}

fn load_and_run(
    topo: &Topology,
    windows: usize,
    partitions: i32,
    rt: &tokio::runtime::Runtime,
) -> Run {
    let brokers = common::kafka();
    let topics = common::all_topics(topo);
    rt.block_on(common::create_topics(
        brokers,
        &topics.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        partitions,
    ));
    let schema = RecordSchema::load(&topo.source.schema).unwrap();
    let sim = Simulator::new(SimulatorConfig {
        patients: 4000,
        window_ms: 3_600_000,
        seed: 5,
        ..Default::default()
    });
    let loaded = load_topic(
        brokers,
        &topo.kafka.source_topic,
        &sim,
        &schema,
        &LoadPlan {
            windows,
            max_events: None,
            corrupt: 0,
            late: 0,
            format: EventFormat::Avro,
        },
    )
    .unwrap();
    let mut closed = Vec::new();
    let summary = engine::run(
        topo,
        brokers,
        &RunOptions {
            idle_exit: Some(Duration::from_secs(3)),
            ..Default::default()
        },
        rt.handle(),
        &mut |p| {
            if let Progress::WindowClosed {
                start_ms, events, ..
            } = p
            {
                closed.push((start_ms, events));
            }
        },
    )
    .unwrap();
    assert_eq!(
        common::committed(brokers, &topo.kafka.group_id, &topo.kafka.source_topic),
        common::high_watermarks(brokers, &topo.kafka.source_topic),
        "every offset committed"
    );
    assert_eq!(summary.events_in as usize, loaded.good);
    Run {
        windows: closed,
        summary,
        loaded,
        sim,
    }
}

/// 1 h windows every 30 min: each event is in exactly two windows, stored
/// once; the windows are consecutive half-hour starts.
#[test]
fn sliding_windows_hold_each_event_twice_and_commit_everything() {
    let rt = rt();
    let id = common::unique("slide");
    let dir = tempfile::tempdir().unwrap();
    let mut topo = common::topology(common::kafka(), &id, dir.path());
    topo.window.slide_secs = Some(1800);
    topo.window.min_rows = 100;
    // Lab results arrive out of order by more than the watermark delay now and
    // then; an hour of allowed lateness keeps every window open for them.
    topo.window.allowed_lateness_secs = 3600;
    let run = load_and_run(&topo, 4, 2, &rt);
    let starts: Vec<i64> = run.windows.iter().map(|w| w.0).collect();
    assert_eq!(starts.len(), 9, "{starts:?}");
    assert!(starts.windows(2).all(|p| p[1] - p[0] == 1_800_000));
    let held: usize = run.windows.iter().map(|w| w.1).sum();
    assert_eq!(
        held,
        2 * run.loaded.good,
        "each event in exactly two windows"
    );
    assert_eq!(run.summary.late, 0);
    assert_eq!(run.summary.late_partial, 0);
    assert_eq!(run.summary.windows_closed, 9);
}

/// Windows of ~3,000 patients are below min_rows = 3,500; two together
/// (~3,750 distinct patients) are not. Merged forward, 4 hourly windows
/// become 2 processed ones, each starting at its first window's start.
#[test]
fn small_windows_merge_forward_without_losing_events() {
    let rt = rt();
    let id = common::unique("merge");
    let dir = tempfile::tempdir().unwrap();
    let mut topo = common::topology(common::kafka(), &id, dir.path());
    topo.window.min_rows = 3500;
    topo.window.min_rows_policy = MinRowsPolicy::MergeForward;
    let run = load_and_run(&topo, 4, 1, &rt);
    assert_eq!(run.summary.windows_merged, 2, "{:?}", run.summary);
    assert_eq!(run.summary.windows_closed, 2);
    assert_eq!(run.summary.windows_skipped, 0);
    let start = run.sim.config().start_ms;
    let starts: Vec<i64> = run.windows.iter().map(|w| w.0).collect();
    assert_eq!(starts, vec![start, start + 2 * 3_600_000]);
    let held: usize = run.windows.iter().map(|w| w.1).sum();
    assert_eq!(held, run.loaded.good);
    assert!(run.summary.batches_published >= 1);
    let audit = resynth::audit::verify(&topo.audit.dir.join("audit.jsonl")).unwrap();
    assert_eq!(
        audit
            .iter()
            .filter(|e| e.kind == "window_merged_forward")
            .count(),
        2
    );
}

/// A ceiling far below one window's events: the engine pauses the partition
/// ahead of the watermark, yields when only the paused one can move it, and
/// still windows every event once.
#[test]
fn backpressure_pauses_partitions_and_loses_nothing() {
    let rt = rt();
    let id = common::unique("pressure");
    let dir = tempfile::tempdir().unwrap();
    let mut topo = common::topology(common::kafka(), &id, dir.path());
    topo.window.max_buffered_rows = 2_000;
    let run = load_and_run(&topo, 3, 2, &rt);
    assert!(
        run.summary.backpressure_pauses >= 1,
        "never paused: {:?}",
        run.summary
    );
    assert_eq!(run.summary.windows_closed, 3);
    let held: usize = run.windows.iter().map(|w| w.1).sum();
    assert_eq!(held, run.loaded.good, "every event windowed exactly once");
}
