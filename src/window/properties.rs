//! Property tests of the windower: out-of-order arrival, lateness, idle
//! partitions, exact boundaries and restarts, over random window geometries.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use datafusion::arrow::array::{Array, Int64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use proptest::prelude::*;

use super::{ClosedWindow, WindowSpec, Windower};
use crate::schema::decode::DecodedBatch;

fn sp(partition: i32) -> crate::window::SourcePartition {
    crate::window::SourcePartition::new(0, partition)
}

/// One source event: id, event time, partition, offset within its partition.
#[derive(Debug, Clone, Copy)]
struct Event {
    id: i64,
    t: i64,
    partition: i32,
    offset: i64,
}

fn batch(events: &[Event]) -> DecodedBatch {
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
    DecodedBatch {
        batch: RecordBatch::try_new(
            schema,
            vec![Arc::new(Int64Array::from(
                events.iter().map(|e| e.id).collect::<Vec<_>>(),
            ))],
        )
        .unwrap(),
        event_time_ms: events.iter().map(|e| e.t).collect(),
        partition: events.iter().map(|e| e.partition).collect(),
        offset: events.iter().map(|e| e.offset).collect(),
    }
}

fn ids(w: &ClosedWindow) -> BTreeSet<i64> {
    w.batches
        .values()
        .flatten()
        .flat_map(|b| {
            let a = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
            (0..a.len()).map(|i| a.value(i)).collect::<Vec<_>>()
        })
        .collect()
}

/// The windows holding `t`, by start.
fn windows_of(spec: WindowSpec, t: i64) -> Vec<i64> {
    let last = t.div_euclid(spec.slide_ms) * spec.slide_ms;
    let mut s = last;
    let mut out = Vec::new();
    while s + spec.size_ms > t {
        out.push(s);
        s -= spec.slide_ms;
    }
    out
}

/// Every event of `events` by window start, as the definition says.
fn expected(spec: WindowSpec, events: &[Event]) -> BTreeMap<i64, BTreeSet<i64>> {
    let mut out: BTreeMap<i64, BTreeSet<i64>> = BTreeMap::new();
    for e in events {
        for s in windows_of(spec, e.t) {
            out.entry(s).or_default().insert(e.id);
        }
    }
    out
}

/// Feeds events in the given order, in chunks, advancing after each; routes
/// too-late events aside. Returns the closed windows by start (a window
/// closed twice fails) and the ids routed late.
fn run(
    spec: WindowSpec,
    events: &[Event],
    chunk: usize,
    partitions: &[i32],
) -> (
    BTreeMap<i64, BTreeSet<i64>>,
    BTreeSet<i64>,
    Vec<ClosedWindow>,
) {
    let mut w = Windower::new(spec);
    w.assign(&partitions.iter().map(|&p| sp(p)).collect::<Vec<_>>());
    let mut closed = Vec::new();
    let mut late = BTreeSet::new();
    for part in events.chunks(chunk.max(1)) {
        late.extend(feed(&mut w, part));
        closed.extend(w.advance());
    }
    closed.extend(w.flush());
    assert_eq!(w.buffered_rows(), 0, "flush releases every pane");
    assert!(w.held_offsets().is_empty());
    let mut by_start = BTreeMap::new();
    for c in &closed {
        assert_eq!(c.end_ms - c.start_ms, spec.size_ms);
        assert_eq!(c.start_ms.rem_euclid(spec.slide_ms), 0);
        assert!(
            by_start.insert(c.start_ms, ids(c)).is_none(),
            "window {} closed twice",
            c.start_ms
        );
    }
    (by_start, late, closed)
}

/// Pushes one batch as the engine does (cut by pane, too-late rows
/// diverted); returns the ids routed late.
fn feed(w: &mut Windower, part: &[Event]) -> Vec<i64> {
    let decoded = batch(part);
    let pieces = super::split_by_pane(&decoded, w.spec().pane_ms(), 0);
    let (keep, late) = w.divert_late(&decoded, pieces);
    w.push_pieces(keep);
    late.into_iter().map(|r| part[r as usize].id).collect()
}

/// The same per-partition sequences, interleaved by a seeded random choice
/// of the next partition (each partition keeps its own order).
fn interleave(evs: &[Event], seed: u64) -> Vec<Event> {
    let mut queues: Vec<std::collections::VecDeque<Event>> = vec![Default::default(); 3];
    for e in evs {
        queues[e.partition as usize].push_back(*e);
    }
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
    let mut out = Vec::with_capacity(evs.len());
    while queues.iter().any(|q| !q.is_empty()) {
        let live: Vec<usize> = (0..3).filter(|&i| !queues[i].is_empty()).collect();
        let pick = live[rand::Rng::random_range(&mut rng, 0..live.len())];
        out.push(queues[pick].pop_front().unwrap());
    }
    out
}

/// Windows and late events by definition: in each partition's own order,
/// an event is late when an earlier, not late event of its partition had
/// passed the event's last window end by the delay plus the allowed
/// lateness; otherwise it is in each of its windows that ends after that
/// mark.
fn by_definition(spec: WindowSpec, evs: &[Event]) -> (BTreeMap<i64, BTreeSet<i64>>, BTreeSet<i64>) {
    let w = Windower::new(spec);
    let behind = spec.delay_ms + spec.allowed_lateness_ms;
    let mut max: BTreeMap<i32, i64> = BTreeMap::new();
    let mut windows: BTreeMap<i64, BTreeSet<i64>> = BTreeMap::new();
    let mut late = BTreeSet::new();
    for e in evs {
        let reach = max.get(&e.partition).map_or(i64::MIN, |m| m - behind);
        if w.last_end(e.t) <= reach {
            late.insert(e.id);
            continue;
        }
        for s in windows_of(spec, e.t) {
            if s + spec.size_ms > reach {
                windows.entry(s).or_default().insert(e.id);
            }
        }
        let m = max.entry(e.partition).or_insert(e.t);
        *m = (*m).max(e.t);
    }
    (windows, late)
}

fn geometry() -> impl Strategy<Value = WindowSpec> {
    (1i64..6, 1i64..4, 0i64..30, 0i64..30).prop_map(|(panes, slides, delay, lateness)| {
        let slide = 10 * slides;
        let size = slide * panes;
        WindowSpec {
            size_ms: size,
            slide_ms: slide,
            delay_ms: delay,
            allowed_lateness_ms: lateness,
        }
    })
}

fn events(max: usize, horizon: i64) -> impl Strategy<Value = Vec<Event>> {
    prop::collection::vec((0..horizon, 0i32..3), 1..max).prop_map(|raw| {
        let mut next_offset = [0i64; 3];
        raw.into_iter()
            .enumerate()
            .map(|(i, (t, p))| {
                let offset = next_offset[p as usize];
                next_offset[p as usize] += 1;
                Event {
                    id: i as i64,
                    t,
                    partition: p,
                    offset,
                }
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// With the allowed lateness covering the whole disorder, any arrival
    /// order and chunking gives exactly the windows the definition gives.
    #[test]
    fn any_order_within_lateness_gives_the_defined_windows(
        spec in geometry(),
        evs in events(120, 400),
        order in any::<u64>(),
        chunk in 1usize..40,
    ) {
        let spec = WindowSpec { allowed_lateness_ms: 1_000, ..spec };
        let mut shuffled = evs.clone();
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(order);
        rand::seq::SliceRandom::shuffle(shuffled.as_mut_slice(), &mut rng);
        let (got, late, _) = run(spec, &shuffled, chunk, &[0, 1, 2]);
        prop_assert!(late.is_empty());
        prop_assert_eq!(got, expected(spec, &evs));
    }

    /// Beyond the allowed lateness: every event is either routed late, and
    /// then every window holding it was finalised before it arrived, or it is
    /// in every window holding it that closed after it arrived. Nothing is
    /// lost and nothing lands in an already finalised window.
    #[test]
    fn late_events_are_routed_never_dropped_or_added_to_final_windows(
        spec in geometry(),
        evs in events(150, 600),
        order in any::<u64>(),
        chunk in 1usize..20,
    ) {
        let mut shuffled = evs.clone();
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(order);
        rand::seq::SliceRandom::shuffle(shuffled.as_mut_slice(), &mut rng);
        let (got, late, _) = run(spec, &shuffled, chunk, &[0, 1, 2]);
        for e in &evs {
            let holding: Vec<i64> = windows_of(spec, e.t);
            let in_some = holding.iter().any(|s| got.get(s).is_some_and(|ids| ids.contains(&e.id)));
            if late.contains(&e.id) {
                prop_assert!(!in_some, "event {} routed late but also windowed", e.id);
            } else {
                prop_assert!(in_some, "event {} neither windowed nor routed", e.id);
            }
        }
        // A window's content is a subset of the definition's.
        let defined = expected(spec, &evs);
        for (s, ids) in &got {
            prop_assert!(ids.is_subset(&defined[s]));
        }
    }

    /// Lateness and window contents depend on each partition's contents, not
    /// on how the consumer interleaved or batched the partitions: any two
    /// interleavings and chunkings route exactly the events the definition
    /// calls late and give exactly its windows (the determinism a restart
    /// relies on).
    #[test]
    fn any_interleaving_routes_the_same_events_late(
        spec in geometry(),
        evs in events(150, 600),
        seeds in (any::<u64>(), any::<u64>()),
        chunks in (1usize..20, 1usize..20),
    ) {
        let one = interleave(&evs, seeds.0);
        let two = interleave(&evs, seeds.1);
        let (got_one, late_one, _) = run(spec, &one, chunks.0, &[0, 1, 2]);
        let (got_two, late_two, _) = run(spec, &two, chunks.1, &[0, 1, 2]);
        let (windows, late) = by_definition(spec, &evs);
        prop_assert_eq!(&late_one, &late);
        prop_assert_eq!(&got_one, &windows);
        prop_assert_eq!(late_one, late_two);
        prop_assert_eq!(got_one, got_two);
    }

    /// Exact boundaries: an event at a window's start is in it; at its end,
    /// it is in the next one.
    #[test]
    fn boundaries_are_half_open(spec in geometry(), k in -20i64..20) {
        let t = k * spec.slide_ms;
        let w = Windower::new(spec);
        let holding = windows_of(spec, t);
        prop_assert!(holding.contains(&t));
        prop_assert!(!holding.contains(&(t - spec.size_ms)));
        prop_assert_eq!(w.last_end(t), t + spec.size_ms);
        prop_assert_eq!(w.last_end(t - 1), t - spec.slide_ms + spec.size_ms);
    }

    /// A restart anywhere, over any interleaving: the second run resumes
    /// from the committed offsets, finality and per-partition maxima, skips
    /// late events the first run routed, and the union of both runs equals
    /// the definition: no window or late event lost, doubled or changed.
    #[test]
    fn restart_mid_window_loses_doubles_and_changes_nothing(
        spec in geometry(),
        evs in events(120, 500),
        crash_after in 0usize..120,
        chunk in 1usize..15,
        seeds in (any::<u64>(), any::<u64>()),
    ) {
        let (defined, defined_late) = by_definition(spec, &evs);
        // First run: commit after each chunk; crash after `crash_after` events.
        let first = interleave(&evs, seeds.0);
        let mut w = Windower::new(spec);
        w.assign(&[sp(0), sp(1), sp(2)]);
        let mut closed: BTreeMap<i64, BTreeSet<i64>> = BTreeMap::new();
        let mut late = BTreeSet::new();
        let mut read: BTreeMap<i32, i64> = BTreeMap::new();
        let mut committed = BTreeMap::new();
        let mut floors = BTreeMap::new();
        for part in first[..crash_after.min(first.len())].chunks(chunk) {
            late.extend(feed(&mut w, part));
            for e in part {
                read.insert(e.partition, e.offset + 1);
            }
            for c in w.advance() {
                prop_assert!(closed.insert(c.start_ms, ids(&c)).is_none());
            }
            let held = w.held_offsets();
            for (&p, &n) in &read {
                let at = held.get(&sp(p)).map_or(n, |&h| h.min(n));
                committed.insert(sp(p), at);
                if let Some(m) = w.max_event_before(sp(p), at) {
                    floors.insert(sp(p), m);
                }
            }
            w.committed(&committed);
        }
        // Second run, in another interleaving, from what was committed.
        let through = w.closed_through_ms();
        let mut w = Windower::new(spec);
        w.assign(&[sp(0), sp(1), sp(2)]);
        if let Some(c) = through {
            w.restore(c);
        }
        w.restore_reach(&floors);
        let replay: Vec<Event> = interleave(&evs, seeds.1)
            .into_iter()
            .filter(|e| e.offset >= committed.get(&sp(e.partition)).copied().unwrap_or(0))
            .collect();
        for part in replay.chunks(chunk) {
            for id in feed(&mut w, part) {
                let e = evs[id as usize];
                if e.offset < read.get(&e.partition).copied().unwrap_or(0) {
                    // Handled by the first run: routed, or in a final window.
                    prop_assert!(
                        late.contains(&id) || closed.values().any(|w| w.contains(&id)),
                        "replayed event {} late now, but the first run neither routed nor windowed it",
                        id
                    );
                } else {
                    prop_assert!(late.insert(id), "event {} routed late twice", id);
                }
            }
            for c in w.advance() {
                prop_assert!(closed.insert(c.start_ms, ids(&c)).is_none(), "window {} twice", c.start_ms);
            }
        }
        for c in w.flush() {
            prop_assert!(closed.insert(c.start_ms, ids(&c)).is_none(), "window {} twice", c.start_ms);
        }
        prop_assert_eq!(closed, defined);
        prop_assert_eq!(late, defined_late);
    }
}

/// An idle partition stops holding the watermark back and rejoins when it
/// delivers again; its old events are then too late, and say so.
#[test]
fn idle_partition_releases_and_rejoins_the_watermark() {
    let spec = WindowSpec::tumbling(100, 0);
    let mut w = Windower::new(spec);
    w.assign(&[sp(0), sp(1)]);
    let ev = |id, t, partition, offset| Event {
        id,
        t,
        partition,
        offset,
    };
    w.push(batch(&[ev(0, 10, 0, 0), ev(1, 20, 1, 0)]));
    w.push(batch(&[ev(2, 350, 0, 1)]));
    assert_eq!(w.watermark_ms(), Some(20), "partition 1 holds it back");
    assert!(w.advance().is_empty());
    assert_eq!(w.partitions_ahead(), vec![sp(0)]);
    w.mark_idle(sp(1));
    assert_eq!(w.watermark_ms(), Some(350));
    let closed = w.advance();
    assert_eq!(closed.len(), 1);
    assert_eq!(ids(&closed[0]), BTreeSet::from([0, 1]));
    w.mark_active(sp(1));
    assert!(w.is_late(50), "window [0, 100) is final");
    assert!(!w.is_late(360));
    w.push(batch(&[ev(3, 360, 1, 1)]));
    assert_eq!(w.watermark_ms(), Some(350));
}

/// Sliding windows share panes: memory holds each event once, and panes are
/// released as soon as the last window holding them is final.
#[test]
fn sliding_windows_share_and_release_panes() {
    let spec = WindowSpec {
        size_ms: 300,
        slide_ms: 100,
        delay_ms: 0,
        allowed_lateness_ms: 0,
    };
    let mut w = Windower::new(spec);
    w.assign(&[sp(0)]);
    let evs: Vec<Event> = (0..6)
        .map(|i| Event {
            id: i,
            t: i * 100 + 5,
            partition: 0,
            offset: i,
        })
        .collect();
    w.push(batch(&evs));
    assert_eq!(w.buffered_rows(), 6);
    assert_eq!(w.open_panes(), 6);
    let closed = w.advance(); // watermark 505
    let starts: Vec<i64> = closed.iter().map(|c| c.start_ms).collect();
    assert_eq!(starts, vec![-200, -100, 0, 100, 200]);
    assert_eq!(ids(&closed[2]), BTreeSet::from([0, 1, 2]));
    assert_eq!(ids(&closed[4]), BTreeSet::from([2, 3, 4]));
    // Panes 3 and 4 are still needed by [300, 600); pane 5 too.
    assert_eq!(w.open_panes(), 3);
    assert_eq!(w.held_offsets()[&sp(0)], 3);
    assert!(w.is_late(250));
    assert!(!w.is_late(300));
    // t = 305 is in [100, 400) (final), [200, 500) (final) and [300, 600):
    // not too late, but it missed two finalised windows, and says so.
    let stats = w.push(batch(&[Event {
        id: 9,
        t: 305,
        partition: 0,
        offset: 6,
    }]));
    assert_eq!(stats.missed_windows, 1);
}

/// Allowed lateness: an event behind the watermark still lands in its open
/// window and is counted as late-but-accepted.
#[test]
fn allowed_lateness_keeps_windows_open_and_counts_accepted_late_rows() {
    let spec = WindowSpec {
        allowed_lateness_ms: 50,
        ..WindowSpec::tumbling(100, 0)
    };
    let mut w = Windower::new(spec);
    w.assign(&[sp(0)]);
    let ev = |id, t, offset| Event {
        id,
        t,
        partition: 0,
        offset,
    };
    w.push(batch(&[ev(0, 10, 0), ev(1, 120, 1)]));
    assert!(w.advance().is_empty(), "watermark 120 < 100 + 50");
    let stats = w.push(batch(&[ev(2, 90, 2)]));
    assert_eq!(stats.late_accepted, 1);
    assert_eq!(stats.missed_windows, 0);
    w.push(batch(&[ev(3, 150, 3)]));
    let closed = w.advance();
    assert_eq!(closed.len(), 1);
    assert_eq!(ids(&closed[0]), BTreeSet::from([0, 2]));
    assert!(w.is_late(99));
}
