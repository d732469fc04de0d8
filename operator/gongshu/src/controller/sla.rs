//! The SLA gauges of `docs/metrics.md`, computed at each scrape from the leader's caches
//! (`gongshu_api::sla`): a step turns overdue at its due time whether or not anything
//! reconciled it. Registered for one term as leader and unregistered when it ends, so a
//! standby exports none of them.

use std::sync::{Arc, Mutex, PoisonError};

use gongshu_api::{
    sla::{self, PendingStep},
    v1alpha1::{DataCatalog, ShareGrant},
};
use jiff::Timestamp;
use kube::{ResourceExt, runtime::reflector::Store};
use prometheus::{
    GaugeVec, Opts,
    core::{Collector, Desc},
    proto::MetricFamily,
};

use super::facts::Facts;

/// The gauges, filled afresh at each scrape.
#[derive(Clone)]
pub struct SlaCollector {
    grants: Store<ShareGrant>,
    catalogs: Store<DataCatalog>,
    facts: Facts,
    gauges: Arc<Gauges>,
}

impl std::fmt::Debug for SlaCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlaCollector").finish_non_exhaustive()
    }
}

struct Gauges {
    /// One scrape at a time: each resets and refills the vectors.
    scrape: Mutex<()>,
    next_due: GaugeVec,
    breached: GaugeVec,
    due_soon: GaugeVec,
    grants: GaugeVec,
    queue_depth: GaugeVec,
    queue_oldest: GaugeVec,
}

impl Gauges {
    fn all(&self) -> [&GaugeVec; 6] {
        [
            &self.next_due,
            &self.breached,
            &self.due_soon,
            &self.grants,
            &self.queue_depth,
            &self.queue_oldest,
        ]
    }
}

impl SlaCollector {
    /// A collector over the grant and catalog controllers' stores.
    pub fn new(
        grants: Store<ShareGrant>,
        catalogs: Store<DataCatalog>,
        facts: Facts,
    ) -> Result<Self, prometheus::Error> {
        let gauge =
            |name: &str, help: &str, labels: &[&str]| GaugeVec::new(Opts::new(name, help), labels);
        let gauges = Gauges {
            scrape: Mutex::new(()),
            next_due: gauge(
                "deadline_next_due_timestamp_seconds",
                "Earliest due time (Unix seconds) of the pending steps of this kind the department must act on (SH-4).",
                &["department", "step"],
            )?,
            breached: gauge(
                "deadline_breached",
                "Pending steps of this kind the department must act on that are past their due time now (SH-4, SUP-2).",
                &["department", "step"],
            )?,
            due_soon: gauge(
                "deadline_due_within_one_working_day",
                "Pending steps, not yet overdue, due by the end of the next working day of the Regulation's calendar (NM23 reminders).",
                &["department", "step"],
            )?,
            grants: gauge(
                "grants",
                "ShareGrants by requesting (consumer) department and phase.",
                &["department", "phase"],
            )?,
            queue_depth: gauge(
                "review_queue_depth",
                "Subjects (grants, catalog items) waiting for the department to act.",
                &["department"],
            )?,
            queue_oldest: gauge(
                "review_queue_oldest_timestamp_seconds",
                "When the step of the oldest subject waiting on the department started (Unix seconds).",
                &["department"],
            )?,
        };
        Ok(Self {
            grants,
            catalogs,
            facts,
            gauges: Arc::new(gauges),
        })
    }

    fn department(&self, namespace: &str) -> String {
        self.facts
            .department_of(namespace)
            .unwrap_or_else(|| "unknown".to_owned())
    }

    fn fill(&self, now: Timestamp) {
        let mut steps: Vec<PendingStep> = Vec::new();
        let mut phases = Vec::new();
        for grant in self.grants.state() {
            let Some(status) = grant.status.as_ref() else {
                continue;
            };
            let namespace = grant.namespace().unwrap_or_default();
            let department = self.department(&namespace);
            steps.extend(sla::grant_steps(
                &department,
                &namespace,
                &grant.name_any(),
                status,
            ));
            if let Some(phase) = status.phase {
                phases.push((department, phase));
            }
        }
        for catalog in self.catalogs.state() {
            let Some(status) = catalog.status.as_ref() else {
                continue;
            };
            let namespace = catalog.namespace().unwrap_or_default();
            let department = self.department(&namespace);
            steps.extend(sla::catalog_steps(
                &department,
                &namespace,
                &catalog.name_any(),
                status,
            ));
        }
        let regulation = self.facts.regulation();
        let figures = sla::gauges(&steps, phases, &regulation.facts.calendar, now);
        let g = &self.gauges;
        for vec in g.all() {
            vec.reset();
        }
        for ((department, step), f) in &figures.deadlines {
            let labels = [department.as_str(), step.as_str()];
            g.next_due
                .with_label_values(&labels)
                .set(f.next_due.as_second() as f64);
            g.breached
                .with_label_values(&labels)
                .set(f64::from(f.breached));
            g.due_soon
                .with_label_values(&labels)
                .set(f64::from(f.due_within_one_working_day));
        }
        for ((department, phase), n) in &figures.grants {
            let phase = format!("{phase:?}");
            g.grants
                .with_label_values(&[department.as_str(), phase.as_str()])
                .set(f64::from(*n));
        }
        for (department, queue) in &figures.queues {
            g.queue_depth
                .with_label_values(&[department.as_str()])
                .set(f64::from(queue.depth));
            g.queue_oldest
                .with_label_values(&[department.as_str()])
                .set(queue.oldest.as_second() as f64);
        }
    }
}

impl Collector for SlaCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.gauges
            .all()
            .into_iter()
            .flat_map(Collector::desc)
            .collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        // Before the caches have listed, nothing is known: export nothing rather than zeros.
        if !self.facts.is_synced() {
            return Vec::new();
        }
        let _one = self
            .gauges
            .scrape
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.fill(Timestamp::now());
        self.gauges
            .all()
            .into_iter()
            .flat_map(Collector::collect)
            .collect()
    }
}
