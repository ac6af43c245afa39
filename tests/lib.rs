//! The reference computation every Sluice test compares against.
//!
//! A brute-force model of event-time windows, written for clarity rather
//! than speed, and independent of the host's code: it assigns each event to
//! every window that holds it, checks it against the watermark in force when
//! it arrived, and emits what the host must emit — close fires, per-event
//! fires, late updates — and which events go to the late output. Feature
//! functions for the example transforms turn a fire's events into the
//! features the transforms must return.

use std::collections::{BTreeMap, BTreeSet};

pub mod e2e;
pub mod features;
pub mod jsonl;

/// Window shape, milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Tumbling { size: i64 },
    Sliding { size: i64, slide: i64 },
    Session { gap: i64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Trigger {
    Close,
    Event,
    Late,
}

impl Trigger {
    pub fn name(self) -> &'static str {
        match self {
            Trigger::Close => "close",
            Trigger::Event => "event",
            Trigger::Late => "late",
        }
    }
}

/// What the model needs of a pipeline.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub kind: Kind,
    /// Emit on every event instead of on close.
    pub on_event: bool,
    pub lateness: i64,
    pub out_of_orderness: i64,
    /// Records per step; the watermark moves between steps.
    pub step: usize,
}

/// One input record: an event (key, time), or `None` for a record the host
/// rejects (it still counts toward the step).
pub type Record = Option<(String, i64)>;

/// One fire: key, bounds, trigger and the indices of its events (in the
/// input), in event-time order (ties in arrival order).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Fire {
    pub key: String,
    pub start: i64,
    pub end: i64,
    pub trigger: Trigger,
    pub members: Vec<usize>,
}

/// The model's output: fires per step (the last step is the final
/// watermark, with no records), and the indices of late events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub steps: Vec<Vec<Fire>>,
    pub late: BTreeSet<usize>,
}

impl Outcome {
    /// Every fire, on-event fires in order and each step's end sorted.
    pub fn normalized(&self) -> Vec<Vec<Fire>> {
        self.steps
            .iter()
            .map(|fires| {
                let (mut event, mut rest): (Vec<Fire>, Vec<Fire>) =
                    fires.iter().cloned().partition(|f| f.trigger == Trigger::Event);
                rest.sort();
                event.extend(rest);
                event
            })
            .collect()
    }

    /// Every fire, sorted: for comparisons that ignore when fires happened.
    pub fn all_sorted(&self) -> Vec<Fire> {
        let mut all: Vec<Fire> = self.steps.iter().flatten().cloned().collect();
        all.sort();
        all
    }
}

/// Every window `[s, s + size)` with `s` a multiple of `slide` that holds `t`.
pub fn windows_of(t: i64, size: i64, slide: i64) -> Vec<(i64, i64)> {
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

/// Run the model over `records`.
pub fn model(records: &[Record], spec: &Spec) -> Outcome {
    let times: Vec<i64> = records.iter().map(|r| r.as_ref().map_or(0, |(_, t)| *t)).collect();
    let order = |mut m: Vec<usize>| {
        m.sort_by_key(|&i| (times[i], i));
        m
    };
    match spec.kind {
        Kind::Tumbling { size } => grid(records, spec, size, size, &order),
        Kind::Sliding { size, slide } => grid(records, spec, size, slide, &order),
        Kind::Session { gap } => sessions(records, spec, gap, &order),
    }
}

/// Chunks of `step` records, then the final (empty) step.
fn steps(records: &[Record], step: usize) -> Vec<&[Record]> {
    let mut chunks: Vec<&[Record]> = records.chunks(step.max(1)).collect();
    chunks.push(&[]);
    chunks
}

fn grid(records: &[Record], spec: &Spec, size: i64, slide: i64, order: &dyn Fn(Vec<usize>) -> Vec<usize>) -> Outcome {
    let l = spec.lateness;
    // Window → members accepted into it.
    let mut contents: BTreeMap<(String, i64, i64), Vec<usize>> = BTreeMap::new();
    let mut closed: BTreeSet<(String, i64, i64)> = BTreeSet::new();
    let mut out = Outcome { steps: Vec::new(), late: BTreeSet::new() };
    let mut watermark = i64::MIN;
    let mut max_time = i64::MIN;
    let chunks = steps(records, spec.step);
    let mut index = 0usize;
    for (c, chunk) in chunks.iter().enumerate() {
        let mut fires = Vec::new();
        let mut refire: BTreeSet<(String, i64, i64)> = BTreeSet::new();
        for record in chunk.iter() {
            let i = index;
            index += 1;
            let Some((key, t)) = record else { continue };
            let accepting: Vec<(i64, i64)> =
                windows_of(*t, size, slide).into_iter().filter(|&(_, e)| e.saturating_add(l) > watermark).collect();
            if accepting.is_empty() {
                out.late.insert(i);
            }
            for &(s, e) in &accepting {
                contents.entry((key.clone(), s, e)).or_default().push(i);
                if e <= watermark {
                    refire.insert((key.clone(), s, e));
                }
            }
            let next_to_close = accepting.iter().filter(|&&(_, e)| e > watermark).min_by_key(|&&(_, e)| e);
            if let (true, Some(&(s, e))) = (spec.on_event, next_to_close) {
                let members = order(contents[&(key.clone(), s, e)].clone());
                fires.push(Fire { key: key.clone(), start: s, end: e, trigger: Trigger::Event, members });
            }
            max_time = max_time.max(*t);
        }
        for (k, s, e) in &refire {
            let members = order(contents[&(k.clone(), *s, *e)].clone());
            fires.push(Fire { key: k.clone(), start: *s, end: *e, trigger: Trigger::Late, members });
        }
        let last = c + 1 == chunks.len();
        let next = if last { i64::MAX } else { max_time.saturating_sub(spec.out_of_orderness) };
        watermark = watermark.max(next);
        if !spec.on_event {
            for ((k, s, e), members) in &contents {
                let id = (k.clone(), *s, *e);
                if *e <= watermark && !closed.contains(&id) && !refire.contains(&id) {
                    let members = order(members.clone());
                    fires.push(Fire { key: k.clone(), start: *s, end: *e, trigger: Trigger::Close, members });
                }
            }
        }
        let now_closed: Vec<_> = contents.keys().filter(|(_, _, e)| *e <= watermark).cloned().collect();
        closed.extend(now_closed);
        out.steps.push(fires);
    }
    out
}

#[derive(Debug, Clone)]
struct Session {
    key: String,
    start: i64,
    end: i64,
    members: Vec<usize>,
    fired: bool,
}

fn sessions(records: &[Record], spec: &Spec, gap: i64, order: &dyn Fn(Vec<usize>) -> Vec<usize>) -> Outcome {
    let l = spec.lateness;
    let mut live: Vec<Session> = Vec::new();
    let mut out = Outcome { steps: Vec::new(), late: BTreeSet::new() };
    let mut watermark = i64::MIN;
    let mut max_time = i64::MIN;
    let chunks = steps(records, spec.step);
    let mut index = 0usize;
    let fire = |s: &Session, trigger| Fire {
        key: s.key.clone(),
        start: s.start,
        end: s.end,
        trigger,
        members: order(s.members.clone()),
    };
    for (c, chunk) in chunks.iter().enumerate() {
        let mut fires = Vec::new();
        // Sessions (by a member) that took a late event in this step.
        let mut late_members: Vec<usize> = Vec::new();
        for record in chunk.iter() {
            let i = index;
            index += 1;
            let Some((key, t)) = record else { continue };
            let (t, end0) = (*t, t.saturating_add(gap));
            // Sessions that touch [t, t + gap) merge with it.
            let touching: Vec<usize> =
                (0..live.len()).filter(|&j| live[j].key == *key && live[j].start <= end0 && live[j].end >= t).collect();
            let start = touching.iter().map(|&j| live[j].start).chain([t]).min().unwrap_or(t);
            let end = touching.iter().map(|&j| live[j].end).chain([end0]).max().unwrap_or(end0);
            if end.saturating_add(l) <= watermark {
                out.late.insert(i);
            } else {
                let mut members: Vec<usize> = touching.iter().flat_map(|&j| live[j].members.clone()).collect();
                members.push(i);
                for &j in touching.iter().rev() {
                    live.remove(j);
                }
                let merged = Session { key: key.clone(), start, end, members, fired: end <= watermark };
                if end <= watermark {
                    late_members.push(i);
                } else if spec.on_event {
                    fires.push(fire(&merged, Trigger::Event));
                }
                live.push(merged);
            }
            max_time = max_time.max(t);
        }
        let mut refired: BTreeSet<(String, i64)> = BTreeSet::new();
        for member in late_members {
            let holding = live.iter().find(|s| s.members.contains(&member));
            if let Some(s) = holding.filter(|s| s.end <= watermark && refired.insert((s.key.clone(), s.start))) {
                fires.push(fire(s, Trigger::Late));
            }
        }
        let last = c + 1 == chunks.len();
        let next = if last { i64::MAX } else { max_time.saturating_sub(spec.out_of_orderness) };
        watermark = watermark.max(next);
        for s in live.iter_mut() {
            if !s.fired && s.end <= watermark {
                s.fired = true;
                if !spec.on_event {
                    fires.push(fire(s, Trigger::Close));
                }
            }
        }
        // State past its lateness is gone (Flink clears it too).
        live.retain(|s| s.end.saturating_add(l) > watermark);
        out.steps.push(fires);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(times: &[i64], key: &str) -> Vec<Record> {
        times.iter().map(|&t| Some((key.to_string(), t))).collect()
    }

    fn fire(start: i64, end: i64, trigger: Trigger, members: &[usize]) -> Fire {
        Fire { key: "k".into(), start, end, trigger, members: members.to_vec() }
    }

    /// Tumbling 10 ms, lateness 5 ms, a watermark after every event. Worked
    /// on paper: W = 1, 4, 12, 12, 25, 25, 25, then the final MAX. 12
    /// closes [0,10) with {0,1}; 3 arrives at W=12 < 10+5: a late update
    /// {0,3,1} (event-time order); 25 closes [10,20) with {2}; at W=25 >= 10+5, 8 and 2 are
    /// late; the final watermark closes [20,30) with {4}.
    #[test]
    fn hand_worked_tumbling_with_lateness() {
        let spec =
            Spec { kind: Kind::Tumbling { size: 10 }, on_event: false, lateness: 5, out_of_orderness: 0, step: 1 };
        let out = model(&records(&[1, 4, 12, 3, 25, 8, 2], "k"), &spec);
        let expected = vec![
            vec![],
            vec![],
            vec![fire(0, 10, Trigger::Close, &[0, 1])],
            vec![fire(0, 10, Trigger::Late, &[0, 3, 1])],
            vec![fire(10, 20, Trigger::Close, &[2])],
            vec![],
            vec![],
            vec![fire(20, 30, Trigger::Close, &[4])],
        ];
        assert_eq!(out.steps, expected);
        assert_eq!(out.late, BTreeSet::from([5, 6]));
    }

    /// Sliding 30/10, per event: each event emits the window holding it
    /// that closes next, with what arrived so far, in event-time order.
    #[test]
    fn hand_worked_sliding_on_event() {
        let spec = Spec {
            kind: Kind::Sliding { size: 30, slide: 10 },
            on_event: true,
            lateness: 0,
            out_of_orderness: 100,
            step: 100,
        };
        let out = model(&records(&[5, 12, 31, 7], "k"), &spec);
        let expected = vec![
            vec![
                fire(-20, 10, Trigger::Event, &[0]),
                fire(-10, 20, Trigger::Event, &[0, 1]),
                fire(10, 40, Trigger::Event, &[1, 2]),
                fire(-20, 10, Trigger::Event, &[0, 3]),
            ],
            vec![],
        ];
        assert_eq!(out.steps, expected);
    }

    /// Sessions (gap 10, lateness 100): W = 0, 18 (closes [0,10)), 60
    /// (closes [18,28)); then 9 arrives: [9,19) touches both, and the
    /// merged [0,28) is re-fired as a late update.
    #[test]
    fn hand_worked_session_bridge() {
        let spec =
            Spec { kind: Kind::Session { gap: 10 }, on_event: false, lateness: 100, out_of_orderness: 0, step: 1 };
        let out = model(&records(&[0, 18, 60, 9], "k"), &spec);
        let expected = vec![
            vec![],
            vec![fire(0, 10, Trigger::Close, &[0])],
            vec![fire(18, 28, Trigger::Close, &[1])],
            vec![fire(0, 28, Trigger::Late, &[0, 3, 1])],
            vec![fire(60, 70, Trigger::Close, &[2])],
        ];
        assert_eq!(out.steps, expected);
    }

    #[test]
    fn rejected_records_count_toward_steps() {
        let spec =
            Spec { kind: Kind::Tumbling { size: 10 }, on_event: false, lateness: 0, out_of_orderness: 0, step: 2 };
        let recs = vec![Some(("k".to_string(), 1)), None, Some(("k".to_string(), 15)), Some(("k".to_string(), 2))];
        let out = model(&recs, &spec);
        // Step 1 = records 0 and 1: W = 1. Step 2: 15 is processed at W=1,
        // 2 too; W becomes 15 and closes [0,10) with {0,3}.
        assert_eq!(out.steps[1], vec![fire(0, 10, Trigger::Close, &[0, 3])]);
        assert!(out.late.is_empty());
    }

    #[test]
    fn grid_window_enumeration() {
        assert_eq!(windows_of(5, 30, 10), vec![(-20, 10), (-10, 20), (0, 30)]);
        assert_eq!(windows_of(-1, 10, 10), vec![(-10, 0)]);
        assert_eq!(windows_of(7, 10, 4), vec![(0, 10), (4, 14)]);
    }
}
