// Pins the Prometheus Operator release whose ServiceMonitor and PrometheusRule CRDs the chart
// suite (e2e/tests/chart.rs) installs, so the chart's monitoring objects meet the real schemas.
// Downloaded on first use; nothing is built or imported from it.
module gongshu.io/e2e/upstream/prometheus-operator

go 1.26.0

require github.com/prometheus-operator/prometheus-operator v0.85.0
