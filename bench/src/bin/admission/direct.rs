//! The direct load: pre-serialized `AdmissionReview`s POSTed to the webhook's `/validate` over
//! HTTPS (HTTP/1.1 keep-alive, one connection per worker), case by case and concurrency by
//! concurrency, with the operator's CPU time and its own handler histogram around each run.

use std::{sync::Arc, time::Duration};

use gongshu_api::v1alpha1::{DataCatalog, ShareGrant};
use gongshu_bench::{Error, Report, cpu_seconds};
use gongshu_e2e::{fixtures::provider_catalog, harness::random_suffix, observe};
use k8s_openapi::api::{
    admissionregistration::v1::ValidatingWebhookConfiguration, core::v1::Service,
};
use kube::{Api, api::PostParams};
use serde_json::{Value, json};

use super::{Args, Cast, Run, Stats, drive, fail};

/// The Service the approved `ChannelExemption` covers (case b).
pub const EXEMPTED: &str = "credit-portal";
/// A Service no exemption covers (case a).
pub const DENIED: &str = "bench-nodeport";
/// The webhook's histogram of time inside the handler.
const HISTOGRAM: &str = "gongshu_webhook_request_duration_seconds";

/// What a case must be answered, checked on every answer.
#[derive(Clone, Copy, Debug)]
pub enum Expect {
    /// Denied with a message containing this (a rule id).
    Denied(&'static str),
    /// Admitted, with a warning containing this if any.
    Admitted(Option<&'static str>),
}

/// One kind of review the load generator sends.
struct Case {
    id: &'static str,
    title: String,
    /// The `kind` label of the webhook's histogram.
    kind: &'static str,
    body: bytes::Bytes,
    expect: Expect,
}

/// A measured run of one case at one concurrency.
#[derive(Debug)]
pub struct Row {
    /// `(a) channel: ...`.
    pub case: String,
    /// `32` (closed loop) or `8 @ 5000/s` (paced).
    pub load: String,
    /// Whether the run was paced at the target rate.
    pub paced: bool,
    pub stats: Stats,
    /// Reviews answered per CPU-second of the operator process.
    pub per_cpu_second: f64,
}

/// Every direct run.
#[derive(Debug)]
pub struct Results {
    pub rows: Vec<Row>,
}

/// A Service of `type_` named `name` in `namespace`.
pub fn service(namespace: &str, name: &str, type_: &str) -> Result<Service, Error> {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "type": type_,
            "selector": {"app.kubernetes.io/name": name},
            "ports": [{"name": "https", "port": 443, "targetPort": 8443}],
        },
    }))
    .map_err(|e| fail("service")(e.to_string()))
}

/// A dry-run create: the object as the apiserver would store it, the object a validating
/// webhook is sent (defaults, allocated addresses, uid, managedFields).
pub fn dry_run() -> PostParams {
    PostParams {
        dry_run: true,
        field_manager: Some("kubectl-client-side-apply".into()),
    }
}

/// An `AdmissionReview` of a create of `object` (JSON), as the apiserver sends it.
fn review(group: &str, version: &str, kind: &str, resource: &str, object: &Value) -> Value {
    let gvk = json!({"group": group, "version": version, "kind": kind});
    let gvr = json!({"group": group, "version": version, "resource": resource});
    let meta = &object["metadata"];
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "0b6e2a4c-5d7f-4e1a-9c3b-2f8d6a1e4b70",
            "kind": gvk,
            "resource": gvr,
            "requestKind": gvk,
            "requestResource": gvr,
            "name": meta["name"],
            "namespace": meta["namespace"],
            "operation": "CREATE",
            "userInfo": {
                "username": "system:admin",
                "groups": ["system:masters", "system:authenticated"],
            },
            "object": object,
            "oldObject": null,
            "dryRun": false,
            "options": {
                "kind": "CreateOptions",
                "apiVersion": "meta.k8s.io/v1",
                "fieldManager": "kubectl-client-side-apply",
                "fieldValidation": "Strict",
            },
        },
    })
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<Value, Error> {
    serde_json::to_value(value).map_err(|e| fail("json")(e.to_string()))
}

fn body(review: &Value) -> Result<bytes::Bytes, Error> {
    serde_json::to_vec(review)
        .map(bytes::Bytes::from)
        .map_err(|e| fail("json")(e.to_string()))
}

/// The cases, their objects taken from dry-run creates through the apiserver.
async fn cases(cast: &Cast) -> Result<Vec<Case>, Error> {
    let client = cast.sharing.env.client.clone();
    let consumer = &cast.sharing.consumer_ns;

    // (a) the object as stored in a namespace no policy watches, moved to the department.
    let services: Api<Service> = Api::namespaced(client.clone(), &cast.control_ns);
    let mut denied = to_json(
        &services
            .create(&dry_run(), &service(&cast.control_ns, DENIED, "NodePort")?)
            .await?,
    )?;
    denied["metadata"]["namespace"] = consumer.as_str().into();

    // (b) admitted by the webhook itself once its cache has the approved exemption.
    let services: Api<Service> = Api::namespaced(client.clone(), consumer);
    let exempted =
        to_json(&admitted_dry_run(&services, &service(consumer, EXEMPTED, "NodePort")?).await?)?;

    // (c) a grant for the approved conditional item, shareable fields only (admitted); (e)
    // the same asking for a field that is not shareable (SH-5).
    let grants: Api<ShareGrant> = Api::namespaced(client.clone(), consumer);
    let grant = cast
        .sharing
        .grant("bench-grant", "households", &["citizen_id", "name"], "api");
    let grant = to_json(&grants.create(&dry_run(), &grant).await?)?;
    let mut not_shareable = grant.clone();
    not_shareable["spec"]["fields"] = json!(["citizen_id", "ethnicity"]);

    // (d) a new catalog of two items no other catalog declares.
    let catalogs: Api<DataCatalog> = Api::namespaced(client, consumer);
    let catalog = provider_catalog(
        consumer,
        &cast.consumer_code,
        &format!("bench-{}", random_suffix()),
    );
    let catalog = to_json(&catalogs.create(&dry_run(), &catalog).await?)?;

    let gongshu = |kind, resource, object: &Value| {
        review(
            gongshu_api::v1alpha1::GROUP,
            gongshu_api::v1alpha1::VERSION,
            kind,
            resource,
            object,
        )
    };
    Ok(vec![
        Case {
            id: "a",
            title: "channel: NodePort Service, denied (CH-1)".into(),
            kind: "Service",
            body: body(&review("", "v1", "Service", "services", &denied))?,
            expect: Expect::Denied("CH-1"),
        },
        Case {
            id: "b",
            title: "channel: NodePort Service under an approved ChannelExemption, admitted".into(),
            kind: "Service",
            body: body(&review("", "v1", "Service", "services", &exempted))?,
            expect: Expect::Admitted(Some("ChannelExemption credit-portal")),
        },
        Case {
            id: "c",
            title: "ShareGrant for an approved item, admitted".into(),
            kind: "ShareGrant",
            body: body(&gongshu("ShareGrant", "sharegrants", &grant))?,
            expect: Expect::Admitted(None),
        },
        Case {
            id: "d",
            title: "DataCatalog of two new items, admitted (CAT-4 checked)".into(),
            kind: "DataCatalog",
            body: body(&gongshu("DataCatalog", "datacatalogs", &catalog))?,
            expect: Expect::Admitted(None),
        },
        Case {
            id: "e",
            title: "ShareGrant for a field that is not shareable, denied (SH-5)".into(),
            kind: "ShareGrant",
            body: body(&gongshu("ShareGrant", "sharegrants", &not_shareable))?,
            expect: Expect::Denied("SH-5"),
        },
    ])
}

/// A dry-run create of `object`, retried while the webhook denies it: its caches see a
/// just-approved exemption a moment later.
async fn admitted_dry_run(api: &Api<Service>, object: &Service) -> Result<Service, Error> {
    let deadline = std::time::Instant::now() + super::SETUP_WAIT;
    loop {
        match api.create(&dry_run(), object).await {
            Err(kube::Error::Api(e))
                if e.message.contains("admission webhook")
                    && std::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => return Ok(other?),
        }
    }
}

/// Where the apiserver reaches the webhook, and the CA it trusts it with, from the registered
/// `ValidatingWebhookConfiguration`.
async fn endpoint(client: &kube::Client) -> Result<(String, Vec<u8>), Error> {
    let configuration = Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .get("gongshu")
        .await?;
    configuration
        .webhooks
        .unwrap_or_default()
        .into_iter()
        .find(|w| w.name == "channels.gongshu.io")
        .and_then(|w| Some((w.client_config.url?, w.client_config.ca_bundle?.0)))
        .ok_or_else(|| Error::Stuck("the gongshu webhook configuration has no URL".into()))
}

/// An HTTPS client trusting the CAs of bundle `ca` only (two while the operator rotates its
/// CA), HTTP/1.1, keeping its one connection alive.
fn https(ca: &[u8]) -> Result<reqwest::Client, Error> {
    let cas = reqwest::Certificate::from_pem_bundle(ca).map_err(|e| fail("CA")(e.to_string()))?;
    cas.into_iter()
        .fold(reqwest::Client::builder(), |b, ca| {
            b.add_root_certificate(ca)
        })
        .tls_built_in_root_certs(false)
        .http1_only()
        .pool_max_idle_per_host(1)
        .build()
        .map_err(|e| fail("HTTPS client")(e.to_string()))
}

/// What one worker sends.
struct Worker {
    http: reqwest::Client,
    url: String,
    body: bytes::Bytes,
    expect: Expect,
}

/// One review: `Ok` when the answer is the expected verdict (a cheap check of the
/// `allowed` field; the first answer of each case is checked in full by [`preflight`]).
async fn send(worker: Arc<Worker>) -> Result<(), String> {
    let response = worker
        .http
        .post(&worker.url)
        .header("content-type", "application/json")
        .body(worker.body.clone())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let answer = response.bytes().await.map_err(|e| e.to_string())?;
    let wanted: &[u8] = match worker.expect {
        Expect::Denied(_) => b"\"allowed\":false",
        Expect::Admitted(_) => b"\"allowed\":true",
    };
    if status == 200 && answer.windows(wanted.len()).any(|w| w == wanted) {
        Ok(())
    } else {
        Err(format!("{status}: {}", String::from_utf8_lossy(&answer)))
    }
}

/// Sends one review of `case` and checks the whole answer: the verdict, the rule in the
/// message, the warning.
async fn preflight(http: &reqwest::Client, url: &str, case: &Case) -> Result<String, Error> {
    let what = format!("case ({}) {}", case.id, case.title);
    let answer: Value = http
        .post(url)
        .header("content-type", "application/json")
        .body(case.body.clone())
        .send()
        .await
        .map_err(|e| fail(&what)(e.to_string()))?
        .json()
        .await
        .map_err(|e| fail(&what)(e.to_string()))?;
    let response = &answer["response"];
    let allowed = response["allowed"].as_bool();
    let message = response["status"]["message"].as_str().unwrap_or_default();
    let warnings: Vec<&str> = response["warnings"]
        .as_array()
        .map(|w| w.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let ok = match case.expect {
        Expect::Denied(rule) => allowed == Some(false) && message.contains(rule),
        Expect::Admitted(None) => allowed == Some(true) && warnings.is_empty(),
        Expect::Admitted(Some(warning)) => {
            allowed == Some(true) && warnings.iter().any(|w| w.contains(warning))
        }
    };
    if !ok {
        return Err(Error::Stuck(format!(
            "{what}: unexpected verdict (wanted {:?}): {answer}",
            case.expect
        )));
    }
    Ok(if allowed == Some(false) {
        message.to_owned()
    } else {
        warnings.join("; ")
    })
}

/// A histogram of the webhook's `/metrics` for one `kind`: cumulative bucket counts by upper
/// bound, sum and count.
#[derive(Clone, Debug, Default)]
struct Histogram {
    buckets: Vec<(f64, f64)>,
    sum: f64,
    count: f64,
}

impl Histogram {
    fn scrape(exposition: &str, kind: &str) -> Self {
        let label = format!("kind=\"{kind}\"");
        let mut h = Self::default();
        for line in exposition.lines().filter(|l| l.contains(&label)) {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            if series.starts_with(&format!("{HISTOGRAM}_bucket{{")) {
                let le = series
                    .split_once("le=\"")
                    .and_then(|(_, rest)| rest.split_once('"'))
                    .map(|(le, _)| le.parse::<f64>().unwrap_or(f64::INFINITY));
                if let Some(le) = le {
                    h.buckets.push((le, value));
                }
            } else if series.starts_with(&format!("{HISTOGRAM}_sum{{")) {
                h.sum = value;
            } else if series.starts_with(&format!("{HISTOGRAM}_count{{")) {
                h.count = value;
            }
        }
        h.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        h
    }

    /// What was observed between `before` and `self`.
    fn since(&self, before: &Self) -> Self {
        let earlier = |le: f64| {
            before
                .buckets
                .iter()
                .find(|(l, _)| *l == le)
                .map_or(0.0, |(_, c)| *c)
        };
        Self {
            buckets: self
                .buckets
                .iter()
                .map(|(le, c)| (*le, c - earlier(*le)))
                .collect(),
            sum: self.sum - before.sum,
            count: self.count - before.count,
        }
    }

    /// The upper bound of the bucket holding the `q` quantile (0–1): what a histogram can say
    /// for sure when its first bucket already holds most observations.
    fn bound(&self, q: f64) -> f64 {
        let rank = q * self.count;
        self.buckets
            .iter()
            .find(|(_, count)| *count >= rank)
            .map_or(f64::INFINITY, |(le, _)| *le)
    }

    /// `mean 42 µs, p99 ≤ 100 µs`.
    fn describe(&self) -> String {
        if self.count == 0.0 {
            return "no observations".into();
        }
        format!(
            "mean {:.1} µs, p99 ≤ {:.0} µs",
            self.sum / self.count * 1e6,
            self.bound(0.99) * 1e6
        )
    }
}

/// The webhook's handler histogram for `kind`, now.
async fn handler_histogram(admin: &str, kind: &str) -> Result<Histogram, Error> {
    Ok(Histogram::scrape(&observe::scrape(admin).await?, kind))
}

/// Every case at every concurrency.
pub async fn run(cast: &Cast, args: &Args, report: &mut Report) -> Result<Results, Error> {
    report.line("\n## Direct load on the webhook (HTTPS on loopback)\n");
    let (url, ca) = endpoint(&cast.sharing.env.client).await?;
    let cases = cases(cast).await?;
    report.line(format!(
        "POST {url}: pre-serialized AdmissionReview (admission.k8s.io/v1) bodies, the objects as dry-run creates through the apiserver returned them (defaults, uid, managedFields); HTTP/1.1 keep-alive, one connection per worker, each sending its next review when the answer is in. Every answer's verdict is checked.\n"
    ));
    let probe = https(&ca)?;
    for case in &cases {
        let said = preflight(&probe, &url, case).await?;
        report.line(format!(
            "- ({}) {} — {} bytes; the webhook says: {said}",
            case.id,
            case.title,
            case.body.len()
        ));
    }
    let paced = if args.rate > 0.0 {
        format!(
            ", then a paced run offering {:.0} reviews/s over {} connections",
            args.rate, args.paced_connections
        )
    } else {
        String::new()
    };
    report.line(format!("\nConnections: closed loop (each sends its next review when the answer is in){paced}. CPU is user + system time from /proc/<pid>/stat over the measured run. Handler: the webhook's own `gongshu_webhook_request_duration_seconds` over the run: time from the parsed AdmissionReview to the decision, without TLS, HTTP and JSON (its first bucket is 100 µs).\n"));
    report.line("| case | connections | reviews | reviews/s (wall) | p50 ms | p90 ms | p99 ms | max ms | webhook CPU s | reviews per webhook CPU-s | load generator CPU s | handler |");
    report.line("|---|---|---|---|---|---|---|---|---|---|---|---|");

    let (warmup, length) = (
        Duration::from_secs(args.warmup_seconds),
        Duration::from_secs(args.seconds),
    );
    let loads: Vec<(usize, Option<f64>)> = args
        .connections
        .iter()
        .map(|&c| (c, None))
        .chain((args.rate > 0.0).then_some((args.paced_connections, Some(args.rate))))
        .collect();
    let this = std::process::id() as i32;
    let quiet = super::Interference::start(cast.ours());
    let mut rows = Vec::new();
    for case in &cases {
        for &(connections, rate) in &loads {
            let workers = (0..connections)
                .map(|_| {
                    Ok(Arc::new(Worker {
                        http: https(&ca)?,
                        url: url.clone(),
                        body: case.body.clone(),
                        expect: case.expect,
                    }))
                })
                .collect::<Result<Vec<_>, Error>>()?;
            let load = match rate {
                None => connections.to_string(),
                Some(r) => format!("{connections} @ {r:.0}/s"),
            };
            let what = format!("case ({}) at {load} connections", case.id);
            drive(&workers, warmup, rate, send).await?.check(&what)?;
            let before = handler_histogram(&cast.admin, case.kind).await?;
            let (op0, me0) = (cpu_seconds(cast.operator_pid), cpu_seconds(this));
            let mut run: Run = drive(&workers, length, rate, send).await?;
            let (op1, me1) = (cpu_seconds(cast.operator_pid), cpu_seconds(this));
            let handler = handler_histogram(&cast.admin, case.kind)
                .await?
                .since(&before);
            run.check(&what)?;
            let stats = Stats::of(&mut run);
            let operator_cpu = op1.zip(op0).map_or(0.0, |(a, b)| a - b);
            let loadgen_cpu = me1.zip(me0).map_or(0.0, |(a, b)| a - b);
            let per_cpu_second = if operator_cpu > 0.0 {
                stats.requests as f64 / operator_cpu
            } else {
                0.0
            };
            report.line(format!(
                "| ({}) {} | {load} | {} | {operator_cpu:.2} | {per_cpu_second:.0} | {loadgen_cpu:.2} | {} |",
                case.id,
                case.kind,
                stats.cells(),
                handler.describe()
            ));
            rows.push(Row {
                case: format!("({}) {}", case.id, case.title),
                load,
                paced: rate.is_some(),
                stats,
                per_cpu_second,
            });
        }
    }
    report.line(format!("\n- {}", quiet.summary()));
    Ok(Results { rows })
}

#[cfg(test)]
mod tests {
    use super::Histogram;

    const TEXT: &str = "\
gongshu_webhook_request_duration_seconds_bucket{kind=\"Service\",le=\"0.0001\"} 50
gongshu_webhook_request_duration_seconds_bucket{kind=\"Service\",le=\"0.00025\"} 90
gongshu_webhook_request_duration_seconds_bucket{kind=\"Service\",le=\"0.0005\"} 100
gongshu_webhook_request_duration_seconds_bucket{kind=\"Service\",le=\"+Inf\"} 100
gongshu_webhook_request_duration_seconds_sum{kind=\"Service\"} 0.012
gongshu_webhook_request_duration_seconds_count{kind=\"Service\"} 100
gongshu_webhook_request_duration_seconds_count{kind=\"ShareGrant\"} 7
";

    #[test]
    fn handler_quantiles_are_bucket_bounds() {
        let h = Histogram::scrape(TEXT, "Service");
        assert_eq!(h.count, 100.0);
        assert!((h.bound(0.5) - 0.0001).abs() < 1e-12);
        assert!((h.bound(0.99) - 0.0005).abs() < 1e-12);
        assert_eq!(h.describe(), "mean 120.0 µs, p99 ≤ 500 µs");
        let none = h.since(&h);
        assert_eq!(none.count, 0.0);
        assert_eq!(none.describe(), "no observations");
    }
}
