//! The keyed window operator.
//!
//! Events are processed against the watermark in force when they arrive
//! (the watermark moves between chunks of input, as Flink's periodic
//! watermarks do). An event is assigned to its windows:
//!
//! - windows still open take it and fire on close (or at once, with the
//!   per-event trigger);
//! - windows closed less than `allowed_lateness` ago take it and fire again
//!   as a late update;
//! - when every window of the event is past its lateness, the event goes to
//!   the late-events output.
//!
//! Fired windows accumulate in a [`Batch`] that the caller hands to the
//! transform in one call. State is dropped once no trigger can need it
//! (cleanup timers at window end plus lateness) and keys idle longer than
//! the state TTL are dropped.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use sluice_sink_api::Trigger;

use super::batch::{Batch, BatchBuilder, Bounds, Fired, Fold, SliceRef, slice_bytes};
use super::{Grid, Kind, Spec, TriggerMode};
use crate::decode::{self, FieldType};
use crate::state::{self, CodecError, Interner, KeyId, KeyState, MemoryState, Session, Slice, StateBackend, Value};

/// What the transform does with window contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Receives every event of a window.
    Window,
    /// Folds events into per-slice accumulators.
    Aggregate,
}

/// Tumbling and sliding windows are a grid of slices; sessions have a gap.
#[derive(Debug, Clone, Copy)]
enum Shape {
    Grid(Grid),
    Session(i64),
}

/// Counters of what the operator did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub events_accepted: u64,
    pub events_late: u64,
    pub fired_close: u64,
    pub fired_event: u64,
    pub fired_late: u64,
    pub keys_expired: u64,
}

/// The operator's state between steps, owned and in bytes: what a
/// checkpoint stores, and what a moved partition takes along.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub watermark: i64,
    /// The watermark of the last sweep for idle keys (so a restored run
    /// expires keys when an uninterrupted one would).
    pub last_sweep: i64,
    /// Per source partition: the encoded state of each key it last fed
    /// ([`crate::state::KeyState::encode`]). Timers are not stored: they
    /// follow from the state.
    pub partitions: std::collections::BTreeMap<u32, Vec<Vec<u8>>>,
}

/// An event arrived too late for every window it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Late {
    pub watermark: i64,
}

#[derive(Debug)]
pub struct Operator<S: StateBackend = MemoryState> {
    spec: Spec,
    /// The window shape, resolved once.
    shape: Shape,
    mode: Mode,
    state: S,
    interner: Interner,
    builder: BatchBuilder,
    close_timers: BinaryHeap<Reverse<(i64, KeyId)>>,
    cleanup_timers: BinaryHeap<Reverse<(i64, KeyId)>>,
    watermark: i64,
    late_refires: Vec<(KeyId, i64, i64)>,
    /// Late updates due, once each, waiting for room in a call.
    late_queue: std::collections::VecDeque<(KeyId, i64, i64)>,
    dirty: Vec<KeyId>,
    /// The event being stored, reused to spare an allocation per event,
    /// and the bytes of its strings.
    scratch: Vec<Value>,
    scratch_text: u64,
    /// Types of the declared fields.
    types: Vec<FieldType>,
    last_sweep: i64,
    /// Windows closed since the state backend last spilled.
    closed_since_spill: u32,
    pub stats: Stats,
}

/// Windows closed between two spills within one watermark advance.
const SPILL_EVERY: u32 = 256;

/// Place a slice's events in the call (once per call and version) and
/// append their rows to `rows`.
fn gather(slice: &mut Slice, builder: &mut BatchBuilder, rows: &mut Vec<u32>) {
    let id = builder.id();
    let base = match slice.placed {
        Some((call, version, base)) if call == id && version == slice.version => base,
        _ => {
            let base = builder.push_slice(slice);
            slice.placed = Some((id, slice.version, base));
            base
        }
    };
    rows.extend(base..base + slice.len() as u32);
}

impl Operator<MemoryState> {
    pub fn in_memory(spec: Spec, mode: Mode, fields: Vec<(String, FieldType)>) -> Self {
        Operator::new(spec, mode, fields, MemoryState::new())
    }
}

impl<S: StateBackend> Operator<S> {
    pub fn new(spec: Spec, mode: Mode, fields: Vec<(String, FieldType)>, state: S) -> Self {
        let types = fields.iter().map(|(_, t)| *t).collect();
        let shape = match spec.kind {
            Kind::Tumbling { size } => Shape::Grid(Grid::new(size, size)),
            Kind::Sliding { size, slide } => Shape::Grid(Grid::new(size, slide)),
            Kind::Session { gap } => Shape::Session(gap),
        };
        Operator {
            spec,
            shape,
            mode,
            state,
            interner: Interner::new(),
            builder: BatchBuilder::new(fields),
            close_timers: BinaryHeap::new(),
            cleanup_timers: BinaryHeap::new(),
            watermark: i64::MIN,
            late_refires: Vec::new(),
            late_queue: Default::default(),
            dirty: Vec::new(),
            scratch: Vec::new(),
            scratch_text: 0,
            types,
            last_sweep: i64::MIN,
            closed_since_spill: 0,
            stats: Stats::default(),
        }
    }

    pub fn watermark(&self) -> i64 {
        self.watermark
    }

    pub fn state(&self) -> &S {
        &self.state
    }

    pub fn interner(&self) -> &Interner {
        &self.interner
    }

    /// Windows waiting in the call being built.
    pub fn pending_windows(&self) -> usize {
        self.builder.batch.windows.len()
    }

    /// The call being built is at one of `bounds`: hand it over.
    pub fn batch_full(&self, bounds: &Bounds) -> bool {
        self.builder.batch.is_full(bounds)
    }

    /// Rows and bytes the window `[start, end)` of key `id` (a grid
    /// window, or the session that starts at `start`) would add to the
    /// call being built: slices already in it add rows but no bytes.
    fn measure(&mut self, id: KeyId, start: i64, end: i64) -> (usize, usize) {
        let Some(ks) = self.state.get_mut(id, &mut self.interner) else {
            return (0, 0);
        };
        let (call, width) = (self.builder.id(), self.builder.width());
        let add = |(rows, bytes): (usize, usize), s: &Slice| {
            let placed = matches!(s.placed, Some((c, version, _)) if c == call && version == s.version);
            let new = if placed { 0 } else { slice_bytes(s, width) };
            (rows + s.len(), bytes + new + s.acc.as_ref().map_or(0, Vec::len))
        };
        match self.shape {
            Shape::Grid(_) => {
                ks.slices.iter().skip_while(|s| s.start < start).take_while(|s| s.start < end).fold((0, 0), add)
            }
            Shape::Session(_) => {
                ks.sessions.iter().filter(|s| s.start == start).flat_map(|s| s.parts.iter()).fold((0, 0), add)
            }
        }
    }

    /// Whether the call being built has room for the window of key `id`
    /// that closes at `end` (for sessions, its first session due).
    fn room_for_close(&mut self, bounds: &Bounds, id: KeyId, end: i64) -> bool {
        let start = match self.shape {
            Shape::Grid(grid) => end - grid.size,
            Shape::Session(_) => {
                let w = self.watermark;
                let ks = self.state.get_mut(id, &mut self.interner);
                let due = ks.and_then(|ks| ks.sessions.iter().find(|s| !s.fired));
                match due.filter(|s| s.end <= w) {
                    Some(s) => s.start,
                    None => return true,
                }
            }
        };
        let (rows, bytes) = self.measure(id, start, end);
        self.builder.batch.has_room(bounds, rows, bytes)
    }

    /// Hand over the call built so far.
    pub fn take_batch(&mut self) -> Batch {
        self.builder.take(&mut self.interner)
    }

    /// Give an evaluated batch back, so the next call reuses its buffers.
    pub fn recycle(&mut self, batch: Batch) {
        self.builder.recycle(batch);
    }

    /// Intern the event's values into `scratch`.
    fn store(&mut self, event: &decode::Event<'_>) {
        let interner = &mut self.interner;
        let mut text = 0;
        self.scratch.clear();
        self.scratch.extend(event.values.iter().map(|v| match v {
            decode::Value::Null => Value::Null,
            decode::Value::Bool(b) => Value::Bool(*b),
            decode::Value::Int(i) => Value::Int(*i),
            decode::Value::Float(f) => Value::Float(*f),
            decode::Value::Str(s) => {
                text += s.len() as u64;
                Value::Str(interner.intern(s))
            }
        }));
        self.scratch_text = text;
    }

    fn mark_dirty(&mut self, id: KeyId) {
        if self.mode == Mode::Aggregate
            && let Some(ks) = self.state.get_mut(id, &mut self.interner).filter(|ks| !ks.dirty)
        {
            ks.dirty = true;
            self.dirty.push(id);
        }
    }

    /// Assign an event, read from source `partition`, to its windows.
    pub fn process(&mut self, event: &decode::Event<'_>, partition: u32) -> Result<(), Late> {
        let accepted = match self.shape {
            Shape::Grid(grid) => self.process_grid(grid, event, partition),
            Shape::Session(gap) => self.process_session(gap, event, partition),
        };
        match accepted {
            Ok(()) => self.stats.events_accepted += 1,
            Err(_) => self.stats.events_late += 1,
        }
        accepted
    }

    fn process_grid(&mut self, grid: Grid, event: &decode::Event<'_>, partition: u32) -> Result<(), Late> {
        let (t, w, lateness) = (event.time, self.watermark, self.spec.allowed_lateness);
        if grid.last_end(t).saturating_add(lateness) <= w {
            return Err(Late { watermark: w });
        }
        self.store(event);
        let id = self.state.lookup_or_insert(&event.key);
        let Some(ks) = self.state.get_mut(id, &mut self.interner) else {
            return Ok(());
        };
        ks.last_event = ks.last_event.max(t);
        ks.partition = partition;
        let a = grid.slice_start(t);
        // Most events land in the newest slice: skip the search then.
        let at = match ks.slices.back() {
            Some(last) if last.start == a => ks.slices.len() - 1,
            Some(last) if last.start < a => ks.slices.len(),
            _ => ks.slices.partition_point(|s| s.start < a),
        };
        if ks.slices.get(at).is_none_or(|s| s.start != a) {
            ks.slices.insert(at, Slice::new(a, &self.types));
            self.cleanup_timers.push(Reverse((grid.last_end(a).saturating_add(lateness), id)));
        }
        ks.slices[at].insert(t, &self.scratch, self.scratch_text);
        if grid.first_end(t) <= w {
            for e in grid.ends(t).filter(|&e| e <= w && e.saturating_add(lateness) > w) {
                self.late_refires.push((id, e - grid.size, e));
            }
        }
        let open = grid.first_open_end(t, w);
        match (self.spec.trigger, open) {
            (TriggerMode::Close, Some(e)) if ks.next_close.is_none_or(|n| e < n) => {
                ks.next_close = Some(e);
                self.close_timers.push(Reverse((e, id)));
            }
            (TriggerMode::Event, Some(e)) => self.fire_grid(grid, id, e, Trigger::Event),
            _ => {}
        }
        self.mark_dirty(id);
        Ok(())
    }

    fn process_session(&mut self, gap: i64, event: &decode::Event<'_>, partition: u32) -> Result<(), Late> {
        let (t, w, lateness) = (event.time, self.watermark, self.spec.allowed_lateness);
        let (mut start, mut end) = (t, t.saturating_add(gap));
        // Sessions that touch [t, t + gap) merge with it (Flink's rule).
        let existing = match self.state.lookup(&event.key) {
            Some(id) => self.state.get_mut(id, &mut self.interner).map(|ks| &*ks),
            None => None,
        };
        let range = existing.map_or(0..0, |ks| {
            let from = ks.sessions.partition_point(|s| s.end < t);
            let to = ks.sessions.partition_point(|s| s.start <= end);
            from..to.max(from)
        });
        if let Some(ks) = existing {
            for s in &ks.sessions[range.clone()] {
                start = start.min(s.start);
                end = end.max(s.end);
            }
        }
        if end.saturating_add(lateness) <= w {
            return Err(Late { watermark: w });
        }
        self.store(event);
        let id = self.state.lookup_or_insert(&event.key);
        let mode = self.mode;
        let Some(ks) = self.state.get_mut(id, &mut self.interner) else {
            return Ok(());
        };
        ks.last_event = ks.last_event.max(t);
        ks.partition = partition;
        let merged: Vec<Session> = ks.sessions.drain(range.clone()).collect();
        let mut parts: Vec<Slice> = Vec::new();
        for session in merged {
            for part in session.parts {
                match (mode, parts.first_mut()) {
                    // Window transforms keep one part; sessions are disjoint
                    // in time, so appending keeps event-time order.
                    (Mode::Window, Some(first)) => first.append(part),
                    _ => parts.push(part),
                }
            }
        }
        if parts.is_empty() {
            parts.push(Slice::new(start, &self.types));
        }
        parts[0].insert(t, &self.scratch, self.scratch_text);
        let closed = end <= w;
        ks.sessions.insert(range.start, Session { start, end, fired: closed, parts });
        self.cleanup_timers.push(Reverse((end.saturating_add(lateness), id)));
        if closed {
            self.late_refires.push((id, start, end));
        } else {
            match self.spec.trigger {
                TriggerMode::Close => {
                    let next = ks.sessions.iter().filter(|s| !s.fired).map(|s| s.end).min();
                    if next != ks.next_close {
                        ks.next_close = next;
                        if let Some(e) = next {
                            self.close_timers.push(Reverse((e, id)));
                        }
                    }
                }
                TriggerMode::Event => self.fire_session(id, start, Trigger::Event),
            }
        }
        self.mark_dirty(id);
        Ok(())
    }

    fn fire_grid(&mut self, grid: Grid, id: KeyId, end: i64, trigger: Trigger) {
        let start = end - grid.size;
        let Some(ks) = self.state.get_mut(id, &mut self.interner) else {
            return;
        };
        // Cleanup keeps the front within a window's reach of what fires:
        // the first slice is found in a step or two from the front.
        let from = ks.slices.iter().position(|s| s.start >= start).unwrap_or(ks.slices.len());
        let inside = ks.slices.range(from..).take_while(|s| s.start < end);
        let mut rows = Vec::with_capacity(inside.map(Slice::len).sum());
        let mut accs = Vec::new();
        let mut latest = i64::MIN;
        for slice in ks.slices.range_mut(from..) {
            if slice.start >= end {
                break;
            }
            gather(slice, &mut self.builder, &mut rows);
            accs.extend(slice.acc.clone());
            latest = latest.max(slice.latest);
        }
        if rows.is_empty() && accs.is_empty() {
            return;
        }
        let key = ks.key.to_string();
        self.emit(Fired { key, start, end, latest, trigger, rows, accs });
    }

    fn fire_session(&mut self, id: KeyId, start: i64, trigger: Trigger) {
        let Some(ks) = self.state.get_mut(id, &mut self.interner) else {
            return;
        };
        let Some(session) = ks.sessions.iter_mut().find(|s| s.start == start) else {
            return;
        };
        let mut rows = Vec::new();
        let mut accs = Vec::new();
        let mut latest = i64::MIN;
        for part in &mut session.parts {
            gather(part, &mut self.builder, &mut rows);
            accs.extend(part.acc.clone());
            latest = latest.max(part.latest);
        }
        let (start, end) = (session.start, session.end);
        let key = ks.key.to_string();
        self.emit(Fired { key, start, end, latest, trigger, rows, accs });
    }

    fn emit(&mut self, fired: Fired) {
        match fired.trigger {
            Trigger::Close => self.stats.fired_close += 1,
            Trigger::Event => self.stats.fired_event += 1,
            Trigger::Late => self.stats.fired_late += 1,
        }
        self.builder.batch.push_window(fired);
    }

    /// Fire the late updates of the events processed since the last call,
    /// once per window. Stops when the call being built has no room for
    /// the next and returns `false`: hand the batch over and call again.
    pub fn flush_late(&mut self, bounds: &Bounds) -> bool {
        if self.late_queue.is_empty() {
            let mut refires = std::mem::take(&mut self.late_refires);
            refires.sort_unstable();
            refires.dedup();
            match self.shape {
                Shape::Grid(_) => self.late_queue.extend(refires.iter().copied()),
                Shape::Session(_) => {
                    // A later event of the same chunk may have merged the
                    // session into a larger one: fire what holds it now, if
                    // still closed. Refires are sorted, so two that resolve
                    // to one session are next to each other.
                    for &(id, start, _) in &refires {
                        let Some(ks) = self.state.get_mut(id, &mut self.interner) else {
                            continue;
                        };
                        let Some(s) = ks.sessions.iter().find(|s| s.start <= start && start < s.end) else {
                            continue;
                        };
                        let fire = (id, s.start, s.end);
                        if s.end <= self.watermark && self.late_queue.back() != Some(&fire) {
                            self.late_queue.push_back(fire);
                        }
                    }
                }
            }
            refires.clear();
            self.late_refires = refires;
        }
        while let Some(&(id, start, end)) = self.late_queue.front() {
            let (rows, bytes) = self.measure(id, start, end);
            if !self.builder.batch.has_room(bounds, rows, bytes) {
                return false;
            }
            self.late_queue.pop_front();
            match self.shape {
                Shape::Grid(grid) => self.fire_grid(grid, id, end, Trigger::Late),
                Shape::Session(_) => self.fire_session(id, start, Trigger::Late),
            }
        }
        true
    }

    /// Move the watermark: fire windows that closed, drop state no trigger
    /// can need any more. Stops when the call being built has no room for
    /// the next window within `bounds` and returns `false`: hand the batch
    /// over and call again (with the same watermark) to go on.
    pub fn advance(&mut self, watermark: i64, bounds: &Bounds) -> bool {
        self.watermark = self.watermark.max(watermark);
        let watermark = self.watermark;
        while let Some(&Reverse((e, id))) = self.close_timers.peek() {
            if e > watermark {
                break;
            }
            if self.state.meta(id).is_none_or(|m| m.next_close != Some(e)) {
                self.close_timers.pop();
                continue;
            }
            if !self.room_for_close(bounds, id, e) {
                return false;
            }
            self.close_timers.pop();
            match self.shape {
                Shape::Grid(grid) => self.close_grid(grid, id, e),
                Shape::Session(_) => self.close_sessions(id),
            }
            // A watermark that passes a slide boundary fires nearly every
            // key: a backend that keeps state on disk must put keys back as
            // it goes, not once the step is over.
            self.closed_since_spill += 1;
            if self.closed_since_spill >= SPILL_EVERY {
                self.closed_since_spill = 0;
                self.state.spill(&mut self.interner);
            }
        }
        while let Some(&Reverse((t, id))) = self.cleanup_timers.peek() {
            if t > watermark {
                break;
            }
            self.cleanup_timers.pop();
            self.cleanup(id);
        }
        self.sweep_idle_keys();
        true
    }

    fn close_grid(&mut self, grid: Grid, id: KeyId, e: i64) {
        self.fire_grid(grid, id, e, Trigger::Close);
        let Some(ks) = self.state.get_mut(id, &mut self.interner) else {
            return;
        };
        // The next window with data: the one after this, or the first that
        // holds the next slice.
        let next_start = e + grid.slide - grid.size;
        let at = ks.slices.partition_point(|s| s.start < next_start);
        ks.next_close = ks.slices.get(at).map(|s| (e + grid.slide).max(grid.first_end(s.start)));
        if let Some(n) = ks.next_close {
            self.close_timers.push(Reverse((n, id)));
        }
    }

    /// Fire the key's first session due; the next one due gets its own
    /// timer (and its own check for room in the call).
    fn close_sessions(&mut self, id: KeyId) {
        let w = self.watermark;
        let Some(ks) = self.state.get_mut(id, &mut self.interner) else {
            return;
        };
        // Sessions are disjoint and in order: the first unfired is due first.
        let due = ks.sessions.iter_mut().find(|s| !s.fired).filter(|s| s.end <= w).map(|s| {
            s.fired = true;
            s.start
        });
        ks.next_close = ks.sessions.iter().filter(|s| !s.fired).map(|s| s.end).min();
        if let Some(n) = ks.next_close {
            self.close_timers.push(Reverse((n, id)));
        }
        if let Some(start) = due {
            self.fire_session(id, start, Trigger::Close);
        }
    }

    fn cleanup(&mut self, id: KeyId) {
        let (w, lateness) = (self.watermark, self.spec.allowed_lateness);
        let interner = &mut self.interner;
        let Some(ks) = self.state.get_mut(id, interner) else {
            return;
        };
        match self.shape {
            Shape::Grid(grid) => {
                while let Some(front) = ks.slices.front_mut() {
                    if grid.last_end(front.start).saturating_add(lateness) > w {
                        break;
                    }
                    front.release(interner);
                    ks.slices.pop_front();
                }
            }
            Shape::Session(_) => {
                ks.sessions.retain_mut(|s| {
                    let keep = s.end.saturating_add(lateness) > w;
                    if !keep {
                        s.parts.iter_mut().for_each(|p| p.release(interner));
                    }
                    keep
                });
            }
        }
        if ks.is_empty() {
            self.state.remove(id, &mut self.interner);
        }
    }

    fn sweep_idle_keys(&mut self) {
        let (w, ttl) = (self.watermark, self.spec.state_ttl);
        if w < self.last_sweep.saturating_add(ttl / 2) {
            return;
        }
        self.last_sweep = w;
        for id in self.state.ids() {
            let idle = self.state.meta(id).is_some_and(|m| m.last_event.saturating_add(ttl) <= w);
            if idle && self.state.remove(id, &mut self.interner) == Some(true) {
                self.stats.keys_expired += 1;
            }
        }
    }

    /// Aggregates: queue a fold of every slice's unfolded events into its
    /// accumulator. Call [`Operator::apply_folds`] with the results. Stops
    /// when the call being built is full and returns `false`: hand it over
    /// and call again.
    pub fn collect_folds(&mut self, bounds: &Bounds) -> bool {
        while let Some(&id) = self.dirty.last() {
            if self.builder.batch.is_full(bounds) {
                return false;
            }
            self.dirty.pop();
            let Some(ks) = self.state.get_mut(id, &mut self.interner) else {
                continue;
            };
            ks.dirty = false;
            let mut folds = Vec::new();
            for slice in ks.slices.iter_mut().filter(|s| !s.is_empty()) {
                let mut rows = Vec::new();
                gather(slice, &mut self.builder, &mut rows);
                folds.push(Fold { key: id, slice: SliceRef::Grid(slice.start), acc: slice.acc.take(), rows });
            }
            for session in &mut ks.sessions {
                for (i, part) in session.parts.iter_mut().enumerate().filter(|(_, p)| !p.is_empty()) {
                    let mut rows = Vec::new();
                    gather(part, &mut self.builder, &mut rows);
                    let slice = SliceRef::Session { start: session.start, part: i };
                    folds.push(Fold { key: id, slice, acc: part.acc.take(), rows });
                }
            }
            for fold in folds {
                self.builder.batch.push_fold(fold);
            }
        }
        true
    }

    /// Store the folded accumulators. A failed fold keeps the accumulator it
    /// had (its events went to the dead-letter output).
    pub fn apply_folds(&mut self, folds: Vec<Fold>, results: Vec<Option<Vec<u8>>>) {
        for (fold, result) in folds.into_iter().zip(results) {
            let Some(ks) = self.state.get_mut(fold.key, &mut self.interner) else {
                continue;
            };
            let slice = match fold.slice {
                SliceRef::Grid(start) => ks.slices.iter_mut().find(|s| s.start == start),
                SliceRef::Session { start, part } => {
                    ks.sessions.iter_mut().find(|s| s.start == start).and_then(|s| s.parts.get_mut(part))
                }
            };
            if let Some(slice) = slice {
                slice.acc = result.or(fold.acc);
                slice.release(&mut self.interner);
            }
        }
    }

    /// Between steps: the state backend brings its memory back within
    /// budget.
    pub fn spill(&mut self) {
        self.state.spill(&mut self.interner);
    }

    /// A failure of the state backend since the last call: from then on
    /// the operator's view of state may be wrong.
    pub fn take_state_error(&mut self) -> Option<state::Error> {
        self.state.take_error()
    }

    /// Keys the state backend moved between memory and disk since the last
    /// call.
    pub fn take_state_io(&mut self) -> state::Io {
        self.state.take_io()
    }

    /// Keys with state.
    pub fn keys(&self) -> usize {
        self.state.len()
    }

    /// Drop the state of every key last fed by `partition`, without firing:
    /// the partition was revoked, and its new owner rebuilds the windows by
    /// reading from the committed offset (which no event still held here
    /// is behind; see [`Operator::oldest_state`]). Returns the keys dropped.
    pub fn drop_partition(&mut self, partition: u32) -> usize {
        let mut dropped = 0;
        for id in self.state.ids() {
            if self.state.meta(id).is_some_and(|m| m.partition == partition)
                && self.state.remove(id, &mut self.interner).is_some()
            {
                dropped += 1;
            }
        }
        dropped
    }

    /// Everything the operator holds, between steps (no call being built,
    /// no late update queued: a barrier leaves it so).
    pub fn snapshot(&mut self) -> Snapshot {
        debug_assert!(self.pending_windows() == 0 && self.late_queue.is_empty() && self.late_refires.is_empty());
        let mut snapshot = Snapshot { watermark: self.watermark, last_sweep: self.last_sweep, ..Snapshot::default() };
        let partitions = &mut snapshot.partitions;
        self.state
            .encode_all(&self.interner, &mut |partition, bytes| partitions.entry(partition).or_default().push(bytes));
        snapshot
    }

    /// Take in the keys of `snapshot` (of every partition, or of the
    /// partitions of a restored source) with their timers, before their
    /// partitions' first record; a key belongs to the partition it is
    /// listed under (a source's partition numbers may differ from the run
    /// that took the snapshot). The watermark moves to the snapshot's if it
    /// is ahead.
    pub fn restore(&mut self, snapshot: &Snapshot, partitions: impl Fn(u32) -> bool) -> Result<usize, CodecError> {
        self.watermark = self.watermark.max(snapshot.watermark);
        self.last_sweep = self.last_sweep.max(snapshot.last_sweep);
        let lateness = self.spec.allowed_lateness;
        let mut restored = 0;
        for (&partition, keys) in snapshot.partitions.iter().filter(|(p, _)| partitions(**p)) {
            for bytes in keys {
                let ks = KeyState::decode(bytes, &mut self.interner)?;
                let id = self.state.lookup_or_insert(&ks.key);
                if let Some(mut old) = self.state.get_mut(id, &mut self.interner).map(std::mem::take) {
                    old.release(&mut self.interner);
                }
                if let Some(e) = ks.next_close {
                    self.close_timers.push(Reverse((e, id)));
                }
                match self.shape {
                    Shape::Grid(grid) => self.cleanup_timers.extend(
                        ks.slices.iter().map(|s| Reverse((grid.last_end(s.start).saturating_add(lateness), id))),
                    ),
                    Shape::Session(_) => self
                        .cleanup_timers
                        .extend(ks.sessions.iter().map(|s| Reverse((s.end.saturating_add(lateness), id)))),
                }
                let unfolded = ks.slices.iter().chain(ks.sessions.iter().flat_map(|s| &s.parts)).any(|s| !s.is_empty());
                if let Some(slot) = self.state.get_mut(id, &mut self.interner) {
                    *slot = KeyState { dirty: false, partition, ..ks };
                }
                if unfolded {
                    self.mark_dirty(id);
                }
                restored += 1;
                if restored % 1024 == 0 {
                    self.state.spill(&mut self.interner);
                }
            }
        }
        Ok(restored)
    }

    /// The earliest event time that state still holds (a slice's or
    /// session's start, which is no later than its events), `i64::MAX`
    /// when there is none. Events before it have had every effect they
    /// will have: their source offsets may be committed once those effects
    /// reached the sinks. O(keys): call it now and then, not per event.
    pub fn oldest_state(&self) -> i64 {
        self.state.ids().into_iter().filter_map(|id| self.state.meta(id)).map(|m| m.oldest).min().unwrap_or(i64::MAX)
    }
}
