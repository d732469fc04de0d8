//! The operator's Prometheus metrics, on one registry whose names all start with `gongshu_`.

use std::time::Instant;

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

/// Reconcile duration buckets, in seconds: most reconciles are one or two API calls.
const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The operator's metrics.
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Registry,
    reconciles: IntCounterVec,
    errors: IntCounterVec,
    duration: HistogramVec,
    status_writes: IntCounterVec,
    leader: IntGauge,
    backups: BackupGauges,
    admission: AdmissionMetrics,
    breaches: IntCounterVec,
}

/// Admission and the channel scan (CH-1). Labels are bounded: `kind` by the kinds the webhook
/// admits, `rule` by the rule ids in REQUIREMENTS.md, `department` by the department
/// namespaces the platform engineers create.
#[derive(Clone, Debug)]
struct AdmissionMetrics {
    requests: IntCounterVec,
    duration: HistogramVec,
    denials: IntCounterVec,
    violations: GaugeVec,
}

/// Admission review buckets, in seconds: the target is 2 ms at p99.
const ADMISSION_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.1, 0.5, 1.0, 5.0,
];

impl AdmissionMetrics {
    fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "webhook_request_duration_seconds",
                "Time the admission webhook spent judging one AdmissionReview, by admitted kind.",
            )
            .buckets(ADMISSION_BUCKETS.to_vec()),
            &["kind"],
        )?;
        let requests = IntCounterVec::new(
            Opts::new(
                "webhook_requests_total",
                "Admission reviews answered, by admitted kind and result (allowed, denied, error: could not judge and failed closed).",
            ),
            &["kind", "result"],
        )?;
        let denials = IntCounterVec::new(
            Opts::new(
                "webhook_denials_total",
                "Admission requests denied, by the rule id of each problem (\"none\" where no rule of the regulations applies).",
            ),
            &["rule"],
        )?;
        let violations = GaugeVec::new(
            Opts::new(
                "channel_violations",
                "Objects in a department's namespaces that expose workloads outside the exchange without an approved ChannelExemption (CH-1), by kind.",
            ),
            &["department", "kind"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(denials.clone()))?;
        registry.register(Box::new(violations.clone()))?;
        Ok(Self {
            requests,
            duration,
            denials,
            violations,
        })
    }
}

/// One gauge per backup policy (`namespace`, `policy`) for each of these: as many series as
/// policies, so bounded by what users create.
#[derive(Clone, Debug)]
struct BackupGauges {
    last_success: GaugeVec,
    last_duration: GaugeVec,
    last_bytes: GaugeVec,
    rpo_breached: GaugeVec,
    rpo: GaugeVec,
    failed_attempts: GaugeVec,
    last_verified: GaugeVec,
    drill_failed: GaugeVec,
}

impl BackupGauges {
    fn all(&self) -> [&GaugeVec; 8] {
        [
            &self.last_success,
            &self.last_duration,
            &self.last_bytes,
            &self.rpo,
            &self.rpo_breached,
            &self.failed_attempts,
            &self.last_verified,
            &self.drill_failed,
        ]
    }

    fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let gauge = |name: &str, help: &str| -> Result<GaugeVec, prometheus::Error> {
            let g = GaugeVec::new(Opts::new(name, help), &["namespace", "policy"])?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        Ok(Self {
            last_success: gauge(
                "backup_last_success_timestamp_seconds",
                "When the newest complete backup of a BackupPolicy finished (Unix time).",
            )?,
            last_duration: gauge(
                "backup_last_duration_seconds",
                "How long the newest complete backup took.",
            )?,
            last_bytes: gauge(
                "backup_last_stored_bytes",
                "Bytes the newest complete backup stored (compressed and encrypted).",
            )?,
            rpo: gauge(
                "backup_rpo_seconds",
                "The policy's recovery point objective (spec.rpo), in seconds (SEC-1).",
            )?,
            rpo_breached: gauge(
                "backup_rpo_breached",
                "1 while the newest complete backup is older than the policy's RPO (SEC-1), else 0.",
            )?,
            failed_attempts: gauge(
                "backup_failed_attempts",
                "Consecutive failed runs since the last complete backup.",
            )?,
            last_verified: gauge(
                "backup_last_verified_restore_timestamp_seconds",
                "When the last successful restore drill finished (Unix time).",
            )?,
            drill_failed: gauge(
                "backup_drill_failed",
                "1 while the last restore drill failed, else 0.",
            )?,
        })
    }
}

impl Metrics {
    /// Registers every metric on a new `gongshu_`-prefixed registry.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("gongshu".into()), None)?;
        let reconciles = IntCounterVec::new(
            Opts::new("reconcile_total", "Reconciles started, by controller."),
            &["controller"],
        )?;
        let errors = IntCounterVec::new(
            Opts::new(
                "reconcile_errors_total",
                "Reconciles that failed and will be retried, by controller and error category.",
            ),
            &["controller", "category"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new("reconcile_duration_seconds", "Time spent in one reconcile.")
                .buckets(DURATION_BUCKETS.to_vec()),
            &["controller"],
        )?;
        let status_writes = IntCounterVec::new(
            Opts::new(
                "status_writes_total",
                "Status patches sent because the status changed (an unchanged status is not written), by controller.",
            ),
            &["controller"],
        )?;
        let leader = IntGauge::new(
            "leader",
            "1 while this process holds the leader lease and runs the controllers, else 0.",
        )?;
        registry.register(Box::new(reconciles.clone()))?;
        registry.register(Box::new(errors.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(status_writes.clone()))?;
        registry.register(Box::new(leader.clone()))?;
        let backups = BackupGauges::new(&registry)?;
        let admission = AdmissionMetrics::new(&registry)?;
        let breaches = IntCounterVec::new(
            Opts::new(
                "deadline_breaches_total",
                "Steps that became overdue (SH-4, SUP-2), counted once when the status first records the breach, by the department that had to act and the step.",
            ),
            &["department", "step"],
        )?;
        registry.register(Box::new(breaches.clone()))?;
        Ok(Self {
            breaches,
            backups,
            admission,
            registry,
            reconciles,
            errors,
            duration,
            status_writes,
            leader,
        })
    }

    /// Records one admission review of `kind` (`other` when not a registered kind) that took
    /// `seconds`, with its `result` (`allowed`, `denied`, `error`) and the rule of each problem
    /// it was denied for.
    pub fn admission_review(
        &self,
        kind: &str,
        result: &str,
        seconds: f64,
        rules: &[Option<&'static str>],
    ) {
        const KINDS: &[&str] = &[
            "DataCatalog",
            "ShareGrant",
            "Review",
            "ChannelExemption",
            "Service",
            "Ingress",
            "HTTPRoute",
            "GRPCRoute",
            "TCPRoute",
            "TLSRoute",
            "UDPRoute",
            "ReferenceGrant",
        ];
        let kind = if KINDS.contains(&kind) { kind } else { "other" };
        self.admission
            .requests
            .with_label_values(&[kind, result])
            .inc();
        self.admission
            .duration
            .with_label_values(&[kind])
            .observe(seconds);
        for rule in rules {
            self.admission
                .denials
                .with_label_values(&[rule.unwrap_or("none")])
                .inc();
        }
    }

    /// Replaces the channel violation counts with `counts` of (department, kind, count).
    pub fn set_channel_violations(
        &self,
        counts: impl IntoIterator<Item = (String, gongshu_api::v1alpha1::ExposedKind, i64)>,
    ) {
        let gauge = &self.admission.violations;
        gauge.reset();
        for (department, kind, count) in counts {
            gauge
                .with_label_values(&[department.as_str(), kind.as_str()])
                .add(count as f64);
        }
    }

    /// Makes the breach counter of (department, step) exist at 0 while such a step is pending,
    /// so that `increase()` counts its first breach (a series born at 1 counts none).
    pub fn deadline_pending(&self, department: &str, step: &str) {
        let _ = self.breaches.with_label_values(&[department, step]);
    }

    /// Counts a step that became overdue (SUP-2), once, when the status first records it.
    pub fn deadline_breached(&self, department: &str, step: &str) {
        self.breaches.with_label_values(&[department, step]).inc();
    }

    /// Adds a collector (the leader's SLA gauges) to the registry.
    pub fn register(
        &self,
        collector: Box<dyn prometheus::core::Collector>,
    ) -> Result<(), prometheus::Error> {
        self.registry.register(collector)
    }

    /// Removes a collector registered with [`register`](Self::register).
    pub fn unregister(
        &self,
        collector: Box<dyn prometheus::core::Collector>,
    ) -> Result<(), prometheus::Error> {
        self.registry.unregister(collector)
    }

    /// Counts a reconcile of `controller` and times it until the returned guard drops, so that
    /// every exit path, `?` and panics included, is recorded.
    pub fn reconcile(&self, controller: &str) -> ReconcileTimer {
        self.reconciles.with_label_values(&[controller]).inc();
        ReconcileTimer {
            histogram: self.duration.with_label_values(&[controller]),
            started: Instant::now(),
        }
    }

    /// Counts a failed reconcile.
    pub fn error(&self, controller: &str, category: &str) {
        self.errors.with_label_values(&[controller, category]).inc();
    }

    /// Counts a status patch that changed the status.
    pub fn status_written(&self, controller: &str) {
        self.status_writes.with_label_values(&[controller]).inc();
    }

    /// Records whether this process leads.
    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// Records a backup policy's state as its status and Ready condition say.
    pub fn record_backup(
        &self,
        namespace: &str,
        policy: &str,
        status: &gongshu_api::v1alpha1::BackupPolicyStatus,
        rpo_breached: bool,
        rpo: Option<jiff::SignedDuration>,
    ) {
        let labels = [namespace, policy];
        let g = &self.backups;
        if let Some(rpo) = rpo {
            g.rpo.with_label_values(&labels).set(rpo.as_secs_f64());
        }
        let seconds = |t: &jiff::Timestamp| t.as_millisecond() as f64 / 1000.0;
        if let Some(b) = &status.last_backup {
            g.last_success
                .with_label_values(&labels)
                .set(seconds(&b.completed_at.0));
            g.last_duration
                .with_label_values(&labels)
                .set(b.duration_seconds as f64);
            g.last_bytes.with_label_values(&labels).set(b.bytes as f64);
        }
        g.rpo_breached
            .with_label_values(&labels)
            .set(f64::from(u8::from(rpo_breached)));
        g.failed_attempts.with_label_values(&labels).set(
            status
                .last_failure
                .as_ref()
                .map_or(0.0, |f| f.attempts as f64),
        );
        if let Some(r) = &status.last_verified_restore {
            g.last_verified
                .with_label_values(&labels)
                .set(seconds(&r.at.0));
        }
        g.drill_failed
            .with_label_values(&labels)
            .set(f64::from(u8::from(status.last_failed_drill.is_some())));
    }

    /// Drops the series of a deleted backup policy.
    pub fn forget_backup(&self, namespace: &str, policy: &str) {
        for gauge in self.backups.all() {
            // Absent when the policy was never reconciled by this process: nothing to drop.
            let _ = gauge.remove_label_values(&[namespace, policy]);
        }
    }

    /// Drops every backup series: the end of a term as leader (a standby exports none).
    pub fn clear_backups(&self) {
        for gauge in self.backups.all() {
            gauge.reset();
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let mut buffer = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buffer)?;
        Ok(String::from_utf8_lossy(&buffer).into_owned())
    }
}

/// Observes the time since it was created into the reconcile duration histogram when dropped.
#[derive(Debug)]
pub struct ReconcileTimer {
    histogram: prometheus::Histogram,
    started: Instant,
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        self.histogram.observe(self.started.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn metrics_are_prefixed_and_the_timer_records_on_drop() {
        let metrics = Metrics::new().unwrap();
        {
            let _timer = metrics.reconcile("datacatalog");
        }
        metrics.error("datacatalog", "kube_api");
        metrics.set_leader(true);
        let text = metrics.render().unwrap();
        assert!(text.contains("gongshu_reconcile_total{controller=\"datacatalog\"} 1"));
        assert!(text.contains(
            "gongshu_reconcile_errors_total{category=\"kube_api\",controller=\"datacatalog\"} 1"
        ));
        assert!(
            text.contains("gongshu_reconcile_duration_seconds_count{controller=\"datacatalog\"} 1")
        );
        assert!(text.contains("gongshu_leader 1"));
    }

    #[test]
    fn a_backup_policy_has_its_last_success_and_rpo_state() {
        let metrics = Metrics::new().unwrap();
        let status: gongshu_api::v1alpha1::BackupPolicyStatus =
            serde_json::from_value(serde_json::json!({
                "lastBackup": {"id": "x", "startedAt": "2026-11-23T01:00:00Z",
                    "completedAt": "2026-11-23T01:00:10Z", "bytes": 2048, "durationSeconds": 10,
                    "sha256": "00"},
                "lastFailure": {"backupId": "y", "at": "2026-11-23T02:00:00Z",
                    "category": "destination", "message": "down", "attempts": 3},
            }))
            .unwrap();
        metrics.record_backup(
            "dept",
            "nightly",
            &status,
            true,
            Some(jiff::SignedDuration::from_hours(26)),
        );
        let text = metrics.render().unwrap();
        for line in [
            "gongshu_backup_last_success_timestamp_seconds{namespace=\"dept\",policy=\"nightly\"} 1795395610",
            "gongshu_backup_last_stored_bytes{namespace=\"dept\",policy=\"nightly\"} 2048",
            "gongshu_backup_rpo_breached{namespace=\"dept\",policy=\"nightly\"} 1",
            "gongshu_backup_rpo_seconds{namespace=\"dept\",policy=\"nightly\"} 93600",
            "gongshu_backup_failed_attempts{namespace=\"dept\",policy=\"nightly\"} 3",
            "gongshu_backup_drill_failed{namespace=\"dept\",policy=\"nightly\"} 0",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
        metrics.forget_backup("dept", "nightly");
        let text = metrics.render().unwrap();
        assert!(
            !text.contains("policy=\"nightly\""),
            "a deleted policy leaves no series:\n{text}"
        );
    }
}
