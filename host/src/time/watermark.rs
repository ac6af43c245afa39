use std::time::{Duration, Instant};

/// Watermarks of a source's partitions, and the operator watermark they
/// give: the minimum over partitions that are neither idle nor finished.
///
/// A partition's watermark is the largest event time it has delivered minus
/// the allowed out-of-orderness: events older than that are late.
#[derive(Debug)]
pub struct Watermarks {
    out_of_orderness: i64,
    idle_timeout: Option<Duration>,
    partitions: Vec<Partition>,
}

#[derive(Debug, Clone)]
struct Partition {
    max_event_time: Option<i64>,
    last_active: Instant,
    finished: bool,
    /// Taken away (a rebalance): no longer counts.
    revoked: bool,
}

impl Partition {
    fn new(now: Instant) -> Self {
        Partition { max_event_time: None, last_active: now, finished: false, revoked: false }
    }
}

impl Watermarks {
    /// `idle_timeout`: a partition that delivers nothing for this long stops
    /// holding the watermark back, until it delivers again. Partitions
    /// (slots) come with [`Watermarks::assign`] or their first event.
    pub fn new(out_of_orderness_ms: i64, idle_timeout: Option<Duration>) -> Self {
        Watermarks { out_of_orderness: out_of_orderness_ms, idle_timeout, partitions: Vec::new() }
    }

    fn slot(&mut self, partition: usize, now: Instant) -> &mut Partition {
        if partition >= self.partitions.len() {
            self.partitions.resize(partition + 1, Partition::new(now));
        }
        &mut self.partitions[partition]
    }

    /// A partition starts being read: from now on it holds the watermark
    /// back (until it is idle). A partition assigned again starts afresh.
    pub fn assign(&mut self, partition: usize, now: Instant) {
        *self.slot(partition, now) = Partition::new(now);
    }

    /// A partition is no longer read here.
    pub fn revoke(&mut self, partition: usize) {
        if let Some(p) = self.partitions.get_mut(partition) {
            p.revoked = true;
        }
    }

    /// Record an event time delivered by `partition`.
    pub fn observe(&mut self, partition: usize, event_time: i64, now: Instant) {
        let p = self.slot(partition, now);
        p.max_event_time = Some(p.max_event_time.map_or(event_time, |m| m.max(event_time)));
        p.last_active = now;
    }

    /// The partition delivered records but none with a valid time (still a
    /// sign of life).
    pub fn touch(&mut self, partition: usize, now: Instant) {
        self.slot(partition, now).last_active = now;
    }

    /// The pipeline took no records for `held` (its workers were busy): that
    /// time does not count toward any partition's idleness. A pipeline
    /// slower than its input leaves records waiting in partitions that are
    /// not idle, and must not move the watermark past them.
    pub fn hold(&mut self, held: Duration) {
        for p in &mut self.partitions {
            p.last_active += held;
        }
    }

    /// A bounded partition reached its end: it no longer holds anything back.
    pub fn finish(&mut self, partition: usize) {
        if let Some(p) = self.partitions.get_mut(partition) {
            p.finished = true;
        }
    }

    /// The watermark of one partition, `i64::MIN` before its first event.
    pub fn partition(&self, partition: usize) -> i64 {
        self.partitions.get(partition).map_or(i64::MIN, |p| self.of(p))
    }

    fn of(&self, p: &Partition) -> i64 {
        if p.finished {
            return i64::MAX;
        }
        p.max_event_time.map_or(i64::MIN, |m| m.saturating_sub(self.out_of_orderness))
    }

    /// The operator watermark: the minimum over active partitions; `i64::MAX`
    /// when every partition has finished (the final watermark of a bounded
    /// input, which fires every remaining window).
    pub fn current(&self, now: Instant) -> i64 {
        let held = self.partitions.iter().filter(|p| !p.revoked);
        let active = held
            .clone()
            .filter(|p| p.finished || self.idle_timeout.is_none_or(|t| now.duration_since(p.last_active) < t));
        match active.map(|p| self.of(p)).min() {
            Some(w) => w,
            // Every partition is idle: the largest watermark among them, so
            // windows still close while the whole source is quiet.
            None => held.map(|p| self.of(p)).max().unwrap_or(i64::MIN),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimum_over_partitions_minus_out_of_orderness() {
        let t0 = Instant::now();
        let mut w = Watermarks::new(100, None);
        w.assign(0, t0);
        w.assign(1, t0);
        w.observe(0, 1_000, t0);
        // Partition 1 has delivered nothing: it holds the watermark back.
        assert_eq!(w.current(t0), i64::MIN);
        w.observe(1, 500, t0);
        assert_eq!(w.current(t0), 400);
        w.observe(1, 300, t0); // out of order: the maximum stays
        assert_eq!(w.partition(1), 400);
        w.finish(1);
        assert_eq!(w.current(t0), 900);
        w.finish(0);
        assert_eq!(w.current(t0), i64::MAX);
    }

    #[test]
    fn idle_partitions_stop_holding_the_watermark_back() {
        let t0 = Instant::now();
        let mut w = Watermarks::new(0, Some(Duration::from_secs(5)));
        w.observe(0, 1_000, t0);
        w.observe(1, 10, t0);
        assert_eq!(w.current(t0 + Duration::from_secs(1)), 10);
        // Partition 0 keeps delivering, partition 1 falls silent.
        let t1 = t0 + Duration::from_secs(6);
        w.observe(0, 2_000, t1);
        assert_eq!(w.current(t1), 2_000);
        // It delivers again: back in the minimum.
        w.observe(1, 20, t1);
        assert_eq!(w.current(t1), 20);
    }

    #[test]
    fn revoked_partitions_no_longer_count_and_return_afresh() {
        let t0 = Instant::now();
        let mut w = Watermarks::new(0, None);
        w.observe(0, 1_000, t0);
        w.observe(1, 10, t0);
        assert_eq!(w.current(t0), 10);
        w.revoke(1);
        assert_eq!(w.current(t0), 1_000);
        // Assigned again: it has delivered nothing yet, so it holds back.
        w.assign(1, t0);
        assert_eq!(w.current(t0), i64::MIN);
        w.revoke(0);
        w.revoke(1);
        assert_eq!(w.current(t0), i64::MIN);
    }

    /// Time the pipeline could take no records does not make a partition
    /// idle: after 60 s of which 55 were held, a partition silent since the
    /// start has been idle for 5 s, not 60.
    #[test]
    fn time_held_back_does_not_count_as_idle() {
        let t0 = Instant::now();
        let mut w = Watermarks::new(0, Some(Duration::from_secs(10)));
        w.assign(0, t0);
        w.assign(1, t0);
        w.observe(0, 1_000, t0);
        w.hold(Duration::from_secs(55));
        w.observe(1, 5_000, t0 + Duration::from_secs(60));
        assert_eq!(w.current(t0 + Duration::from_secs(60)), 1_000);
        assert_eq!(w.current(t0 + Duration::from_secs(66)), 5_000);
    }
}
