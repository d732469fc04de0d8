//! The audit log's Prometheus metrics (docs/metrics.md, "Exchange"): what the writer appended
//! and checkpointed, and what the last verification found (SEC-2). No labels: each exchange
//! replica has its own log, and the scrape's `instance` tells them apart.

use prometheus::{Gauge, IntCounter, IntGauge, Registry};

/// Handles the writer, the checkpoint task and the verifier update. Cloning shares them.
#[derive(Clone, Debug)]
pub struct AuditMetrics {
    records: IntCounter,
    chain_intact: IntGauge,
    last_verification: Gauge,
    last_record: Gauge,
    last_checkpoint: Gauge,
}

impl Default for AuditMetrics {
    /// Metrics on no registry: for logs nobody scrapes (tests, `gongshu audit`).
    fn default() -> Self {
        Self::unregistered()
    }
}

impl AuditMetrics {
    fn unregistered() -> Self {
        // The names and help texts are constants, so these constructors cannot fail.
        #[allow(clippy::expect_used)]
        let (counter, int_gauge, gauge) = (
            |name: &str, help: &str| IntCounter::new(name, help).expect("valid metric name"),
            |name: &str, help: &str| IntGauge::new(name, help).expect("valid metric name"),
            |name: &str, help: &str| Gauge::new(name, help).expect("valid metric name"),
        );
        Self {
            records: counter(
                "audit_records_total",
                "Records appended to this replica's audit log.",
            ),
            chain_intact: int_gauge(
                "audit_chain_intact",
                "1 while the last verification of this replica's audit chain against its checkpoint found it intact, 0 once one found a record edited, deleted, reordered or a segment missing (SEC-2).",
            ),
            last_verification: gauge(
                "audit_last_verification_timestamp_seconds",
                "When the audit chain was last verified (Unix time; 0 before the first verification).",
            ),
            last_record: gauge(
                "audit_last_record_timestamp_seconds",
                "When this process last appended an audit record (Unix time; 0 before its first).",
            ),
            last_checkpoint: gauge(
                "audit_last_checkpoint_timestamp_seconds",
                "When this process last wrote its segment heads to the checkpoint ConfigMap (Unix time; 0 before its first).",
            ),
        }
    }

    /// The audit metrics, registered on `registry` (whose prefix makes them `gongshu_audit_*`).
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let metrics = Self::unregistered();
        registry.register(Box::new(metrics.records.clone()))?;
        registry.register(Box::new(metrics.chain_intact.clone()))?;
        registry.register(Box::new(metrics.last_verification.clone()))?;
        registry.register(Box::new(metrics.last_record.clone()))?;
        registry.register(Box::new(metrics.last_checkpoint.clone()))?;
        // Intact until a verification says otherwise: the gauge must not read 0 (broken)
        // before the first verification has run.
        metrics.chain_intact.set(1);
        Ok(metrics)
    }

    /// `count` records were written to a segment.
    pub(crate) fn appended(&self, count: usize) {
        self.records.inc_by(count as u64);
        self.last_record.set(now_seconds());
    }

    /// The segment heads were written to the checkpoint ConfigMap.
    pub(crate) fn checkpointed(&self) {
        self.last_checkpoint.set(now_seconds());
    }

    /// A verification finished, finding the chain intact or not.
    pub(crate) fn verified(&self, intact: bool) {
        self.chain_intact.set(i64::from(intact));
        self.last_verification.set(now_seconds());
    }

    /// Whether the last verification found the chain intact (1 before the first).
    pub fn chain_intact(&self) -> bool {
        self.chain_intact.get() == 1
    }
}

fn now_seconds() -> f64 {
    jiff::Timestamp::now().as_millisecond() as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use prometheus::{Encoder, TextEncoder};

    use super::*;

    fn render(registry: &Registry) -> String {
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&registry.gather(), &mut buffer)
            .unwrap();
        String::from_utf8(buffer).unwrap()
    }

    #[test]
    fn the_audit_metrics_have_the_contracts_names_and_start_intact() {
        let registry = Registry::new_custom(Some("gongshu".into()), None).unwrap();
        let metrics = AuditMetrics::new(&registry).unwrap();
        let text = render(&registry);
        for line in [
            "# TYPE gongshu_audit_records_total counter",
            "gongshu_audit_records_total 0",
            "# TYPE gongshu_audit_chain_intact gauge",
            "gongshu_audit_chain_intact 1",
            "gongshu_audit_last_verification_timestamp_seconds 0",
            "gongshu_audit_last_record_timestamp_seconds 0",
            "gongshu_audit_last_checkpoint_timestamp_seconds 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        metrics.appended(3);
        metrics.verified(false);
        let text = render(&registry);
        assert!(text.contains("gongshu_audit_records_total 3"), "{text}");
        assert!(text.contains("gongshu_audit_chain_intact 0"), "{text}");
        assert!(!metrics.chain_intact());
        assert!(!text.contains("gongshu_audit_last_record_timestamp_seconds 0\n"));
    }

    #[tokio::test]
    async fn the_writer_counts_what_it_appends() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::new();
        let metrics = AuditMetrics::new(&registry).unwrap();
        let options = crate::audit::Options {
            metrics: metrics.clone(),
            ..crate::audit::Options::new(dir.path())
        };
        let log = crate::audit::AuditLog::open(options, None, std::future::pending())
            .await
            .unwrap();
        for _ in 0..3 {
            log.append(crate::audit::Record::default()).await.unwrap();
        }
        assert_eq!(metrics.records.get(), 3);
        assert!(metrics.last_record.get() > 1.7e9);
        assert_eq!(
            metrics.last_checkpoint.get(),
            0.0,
            "no checkpoint configured"
        );
    }
}
