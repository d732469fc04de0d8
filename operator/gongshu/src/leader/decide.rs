//! The pure part of leader election: given what the lease says and how long ago this process
//! last saw it change, what to do next.
//!
//! As in client-go, a lease is judged expired by the *local* clock: a candidate waits a full
//! lease duration after it last saw the lease record change before it takes over. The holder's
//! `renewTime` is only compared for equality, so clock skew between nodes cannot cause two
//! leaders.

use std::time::Duration;

/// What a Lease object says, reduced to what the decision needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// `spec.holderIdentity`; `None` when empty (released).
    pub holder: Option<String>,
    /// `spec.leaseDurationSeconds`.
    pub duration: Duration,
    /// `spec.renewTime`, as written; only compared for change.
    pub renew_time: Option<jiff::Timestamp>,
    /// `spec.leaseTransitions`.
    pub transitions: i32,
}

/// The last lease record seen and when it was first seen in that form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation<I> {
    /// The record.
    pub record: Record,
    /// When this process first saw it (a monotonic instant).
    pub since: I,
}

/// Updates what was observed: a record that did not change keeps its first-seen time.
pub fn observe<I>(previous: Option<Observation<I>>, record: Record, now: I) -> Observation<I> {
    match previous {
        Some(previous) if previous.record == record => previous,
        _ => Observation { record, since: now },
    }
}

/// What to do about the lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// No Lease object exists: create it, holding it.
    Create,
    /// We hold it: renew it.
    Renew,
    /// It is free (released, or expired by our clock): take it over.
    Acquire,
    /// Someone else holds it; look again after at most this long.
    Wait(Duration),
}

/// Decides for `identity`, given the current `record` (`None` if no Lease exists) and the time
/// since the record was last seen to change.
pub fn decide(identity: &str, record: Option<&Record>, unchanged_for: Duration) -> Decision {
    let Some(record) = record else {
        return Decision::Create;
    };
    match record.holder.as_deref() {
        Some(holder) if holder == identity => Decision::Renew,
        None => Decision::Acquire,
        Some(_) if unchanged_for >= record.duration => Decision::Acquire,
        Some(_) => Decision::Wait(record.duration - unchanged_for),
    }
}

/// Whether a leader whose last successful renewal was `since_renewal` ago may still act: it
/// must stop before its lease can expire in the eyes of the others.
pub fn still_leading(since_renewal: Duration, renew_deadline: Duration) -> bool {
    since_renewal < renew_deadline
}

/// The leader-election timing, derived from the lease duration as client-go's defaults are
/// (15 s lease, 10 s renew deadline, 2 s retry period).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// How long a lease is valid after its last renewal.
    pub lease_duration: Duration,
    /// How long a leader keeps acting without a successful renewal.
    pub renew_deadline: Duration,
    /// How often candidates retry and leaders renew.
    pub retry_period: Duration,
}

impl Timing {
    /// Renew deadline two thirds of the lease, retry period a seventh (at least 100 ms).
    pub fn from_lease_duration(lease_duration: Duration) -> Self {
        Self {
            lease_duration,
            renew_deadline: lease_duration * 2 / 3,
            retry_period: (lease_duration / 7).max(Duration::from_millis(100)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held_by(holder: &str) -> Record {
        Record {
            holder: Some(holder.into()),
            duration: Duration::from_secs(15),
            renew_time: None,
            transitions: 0,
        }
    }

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn a_missing_lease_is_created() {
        assert_eq!(decide("a", None, Duration::ZERO), Decision::Create);
    }

    #[test]
    fn the_holder_renews() {
        assert_eq!(
            decide("a", Some(&held_by("a")), 100 * SECOND),
            Decision::Renew
        );
    }

    #[test]
    fn a_released_lease_is_acquired_at_once() {
        let released = Record {
            holder: None,
            ..held_by("b")
        };
        assert_eq!(
            decide("a", Some(&released), Duration::ZERO),
            Decision::Acquire
        );
    }

    #[test]
    fn a_lease_held_by_another_is_waited_for_until_it_expires_by_our_clock() {
        assert_eq!(
            decide("a", Some(&held_by("b")), 5 * SECOND),
            Decision::Wait(10 * SECOND)
        );
        assert_eq!(
            decide("a", Some(&held_by("b")), 15 * SECOND),
            Decision::Acquire
        );
    }

    #[test]
    fn a_renewal_seen_resets_the_expiry_clock() {
        let first = observe(None, held_by("b"), 0u64);
        let unchanged = observe(Some(first.clone()), held_by("b"), 10);
        assert_eq!(
            unchanged.since, 0,
            "same record: still counting from the first sight"
        );
        let renewed = Record {
            renew_time: Some(jiff::Timestamp::UNIX_EPOCH),
            ..held_by("b")
        };
        let after_renewal = observe(Some(unchanged), renewed, 12);
        assert_eq!(after_renewal.since, 12);
    }

    #[test]
    fn a_leader_stops_acting_at_the_renew_deadline() {
        assert!(still_leading(9 * SECOND, 10 * SECOND));
        assert!(!still_leading(10 * SECOND, 10 * SECOND));
    }

    #[test]
    fn timing_follows_client_go_defaults() {
        let timing = Timing::from_lease_duration(15 * SECOND);
        assert_eq!(timing.renew_deadline, 10 * SECOND);
        assert!(timing.retry_period > SECOND && timing.retry_period < 3 * SECOND);
        assert!(timing.retry_period < timing.renew_deadline);
    }
}
