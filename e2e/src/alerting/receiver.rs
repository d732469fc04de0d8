//! The webhook receiver Alertmanager notifies: a minimal HTTP/1.1 server on a loopback port in
//! the test process that records every alert of every POSTed payload with the moment it
//! arrived. Alertmanager's Go client sends each payload with a `Content-Length`, one request per
//! connection once it is told `Connection: close`, which is all this server speaks.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use jiff::Timestamp;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};

use crate::Error;

/// The largest payload accepted: Alertmanager's payloads are a few KiB per alert.
const MAX_BODY: usize = 4 << 20;

/// One alert of one notification, as the receiver got it.
#[derive(Clone, Debug, PartialEq)]
pub struct Notification {
    /// When the payload arrived.
    pub received: Timestamp,
    /// `firing` or `resolved` (the alert's own status, not the group's).
    pub status: String,
    /// The alert's labels (`alertname`, `severity`, and the rule's `by` labels).
    pub labels: BTreeMap<String, String>,
    /// The alert's annotations, templates expanded by Prometheus.
    pub annotations: BTreeMap<String, String>,
    /// `startsAt` as Alertmanager sent it (RFC 3339).
    pub starts_at: String,
    /// `endsAt` as Alertmanager sent it (RFC 3339; the resolution time once resolved).
    pub ends_at: String,
}

impl Notification {
    /// The `alertname` label.
    pub fn alertname(&self) -> &str {
        self.labels.get("alertname").map_or("", String::as_str)
    }

    /// Whether the alert is `alertname` with every one of `labels`, in `status`.
    pub fn is(&self, alertname: &str, status: &str, labels: &[(&str, &str)]) -> bool {
        self.alertname() == alertname
            && self.status == status
            && labels
                .iter()
                .all(|(k, v)| self.labels.get(*k).is_some_and(|l| l == v))
    }
}

impl std::fmt::Display for Notification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {:?}", self.received, self.status, self.labels)
    }
}

/// What the server recorded: the alerts, and the requests it could not read.
#[derive(Debug, Default)]
struct Record {
    alerts: Vec<Notification>,
    problems: Vec<String>,
}

/// A running receiver; the server stops when it is dropped.
#[derive(Debug)]
pub struct Receiver {
    addr: SocketAddr,
    record: Arc<Mutex<Record>>,
    task: JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    /// Listens on a free loopback port, on the current tokio runtime.
    pub async fn start() -> Result<Self, Error> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| Error::io(std::path::Path::new("127.0.0.1:0"), e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io(std::path::Path::new("127.0.0.1:0"), e))?;
        let record = Arc::new(Mutex::new(Record::default()));
        let task = tokio::spawn(serve(listener, record.clone()));
        Ok(Self { addr, record, task })
    }

    /// The URL to give Alertmanager's `webhook_configs`.
    pub fn url(&self) -> String {
        format!("http://{}/alerts", self.addr)
    }

    /// Every alert received so far, oldest first.
    pub fn notifications(&self) -> Vec<Notification> {
        self.record
            .lock()
            .map(|r| r.alerts.clone())
            .unwrap_or_default()
    }

    /// Requests that were not a readable Alertmanager payload, with why.
    pub fn problems(&self) -> Vec<String> {
        self.record
            .lock()
            .map(|r| r.problems.clone())
            .unwrap_or_default()
    }

    /// The first alert received so far that `matches`.
    pub fn find(&self, matches: impl Fn(&Notification) -> bool) -> Option<Notification> {
        self.notifications().into_iter().find(|n| matches(n))
    }
}

async fn serve(listener: TcpListener, record: Arc<Mutex<Record>>) {
    while let Ok((stream, _)) = listener.accept().await {
        tokio::spawn(handle(stream, record.clone()));
    }
}

/// Reads one request, records its alerts (or why it could not), then answers it: recorded
/// before answered, so that whoever sent it finds it recorded.
async fn handle(mut stream: TcpStream, record: Arc<Mutex<Record>>) {
    let outcome = read_payload(&mut stream)
        .await
        .and_then(|body| alerts(&body, Timestamp::now()));
    let status = if outcome.is_ok() {
        "200 OK"
    } else {
        "400 Bad Request"
    };
    if let Ok(mut r) = record.lock() {
        match outcome {
            Ok(alerts) => r.alerts.extend(alerts),
            Err(problem) => r.problems.push(problem),
        }
    }
    let answer = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    // Alertmanager retries a notification whose answer is lost; nothing to do about it here.
    let _ = stream.write_all(answer.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// The body of a `POST` with a `Content-Length`.
async fn read_payload(stream: &mut TcpStream) -> Result<Vec<u8>, String> {
    let mut buf = Vec::with_capacity(8192);
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 64 << 10 {
            return Err("request head larger than 64 KiB".into());
        }
        let mut chunk = [0u8; 8192];
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| format!("reading the request: {e}"))?;
        if n == 0 {
            return Err("connection closed before the end of the request head".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let request_line = head.lines().next().unwrap_or_default();
    if !request_line.starts_with("POST ") {
        return Err(format!("not a POST: {request_line}"));
    }
    let header = |name: &str| {
        head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    };
    if header("transfer-encoding").is_some() {
        return Err(format!("chunked request bodies are not read here: {head}"));
    }
    let length: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("no Content-Length: {head}"))?;
    if length > MAX_BODY {
        return Err(format!("body of {length} bytes"));
    }
    let mut body = buf.split_off(head_end);
    while body.len() < length {
        let mut chunk = vec![0u8; length - body.len()];
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| format!("reading the body: {e}"))?;
        if n == 0 {
            return Err(format!("body ended after {} of {length} bytes", body.len()));
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);
    Ok(body)
}

/// The alerts of an Alertmanager webhook payload (version 4).
fn alerts(body: &[u8], received: Timestamp) -> Result<Vec<Notification>, String> {
    #[derive(serde::Deserialize)]
    struct Payload {
        alerts: Vec<Alert>,
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Alert {
        status: String,
        #[serde(default)]
        labels: BTreeMap<String, String>,
        #[serde(default)]
        annotations: BTreeMap<String, String>,
        #[serde(default)]
        starts_at: String,
        #[serde(default)]
        ends_at: String,
    }
    let payload: Payload = serde_json::from_slice(body).map_err(|e| {
        format!(
            "not an Alertmanager payload ({e}): {}",
            String::from_utf8_lossy(body)
        )
    })?;
    Ok(payload
        .alerts
        .into_iter()
        .map(|a| Notification {
            received,
            status: a.status,
            labels: a.labels,
            annotations: a.annotations,
            starts_at: a.starts_at,
            ends_at: a.ends_at,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A payload as Alertmanager 0.25's webhook notifier sends it.
    const PAYLOAD: &str = r#"{"receiver":"test","status":"firing","alerts":[{"status":"firing",
        "labels":{"alertname":"GongshuBackupRpoBreached","namespace":"dept","policy":"nightly",
        "severity":"critical"},"annotations":{"summary":"s"},"startsAt":"2026-01-01T00:00:00Z",
        "endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://x","fingerprint":"f"}],
        "groupLabels":{},"commonLabels":{},"commonAnnotations":{},"externalURL":"http://am",
        "version":"4","groupKey":"{}:{}","truncatedAlerts":0}"#;

    #[tokio::test]
    async fn a_posted_payload_is_recorded_alert_by_alert() {
        let receiver = Receiver::start().await.unwrap();
        let client = reqwest::Client::new();
        let answer = client
            .post(receiver.url())
            .header("content-type", "application/json")
            .body(PAYLOAD)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        let got = receiver.notifications();
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].is(
            "GongshuBackupRpoBreached",
            "firing",
            &[("namespace", "dept"), ("policy", "nightly")]
        ));
        assert!(!got[0].is("GongshuBackupRpoBreached", "resolved", &[]));
        assert_eq!(got[0].annotations["summary"], "s");

        let bad = client.post(receiver.url()).body("{}").send().await.unwrap();
        assert_eq!(bad.status(), 400);
        assert_eq!(receiver.problems().len(), 1);
    }
}
