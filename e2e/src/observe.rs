//! What a test reads to see what the operator did: its log lines, its `/metrics`, and the
//! Events it published.

use std::{
    collections::BTreeMap,
    path::Path,
    time::{Duration, Instant},
};

use k8s_openapi::api::events::v1::Event;
use kube::{Api, Client, api::ListParams};

use crate::Error;

/// The first line of `log` that contains every one of `needles`.
pub fn find_line(log: &Path, needles: &[&str]) -> Option<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .find(|l| needles.iter().all(|n| l.contains(n)))
        .map(str::to_owned)
}

/// Waits until a line of `log` contains every one of `needles`; returns that line.
pub async fn wait_log(log: &Path, needles: &[&str], timeout: Duration) -> Result<String, Error> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(line) = find_line(log, needles) {
            return Ok(line);
        }
        if Instant::now() >= deadline {
            return Err(Error::Harness(format!(
                "no line with {needles:?} in {} after {timeout:?}; last lines:\n{}",
                log.display(),
                crate::process::tail(log, 30)
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The admin address (`host:port`) an operator or an exchange logged at start.
pub fn admin_addr(log: &Path) -> Result<String, Error> {
    find_line(log, &["admin server listening"])
        .and_then(|line| {
            let (_, rest) = line.split_once("addr=")?;
            rest.split_whitespace().next().map(str::to_owned)
        })
        .ok_or_else(|| Error::Harness(format!("no admin address in {}", log.display())))
}

/// The text of `GET /metrics` on the admin address `addr` (plain HTTP on loopback).
pub async fn scrape(addr: &str) -> Result<String, Error> {
    use std::io::{Read, Write};
    let addr = addr.to_owned();
    tokio::task::spawn_blocking(move || -> Result<String, Error> {
        let io = |e| Error::io(Path::new(&addr), e);
        let mut stream = std::net::TcpStream::connect(&addr).map_err(io)?;
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(io)?;
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .map_err(io)?;
        let mut body = String::new();
        stream.read_to_string(&mut body).map_err(io)?;
        Ok(body)
    })
    .await
    .map_err(|e| Error::Harness(format!("scrape task: {e}")))?
}

/// The sum of the samples of `name` (any labels) whose label set contains every `labels`
/// pair, from a Prometheus text exposition; `None` when no sample matches.
pub fn metric_sum(exposition: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = None;
    for line in exposition.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let (label_set, value) = match rest.strip_prefix('{') {
            Some(rest) => match rest.split_once("} ") {
                Some((set, value)) => (set, value),
                None => continue,
            },
            None => match rest.strip_prefix(' ') {
                Some(value) => ("", value),
                None => continue, // another metric sharing the prefix
            },
        };
        let wanted = labels
            .iter()
            .all(|(k, v)| label_set.contains(&format!("{k}=\"{v}\"")));
        if let (true, Ok(v)) = (wanted, value.trim().parse::<f64>()) {
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}

/// Events about object `name` in `namespace`, counted by reason (each occurrence of a series
/// counts).
pub async fn events_of(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<BTreeMap<String, i32>, Error> {
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    let mut counts = BTreeMap::new();
    for e in events.list(&ListParams::default()).await? {
        if e.regarding.as_ref().and_then(|r| r.name.as_deref()) != Some(name) {
            continue;
        }
        let n = e.series.as_ref().map_or(1, |s| s.count);
        *counts.entry(e.reason.unwrap_or_default()).or_insert(0) += n;
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::metric_sum;

    const TEXT: &str = "# HELP gongshu_reconcile_total x\n\
        gongshu_reconcile_total{controller=\"sharegrant\"} 7\n\
        gongshu_reconcile_total{controller=\"datacatalog\"} 3\n\
        gongshu_reconcile_total_extra 100\n\
        gongshu_leader 1\n";

    #[test]
    fn sums_matching_samples_only() {
        assert_eq!(metric_sum(TEXT, "gongshu_reconcile_total", &[]), Some(10.0));
        assert_eq!(
            metric_sum(
                TEXT,
                "gongshu_reconcile_total",
                &[("controller", "sharegrant")]
            ),
            Some(7.0)
        );
        assert_eq!(metric_sum(TEXT, "gongshu_leader", &[]), Some(1.0));
        assert_eq!(metric_sum(TEXT, "gongshu_missing", &[]), None);
    }
}
