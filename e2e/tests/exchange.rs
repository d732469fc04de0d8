//! The exchange gateway against the real apiserver and a real PostgreSQL: every mode, every
//! authentication failure, revocation and suspension, usage in status, and the audit chain
//! through a kill -9 (SEC-2, SH-3, SH-5, SH-7, SH-12, SH-13, SH-14, CH-1).

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    time::Duration,
};

use gongshu_api::v1alpha1::{GrantPhase, ShareGrant};
use gongshu_e2e::{
    cluster::operator_binary,
    controlplane::SERVICE_ACCOUNT_ISSUER,
    exchange::Exchange,
    fixtures::{Sharing, provider_catalog},
    harness::{TestEnv, random_suffix},
    postgres::Postgres,
};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::{Api, api::PostParams};
use serde_json::{Value, json};

const WORKFLOW: Duration = Duration::from_secs(60);
/// Rows in the provider's households table.
const ROWS: usize = 250;

/// A provider whose `households` and `photos` live in a real PostgreSQL, a consumer with the
/// ServiceAccount `allowance-app`, and an exchange of the test's own.
struct Setup {
    sharing: Sharing,
    pg: Postgres,
    exchange: Exchange,
    /// The label value of this test's grants, which its exchange selects.
    suffix: String,
    dir: PathBuf,
}

impl Setup {
    async fn new() -> Self {
        Self::with_exchange_env(&[]).await
    }

    /// [`Setup::new`] with more of the exchange's environment (e.g. a short verification
    /// period).
    async fn with_exchange_env(exchange_env: &[(&str, &str)]) -> Self {
        let env = TestEnv::connect().await.expect("control plane");
        let dir = std::env::temp_dir().join(format!("gongshu-exchange-{}", random_suffix()));
        let pg = Postgres::start(&dir.join("pg")).await.expect("postgres");
        pg.psql(
            "postgres",
            &format!(
                "create table households (citizen_id text primary key, name text, ethnicity text); \
                 insert into households select lpad(i::text, 18, '0'), 'name-' || i, 'e-' || i \
                 from generate_series(1, {ROWS}) i; \
                 create table photos (citizen_id text primary key, photo_sha256 text); \
                 insert into photos values ('000000000000000001', 'abc123')"
            ),
        )
        .expect("tables");
        let sharing = Sharing::on(env.clone(), provider_catalog, true)
            .await
            .expect("departments");
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {"name": "db"},
            "stringData": {"uri": pg.url("postgres")},
        }))
        .unwrap();
        Api::<Secret>::namespaced(env.client.clone(), &sharing.provider_ns)
            .create(&PostParams::default(), &secret)
            .await
            .expect("connection secret");
        for (ns, name) in [
            (&sharing.consumer_ns, "allowance-app"),
            (&sharing.consumer_ns, "other-app"),
            (&sharing.provider_ns, "allowance-app"),
        ] {
            let sa: ServiceAccount =
                serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
            Api::<ServiceAccount>::namespaced(env.client.clone(), ns)
                .create(&PostParams::default(), &sa)
                .await
                .expect("service account");
        }
        let cluster_dir = env.kubeconfig().parent().unwrap().to_path_buf();
        let suffix = random_suffix();
        let exchange = start_exchange(
            &cluster_dir,
            &dir.join("exchange"),
            &format!("audit-{}", random_suffix()),
            &suffix,
            exchange_env,
        )
        .await;
        Self {
            sharing,
            pg,
            exchange,
            suffix,
            dir,
        }
    }

    fn env(&self) -> &TestEnv {
        &self.sharing.env
    }

    fn grants(&self) -> Api<ShareGrant> {
        self.sharing.grants()
    }

    /// Requests `item` as `name` and has the provider approve it; waits until Active.
    async fn active(&self, name: &str, item: &str, fields: &[&str], mode: &str) -> ShareGrant {
        self.activate(self.sharing.grant(name, item, fields, mode))
            .await
    }

    /// Creates `grant`, labelled for this test's exchange, and has the provider approve it;
    /// waits until Active.
    async fn activate(&self, mut grant: ShareGrant) -> ShareGrant {
        grant
            .metadata
            .labels
            .get_or_insert_default()
            .insert("gongshu.io/e2e-exchange".into(), self.suffix.clone());
        self.sharing
            .activate(&grant, WORKFLOW)
            .await
            .expect("the grant becomes Active")
    }

    async fn provider_decides(&self, name: &str, decision: &str) {
        self.sharing
            .provider_decides(name, decision)
            .await
            .expect("review");
    }

    async fn wait_phase(&self, name: &str, phase: GrantPhase) -> ShareGrant {
        self.sharing
            .wait_phase(name, phase, WORKFLOW)
            .await
            .unwrap()
    }

    fn token(&self, namespace: &str, sa: &str, audience: &str) -> String {
        self.sharing.token(namespace, sa, audience).expect("token")
    }

    fn consumer_token(&self) -> String {
        self.token(
            &self.sharing.consumer_ns,
            "allowance-app",
            "gongshu-exchange",
        )
    }

    fn url(&self, grant: &str, rest: &str) -> String {
        format!(
            "{}/v1/grants/{}/{grant}{rest}",
            self.exchange.url, self.sharing.consumer_ns
        )
    }

    async fn get(&self, token: Option<&str>, url: &str) -> (u16, Value, String) {
        let mut request = self.exchange.http.get(url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("exchange answers");
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let text = response.text().await.unwrap();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status >= 400 {
            assert_eq!(content_type, "application/problem+json", "{text}");
        }
        (status, json, text)
    }

    /// The audit records written so far, in order.
    fn audit(&self) -> Vec<Value> {
        let mut names: Vec<_> = std::fs::read_dir(&self.exchange.audit_dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
            .collect();
        names.sort();
        names
            .iter()
            .flat_map(|p| {
                std::fs::read_to_string(p)
                    .unwrap()
                    .lines()
                    // A line being written as we read is skipped.
                    .filter_map(|l| serde_json::from_str(l).ok())
                    .collect::<Vec<Value>>()
            })
            .collect()
    }

    /// `gongshu audit verify` on the exchange's directory against its checkpoint.
    fn verify_audit(&self) -> (bool, String) {
        let out = std::process::Command::new(operator_binary("debug").unwrap())
            .args(["audit", "verify", "--dir"])
            .arg(&self.exchange.audit_dir)
            .args([
                "--checkpoint-namespace",
                "gongshu-system",
                "--checkpoint-name",
            ])
            .arg(&self.exchange.checkpoint)
            .env("KUBECONFIG", self.env().kubeconfig())
            .output()
            .unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }
}

/// The test's own exchange, serving the grants labelled with `suffix` only (the suites share
/// a cluster), its table replicas refreshed every 2 s instead of the items' daily frequency,
/// with `extra` in its environment.
async fn start_exchange(
    cluster_dir: &Path,
    dir: &Path,
    checkpoint: &str,
    suffix: &str,
    extra: &[(&str, &str)],
) -> Exchange {
    let selector = format!("gongshu.io/e2e-exchange={suffix}");
    let mut env = vec![
        ("GONGSHU_TABLE_REFRESH_MAX_SECONDS", Path::new("2")),
        ("GONGSHU_GRANT_SELECTOR", Path::new(&selector)),
    ];
    env.extend(extra.iter().map(|(k, v)| (*k, Path::new(v))));
    Exchange::start_with(
        &operator_binary("debug").expect("gongshu built"),
        cluster_dir,
        dir,
        checkpoint,
        &env,
    )
    .await
    .expect("exchange starts")
}

impl Drop for Setup {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("exchange log: {}", self.exchange.log.display());
        }
    }
}

#[tokio::test]
async fn api_mode_serves_the_approved_fields_only_by_key_and_by_page_sh_5() {
    let s = Setup::new().await;
    s.active("allowance", "households", &["citizen_id", "name"], "api")
        .await;
    let token = s.consumer_token();

    // A keyed lookup: the granted fields, never `ethnicity`.
    let (status, record, _) = s
        .get(
            Some(&token),
            &s.url("allowance", "/records/000000000000000007"),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        record,
        json!({"citizen_id": "000000000000000007", "name": "name-7"})
    );
    let (status, problem, _) = s
        .get(Some(&token), &s.url("allowance", "/records/999"))
        .await;
    assert_eq!(
        (status, problem["type"].as_str()),
        (404, Some("https://gongshu.io/problems/record-not-found"))
    );

    // Pages in key order until the end: every row once.
    let mut seen = BTreeSet::new();
    let mut next: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut url = s.url("allowance", "/records?limit=100");
        if let Some(cursor) = &next {
            url.push_str(&format!("&cursor={cursor}"));
        }
        let (status, page, text) = s.get(Some(&token), &url).await;
        assert_eq!(status, 200, "{text}");
        pages += 1;
        for record in page["records"].as_array().unwrap() {
            assert_eq!(record.as_object().unwrap().len(), 2, "{record}");
            assert!(seen.insert(record["citizen_id"].as_str().unwrap().to_owned()));
        }
        match page["next"].as_str() {
            Some(cursor) => next = Some(cursor.to_owned()),
            None => break,
        }
    }
    assert_eq!((seen.len(), pages), (ROWS, 3));

    // Filters name granted fields only; a forged cursor and another mode are refused.
    let (status, page, _) = s
        .get(Some(&token), &s.url("allowance", "/records?name=name-42"))
        .await;
    assert_eq!(
        (status, page["records"].as_array().unwrap().len()),
        (200, 1)
    );
    let (status, problem, _) = s
        .get(Some(&token), &s.url("allowance", "/records?ethnicity=e-1"))
        .await;
    assert_eq!((status, problem["rule"].as_str()), (400, Some("SH-5")));
    let (status, _, _) = s
        .get(Some(&token), &s.url("allowance", "/records?cursor=AAAA"))
        .await;
    assert_eq!(status, 400);
    let (status, problem, _) = s.get(Some(&token), &s.url("allowance", "/download")).await;
    assert_eq!(
        (status, problem["type"].as_str()),
        (403, Some("https://gongshu.io/problems/wrong-mode"))
    );

    // Usage reaches the grant's status (SH-12), batched.
    let used = s
        .env()
        .wait_for(
            s.grants(),
            "allowance",
            Duration::from_secs(20),
            |g: Option<&ShareGrant>| {
                g.and_then(|g| g.status.as_ref())
                    .and_then(|s| s.usage.as_ref())
                    .is_some_and(|u| u.rows >= ROWS as i64 + 2)
            },
        )
        .await
        .expect("usage written");
    let usage = used.status.unwrap().usage.unwrap();
    assert!(usage.requests >= 5, "{usage:?}");
    assert!(usage.last_access.is_some());

    // Every access is audited: who, which grant, what fields, how many rows, the result.
    let audit = s.audit();
    let served: Vec<&Value> = audit.iter().filter(|r| r["status"] == 200).collect();
    assert!(served.len() >= 5, "{audit:?}");
    let page = served.iter().find(|r| r["operation"] == "query").unwrap();
    assert_eq!(
        page["caller"],
        format!(
            "system:serviceaccount:{}:allowance-app",
            s.sharing.consumer_ns
        )
    );
    assert_eq!(page["fields"], json!(["citizen_id", "name"]));
    assert_eq!(page["rows"], 100);
    assert!(
        audit
            .iter()
            .any(|r| r["status"] == 403 && r["problem"] == "wrong-mode")
    );
}

/// A real but expired token: signed with the cluster's own ServiceAccount key, as the
/// apiserver would have issued it, with `exp` an hour ago.
async fn expired_token(s: &Setup) -> String {
    let sa = Api::<ServiceAccount>::namespaced(s.env().client.clone(), &s.sharing.consumer_ns)
        .get("allowance-app")
        .await
        .unwrap();
    let now = jiff::Timestamp::now().as_second();
    let claims = json!({
        "iss": SERVICE_ACCOUNT_ISSUER,
        "sub": format!("system:serviceaccount:{}:allowance-app", s.sharing.consumer_ns),
        "aud": ["gongshu-exchange"],
        "iat": now - 7200, "nbf": now - 7200, "exp": now - 3600,
        "kubernetes.io": {
            "namespace": s.sharing.consumer_ns,
            "serviceaccount": {"name": "allowance-app", "uid": sa.metadata.uid.unwrap()},
        },
    });
    let pki = s.env().kubeconfig().parent().unwrap().join("pki/sa.key");
    let key = jsonwebtoken::EncodingKey::from_ec_pem(&std::fs::read(pki).unwrap()).unwrap();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256),
        &claims,
        &key,
    )
    .unwrap()
}

#[tokio::test]
async fn every_authentication_and_authorization_failure_is_a_problem_and_audited_sec_2_sh_3() {
    // The audit chain is verified every second, for the metrics at the end.
    let s = Setup::with_exchange_env(&[("GONGSHU_AUDIT_VERIFY_INTERVAL_SECONDS", "1")]).await;
    s.active("allowance", "households", &["citizen_id", "name"], "api")
        .await;
    let url = s.url("allowance", "/records/000000000000000001");
    let consumer_ns = s.sharing.consumer_ns.clone();
    let provider_ns = s.sharing.provider_ns.clone();
    let cases: Vec<(&str, Option<String>, u16, &str)> = vec![
        ("no token", None, 401, "unauthenticated"),
        (
            "not a token",
            Some("garbage".into()),
            401,
            "unauthenticated",
        ),
        (
            "another audience",
            Some(s.token(
                &consumer_ns,
                "allowance-app",
                "https://kubernetes.default.svc",
            )),
            401,
            "unauthenticated",
        ),
        (
            "expired",
            Some(expired_token(&s).await),
            401,
            "unauthenticated",
        ),
        (
            "a ServiceAccount the grant does not name",
            Some(s.token(&consumer_ns, "other-app", "gongshu-exchange")),
            403,
            "not-a-grantee",
        ),
        (
            "another department's ServiceAccount of the same name",
            Some(s.token(&provider_ns, "allowance-app", "gongshu-exchange")),
            403,
            "not-a-grantee",
        ),
    ];
    for (case, token, want, slug) in &cases {
        let (status, problem, text) = s.get(token.as_deref(), &url).await;
        assert_eq!(status, *want, "{case}: {text}");
        assert_eq!(
            problem["type"].as_str().unwrap(),
            format!("https://gongshu.io/problems/{slug}"),
            "{case}"
        );
        assert!(!problem["detail"].as_str().unwrap().is_empty(), "{case}");
    }
    // The expired token's refusal says why.
    let (_, problem, _) = s.get(cases[3].1.as_deref(), &url).await;
    assert!(
        problem["detail"].as_str().unwrap().contains("expired"),
        "{problem}"
    );

    // The grantee's token works; every refusal above is in the audit log, with its caller.
    let (status, _, _) = s.get(Some(&s.consumer_token()), &url).await;
    assert_eq!(status, 200);
    let audit = s.audit();
    let refused: Vec<&Value> = audit
        .iter()
        .filter(|r| r["status"].as_u64() >= Some(400))
        .collect();
    assert!(refused.len() >= cases.len(), "{audit:#?}");
    assert!(
        refused
            .iter()
            .any(|r| r["caller"] == "anonymous" && r["status"] == 401)
    );
    assert!(
        refused
            .iter()
            .any(|r| r["caller"] == format!("system:serviceaccount:{provider_ns}:allowance-app"))
    );
    let text = std::fs::read_dir(&s.exchange.audit_dir)
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap_or_default())
        .collect::<String>();
    assert!(
        !text.contains(&s.consumer_token()[..40]),
        "no token in the audit log"
    );

    exported_by_mode_department_and_code_with_the_chain_state(&s).await;
}

/// What the test above did, on the exchange's admin listener (SEC-4): 1 lookup served, 5
/// refused without a valid token (department `unknown`: no grant was looked up), 2 refused to
/// ServiceAccounts the grant does not name (the consumer's department, resolved from the
/// cached grant); the audit chain intact, then broken once a segment is edited (SEC-2).
async fn exported_by_mode_department_and_code_with_the_chain_state(s: &Setup) {
    use gongshu_e2e::observe::{metric_sum, scrape};

    let consumer = Api::<k8s_openapi::api::core::v1::Namespace>::all(s.env().client.clone())
        .get(&s.sharing.consumer_ns)
        .await
        .unwrap()
        .metadata
        .labels
        .unwrap()
        .remove(gongshu_api::v1alpha1::LABEL_DEPARTMENT)
        .unwrap();
    assert_ne!(consumer, s.sharing.consumer_ns, "a code, not the namespace");
    let text = scrape(&s.exchange.admin).await.unwrap();
    let requests = |department: &str, code: &str| {
        metric_sum(
            &text,
            "gongshu_exchange_requests_total",
            &[("mode", "api"), ("department", department), ("code", code)],
        )
    };
    assert_eq!(requests(&consumer, "200"), Some(1.0), "{text}");
    assert_eq!(requests("unknown", "401"), Some(5.0), "{text}");
    assert_eq!(requests(&consumer, "403"), Some(2.0), "{text}");
    assert_eq!(requests(&consumer, "401"), None, "{text}");
    assert_eq!(
        metric_sum(
            &text,
            "gongshu_exchange_request_duration_seconds_count",
            &[("mode", "api")]
        ),
        Some(8.0),
        "{text}"
    );
    // No label comes from the URL: not the namespace, not the grant's name.
    for line in text.lines().filter(|l| l.starts_with("gongshu_exchange_")) {
        assert!(
            !line.contains(&s.sharing.consumer_ns) && !line.contains("allowance"),
            "{line}"
        );
    }
    let records = metric_sum(&text, "gongshu_audit_records_total", &[]).unwrap();
    assert!(records >= 8.0, "every access was audited: {text}");
    // Metrics are on the admin listener only, never on the data port.
    let (status, _, _) = s.get(None, &format!("{}/metrics", s.exchange.url)).await;
    assert_eq!(status, 404);

    // Verified at start and every second: intact, and the checkpoint written after the last
    // record. Then one edited record turns the gauge to 0 at the next verification.
    let gauges = |text: &str| {
        let value = |name| metric_sum(text, name, &[]).unwrap_or(0.0);
        (
            value("gongshu_audit_chain_intact"),
            value("gongshu_audit_last_verification_timestamp_seconds"),
            value("gongshu_audit_last_record_timestamp_seconds"),
            value("gongshu_audit_last_checkpoint_timestamp_seconds"),
        )
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let verified_at = loop {
        let text = scrape(&s.exchange.admin).await.unwrap();
        let (intact, verified, record, checkpoint) = gauges(&text);
        assert_eq!(intact, 1.0, "{text}");
        if verified > 0.0 && record > 0.0 && checkpoint >= record {
            break verified;
        }
        assert!(tokio::time::Instant::now() < deadline, "{text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let segment = std::fs::read_dir(&s.exchange.audit_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .min()
        .unwrap();
    let original = std::fs::read_to_string(&segment).unwrap();
    let tampered = original.replacen("\"status\":401", "\"status\":200", 1);
    assert_ne!(original, tampered);
    std::fs::write(&segment, tampered).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let text = scrape(&s.exchange.admin).await.unwrap();
        let (intact, verified, _, _) = gauges(&text);
        if intact == 0.0 {
            assert!(verified > verified_at, "{text}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the edit was not found: {text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        gongshu_e2e::observe::find_line(&s.exchange.log, &["audit chain broken"]).is_some(),
        "the exchange logs the finding"
    );
}

#[tokio::test]
async fn revocation_and_suspension_cut_the_consumer_off_within_seconds_sh_14() {
    let s = Setup::new().await;
    s.active("allowance", "households", &["citizen_id", "name"], "api")
        .await;
    let token = s.consumer_token();
    let url = s.url("allowance", "/records/000000000000000001");
    assert_eq!(s.get(Some(&token), &url).await.0, 200);

    // Suspension by the authority (SH-14): refused while suspended, served again on resume.
    s.env()
        .review(
            TestEnv::AUTHORITY_NAMESPACE,
            &format!("suspend-{}", random_suffix()),
            json!({"kind": "ShareGrant", "namespace": s.sharing.consumer_ns, "name": "allowance"}),
            "suspend",
            "Data used outside the declared scenario.",
        )
        .await
        .unwrap();
    s.wait_phase("allowance", GrantPhase::Suspended).await;
    let (status, problem) = poll_until_refused(&s, &token, &url).await;
    assert_eq!((status, problem["rule"].as_str()), (403, Some("SH-14")));
    s.env()
        .review(
            TestEnv::AUTHORITY_NAMESPACE,
            &format!("resume-{}", random_suffix()),
            json!({"kind": "ShareGrant", "namespace": s.sharing.consumer_ns, "name": "allowance"}),
            "resume",
            "Violation corrected.",
        )
        .await
        .unwrap();
    s.wait_phase("allowance", GrantPhase::Active).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while s.get(Some(&token), &url).await.0 != 200 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "served again after resumption"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Revocation by the provider: refused from then on.
    s.provider_decides("allowance", "revoke").await;
    s.wait_phase("allowance", GrantPhase::Revoked).await;
    let (status, problem) = poll_until_refused(&s, &token, &url).await;
    assert_eq!(
        (status, problem["type"].as_str()),
        (403, Some("https://gongshu.io/problems/grant-not-active"))
    );
}

/// Requests until refused (the exchange's watch may lag the status the test saw), at most
/// 10 s; the revocation benchmark measures the lag.
async fn poll_until_refused(s: &Setup, token: &str, url: &str) -> (u16, Value) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body, _) = s.get(Some(token), url).await;
        if status != 200 {
            return (status, body);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still served 10 s after the change"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn file_mode_streams_every_row_as_csv_or_json_lines() {
    let s = Setup::new().await;
    let active = s
        .active("bulk", "households", &["name", "citizen_id"], "file")
        .await;
    let approved = active.status.unwrap().approved.unwrap().terms.fields;
    let token = s.consumer_token();
    let (status, _, csv) = s
        .get(Some(&token), &s.url("bulk", "/download?format=csv"))
        .await;
    assert_eq!(status, 200);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        approved.join(","),
        "the approved fields, in the approved order"
    );
    assert_eq!(lines.len(), ROWS + 1);
    let row = if approved[0] == "name" {
        "name-9,000000000000000009"
    } else {
        "000000000000000009,name-9"
    };
    assert!(lines.contains(&row), "{csv}");
    let (status, _, jsonl) = s
        .get(Some(&token), &s.url("bulk", "/download?format=jsonl"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(jsonl.lines().count(), ROWS);
    let first: Value = serde_json::from_str(jsonl.lines().next().unwrap()).unwrap();
    assert_eq!(first.as_object().unwrap().len(), 2, "{first}");
    let (status, _, _) = s
        .get(Some(&token), &s.url("bulk", "/records?limit=1"))
        .await;
    assert_eq!(status, 403, "api mode is not granted");
    // The download is audited with its row count once the stream ends.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let audit = s.audit();
        let downloads: Vec<&Value> = audit
            .iter()
            .filter(|r| r["operation"] == "download" && r["status"] == 200)
            .collect();
        if downloads.len() == 2 {
            assert!(downloads.iter().all(|r| r["rows"] == ROWS), "{downloads:?}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{audit:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn verify_mode_answers_match_flags_and_reveals_nothing_sh_7() {
    let s = Setup::new().await;
    s.active("check", "photos", &["photo_sha256"], "verify")
        .await;
    let token = s.consumer_token();
    let verify = |record: Value| {
        let request = s
            .exchange
            .http
            .post(s.url("check", "/verify"))
            .bearer_auth(&token)
            .json(&json!({ "record": record }));
        async move {
            let response = request.send().await.unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            )
        }
    };
    let (status, answer) =
        verify(json!({"citizen_id": "000000000000000001", "photo_sha256": "abc123"})).await;
    assert_eq!(
        (status, &answer),
        (
            200,
            &json!({"found": true, "match": true, "fields": {"photo_sha256": true}})
        )
    );
    let (_, answer) =
        verify(json!({"citizen_id": "000000000000000001", "photo_sha256": "zzz"})).await;
    assert_eq!(
        answer,
        json!({"found": true, "match": false, "fields": {"photo_sha256": false}})
    );
    let (_, answer) =
        verify(json!({"citizen_id": "000000000000000002", "photo_sha256": "abc123"})).await;
    assert_eq!(answer, json!({"found": false, "match": false}));
    let (status, problem) = verify(json!({"photo_sha256": "abc123"})).await;
    assert_eq!(status, 400, "the key is required: {problem}");
    let (status, _, _) = s
        .get(Some(&token), &s.url("check", "/records/000000000000000001"))
        .await;
    assert_eq!(status, 403, "nothing is served but verification");
}

#[tokio::test]
async fn a_kill_9_during_writes_loses_no_answered_access_and_verify_finds_tampering_sec_2() {
    let mut s = Setup::new().await;
    s.active("allowance", "households", &["citizen_id", "name"], "api")
        .await;
    let token = s.consumer_token();
    let url = s.url("allowance", "/records/000000000000000003");

    // Eight clients read as fast as they can; the exchange is killed mid-way.
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..8 {
        let (http, url, token, answered) = (
            s.exchange.http.clone(),
            url.clone(),
            token.clone(),
            answered.clone(),
        );
        clients.push(tokio::spawn(async move {
            while let Ok(response) = http.get(&url).bearer_auth(&token).send().await {
                if response.status() == 200 && response.bytes().await.is_ok() {
                    answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            }
        }));
    }
    while answered.load(std::sync::atomic::Ordering::SeqCst) < 200 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(s.exchange.process.pid()),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    for client in clients {
        client.await.unwrap();
    }
    let answered = answered.load(std::sync::atomic::Ordering::SeqCst);
    let served = s.audit().iter().filter(|r| r["status"] == 200).count();
    assert!(
        served >= answered,
        "every answered access was audited first: {served} records, {answered} answers"
    );

    // Restarted on the same directory, the chain continues intact.
    let cluster_dir = s.env().kubeconfig().parent().unwrap().to_path_buf();
    let checkpoint = s.exchange.checkpoint.clone();
    s.exchange = start_exchange(
        &cluster_dir,
        &s.dir.join("exchange"),
        &checkpoint,
        &s.suffix,
        &[],
    )
    .await;
    let url = s.url("allowance", "/records/000000000000000003");
    assert_eq!(s.get(Some(&token), &url).await.0, 200);
    // The head is checkpointed into the apiserver within a second or so of the last write.
    let records = s.audit().len() as u64;
    let checkpoints = Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(
        s.env().client.clone(),
        "gongshu-system",
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let covered = checkpoints
            .get_opt(&checkpoint)
            .await
            .unwrap()
            .and_then(|c| c.data)
            .is_some_and(|data| {
                data.values()
                    .filter_map(|v| v.split(':').nth(1)?.parse::<u64>().ok())
                    .max()
                    >= Some(records)
            });
        if covered {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no checkpoint of {records} records"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (intact, report) = s.verify_audit();
    assert!(intact, "{report}");
    assert!(report.contains("intact"), "{report}");

    // One changed byte in one record is found, and named.
    let segment = std::fs::read_dir(&s.exchange.audit_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .min()
        .unwrap();
    let text = std::fs::read_to_string(&segment).unwrap();
    let tampered = text.replacen("\"rows\":1", "\"rows\":2", 1);
    assert_ne!(text, tampered);
    std::fs::write(&segment, tampered).unwrap();
    let (intact, report) = s.verify_audit();
    assert!(!intact, "{report}");
    assert!(report.contains("edited"), "{report}");
}

#[tokio::test]
async fn table_mode_copies_the_granted_columns_into_the_consumers_database_until_revoked_sh_6() {
    let s = Setup::new().await;
    s.pg.psql("postgres", "create database consumer").unwrap();
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "own-db"},
        "stringData": {"uri": s.pg.url("consumer")},
    }))
    .unwrap();
    Api::<Secret>::namespaced(s.env().client.clone(), &s.sharing.consumer_ns)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let mut grant = s
        .sharing
        .grant("replica", "households", &["citizen_id", "name"], "table");
    grant.spec.table_target = Some(
        serde_json::from_value(json!({
            "connectionSecretRef": {"name": "own-db", "key": "uri"},
            "table": "households_copy",
        }))
        .unwrap(),
    );
    s.activate(grant).await;

    // The copy appears with the granted columns only, every row, and the grant is held by the
    // exchange's finalizer while it exists.
    let consumer = |sql: &str| s.pg.psql("consumer", sql).unwrap_or_default();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while consumer("select count(*) from households_copy") != ROWS.to_string() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no replica of {ROWS} rows"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        consumer(
            "select string_agg(column_name, ',' order by ordinal_position) from information_schema.columns where table_name = 'households_copy'"
        ),
        "citizen_id,name",
        "ethnicity is not copied (SH-5)"
    );
    let held = s.grants().get("replica").await.unwrap();
    assert!(
        held.metadata
            .finalizers
            .unwrap_or_default()
            .contains(&"gongshu.io/table-replica".to_owned())
    );

    // A new source row reaches the copy at the next refresh (SH-15).
    s.pg.psql(
        "postgres",
        "insert into households values ('999999999999999999', 'new', 'x')",
    )
    .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while consumer("select count(*) from households_copy") != (ROWS + 1).to_string() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the copy was not refreshed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Revocation drops the copy and releases the grant.
    s.provider_decides("replica", "revoke").await;
    s.wait_phase("replica", GrantPhase::Revoked).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while consumer("select coalesce(to_regclass('households_copy')::text, 'gone')") != "gone" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the copy outlived the revocation"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    s.env()
        .wait_for(
            s.grants(),
            "replica",
            Duration::from_secs(10),
            |g: Option<&ShareGrant>| {
                g.is_some_and(|g| {
                    g.metadata
                        .finalizers
                        .as_deref()
                        .unwrap_or_default()
                        .is_empty()
                })
            },
        )
        .await
        .expect("the finalizer is removed once the copy is gone");
    // The copy and the drop are audited (the drop's record right after the finalizer goes).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let audit = s.audit();
        let copied = audit
            .iter()
            .any(|r| r["operation"] == "replicate" && r["rows"] == ROWS);
        let dropped = audit
            .iter()
            .any(|r| r["operation"] == "drop" && r["status"] == 200);
        if copied && dropped {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{audit:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
