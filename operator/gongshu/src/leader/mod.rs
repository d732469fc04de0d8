//! Lease-based leader election (`coordination.k8s.io/v1`), so that one operator process runs
//! the controllers while others stand by.
//!
//! Why a module of our own: `kube-leader-election` is still on kube 4; `kube-lease-manager`
//! 0.13 supports kube 5 but judges expiry by comparing the holder's `renewTime` with the local
//! wall clock (so clock skew between nodes shortens or lengthens leases) and keeps its decision
//! logic inside its I/O loop. This module follows client-go instead: expiry is measured on the
//! local monotonic clock from when a record was last seen to change, writes use optimistic
//! concurrency (`resourceVersion`), and a leader that stops releases the lease so that a standby
//! takes over at once. The decision itself is the pure [`decide`](decide::decide), unit-tested.

pub mod decide;

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::MicroTime,
};
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
};
use tokio::{sync::oneshot, task::JoinHandle, time::Instant};
use tracing::{debug, info, warn};

use self::decide::{Decision, Observation, Record, Timing, decide, observe, still_leading};
use crate::{
    health::Health,
    shutdown::{self, Shutdown},
};

/// The name of the operator's Lease.
pub const LEASE_NAME: &str = "gongshu-operator";

/// A failed call to the apiserver about the lease.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// Reading the Lease failed.
    #[error("cannot read Lease {namespace}/{name}: {source}")]
    Read {
        /// The lease's namespace.
        namespace: String,
        /// The lease's name.
        name: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// Creating or updating the Lease failed.
    #[error("cannot write Lease {namespace}/{name}: {source}")]
    Write {
        /// The lease's namespace.
        namespace: String,
        /// The lease's name.
        name: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// The namespace for the lease does not exist.
    #[error(
        "namespace {namespace} does not exist: create it, or point --namespace (POD_NAMESPACE) at the operator's namespace"
    )]
    NoNamespace {
        /// The missing namespace.
        namespace: String,
    },
    /// Someone else wrote the lease between our read and our renewal.
    #[error("Lease {namespace}/{name} changed while it was being renewed")]
    Conflict {
        /// The lease's namespace.
        namespace: String,
        /// The lease's name.
        name: String,
    },
}

impl LeaderError {
    /// A stable label for logs and metrics.
    pub fn category(&self) -> &'static str {
        match self {
            Self::Read { .. } => "lease_read",
            Self::Write { .. } => "lease_write",
            Self::NoNamespace { .. } => "lease_namespace_missing",
            Self::Conflict { .. } => "lease_conflict",
        }
    }
}

/// The state of the lease after one look at it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tick {
    /// We hold it.
    Leading,
    /// Someone else does (or nobody, and another candidate was faster).
    Following {
        /// The holder, if known.
        holder: Option<String>,
    },
}

/// One candidate for the lease.
#[derive(Debug)]
pub struct Elector {
    api: Api<Lease>,
    namespace: String,
    identity: String,
    timing: Timing,
    observed: Option<Observation<Instant>>,
}

fn record_of(lease: &Lease) -> Record {
    let spec = lease.spec.clone().unwrap_or_default();
    Record {
        holder: spec.holder_identity.filter(|h| !h.is_empty()),
        duration: Duration::from_secs(
            spec.lease_duration_seconds
                .and_then(|s| u64::try_from(s).ok())
                .unwrap_or(0),
        ),
        renew_time: spec.renew_time.map(|t| t.0),
        transitions: spec.lease_transitions.unwrap_or(0),
    }
}

fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(status) if status.code == code)
}

impl Elector {
    /// A candidate called `identity` for [`LEASE_NAME`] in `namespace`.
    pub fn new(client: Client, namespace: &str, identity: &str, timing: Timing) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
            identity: identity.to_owned(),
            timing,
            observed: None,
        }
    }

    /// This candidate's identity.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    fn read_error(&self, source: kube::Error) -> LeaderError {
        LeaderError::Read {
            namespace: self.namespace.clone(),
            name: LEASE_NAME.into(),
            source,
        }
    }

    fn write_error(&self, source: kube::Error) -> LeaderError {
        if is_status(&source, 404) {
            return LeaderError::NoNamespace {
                namespace: self.namespace.clone(),
            };
        }
        LeaderError::Write {
            namespace: self.namespace.clone(),
            name: LEASE_NAME.into(),
            source,
        }
    }

    fn lease_duration_seconds(&self) -> i32 {
        i32::try_from(self.timing.lease_duration.as_secs().max(1)).unwrap_or(i32::MAX)
    }

    /// Looks at the lease once and creates, acquires or renews it if [`decide`] says so.
    pub async fn tick(&mut self) -> Result<Tick, LeaderError> {
        let now = Instant::now();
        let lease = self
            .api
            .get_opt(LEASE_NAME)
            .await
            .map_err(|e| self.read_error(e))?;
        let record = lease.as_ref().map(record_of);
        let unchanged_for = match &record {
            Some(record) => {
                let observation = observe(self.observed.take(), record.clone(), now);
                let unchanged_for = now.duration_since(observation.since);
                self.observed = Some(observation);
                unchanged_for
            }
            None => {
                self.observed = None;
                Duration::ZERO
            }
        };
        let stamp = MicroTime(Timestamp::now());
        match (
            decide(&self.identity, record.as_ref(), unchanged_for),
            lease,
        ) {
            (Decision::Create, _) | (_, None) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(LEASE_NAME.into()),
                        namespace: Some(self.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(self.identity.clone()),
                        lease_duration_seconds: Some(self.lease_duration_seconds()),
                        acquire_time: Some(stamp.clone()),
                        renew_time: Some(stamp),
                        lease_transitions: Some(0),
                        ..LeaseSpec::default()
                    }),
                };
                match self.api.create(&PostParams::default(), &lease).await {
                    Ok(_) => Ok(Tick::Leading),
                    Err(e) if is_status(&e, 409) => Ok(Tick::Following { holder: None }),
                    Err(e) => Err(self.write_error(e)),
                }
            }
            (Decision::Wait(_), Some(_)) => Ok(Tick::Following {
                holder: record.and_then(|r| r.holder),
            }),
            (decision @ (Decision::Renew | Decision::Acquire), Some(mut lease)) => {
                let renewing = decision == Decision::Renew;
                let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
                if !renewing {
                    let transitions = spec.lease_transitions.unwrap_or(0);
                    spec.lease_transitions = Some(transitions.saturating_add(1));
                    spec.acquire_time = Some(stamp.clone());
                    spec.holder_identity = Some(self.identity.clone());
                }
                spec.renew_time = Some(stamp);
                spec.lease_duration_seconds = Some(self.lease_duration_seconds());
                match self
                    .api
                    .replace(LEASE_NAME, &PostParams::default(), &lease)
                    .await
                {
                    Ok(_) => Ok(Tick::Leading),
                    Err(e) if is_status(&e, 409) && renewing => Err(LeaderError::Conflict {
                        namespace: self.namespace.clone(),
                        name: LEASE_NAME.into(),
                    }),
                    Err(e) if is_status(&e, 409) => Ok(Tick::Following { holder: None }),
                    Err(e) => Err(self.write_error(e)),
                }
            }
        }
    }

    /// Campaigns until this candidate holds the lease (`true`) or `shutdown` starts (`false`).
    /// Reports on `health` whether the apiserver answers, which makes a standby ready.
    pub async fn campaign(&mut self, health: &Health, shutdown: &Shutdown) -> bool {
        let mut last_report = String::new();
        loop {
            if shutdown.is_triggered() {
                return false;
            }
            let report = match self.tick().await {
                Ok(Tick::Leading) => {
                    health.set_apiserver_ok(true);
                    return true;
                }
                Ok(Tick::Following { holder }) => {
                    health.set_apiserver_ok(true);
                    format!(
                        "standing by: Lease held by {}",
                        holder.as_deref().unwrap_or("nobody yet")
                    )
                }
                Err(e) => {
                    health.set_apiserver_ok(false);
                    format!("leader election failed ({}): {e}", e.category())
                }
            };
            // Every retry period would flood the log; say it when it changes.
            if report != last_report {
                if health.readiness().0 {
                    info!(identity = %self.identity, "{report}");
                } else {
                    warn!(identity = %self.identity, "{report}");
                }
                last_report = report;
            } else {
                debug!(identity = %self.identity, "{report}");
            }
            tokio::select! {
                () = tokio::time::sleep(self.timing.retry_period) => {}
                () = shutdown.clone().wait() => return false,
            }
        }
    }

    /// Starts renewing the lease in the background; see [`Term`].
    pub fn hold(self) -> Term {
        let (stop_tx, stop_rx) = oneshot::channel();
        let (lost_trigger, lost) = shutdown::channel();
        let task = tokio::spawn(renew(self, stop_rx, lost_trigger));
        Term {
            stop: stop_tx,
            lost,
            task,
        }
    }

    /// Gives the lease up if this candidate holds it, so that a standby need not wait for it
    /// to expire. Returns whether it did.
    pub async fn release(&mut self) -> Result<bool, LeaderError> {
        let Some(mut lease) = self
            .api
            .get_opt(LEASE_NAME)
            .await
            .map_err(|e| self.read_error(e))?
        else {
            return Ok(false);
        };
        if record_of(&lease).holder.as_deref() != Some(self.identity.as_str()) {
            return Ok(false);
        }
        let stamp = MicroTime(Timestamp::now());
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(stamp);
        self.api
            .replace(LEASE_NAME, &PostParams::default(), &lease)
            .await
            .map_err(|e| self.write_error(e))?;
        Ok(true)
    }
}

/// A leadership term: the lease is renewed in the background until [`Term::end`], or until it
/// is lost, which [`Term::lost`] reports.
#[derive(Debug)]
pub struct Term {
    stop: oneshot::Sender<()>,
    lost: Shutdown,
    task: JoinHandle<Elector>,
}

impl Term {
    /// Resolves when the lease is lost: another process took it, or renewal failed for longer
    /// than the renew deadline.
    pub fn lost(&self) -> Shutdown {
        self.lost.clone()
    }

    /// Stops renewing and hands the elector back, for [`Elector::release`] or a new campaign.
    /// `None` if the renewal task panicked.
    pub async fn end(self) -> Option<Elector> {
        let _ = self.stop.send(());
        self.task.await.ok()
    }
}

async fn renew(
    mut elector: Elector,
    mut stop: oneshot::Receiver<()>,
    lost: shutdown::Trigger,
) -> Elector {
    let timing = elector.timing;
    let mut last_renewal = Instant::now();
    loop {
        tokio::select! {
            _ = &mut stop => return elector,
            () = tokio::time::sleep(timing.retry_period) => {}
        }
        match elector.tick().await {
            Ok(Tick::Leading) => last_renewal = Instant::now(),
            Ok(Tick::Following { holder }) => {
                warn!(identity = %elector.identity, holder = holder.as_deref().unwrap_or(""), "lost the lease to another instance");
                break;
            }
            Err(e) if still_leading(last_renewal.elapsed(), timing.renew_deadline) => {
                warn!(error = %e, category = e.category(), "cannot renew the lease; retrying");
            }
            Err(e) => {
                warn!(error = %e, category = e.category(), deadline = ?timing.renew_deadline, "could not renew the lease within the renew deadline; giving up leadership");
                break;
            }
        }
    }
    lost.trigger();
    let _ = stop.await;
    elector
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: Option<&str>, seconds: Option<i32>) -> Lease {
        Lease {
            metadata: ObjectMeta::default(),
            spec: Some(LeaseSpec {
                holder_identity: holder.map(str::to_owned),
                lease_duration_seconds: seconds,
                ..LeaseSpec::default()
            }),
        }
    }

    #[test]
    fn an_empty_holder_reads_as_a_released_lease() {
        assert_eq!(record_of(&lease(Some(""), Some(15))).holder, None);
        assert_eq!(record_of(&lease(None, Some(15))).holder, None);
        assert_eq!(
            record_of(&lease(Some("a"), Some(15))).holder.as_deref(),
            Some("a")
        );
    }

    #[test]
    fn a_lease_without_a_valid_duration_counts_as_expired_at_once() {
        let record = record_of(&lease(Some("b"), None));
        assert_eq!(record.duration, Duration::ZERO);
        assert_eq!(
            decide("a", Some(&record), Duration::ZERO),
            Decision::Acquire
        );
        assert_eq!(
            record_of(&lease(Some("b"), Some(-5))).duration,
            Duration::ZERO
        );
    }

    #[test]
    fn a_spec_less_lease_is_free() {
        let record = record_of(&Lease::default());
        assert_eq!(
            decide("a", Some(&record), Duration::ZERO),
            Decision::Acquire
        );
    }
}
