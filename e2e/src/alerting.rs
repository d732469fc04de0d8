//! A real Prometheus and Alertmanager (Debian's `prometheus` and `prometheus-alertmanager`,
//! which `.ci/run` installs) for the live alert suite, and the webhook [`receiver`] they notify
//! in the test process.
//!
//! Each [`AlertStack`] has its own directory, configuration and free loopback ports; the system
//! services Debian may have started on :9090 and :9093 are never used. Prometheus scrapes the
//! targets every second as the jobs `gongshu-operator` and `gongshu-exchange` (the names the
//! rules select, `docs/metrics.md`), evaluates the repository's own
//! `deploy/prometheus/gongshu-rules.yaml` every second, and sends alerts to the Alertmanager,
//! which notifies the receiver of every alert apart (`group_by: ['...']`), after one second,
//! and again once it resolves.

pub mod receiver;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use jiff::Timestamp;
pub use receiver::{Notification, Receiver};

use crate::{Error, controlplane::free_port, harness::random_suffix, process::Process};

/// How long Prometheus and Alertmanager may take to be ready on a loaded machine.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// The scrape and evaluation interval.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// The rules file Prometheus evaluates: the repository's, as shipped.
pub fn rules_file() -> PathBuf {
    crate::cluster::repo_root().join("deploy/prometheus/gongshu-rules.yaml")
}

/// What Prometheus scrapes: `host:port` of `/metrics` endpoints (plain HTTP).
#[derive(Clone, Debug, Default)]
pub struct Targets {
    /// The operators' admin addresses (job `gongshu-operator`).
    pub operator: Vec<String>,
    /// The exchanges' admin addresses (job `gongshu-exchange`); none leaves the job out.
    pub exchange: Vec<String>,
}

/// One sample of an instant query.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The series' labels (`__name__` included where the expression keeps it).
    pub labels: BTreeMap<String, String>,
    /// Its value.
    pub value: f64,
}

/// The raw samples of one series over a window.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// The series' labels.
    pub labels: BTreeMap<String, String>,
    /// `(scrape time, value)`, oldest first.
    pub points: Vec<(Timestamp, f64)>,
}

/// A running Prometheus and Alertmanager and their receiver; the servers are stopped when it
/// is dropped, and their directory removed unless the test is failing.
#[derive(Debug)]
pub struct AlertStack {
    prometheus: Option<Process>,
    alertmanager: Option<Process>,
    prometheus_url: String,
    alertmanager_url: String,
    http: reqwest::Client,
    dir: PathBuf,
    /// The webhook receiver Alertmanager notifies.
    pub receiver: Receiver,
}

impl Drop for AlertStack {
    fn drop(&mut self) {
        // Prometheus first, so it does not log failed sends to a stopped Alertmanager.
        for p in [self.prometheus.take(), self.alertmanager.take()]
            .into_iter()
            .flatten()
        {
            p.stop(Duration::from_secs(10));
        }
        if std::thread::panicking() {
            eprintln!(
                "Prometheus and Alertmanager data and logs kept in {}",
                self.dir.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

impl AlertStack {
    /// Starts the receiver, Alertmanager and Prometheus scraping `targets`, in a fresh
    /// directory under the system's temporary directory, and waits until both servers are
    /// ready. A configuration or rules file they refuse fails here with the end of their log.
    pub async fn start(targets: &Targets) -> Result<Self, Error> {
        let dir = std::env::temp_dir().join(format!("gongshu-alerting-{}", random_suffix()));
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let receiver = Receiver::start().await?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| Error::Harness(format!("HTTP client: {e}")))?;

        let am_port = free_port()?;
        let am_config = dir.join("alertmanager.yml");
        write(&am_config, &alertmanager_config(&receiver.url()))?;
        let mut cmd = Command::new("prometheus-alertmanager");
        cmd.arg(format!("--config.file={}", am_config.display()))
            .arg(format!(
                "--storage.path={}",
                dir.join("alertmanager").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{am_port}"))
            // No gossip: a lone Alertmanager, and no clash with a system one on :9094.
            .arg("--cluster.listen-address=");
        let alertmanager = Process::spawn("alertmanager", &mut cmd, &dir.join("alertmanager.log"))?;
        let mut stack = Self {
            prometheus: None,
            alertmanager: Some(alertmanager),
            prometheus_url: String::new(),
            alertmanager_url: format!("http://127.0.0.1:{am_port}"),
            http,
            dir,
            receiver,
        };
        stack.wait_ready(false).await?;

        let prom_port = free_port()?;
        let prom_config = stack.dir.join("prometheus.yml");
        write(
            &prom_config,
            &prometheus_config(targets, &rules_file(), &format!("127.0.0.1:{am_port}")),
        )?;
        let mut cmd = Command::new("prometheus");
        cmd.arg(format!("--config.file={}", prom_config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                stack.dir.join("prometheus").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"));
        stack.prometheus = Some(Process::spawn(
            "prometheus",
            &mut cmd,
            &stack.dir.join("prometheus.log"),
        )?);
        stack.prometheus_url = format!("http://127.0.0.1:{prom_port}");
        stack.wait_ready(true).await?;
        Ok(stack)
    }

    /// `http://127.0.0.1:<port>` of Prometheus.
    pub fn prometheus_url(&self) -> &str {
        &self.prometheus_url
    }

    /// `http://127.0.0.1:<port>` of Alertmanager.
    pub fn alertmanager_url(&self) -> &str {
        &self.alertmanager_url
    }

    /// The directory of the configurations, data and logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Polls `/-/ready` of Prometheus (`true`) or Alertmanager until it answers 200.
    async fn wait_ready(&mut self, prometheus: bool) -> Result<(), Error> {
        let (what, url) = if prometheus {
            ("prometheus", format!("{}/-/ready", self.prometheus_url))
        } else {
            ("alertmanager", format!("{}/-/ready", self.alertmanager_url))
        };
        let started = Instant::now();
        loop {
            let process = if prometheus {
                self.prometheus.as_mut()
            } else {
                self.alertmanager.as_mut()
            };
            let Some(process) = process else {
                return Err(Error::Harness(format!("{what} is not running")));
            };
            process.check_alive()?;
            if let Ok(answer) = self.http.get(&url).send().await
                && answer.status().is_success()
            {
                return Ok(());
            }
            if started.elapsed() > READY_TIMEOUT {
                return Err(Error::Timeout {
                    what,
                    waited: READY_TIMEOUT,
                    log_tail: process.log_tail(30),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The result of the instant query `expr` (a vector), now.
    pub async fn query(&self, expr: &str) -> Result<Vec<Sample>, Error> {
        #[derive(serde::Deserialize)]
        struct Series {
            metric: BTreeMap<String, String>,
            value: (f64, String),
        }
        let series: Vec<Series> = self.api_query(expr, "vector").await?;
        Ok(series
            .into_iter()
            .map(|s| Sample {
                labels: s.metric,
                value: s.value.1.parse().unwrap_or(f64::NAN),
            })
            .collect())
    }

    /// The raw samples of `selector` that Prometheus scraped in the last `window` (a PromQL
    /// duration such as `5m`), with their scrape times.
    pub async fn samples(&self, selector: &str, window: &str) -> Result<Vec<Series>, Error> {
        #[derive(serde::Deserialize)]
        struct Raw {
            metric: BTreeMap<String, String>,
            values: Vec<(f64, String)>,
        }
        let raw: Vec<Raw> = self
            .api_query(&format!("{selector}[{window}]"), "matrix")
            .await?;
        Ok(raw
            .into_iter()
            .map(|r| Series {
                labels: r.metric,
                points: r
                    .values
                    .into_iter()
                    .map(|(t, v)| {
                        let at = Timestamp::from_millisecond((t * 1000.0).round() as i64)
                            .unwrap_or(Timestamp::UNIX_EPOCH);
                        (at, v.parse().unwrap_or(f64::NAN))
                    })
                    .collect(),
            })
            .collect())
    }

    /// The scrape time of the first sample of `selector` in the last `window` with `value`
    /// that is a series' first or follows one without it: when Prometheus saw the series turn
    /// to `value` (or appear with it); the earliest over the matching series.
    pub async fn turned_at(
        &self,
        selector: &str,
        window: &str,
        value: f64,
    ) -> Result<Option<Timestamp>, Error> {
        let series = self.samples(selector, window).await?;
        Ok(series
            .iter()
            .filter_map(|s| {
                let first = s.points.first().filter(|p| p.1 == value);
                let turned = s
                    .points
                    .windows(2)
                    .find(|w| w[0].1 != value && w[1].1 == value);
                first.or(turned.map(|w| &w[1])).map(|p| p.0)
            })
            .min())
    }

    /// The scrape time of the last sample of `selector` in the last `window` with `value`;
    /// the earliest over the matching series. After a series is resolved or removed, this
    /// is at most one scrape interval before Prometheus saw the change.
    pub async fn last_at(
        &self,
        selector: &str,
        window: &str,
        value: f64,
    ) -> Result<Option<Timestamp>, Error> {
        let series = self.samples(selector, window).await?;
        Ok(series
            .iter()
            .filter_map(|s| s.points.iter().rev().find(|p| p.1 == value).map(|p| p.0))
            .min())
    }

    /// `GET /api/v1/query?query=<expr>`; the `result` of an answer of `result_type`.
    async fn api_query<T: serde::de::DeserializeOwned>(
        &self,
        expr: &str,
        result_type: &str,
    ) -> Result<Vec<T>, Error> {
        #[derive(serde::Deserialize)]
        struct Answer {
            status: String,
            #[serde(default)]
            error: String,
            #[serde(default)]
            data: Option<serde_json::Value>,
        }
        let failed = |e: String| Error::Harness(format!("Prometheus query {expr:?}: {e}"));
        let answer: Answer = self
            .http
            .get(format!("{}/api/v1/query", self.prometheus_url))
            .query(&[("query", expr)])
            .send()
            .await
            .map_err(|e| failed(e.to_string()))?
            .json()
            .await
            .map_err(|e| failed(e.to_string()))?;
        let data = match answer.data {
            Some(data) if answer.status == "success" => data,
            _ => return Err(failed(answer.error)),
        };
        if data["resultType"] != result_type {
            return Err(failed(format!(
                "a {}, not a {result_type}",
                data["resultType"]
            )));
        }
        serde_json::from_value(data["result"].clone()).map_err(|e| failed(e.to_string()))
    }

    /// Waits until the instant query `expr` returns at least one sample; returns them.
    pub async fn wait_query(&self, expr: &str, timeout: Duration) -> Result<Vec<Sample>, Error> {
        let started = Instant::now();
        loop {
            let samples = self.query(expr).await?;
            if !samples.is_empty() {
                return Ok(samples);
            }
            if started.elapsed() > timeout {
                return Err(Error::Harness(format!(
                    "Prometheus: {expr:?} still empty after {timeout:?}; targets: {}\n{}",
                    self.targets_health().await,
                    self.log_tails(),
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Each target's job, health and last error, from `/api/v1/targets`, for messages.
    async fn targets_health(&self) -> String {
        let answer: Result<serde_json::Value, _> = async {
            self.http
                .get(format!("{}/api/v1/targets", self.prometheus_url))
                .send()
                .await?
                .json()
                .await
        }
        .await;
        let Ok(answer) = answer else {
            return "(unreadable)".into();
        };
        let targets = answer["data"]["activeTargets"].as_array().cloned();
        targets
            .unwrap_or_default()
            .iter()
            .map(|t| {
                format!(
                    "{} {} {} {}",
                    t["labels"]["job"], t["scrapeUrl"], t["health"], t["lastError"]
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Waits until the receiver has an alert that `matches`, failing after `timeout` with what
    /// it received, the alerts Prometheus has active and both servers' logs.
    pub async fn wait_notification(
        &self,
        what: &str,
        timeout: Duration,
        matches: impl Fn(&Notification) -> bool,
    ) -> Result<Notification, Error> {
        let started = Instant::now();
        loop {
            if let Some(n) = self.receiver.find(&matches) {
                return Ok(n);
            }
            for p in [self.prometheus.as_ref(), self.alertmanager.as_ref()]
                .into_iter()
                .flatten()
            {
                // A server that died would only show as a timeout.
                if !crate::process::alive(p.pid()) {
                    return Err(Error::Harness(format!(
                        "{} exited while waiting for {what}:\n{}",
                        p.name,
                        p.log_tail(30)
                    )));
                }
            }
            if started.elapsed() > timeout {
                let received: Vec<String> = self
                    .receiver
                    .notifications()
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                let active = match self.query("ALERTS").await {
                    Ok(samples) => format!("{:?}", samples),
                    Err(e) => e.to_string(),
                };
                return Err(Error::Harness(format!(
                    "no {what} at the webhook receiver after {timeout:?}\nreceived: {received:#?}\n\
                     unreadable requests: {:?}\nPrometheus ALERTS: {active}\n{}",
                    self.receiver.problems(),
                    self.log_tails()
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The last lines of both servers' logs.
    pub fn log_tails(&self) -> String {
        [self.prometheus.as_ref(), self.alertmanager.as_ref()]
            .into_iter()
            .flatten()
            .map(|p| format!("--- {} ({}):\n{}", p.name, p.log.display(), p.log_tail(15)))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn write(path: &Path, text: &str) -> Result<(), Error> {
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

/// `prometheus.yml`: one-second scrapes and evaluations, the gongshu jobs, the rules file and
/// the Alertmanager at `alertmanager` (`host:port`).
pub fn prometheus_config(targets: &Targets, rules: &Path, alertmanager: &str) -> String {
    let seconds = INTERVAL.as_secs();
    let mut jobs = Vec::new();
    for (job, addrs) in [
        ("gongshu-operator", &targets.operator),
        ("gongshu-exchange", &targets.exchange),
    ] {
        if !addrs.is_empty() {
            jobs.push(serde_json::json!({
                "job_name": job,
                "static_configs": [{"targets": addrs}],
            }));
        }
    }
    let config = serde_json::json!({
        "global": {
            "scrape_interval": format!("{seconds}s"),
            "scrape_timeout": format!("{seconds}s"),
            "evaluation_interval": format!("{seconds}s"),
        },
        "rule_files": [rules],
        "alerting": {"alertmanagers": [{
            "api_version": "v2",
            "static_configs": [{"targets": [alertmanager]}],
        }]},
        "scrape_configs": jobs,
    });
    // JSON is YAML; `serde_yaml` only makes it readable for whoever opens the file.
    serde_yaml::to_string(&config).unwrap_or_else(|_| config.to_string())
}

/// `alertmanager.yml`: every alert a group of its own, notified after a second, again when it
/// resolves, and otherwise not repeated during a test.
pub fn alertmanager_config(webhook: &str) -> String {
    let config = serde_json::json!({
        "route": {
            "receiver": "test",
            "group_by": ["..."],
            "group_wait": "1s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [{
            "name": "test",
            "webhook_configs": [{"url": webhook, "send_resolved": true}],
        }],
    });
    serde_yaml::to_string(&config).unwrap_or_else(|_| config.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_prometheus_config_names_the_jobs_the_rules_select() {
        let targets = Targets {
            operator: vec!["127.0.0.1:1".into()],
            exchange: vec![],
        };
        let text = prometheus_config(&targets, Path::new("/r.yaml"), "127.0.0.1:2");
        let config: serde_json::Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(config["scrape_configs"][0]["job_name"], "gongshu-operator");
        assert_eq!(
            config["scrape_configs"].as_array().unwrap().len(),
            1,
            "no exchange job without an exchange: {text}"
        );
        assert_eq!(config["global"]["evaluation_interval"], "1s");
        assert_eq!(config["rule_files"][0], "/r.yaml");
    }
}
