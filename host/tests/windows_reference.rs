//! The window operator against the brute-force reference model
//! (`sluice-tests`).
//!
//! Random out-of-order streams, random window kinds, sizes, lateness,
//! triggers and watermark steps. Each event carries a unique id, so a fired
//! window's contents are visible exactly, and every fire (key, bounds,
//! trigger, events in event-time order) and every late event must match the
//! model's, step by step. Both window and aggregate modes are checked; for
//! aggregates a native stand-in for the guest keeps id sets as
//! accumulators, so what the operator folded and what it left pending must
//! add up to the window's events.
//!
//! Each case also runs with a restart: after a random step the operator's
//! snapshot is restored into a fresh operator, which goes on from there
//! and must give the same fires. And each runs on RocksDB state with a
//! budget so small that every key goes to disk after every step (and with
//! a restart from a RocksDB snapshot into memory state). Events carry a
//! string too, checked on every row: it is released on the way to disk and
//! interned again on the way back.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use proptest::prelude::*;
use sluice_host::decode::{self, FieldType};
use sluice_host::state::{Backend, MemoryState, RocksState, RocksStore};
use sluice_host::window::{Batch, Bounds, ColumnData, Kind, Mode, Operator, Spec, TriggerMode};
use sluice_sink_api::Trigger;
use sluice_tests::{self as reference, Fire, Record};

#[derive(Debug, Clone)]
struct Case {
    spec: reference::Spec,
    records: Vec<Record>,
    /// After this step, go on from a snapshot in a fresh operator.
    restart: usize,
}

fn kind() -> impl Strategy<Value = reference::Kind> {
    use reference::Kind as K;
    prop_oneof![
        (1i64..400).prop_map(|size| K::Tumbling { size }),
        (1i64..8, 1i64..6).prop_map(|(k, slide)| K::Sliding { size: k * slide * 10, slide: slide * 10 }),
        (10i64..60, 10i64..60).prop_map(|(size, slide)| K::Sliding { size: size.max(slide) * 5, slide: slide * 5 }),
        (1i64..300).prop_map(|gap| K::Session { gap }),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    let events = prop::collection::vec((0u8..4, 0i64..40, prop::bool::weighted(0.1), 0i64..1500), 1..120);
    let spec =
        (kind(), any::<bool>(), prop_oneof![Just(0i64), 0i64..500], prop_oneof![Just(0i64), 0i64..200], 1usize..12);
    (spec, events, 0usize..40).prop_map(|((kind, on_event, lateness, out_of_orderness, step), raw, restart)| {
        // A clock that moves forward; most events a little out of
        // order, some very late.
        let records = raw
            .iter()
            .enumerate()
            .map(|(i, &(key, jitter, very_late, late_by))| {
                let now = i as i64 * 20;
                let time = if very_late { now - late_by } else { now - jitter };
                Some((format!("k{key}"), time))
            })
            .collect();
        Case { spec: reference::Spec { kind, on_event, lateness, out_of_orderness, step }, records, restart }
    })
}

/// Ids of `rows` in a batch (column 0 holds the event id), after checking
/// each row's tag (column 1).
fn ids(batch: &Batch, rows: &[u32]) -> Vec<usize> {
    let ColumnData::Ints(v) = &batch.columns[0].data else { panic!("id column is not ints") };
    let ColumnData::Strs(tags) = &batch.columns[1].data else { panic!("tag column is not strings") };
    rows.iter()
        .map(|&r| {
            let id = v[r as usize] as usize;
            assert_eq!(batch.strings[tags[r as usize] as usize], tag(id), "the tag of event {id}");
            id
        })
        .collect()
}

fn tag(id: usize) -> String {
    format!("tag-{}", id % 5)
}

/// Where the window state of a run lives.
#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Memory,
    /// RocksDB, every key put away after every step.
    Rocks,
}

/// One RocksDB for the whole test binary; each run takes a prefix of its own.
fn rocks() -> Backend {
    static STORE: OnceLock<Arc<RocksStore>> = OnceLock::new();
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let store = STORE.get_or_init(|| {
        RocksStore::open(&std::env::temp_dir(), "windows-reference", 64 << 20, 1)
            .unwrap_or_else(|e| panic!("open RocksDB: {e}"))
    });
    Backend::Rocks(RocksState::new(Arc::clone(store), NEXT.fetch_add(1, Ordering::Relaxed) % 65_536).with_budget(0))
}

fn backend(state: State) -> Backend {
    match state {
        State::Memory => Backend::Memory(MemoryState::new()),
        State::Rocks => rocks(),
    }
}

fn acc_decode(bytes: &[u8]) -> BTreeSet<usize> {
    bytes.chunks(8).map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as usize).collect()
}

fn acc_encode(set: &BTreeSet<usize>) -> Vec<u8> {
    set.iter().flat_map(|&i| (i as u64).to_le_bytes()).collect()
}

fn trigger(t: Trigger) -> reference::Trigger {
    match t {
        Trigger::Close => reference::Trigger::Close,
        Trigger::Event => reference::Trigger::Event,
        Trigger::Late => reference::Trigger::Late,
    }
}

/// Evaluate a batch the way the pipeline does, with a stand-in guest.
fn evaluate(op: &mut Operator<Backend>, mode: Mode, batch: Batch, times: &[i64], out: &mut Vec<Fire>) {
    for w in &batch.windows {
        let mut members: Vec<usize> = w.accs.iter().flat_map(|a| acc_decode(a)).collect();
        let rows = ids(&batch, &w.rows);
        if mode == Mode::Window {
            assert!(w.accs.is_empty());
            let t: Vec<i64> = w.rows.iter().map(|&r| batch.times[r as usize]).collect();
            assert!(t.windows(2).all(|p| p[0] <= p[1]), "rows out of event-time order: {t:?}");
            members = rows;
        } else {
            // Aggregates see a set; compare in the model's order.
            members.extend(rows);
            members.sort_by_key(|&i| (times[i], i));
        }
        out.push(Fire { key: w.key.clone(), start: w.start, end: w.end, trigger: trigger(w.trigger), members });
    }
    if mode == Mode::Aggregate {
        let results = batch
            .folds
            .iter()
            .map(|f| {
                let mut set = f.acc.as_deref().map(acc_decode).unwrap_or_default();
                set.extend(ids(&batch, &f.rows));
                Some(acc_encode(&set))
            })
            .collect();
        op.apply_folds(batch.folds.clone(), results);
    }
    op.recycle(batch);
}

/// Drive the operator as the pipeline does: steps of `step` records, a
/// watermark between steps, and a final watermark at the end.
fn run_operator(case: &Case, mode: Mode, state: State, restart: bool) -> reference::Outcome {
    let s = &case.spec;
    let kind = match s.kind {
        reference::Kind::Tumbling { size } => Kind::Tumbling { size },
        reference::Kind::Sliding { size, slide } => Kind::Sliding { size, slide },
        reference::Kind::Session { gap } => Kind::Session { gap },
    };
    let trigger = if s.on_event { TriggerMode::Event } else { TriggerMode::Close };
    let spec = Spec { kind, trigger, allowed_lateness: s.lateness, state_ttl: i64::MAX / 4 };
    let fields = vec![("id".to_string(), FieldType::Int), ("tag".to_string(), FieldType::String)];
    let mut op = Operator::new(spec, mode, fields.clone(), backend(state));
    let times: Vec<i64> = case.records.iter().map(|r| r.as_ref().map_or(0, |(_, t)| *t)).collect();
    let mut out = reference::Outcome { steps: Vec::new(), late: BTreeSet::new() };
    let mut max_time = i64::MIN;
    let mut chunks: Vec<&[Record]> = case.records.chunks(s.step).collect();
    chunks.push(&[]);
    let mut id = 0usize;
    for (c, chunk) in chunks.iter().enumerate() {
        let mut fires = Vec::new();
        for record in chunk.iter() {
            let Some((key, time)) = record else { continue };
            let tag = tag(id);
            let values = vec![decode::Value::Int(id as i64), decode::Value::Str(tag.as_str().into())];
            let event = decode::Event { key: key.as_str().into(), time: *time, values };
            if op.process(&event, 0).is_err() {
                out.late.insert(id);
            }
            // On-event fires are evaluated at once, keeping their order.
            let batch = op.take_batch();
            evaluate(&mut op, mode, batch, &times, &mut fires);
            max_time = max_time.max(*time);
            id += 1;
        }
        // Small bounds exercise firing in pieces: by windows, by rows (an
        // event counted once per window) and by bytes (16 a row).
        let bounds = Bounds { windows: 3, rows: 7, bytes: 100 };
        while !op.flush_late(&bounds) {
            let batch = op.take_batch();
            evaluate(&mut op, mode, batch, &times, &mut fires);
        }
        let watermark = if c + 1 == chunks.len() { i64::MAX } else { max_time - s.out_of_orderness };
        while !op.advance(watermark, &bounds) {
            let batch = op.take_batch();
            let within = batch.refs <= bounds.rows && batch.bytes <= bounds.bytes;
            assert!(
                batch.items() == 1 || within,
                "{} windows, {} rows, {} bytes",
                batch.items(),
                batch.refs,
                batch.bytes
            );
            evaluate(&mut op, mode, batch, &times, &mut fires);
        }
        while mode == Mode::Aggregate && !op.collect_folds(&bounds) {
            let batch = op.take_batch();
            evaluate(&mut op, mode, batch, &times, &mut fires);
        }
        let batch = op.take_batch();
        evaluate(&mut op, mode, batch, &times, &mut fires);
        out.steps.push(fires);
        op.spill();
        assert!(op.take_state_error().is_none());
        if let Backend::Rocks(rocks) = op.state() {
            assert_eq!(rocks.resident().0, 0, "keys left in memory");
        }
        if restart && c == case.restart {
            let snapshot = op.snapshot();
            op = Operator::new(spec, mode, fields.clone(), backend(State::Memory));
            let restored = op.restore(&snapshot, |_| true).unwrap_or_else(|e| panic!("restore: {e}"));
            assert_eq!(restored, snapshot.partitions.values().map(Vec::len).sum::<usize>());
        }
    }
    assert_eq!(op.keys(), 0, "state left after the final watermark");
    assert!(op.interner().is_empty(), "strings left after the final watermark");
    out
}

fn check(case: &Case, mode: Mode) {
    for state in [State::Memory, State::Rocks] {
        check_run(case, mode, state, false);
        check_run(case, mode, state, true);
    }
}

fn check_run(case: &Case, mode: Mode, state: State, restart: bool) {
    let got = run_operator(case, mode, state, restart);
    let want = reference::model(&case.records, &case.spec);
    assert_eq!(got.late, want.late, "late events differ");
    let (got, want) = (got.normalized(), want.normalized());
    assert_eq!(got.len(), want.len());
    for (step, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "fires differ at step {step}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn window_mode_matches_the_model(case in case()) {
        check(&case, Mode::Window);
    }

    #[test]
    fn aggregate_mode_matches_the_model(case in case()) {
        check(&case, Mode::Aggregate);
    }
}

fn hand(kind: reference::Kind, on_event: bool, lateness: i64, ooo: i64, step: usize, times: &[i64]) -> Case {
    let spec = reference::Spec { kind, on_event, lateness, out_of_orderness: ooo, step };
    Case { spec, records: times.iter().map(|&t| Some(("k".to_string(), t))).collect(), restart: 1 }
}

/// The model's hand-worked cases (see `sluice-tests`), through the operator.
#[test]
fn hand_worked_cases() {
    use reference::Kind as K;
    for case in [
        hand(K::Tumbling { size: 10 }, false, 5, 0, 1, &[1, 4, 12, 3, 25, 8, 2]),
        hand(K::Sliding { size: 30, slide: 10 }, true, 0, 100, 100, &[5, 12, 31, 7]),
        hand(K::Session { gap: 10 }, false, 100, 0, 1, &[0, 18, 60, 9]),
    ] {
        check(&case, Mode::Window);
        check(&case, Mode::Aggregate);
    }
}
