//! The operator's Prometheus metrics, on one registry whose names all start with `gongshu_`.

use std::time::Instant;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
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
        Ok(Self {
            registry,
            reconciles,
            errors,
            duration,
            status_writes,
            leader,
        })
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
}
