//! A hand-over of revoked partitions, and what follows it, as a state
//! machine of its own: no consumer, no clock (each call is told the
//! time), so every step is unit-tested.
//!
//! With checkpoints, the group's revocation pauses the partitions and the
//! source hands out what it read before it ([`Step::Asked`]); then it asks
//! the pipeline for the hand-over checkpoint ([`Step::Told`]) and reads
//! nothing more; once the checkpoint is acknowledged it lets the
//! partitions go ([`Step::Released`]) and the group's next assignment ends
//! the hand-over. Partitions let go with no assignment since (a group that
//! lost this member's session) make the source rejoin the group as a new
//! member after a while, each time waiting twice as long; a host without
//! partitions says so, after [`WAITING_NOTICE`] and every
//! [`WAITING_REPEAT`].

use std::time::{Duration, Instant};

/// How long a consumer without partitions waits before it says so, and
/// how often it says it again.
pub(super) const WAITING_NOTICE: Duration = Duration::from_secs(5);
pub(super) const WAITING_REPEAT: Duration = Duration::from_secs(30);
/// Session timeouts (`session.timeout.ms`, 6 s by default: 30 s) after
/// partitions were let go with no assignment since before this host
/// rejoins the group as a new member. A group that lost this member's
/// session may go on waiting for members that are gone; a healthy
/// rebalance assigns within a few heartbeats. (Tansu 0.6 can keep naming
/// a member that is gone the group's leader for good: when a stale
/// heartbeat of the member is the request that finds its session over,
/// the leader is not reset, and no later member can complete a
/// rebalance. No rejoin helps there; the status says so until the broker
/// is restarted.)
pub(super) const REJOIN_AFTER_SESSIONS: u32 = 5;
/// Longest wait between two rejoins that got no assignment.
const REJOIN_MAX: Duration = Duration::from_secs(600);

/// The steps of a hand-over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// The group revoked partitions; the pipeline has yet to be told
    /// (records read before the revocation go out first).
    Asked,
    /// The pipeline is taking the hand-over checkpoint.
    Told,
    /// The partitions were let go; the group's next assignment ends it.
    Released,
}

#[derive(Debug)]
pub(super) struct HandOver {
    step: Option<Step>,
    /// Since when revoked partitions have been let go without the group
    /// assigning any again (an eager rebalance revokes, then assigns at
    /// once), or since this host last rejoined the group without an
    /// assignment since.
    let_go_since: Option<Instant>,
    /// The first wait before a rejoin; each rejoin without an assignment
    /// since doubles it (see [`rejoin_wait`]).
    rejoin_after: Duration,
    /// Rejoins since the last assignment.
    rejoins: u32,
    /// Since when this host has had no partition, and when it last said so.
    unassigned_since: Option<Instant>,
    said_waiting: Option<Instant>,
}

/// How long to wait for an assignment before rejoining, after `rejoins`
/// rejoins that got none: `first`, doubled each time up to
/// [`REJOIN_MAX`], so a rebalance that is merely slow (a member taking a
/// long hand-over checkpoint) is not restarted over and over.
pub(super) fn rejoin_wait(first: Duration, rejoins: u32) -> Duration {
    first.saturating_mul(1 << rejoins.min(16)).min(REJOIN_MAX.max(first))
}

impl HandOver {
    /// A consumer that has just joined its group (and holds nothing yet),
    /// whose session lasts `session`.
    pub fn new(session: Duration, now: Instant) -> Self {
        HandOver {
            step: None,
            let_go_since: None,
            rejoin_after: session.saturating_mul(REJOIN_AFTER_SESSIONS),
            rejoins: 0,
            unassigned_since: Some(now),
            said_waiting: None,
        }
    }

    pub fn step(&self) -> Option<Step> {
        self.step
    }

    /// The group revoked partitions: with `deferred`, they are to be
    /// handed over at a checkpoint; without, they were let go already.
    pub fn revoked(&mut self, deferred: bool, now: Instant) {
        if deferred {
            self.step = Some(Step::Asked);
        } else {
            self.let_go_since.get_or_insert(now);
        }
    }

    /// What was read before the revocation has gone out: the pipeline is
    /// asked for the checkpoint. Whether it was asked now.
    pub fn tell(&mut self) -> bool {
        let asked = self.step == Some(Step::Asked);
        if asked {
            self.step = Some(Step::Told);
        }
        asked
    }

    /// No record may be handed out: the hand-over's cut is taken.
    pub fn past_the_cut(&self) -> bool {
        matches!(self.step, Some(Step::Told | Step::Released))
    }

    /// The hand-over checkpoint was acknowledged: whether the partitions
    /// are to be let go now (only when the pipeline was told).
    pub fn release(&mut self, now: Instant) -> bool {
        if self.step != Some(Step::Told) {
            return false;
        }
        self.step = Some(Step::Released);
        self.let_go_since = Some(now);
        true
    }

    /// The group assigned partitions: the hand-over, and any wait for an
    /// assignment, is over.
    pub fn assigned(&mut self) {
        (self.step, self.let_go_since, self.rejoins) = (None, None, 0);
    }

    /// Partitions were let go and none came back for long enough: time to
    /// rejoin the group as a new member. How long it has waited.
    pub fn rejoin_due(&self, now: Instant) -> Option<Duration> {
        let waited = now.saturating_duration_since(self.let_go_since?);
        (waited >= rejoin_wait(self.rejoin_after, self.rejoins)).then_some(waited)
    }

    /// Rejoins since the last assignment.
    pub fn rejoins(&self) -> u32 {
        self.rejoins
    }

    /// This host rejoined the group as a new member: any hand-over is
    /// given up, and the wait for an assignment starts again, longer.
    pub fn rejoined(&mut self, now: Instant) {
        self.step = None;
        (self.let_go_since, self.rejoins) = (Some(now), self.rejoins.saturating_add(1));
        self.unassigned_since = Some(now);
    }

    /// Whether this host reads no partition: none assigned (`holds`
    /// false), or the ones it had were let go and none came back.
    pub fn without_partitions(&self, holds: bool) -> bool {
        self.let_go_since.is_some() || !holds
    }

    /// Called at each poll: what to log, when this host has been without
    /// partitions for [`WAITING_NOTICE`] and has not said so for
    /// [`WAITING_REPEAT`] (with how long it has waited).
    pub fn note_waiting(&mut self, holds: bool, now: Instant) -> Option<(Duration, String)> {
        if !self.without_partitions(holds) {
            self.unassigned_since = None;
            return None;
        }
        let waited = now.saturating_duration_since(*self.unassigned_since.get_or_insert(now));
        let quiet = self.said_waiting.is_none_or(|t| now.saturating_duration_since(t) >= WAITING_REPEAT);
        if waited >= WAITING_NOTICE && quiet {
            self.said_waiting = Some(now);
            return Some((waited, self.why_waiting()));
        }
        None
    }

    /// For the status: why this host reads nothing, and for how long.
    pub fn waiting(&self, holds: bool, now: Instant) -> Option<String> {
        let waited = now.saturating_duration_since(self.unassigned_since?);
        (self.without_partitions(holds) && waited >= WAITING_NOTICE)
            .then(|| format!("{} s: {}", waited.as_secs(), self.why_waiting()))
    }

    fn why_waiting(&self) -> String {
        let next = rejoin_wait(self.rejoin_after, self.rejoins).as_secs();
        if self.rejoins > 0 {
            format!(
                "rejoined the consumer group as a new member {} time(s) and still no assignment: the group's \
                 coordinator may be stuck on members that are gone (see the broker's log); rejoining again after \
                 {next} s",
                self.rejoins
            )
        } else if self.let_go_since.is_some() {
            format!(
                "partitions let go after a revocation; waiting for the consumer group to assign partitions again (a \
                 group that lost this member's session may not: this host rejoins as a new member after {next} s)"
            )
        } else {
            "waiting for the consumer group to assign partitions (a rebalance is under way; after a crash, the group \
             first waits for the old member's session to time out: session.timeout.ms)"
                .into()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SESSION: Duration = Duration::from_secs(6);

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn each_rejoin_without_an_assignment_waits_twice_as_long_up_to_a_bound() {
        let first = secs(30);
        let waits: Vec<u64> = (0..7).map(|n| rejoin_wait(first, n).as_secs()).collect();
        assert_eq!(waits, [30, 60, 120, 240, 480, 600, 600]);
        assert_eq!(rejoin_wait(first, u32::MAX), REJOIN_MAX);
        // A session longer than the bound is not cut short.
        let long = secs(900);
        assert_eq!(rejoin_wait(long, 3), long);
    }

    /// A deferred revocation: asked, told once (the cut), released once on
    /// the acknowledgement; the next assignment ends it. Records are held
    /// back from the cut until then.
    #[test]
    fn a_hand_over_goes_asked_told_released_and_ends_at_the_assignment() {
        let t0 = Instant::now();
        let mut h = HandOver::new(SESSION, t0);
        h.assigned();
        assert!(!h.release(t0), "nothing to release before a revocation");
        h.revoked(true, t0);
        assert_eq!(h.step(), Some(Step::Asked));
        assert!(!h.past_the_cut(), "what was read before the revocation still goes out");
        assert!(h.tell());
        assert!(!h.tell(), "the pipeline is told once");
        assert!(h.past_the_cut());
        assert_eq!(h.rejoin_due(t0 + secs(3_600)), None, "not let go yet: no rejoin");
        assert!(h.release(t0 + secs(1)));
        assert!(!h.release(t0 + secs(2)), "released once");
        assert_eq!(h.step(), Some(Step::Released));
        assert!(h.past_the_cut() && h.without_partitions(true));
        h.assigned();
        assert_eq!(h.step(), None);
        assert!(!h.past_the_cut() && !h.without_partitions(true));
    }

    /// Let go and never assigned again: a rejoin after five sessions, then
    /// after twice that, and so on; an assignment resets the count.
    #[test]
    fn partitions_let_go_and_never_given_back_make_the_host_rejoin() {
        let t0 = Instant::now();
        let mut h = HandOver::new(SESSION, t0);
        h.assigned();
        // Without checkpoints the revocation lets go at once.
        h.revoked(false, t0);
        assert_eq!(h.step(), None);
        assert_eq!(h.rejoin_due(t0 + secs(29)), None);
        assert_eq!(h.rejoin_due(t0 + secs(30)), Some(secs(30)));
        h.rejoined(t0 + secs(30));
        assert_eq!(h.rejoins(), 1);
        assert_eq!(h.rejoin_due(t0 + secs(89)), None);
        assert_eq!(h.rejoin_due(t0 + secs(90)), Some(secs(60)));
        h.assigned();
        assert_eq!((h.rejoins(), h.rejoin_due(t0 + secs(10_000))), (0, None));
    }

    /// A host without partitions says so after five seconds, then every
    /// thirty; the status says why (a rejoin's count, once it rejoined).
    #[test]
    fn a_host_without_partitions_says_so_and_why() {
        let t0 = Instant::now();
        let mut h = HandOver::new(SESSION, t0);
        assert_eq!(h.note_waiting(false, t0 + secs(4)), None);
        assert_eq!(h.waiting(false, t0 + secs(4)), None);
        let (waited, why) = h.note_waiting(false, t0 + secs(5)).unwrap_or_default();
        assert_eq!(waited, secs(5));
        assert!(why.contains("waiting for the consumer group to assign partitions"), "{why}");
        assert_eq!(h.note_waiting(false, t0 + secs(20)), None, "said once per thirty seconds");
        assert!(h.note_waiting(false, t0 + secs(35)).is_some());
        assert!(h.waiting(false, t0 + secs(40)).is_some_and(|w| w.starts_with("40 s: ")));
        // Partitions came: nothing to say, and the wait is over.
        assert_eq!(h.note_waiting(true, t0 + secs(41)), None);
        assert_eq!(h.waiting(true, t0 + secs(41)), None);
        h.revoked(false, t0 + secs(50));
        h.rejoined(t0 + secs(80));
        let why = h.waiting(true, t0 + secs(90)).unwrap_or_default();
        assert!(why.starts_with("10 s: rejoined the consumer group as a new member 1 time(s)"), "{why}");
    }
}
