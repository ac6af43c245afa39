//! The window operator against a brute-force model.
//!
//! Random out-of-order streams, random window kinds, sizes, lateness,
//! triggers and watermark steps. Each event carries a unique id, so a fired
//! window's contents are visible exactly. The model recomputes every fire
//! from first principles: which events belong to which window, which
//! arrived in time (against the watermark in force when they arrived), and
//! when the watermark closes each window. Both window and aggregate modes
//! are checked; for aggregates a native stand-in for the guest keeps id
//! sets as accumulators.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use sluice_host::decode::{self, FieldType};
use sluice_host::window::{self, Batch, ColumnData, Kind, Mode, Operator, Spec, TriggerMode};
use sluice_sink_api::Trigger;

#[derive(Debug, Clone)]
struct Ev {
    key: u8,
    time: i64,
}

#[derive(Debug, Clone)]
struct Case {
    kind: Kind,
    trigger: TriggerMode,
    lateness: i64,
    out_of_orderness: i64,
    step: usize,
    events: Vec<Ev>,
}

/// One emitted row: key, bounds, trigger and the ids of its events.
type Fire = (String, i64, i64, Trigger, Vec<u64>);

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        (1i64..400).prop_map(|size| Kind::Tumbling { size }),
        (1i64..8, 1i64..6).prop_map(|(k, slide)| Kind::Sliding { size: k * slide * 10, slide: slide * 10 }),
        (10i64..60, 10i64..60).prop_map(|(size, slide)| Kind::Sliding { size: size.max(slide) * 5, slide: slide * 5 }),
        (1i64..300).prop_map(|gap| Kind::Session { gap }),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    let events = prop::collection::vec((0u8..4, 0i64..40, prop::bool::weighted(0.1), 0i64..1500), 1..120);
    (
        kind(),
        prop_oneof![Just(TriggerMode::Close), Just(TriggerMode::Event)],
        prop_oneof![Just(0i64), 0i64..500],
        prop_oneof![Just(0i64), 0i64..200],
        1usize..12,
        events,
    )
        .prop_map(|(kind, trigger, lateness, out_of_orderness, step, raw)| {
            // A clock that moves forward; most events a little out of order,
            // some very late.
            let events = raw
                .iter()
                .enumerate()
                .map(|(i, &(key, jitter, very_late, late_by))| {
                    let now = i as i64 * 20;
                    let time = if very_late { now - late_by } else { now - jitter };
                    Ev { key, time }
                })
                .collect();
            Case { kind, trigger, lateness, out_of_orderness, step, events }
        })
}

// ----------------------------------------------------------------------
// Running the operator.

/// Ids of `rows` in a batch (column 0 holds the event id).
fn ids(batch: &Batch, rows: &[u32]) -> Vec<u64> {
    let ColumnData::Ints(v) = &batch.columns[0].data else { panic!("id column is not ints") };
    rows.iter().map(|&r| v[r as usize] as u64).collect()
}

/// The native stand-in for an aggregate guest: accumulators are id sets.
fn acc_decode(bytes: &[u8]) -> BTreeSet<u64> {
    bytes.chunks(8).map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8]))).collect()
}

fn acc_encode(set: &BTreeSet<u64>) -> Vec<u8> {
    set.iter().flat_map(|i| i.to_le_bytes()).collect()
}

/// Evaluate a batch the way the pipeline does, with the stand-in guest.
fn evaluate(op: &mut Operator, mode: Mode, batch: Batch, out: &mut Vec<Fire>) {
    for w in &batch.windows {
        let mut set: BTreeSet<u64> = BTreeSet::new();
        for acc in &w.accs {
            set.extend(acc_decode(acc));
        }
        let rows = ids(&batch, &w.rows);
        if mode == Mode::Window {
            // Rows come in event-time order.
            let times: Vec<i64> = w.rows.iter().map(|&r| batch.times[r as usize]).collect();
            assert!(times.windows(2).all(|p| p[0] <= p[1]), "rows out of event-time order: {times:?}");
            assert!(w.accs.is_empty());
        }
        set.extend(rows);
        out.push((w.key.clone(), w.start, w.end, w.trigger, set.into_iter().collect()));
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
}

/// Fires per step (on-event fires in order, then the step's end).
fn run_operator(case: &Case, mode: Mode) -> (Vec<Vec<Fire>>, BTreeSet<u64>) {
    let spec =
        Spec { kind: case.kind, trigger: case.trigger, allowed_lateness: case.lateness, state_ttl: i64::MAX / 4 };
    let mut op = Operator::in_memory(spec, mode, vec![("id".to_string(), FieldType::Int)]);
    let mut steps = Vec::new();
    let mut late = BTreeSet::new();
    let mut max_time = i64::MIN;
    let chunks: Vec<&[Ev]> = case.events.chunks(case.step).collect();
    let mut id = 0u64;
    for (c, chunk) in chunks.iter().enumerate() {
        let mut fires = Vec::new();
        for ev in chunk.iter() {
            let event = decode::Event {
                key: format!("k{}", ev.key).into(),
                time: ev.time,
                values: vec![decode::Value::Int(id as i64)],
            };
            if op.process(&event).is_err() {
                late.insert(id);
            }
            max_time = max_time.max(ev.time);
            id += 1;
        }
        op.flush_late();
        let last = c + 1 == chunks.len();
        let watermark = if last { i64::MAX } else { max_time - case.out_of_orderness };
        // A small batch limit exercises advancing in pieces.
        while !op.advance(watermark, 3) {
            let batch = op.take_batch();
            evaluate(&mut op, mode, batch, &mut fires);
        }
        if mode == Mode::Aggregate {
            op.collect_folds();
        }
        let batch = op.take_batch();
        evaluate(&mut op, mode, batch, &mut fires);
        steps.push(fires);
    }
    assert_eq!(op.keys(), 0, "state left after the final watermark");
    assert!(op.interner().is_empty(), "strings left after the final watermark");
    (steps, late)
}

// ----------------------------------------------------------------------
// The model.

#[derive(Debug)]
struct Model {
    /// Window → ids accepted into it, in arrival order.
    contents: BTreeMap<(u8, i64, i64), Vec<u64>>,
    /// Windows whose close was emitted (or that were already closed).
    closed: BTreeSet<(u8, i64, i64)>,
}

fn grid(kind: Kind) -> Option<(i64, i64)> {
    match kind {
        Kind::Tumbling { size } => Some((size, size)),
        Kind::Sliding { size, slide } => Some((size, slide)),
        Kind::Session { .. } => None,
    }
}

/// Every window [s, s + size) with s a multiple of slide that holds t.
fn windows_of(t: i64, size: i64, slide: i64) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let mut k = (t - size).div_euclid(slide) - 1;
    while k * slide <= t {
        let s = k * slide;
        if s <= t && t < s + size {
            out.push((s, s + size));
        }
        k += 1;
    }
    out
}

fn sorted(mut v: Vec<u64>) -> Vec<u64> {
    v.sort_unstable();
    v
}

fn model_grid(case: &Case, size: i64, slide: i64) -> (Vec<Vec<Fire>>, BTreeSet<u64>) {
    let mut m = Model { contents: BTreeMap::new(), closed: BTreeSet::new() };
    let l = case.lateness;
    let mut steps = Vec::new();
    let mut late = BTreeSet::new();
    let mut watermark = i64::MIN;
    let mut max_time = i64::MIN;
    let chunks: Vec<&[Ev]> = case.events.chunks(case.step).collect();
    let mut id = 0u64;
    for (c, chunk) in chunks.iter().enumerate() {
        let mut fires: Vec<Fire> = Vec::new();
        let mut refire: BTreeSet<(u8, i64, i64)> = BTreeSet::new();
        for ev in chunk.iter() {
            let ws = windows_of(ev.time, size, slide);
            let accepting: Vec<(i64, i64)> =
                ws.iter().copied().filter(|&(_, e)| e.saturating_add(l) > watermark).collect();
            if accepting.is_empty() {
                late.insert(id);
            }
            for &(s, e) in &accepting {
                m.contents.entry((ev.key, s, e)).or_default().push(id);
                if e <= watermark {
                    refire.insert((ev.key, s, e));
                }
            }
            if case.trigger == TriggerMode::Event {
                if let Some(&(s, e)) = accepting.iter().filter(|&&(_, e)| e > watermark).min_by_key(|&&(_, e)| e) {
                    let content = sorted(m.contents[&(ev.key, s, e)].clone());
                    fires.push((format!("k{}", ev.key), s, e, Trigger::Event, content));
                }
            }
            max_time = max_time.max(ev.time);
            id += 1;
        }
        for &(k, s, e) in &refire {
            fires.push((format!("k{k}"), s, e, Trigger::Late, sorted(m.contents[&(k, s, e)].clone())));
        }
        let last = c + 1 == chunks.len();
        let next = if last { i64::MAX } else { max_time - case.out_of_orderness };
        watermark = watermark.max(next);
        if case.trigger == TriggerMode::Close {
            for (&(k, s, e), content) in &m.contents {
                if e <= watermark && !m.closed.contains(&(k, s, e)) && !refire.contains(&(k, s, e)) {
                    fires.push((format!("k{k}"), s, e, Trigger::Close, sorted(content.clone())));
                }
            }
        }
        let now_closed: Vec<_> = m.contents.keys().filter(|&&(_, _, e)| e <= watermark).copied().collect();
        m.closed.extend(now_closed);
        steps.push(fires);
    }
    (steps, late)
}

#[derive(Debug, Clone)]
struct ModelSession {
    key: u8,
    start: i64,
    end: i64,
    ids: Vec<u64>,
    fired: bool,
}

fn model_sessions(case: &Case, gap: i64) -> (Vec<Vec<Fire>>, BTreeSet<u64>) {
    let l = case.lateness;
    let mut sessions: Vec<ModelSession> = Vec::new();
    let mut steps = Vec::new();
    let mut late = BTreeSet::new();
    let mut watermark = i64::MIN;
    let mut max_time = i64::MIN;
    let chunks: Vec<&[Ev]> = case.events.chunks(case.step).collect();
    let mut id = 0u64;
    let fire = |s: &ModelSession, trigger| (format!("k{}", s.key), s.start, s.end, trigger, sorted(s.ids.clone()));
    for (c, chunk) in chunks.iter().enumerate() {
        let mut fires: Vec<Fire> = Vec::new();
        // Sessions (by a member id) that took a late event in this step.
        let mut late_members: Vec<u64> = Vec::new();
        for ev in chunk.iter() {
            let (t, end0) = (ev.time, ev.time + gap);
            let touching: Vec<usize> = (0..sessions.len())
                .filter(|&i| sessions[i].key == ev.key && sessions[i].start <= end0 && sessions[i].end >= t)
                .collect();
            let start = touching.iter().map(|&i| sessions[i].start).chain([t]).min().unwrap_or(t);
            let end = touching.iter().map(|&i| sessions[i].end).chain([end0]).max().unwrap_or(end0);
            if end.saturating_add(l) <= watermark {
                late.insert(id);
            } else {
                let mut ids: Vec<u64> = touching.iter().flat_map(|&i| sessions[i].ids.clone()).collect();
                ids.push(id);
                for &i in touching.iter().rev() {
                    sessions.remove(i);
                }
                let merged = ModelSession { key: ev.key, start, end, ids, fired: end <= watermark };
                if end <= watermark {
                    late_members.push(id);
                } else if case.trigger == TriggerMode::Event {
                    fires.push(fire(&merged, Trigger::Event));
                }
                sessions.push(merged);
            }
            max_time = max_time.max(ev.time);
            id += 1;
        }
        let mut refired: BTreeSet<(u8, i64)> = BTreeSet::new();
        for member in late_members {
            if let Some(s) = sessions.iter().find(|s| s.ids.contains(&member)) {
                if s.end <= watermark && refired.insert((s.key, s.start)) {
                    fires.push(fire(s, Trigger::Late));
                }
            }
        }
        let last = c + 1 == chunks.len();
        let next = if last { i64::MAX } else { max_time - case.out_of_orderness };
        watermark = watermark.max(next);
        for s in sessions.iter_mut() {
            if !s.fired && s.end <= watermark {
                s.fired = true;
                if case.trigger == TriggerMode::Close {
                    fires.push(fire(s, Trigger::Close));
                }
            }
        }
        // State past its lateness is gone (Flink clears it too).
        sessions.retain(|s| s.end.saturating_add(l) > watermark);
        steps.push(fires);
    }
    (steps, late)
}

fn model(case: &Case) -> (Vec<Vec<Fire>>, BTreeSet<u64>) {
    match (grid(case.kind), case.kind) {
        (Some((size, slide)), _) => model_grid(case, size, slide),
        (None, Kind::Session { gap }) => model_sessions(case, gap),
        (None, _) => unreachable!("grid() covers tumbling and sliding"),
    }
}

/// On-event fires keep their order; each step's end fires compare as a set.
fn normalize(steps: Vec<Vec<Fire>>) -> Vec<(Vec<Fire>, Vec<Fire>)> {
    steps
        .into_iter()
        .map(|fires| {
            let (event, mut rest): (Vec<Fire>, Vec<Fire>) = fires.into_iter().partition(|f| f.3 == Trigger::Event);
            rest.sort();
            (event, rest)
        })
        .collect()
}

fn check(case: &Case, mode: Mode) {
    let (got, got_late) = run_operator(case, mode);
    let (want, want_late) = model(case);
    assert_eq!(got_late, want_late, "late events differ");
    let (got, want) = (normalize(got), normalize(want));
    for (step, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "fires differ at step {step}");
    }
    assert_eq!(got.len(), want.len());
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

/// A hand-worked case, so the model itself is checked against arithmetic
/// done on paper: tumbling 10 ms, lateness 5 ms, watermark after each event.
#[test]
fn hand_worked_tumbling_with_lateness() {
    let times = [1, 4, 12, 3, 25, 8, 2];
    let case = Case {
        kind: Kind::Tumbling { size: 10 },
        trigger: TriggerMode::Close,
        lateness: 5,
        out_of_orderness: 0,
        step: 1,
        events: times.iter().map(|&time| Ev { key: 0, time }).collect(),
    };
    // W after each event: 1, 4, 12, 12, 25, 25, 25, then MAX.
    // 12 closes [0,10) with {0,1}; 3 arrives at W=12 <= 10+5: late update
    // {0,1,3}; 25 closes [10,20) with {2}; W=25 >= 10+5, so 8 and 2 are
    // late events; the final watermark closes [20,30) with {4}.
    let k = || "k0".to_string();
    let expected: Vec<Vec<Fire>> = vec![
        vec![],
        vec![],
        vec![(k(), 0, 10, Trigger::Close, vec![0, 1])],
        vec![(k(), 0, 10, Trigger::Late, vec![0, 1, 3])],
        vec![(k(), 10, 20, Trigger::Close, vec![2])],
        vec![],
        vec![(k(), 20, 30, Trigger::Close, vec![4])],
    ];
    let (model_fires, model_late) = model(&case);
    assert_eq!(model_fires, expected);
    assert_eq!(model_late, BTreeSet::from([5, 6]));
    check(&case, Mode::Window);
    check(&case, Mode::Aggregate);
}

/// Sliding windows with the per-event trigger: each event emits the
/// window holding it that closes next (the last `size` up to its slide).
#[test]
fn hand_worked_sliding_on_event() {
    let case = Case {
        kind: Kind::Sliding { size: 30, slide: 10 },
        trigger: TriggerMode::Event,
        lateness: 0,
        out_of_orderness: 100,
        step: 100,
        events: [5, 12, 31, 7].iter().map(|&time| Ev { key: 1, time }).collect(),
    };
    let k = || "k1".to_string();
    // 5 → [-20,10): {0}; 12 → [-10,20): {0,1}; 31 → [10,40): {1,2};
    // 7 → [-20,10): {0,3}.
    let expected = vec![vec![
        (k(), -20, 10, Trigger::Event, vec![0]),
        (k(), -10, 20, Trigger::Event, vec![0, 1]),
        (k(), 10, 40, Trigger::Event, vec![1, 2]),
        (k(), -20, 10, Trigger::Event, vec![0, 3]),
    ]];
    assert_eq!(model(&case).0, expected);
    check(&case, Mode::Window);
}

/// Sessions: a late event that bridges two closed sessions merges them and
/// re-fires the merged session as a late update.
#[test]
fn hand_worked_session_bridge() {
    let case = Case {
        kind: Kind::Session { gap: 10 },
        trigger: TriggerMode::Close,
        lateness: 100,
        out_of_orderness: 0,
        step: 1,
        events: [0, 18, 60, 9].iter().map(|&time| Ev { key: 2, time }).collect(),
    };
    let k = || "k2".to_string();
    // W: 0, 18 (closes [0,10)), 60 (closes [18,28)), then 9 arrives at
    // W=60: [9,19) touches both, merged [0,28) ends before W (but within
    // the lateness): a late update of the merged session.
    let expected = vec![
        vec![],
        vec![(k(), 0, 10, Trigger::Close, vec![0])],
        vec![(k(), 18, 28, Trigger::Close, vec![1])],
        vec![(k(), 0, 28, Trigger::Late, vec![0, 1, 3]), (k(), 60, 70, Trigger::Close, vec![2])],
    ];
    assert_eq!(model(&case).0, expected);
    check(&case, Mode::Window);
    check(&case, Mode::Aggregate);
}

#[test]
fn grid_window_enumeration_is_right() {
    assert_eq!(windows_of(5, 30, 10), vec![(-20, 10), (-10, 20), (0, 30)]);
    assert_eq!(windows_of(-1, 10, 10), vec![(-10, 0)]);
    let _ = window::Grid::new(30, 10);
}
