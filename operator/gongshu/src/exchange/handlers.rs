//! The routes: each authenticates, authorizes against the grant's approved terms, reads the
//! provider's source with the granted fields only, and audits the access, refused or not.

use std::{
    collections::BTreeMap,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Instant,
};

use axum::{
    Json, Router,
    body::{Body, Bytes},
    extract::{ConnectInfo, Path, Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use futures::Stream;
use gongshu_api::{
    rules::exchange::{self, ServiceAccount, mode_name},
    v1alpha1::{CatalogItem, ShareGrant, ShareMode},
};
use kube::runtime::reflector::ObjectRef;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{
    Exchange,
    files::{FileData, Output, text},
    metrics::Department,
    postgres::{ByteStream, SourceError},
    problem::Problem,
};
use crate::audit::Record;

/// Records per page unless the caller asks for fewer.
const DEFAULT_LIMIT: usize = 100;
/// Records per page at most.
const MAX_LIMIT: usize = 1000;

/// The OpenAPI document, committed beside the code and checked against the routes by a test.
pub const OPENAPI: &str = include_str!("openapi.json");

/// The exchange's routes.
pub fn router(exchange: Arc<Exchange>) -> Router {
    Router::new()
        .route("/v1/grants/{namespace}/{name}", get(describe))
        .route("/v1/grants/{namespace}/{name}/records", get(query))
        .route("/v1/grants/{namespace}/{name}/records/{key}", get(lookup))
        .route("/v1/grants/{namespace}/{name}/download", get(download))
        .route("/v1/grants/{namespace}/{name}/verify", post(verify))
        .route("/openapi.json", get(openapi))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .fallback(|| async {
            Problem::new(
                StatusCode::NOT_FOUND,
                "not-found",
                "No such endpoint",
                "see /openapi.json for the exchange's endpoints",
            )
        })
        .with_state(exchange)
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

async fn readyz(State(exchange): State<Arc<Exchange>>) -> Response {
    if exchange.ready() {
        "ready\n".into_response()
    } else {
        Problem::unavailable("the grant and catalog caches have not listed yet").into_response()
    }
}

/// One request in progress: who, which grant, what it may touch, and when it started.
struct Call {
    started: Instant,
    record: Record,
    /// The consumer department of the grant, once resolved from the cache (for metrics).
    department: Option<Arc<str>>,
}

/// What an authorised request works with.
struct Granted {
    grant: Arc<ShareGrant>,
    key: String,
    item: super::ItemRef,
    provider_namespace: String,
    fields: Vec<String>,
}

impl Call {
    fn new(peer: std::net::SocketAddr, namespace: &str, name: &str, operation: &str) -> Self {
        Self {
            started: Instant::now(),
            record: Record {
                caller: "anonymous".into(),
                grant: Some(format!("{namespace}/{name}")),
                item: None,
                fields: Vec::new(),
                mode: None,
                operation: operation.into(),
                rows: 0,
                status: 0,
                problem: None,
                latency_us: 0,
                remote: Some(peer.to_string()),
            },
            department: None,
        }
    }

    /// Authenticates and authorizes for `mode` (`None`: any mode, to describe the grant).
    async fn admit(
        &mut self,
        exchange: &Exchange,
        headers: &HeaderMap,
        namespace: &str,
        name: &str,
        mode: Option<ShareMode>,
    ) -> Result<Granted, Problem> {
        if !exchange.ready() {
            return Err(Problem::unavailable(
                "the exchange is starting; retry shortly",
            ));
        }
        let caller: ServiceAccount = exchange.auth.authenticate(headers).await?;
        self.record.caller = caller.to_string();
        let grant = exchange
            .grants
            .get(&ObjectRef::new(name).within(namespace))
            .ok_or_else(Problem::no_grant)?;
        // From the cached grant, not the URL: only grants the exchange serves make series.
        self.department = grant
            .metadata
            .namespace
            .as_deref()
            .and_then(|ns| exchange.departments.of(ns));
        let wanted = mode.unwrap_or_else(|| {
            grant
                .status
                .as_ref()
                .and_then(|s| s.approved.as_ref())
                .map_or(grant.spec.mode, |a| a.terms.mode)
        });
        let access = exchange::authorize(&grant, &caller, wanted, jiff::Timestamp::now())?;
        self.record.item = Some(access.item.to_owned());
        self.record.mode = Some(mode_name(access.mode).to_owned());
        self.record.fields = access.fields.to_vec();
        let provider_namespace = access.provider.namespace.clone();
        let item = exchange.item_of(&grant).ok_or_else(|| {
            Problem::source(format!(
                "the provider's catalog {}/{} no longer declares item {}",
                provider_namespace, access.provider.catalog, access.item
            ))
        })?;
        let fields = access.fields.to_vec();
        Ok(Granted {
            key: format!("{namespace}/{name}"),
            grant,
            item,
            provider_namespace,
            fields,
        })
    }

    /// Audits the outcome and turns it into the response.
    async fn finish(
        mut self,
        exchange: &Exchange,
        outcome: Result<(Response, u64), Problem>,
    ) -> Response {
        let response = match outcome {
            Ok((response, rows)) => {
                self.record.rows = rows;
                response
            }
            Err(problem) => {
                self.record.problem = Some(problem.slug.to_owned());
                problem.into_response()
            }
        };
        self.record.status = response.status().as_u16();
        self.record.latency_us =
            u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let department = self.department.take();
        // An access that could not be audited is not served (SEC-2, SH-13).
        let response = match exchange.audited(self.record).await {
            Ok(()) => response,
            Err(problem) => problem.into_response(),
        };
        labelled(response, department)
    }
}

/// `response` labelled with the grant's consumer department, for the request metrics.
fn labelled(mut response: Response, department: Option<Arc<str>>) -> Response {
    if let Some(department) = department {
        response.extensions_mut().insert(Department(department));
    }
    response
}

fn source_problem(error: SourceError) -> Problem {
    match error {
        SourceError::BadValue(message) => Problem::bad_request(message),
        other => {
            tracing::warn!(error = %other, "source failed");
            Problem::source(other.to_string())
        }
    }
}

impl Granted {
    /// The item's PostgreSQL table, described with every field the catalog declares (so a
    /// table that no longer matches its catalog is reported as such).
    async fn postgres(
        &self,
        exchange: &Exchange,
        source: &gongshu_api::v1alpha1::PostgresSource,
    ) -> Result<super::postgres::Source, Problem> {
        let declared: Vec<String> = self.item.fields.iter().map(|f| f.name.clone()).collect();
        exchange
            .postgres
            .source(&self.provider_namespace, source, &declared)
            .await
            .map_err(source_problem)
    }
}

/// The item's file under the exchange's file root (where the data volumes are mounted); a
/// path that climbs out of the root with `..` is refused.
fn file_data(root: &std::path::Path, item: &CatalogItem) -> Result<Option<FileData>, Problem> {
    let Some(file) = &item.source.file else {
        return Ok(None);
    };
    let relative = std::path::Path::new(file.path.trim_start_matches('/'));
    if relative
        .components()
        .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return Err(Problem::source(format!(
            "item {}: file path {} must be absolute and must not contain `..`",
            item.identifier, file.path
        )));
    }
    Ok(Some(FileData {
        path: root.join(relative),
        format: file.format,
        fields: item.fields.clone(),
    }))
}

fn no_source(item: &CatalogItem) -> Problem {
    Problem::new(
        StatusCode::NOT_IMPLEMENTED,
        "source-not-supported",
        "The item's source kind is not served yet",
        format!(
            "item {} is served from an HTTP upstream, which the exchange does not proxy yet",
            item.identifier
        ),
    )
}

type Params = Path<(String, String)>;

async fn describe(
    State(exchange): State<Arc<Exchange>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    Path((namespace, name)): Params,
    headers: HeaderMap,
) -> Response {
    let mut call = Call::new(peer, &namespace, &name, "describe");
    let outcome = match call
        .admit(&exchange, &headers, &namespace, &name, None)
        .await
    {
        Ok(granted) => {
            let terms = granted
                .grant
                .status
                .as_ref()
                .and_then(|s| s.approved.as_ref())
                .map(|a| &a.terms);
            let body = json!({
                "grant": granted.key,
                "item": granted.item.identifier,
                "title": granted.item.title,
                "mode": terms.map(|t| mode_name(t.mode)),
                "fields": granted.item.fields.iter().filter(|f| granted.fields.contains(&f.name)).collect::<Vec<_>>(),
                "keyColumns": granted.item.source.postgres.as_ref().map(|p| p.key_columns.clone()),
                "validUntil": terms.map(|t| t.valid_until.0.to_string()),
            });
            Ok((Json(body).into_response(), 0))
        }
        Err(problem) => Err(problem),
    };
    call.finish(&exchange, outcome).await
}

/// `?limit=&cursor=&<field>=<value>…`.
type QueryParams = Query<BTreeMap<String, String>>;

async fn query(
    State(exchange): State<Arc<Exchange>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    Path((namespace, name)): Params,
    Query(params): QueryParams,
    headers: HeaderMap,
) -> Response {
    let mut call = Call::new(peer, &namespace, &name, "query");
    let outcome = async {
        let granted = call
            .admit(&exchange, &headers, &namespace, &name, Some(ShareMode::Api))
            .await?;
        let limit = match params.get("limit") {
            None => DEFAULT_LIMIT,
            Some(l) => l
                .parse::<usize>()
                .ok()
                .filter(|l| (1..=MAX_LIMIT).contains(l))
                .ok_or_else(|| Problem::bad_request(format!("limit must be 1..={MAX_LIMIT}")))?,
        };
        let after = params
            .get("cursor")
            .map(|c| {
                exchange.cursors.open(&granted.key, c).ok_or_else(|| {
                    Problem::bad_request("cursor is not one this exchange issued for this grant")
                })
            })
            .transpose()?;
        let mut filters = Vec::new();
        for (column, value) in &params {
            if column == "limit" || column == "cursor" {
                continue;
            }
            if !granted.fields.contains(column) {
                return Err(Problem::bad_request(format!(
                    "cannot filter on {column}: filters name granted fields only ({})",
                    granted.fields.join(", ")
                ))
                .rule("SH-5"));
            }
            filters.push((column.clone(), value.clone()));
        }
        let (records, next) = if let Some(pg) = &granted.item.source.postgres {
            let source = granted.postgres(&exchange, pg).await?;
            let limit_i64 = i64::try_from(limit).unwrap_or(i64::MAX);
            let rows = source
                .page(&granted.fields, &filters, after.as_deref(), limit_i64)
                .await
                .map_err(source_problem)?;
            let next = (rows.len() == limit)
                .then(|| rows.last())
                .flatten()
                .and_then(|(_, key)| serde_json::from_str::<Vec<Value>>(key).ok())
                .map(|key| {
                    let key: Vec<String> =
                        key.iter().map(|v| text(v).unwrap_or_default()).collect();
                    exchange.cursors.seal(&granted.key, &key)
                });
            (
                rows.into_iter().map(|(json, _)| json).collect::<Vec<_>>(),
                next,
            )
        } else if let Some(file) = file_data(&exchange.file_root, &granted.item)? {
            let after = after.and_then(|a| a.first().and_then(|n| n.parse::<u64>().ok()));
            let rows = file
                .page(granted.fields.clone(), filters, after, limit)
                .await
                .map_err(source_problem)?;
            let next = (rows.len() == limit)
                .then(|| rows.last())
                .flatten()
                .map(|(_, n)| exchange.cursors.seal(&granted.key, &[n.to_string()]));
            (rows.into_iter().map(|(json, _)| json).collect(), next)
        } else {
            return Err(no_source(&granted.item));
        };
        let count = records.len() as u64;
        Ok((page_response(&records, next.as_deref()), count))
    }
    .await;
    call.finish(&exchange, outcome).await
}

/// `{"records":[…],"next":"<cursor>"}` from records that are already JSON text.
fn page_response(records: &[String], next: Option<&str>) -> Response {
    let mut body = String::with_capacity(records.iter().map(|r| r.len() + 1).sum::<usize>() + 64);
    body.push_str("{\"records\":[");
    body.push_str(&records.join(","));
    body.push(']');
    if let Some(next) = next {
        body.push_str(",\"next\":");
        body.push_str(&Value::from(next).to_string());
    }
    body.push('}');
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn lookup(
    State(exchange): State<Arc<Exchange>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    Path((namespace, name, key)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let mut call = Call::new(peer, &namespace, &name, "lookup");
    let outcome = async {
        let granted = call
            .admit(&exchange, &headers, &namespace, &name, Some(ShareMode::Api))
            .await?;
        let found = if let Some(pg) = &granted.item.source.postgres {
            if pg.key_columns.len() != 1 {
                return Err(Problem::bad_request(format!(
                    "item {} has a composite key ({}); query /records with one filter per key column",
                    granted.item.identifier,
                    pg.key_columns.join(", ")
                )));
            }
            let source = granted.postgres(&exchange, pg).await?;
            source
                .lookup(&granted.fields, std::slice::from_ref(&key))
                .await
                .map_err(source_problem)?
        } else if let Some(file) = file_data(&exchange.file_root, &granted.item)? {
            let Some(key_field) = granted.item.fields.first().map(|f| f.name.clone()) else {
                return Err(no_source(&granted.item));
            };
            file.page(granted.fields.clone(), vec![(key_field, key.clone())], None, 1)
                .await
                .map_err(source_problem)?
                .pop()
                .map(|(json, _)| json)
        } else {
            return Err(no_source(&granted.item));
        };
        match found {
            Some(json) => Ok((
                ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
                1,
            )),
            None => Err(Problem::new(
                StatusCode::NOT_FOUND,
                "record-not-found",
                "No record has that key",
                format!("no record of {} has key {key}", granted.item.identifier),
            )),
        }
    }
    .await;
    call.finish(&exchange, outcome).await
}

#[derive(Deserialize)]
struct DownloadParams {
    format: Option<String>,
}

async fn download(
    State(exchange): State<Arc<Exchange>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    Path((namespace, name)): Params,
    Query(params): Query<DownloadParams>,
    headers: HeaderMap,
) -> Response {
    let mut call = Call::new(peer, &namespace, &name, "download");
    let opened = async {
        let output = match params.format.as_deref() {
            None | Some("csv") => Output::Csv,
            Some("jsonl") => Output::Jsonl,
            Some(other) => {
                return Err(Problem::bad_request(format!(
                    "format {other} is not served; use csv or jsonl"
                )));
            }
        };
        let granted = call
            .admit(
                &exchange,
                &headers,
                &namespace,
                &name,
                Some(ShareMode::File),
            )
            .await?;
        let stream = if let Some(pg) = &granted.item.source.postgres {
            let source = granted.postgres(&exchange, pg).await?;
            match output {
                Output::Csv => source.download_csv(&granted.fields).await,
                Output::Jsonl => source.download_jsonl(&granted.fields).await,
            }
            .map_err(source_problem)?
        } else if let Some(file) = file_data(&exchange.file_root, &granted.item)? {
            file.download(granted.fields.clone(), output)
        } else {
            return Err(no_source(&granted.item));
        };
        Ok((stream, output, granted.item.identifier.clone()))
    }
    .await;
    match opened {
        Err(problem) => call.finish(&exchange, Err(problem)).await,
        Ok((stream, output, item)) => {
            let (content_type, extension) = match output {
                Output::Csv => ("text/csv; charset=utf-8", "csv"),
                Output::Jsonl => ("application/jsonl", "jsonl"),
            };
            let department = call.department.clone();
            let metered = Metered {
                inner: stream,
                output,
                rows: 0,
                in_quotes: false,
                failed: false,
                done: false,
                call: Some(call),
                exchange: exchange.clone(),
            };
            let mut response = Response::new(Body::from_stream(metered));
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            if let Ok(value) =
                HeaderValue::from_str(&format!("attachment; filename=\"{item}.{extension}\""))
            {
                headers.insert(header::CONTENT_DISPOSITION, value);
            }
            labelled(response, department)
        }
    }
}

/// A download body that counts the rows it passes and audits the access when it ends:
/// `200` with the row count when the stream completed, `499` when the caller went away, `502`
/// when the source failed mid-way.
struct Metered {
    inner: ByteStream,
    output: Output,
    rows: u64,
    in_quotes: bool,
    failed: bool,
    done: bool,
    call: Option<Call>,
    exchange: Arc<Exchange>,
}

impl Metered {
    fn count(&mut self, chunk: &[u8]) {
        match self.output {
            Output::Jsonl => self.rows += memchr::memchr_iter(b'\n', chunk).count() as u64,
            // A newline inside a quoted CSV cell is not a row end; `""` toggles twice.
            Output::Csv => {
                for at in memchr::memchr2_iter(b'"', b'\n', chunk) {
                    if chunk[at] == b'"' {
                        self.in_quotes = !self.in_quotes;
                    } else if !self.in_quotes {
                        self.rows += 1;
                    }
                }
            }
        }
    }
}

impl Stream for Metered {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.inner.as_mut().poll_next(cx);
        match &polled {
            Poll::Ready(Some(Ok(chunk))) => {
                let chunk = chunk.clone();
                self.count(&chunk);
            }
            Poll::Ready(Some(Err(_))) => self.failed = true,
            Poll::Ready(None) => self.done = true,
            Poll::Pending => {}
        }
        polled
    }
}

impl Drop for Metered {
    fn drop(&mut self) {
        let Some(mut call) = self.call.take() else {
            return;
        };
        let header = u64::from(self.output == Output::Csv);
        call.record.rows = self.rows.saturating_sub(header);
        let (status, problem) = if self.failed {
            (502, Some("source-unavailable"))
        } else if self.done {
            (200, None)
        } else {
            (499, Some("client-closed"))
        };
        call.record.status = status;
        call.record.problem = problem.map(str::to_owned);
        call.record.latency_us =
            u64::try_from(call.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let exchange = self.exchange.clone();
        tokio::spawn(async move {
            let _ = exchange.audited(call.record).await;
        });
    }
}

/// `{"record": {"<field>": <value>, …}}`: the key columns and the fields to compare.
#[derive(Deserialize)]
struct VerifyRequest {
    record: Map<String, Value>,
}

async fn verify(
    State(exchange): State<Arc<Exchange>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    Path((namespace, name)): Params,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut call = Call::new(peer, &namespace, &name, "verify");
    let outcome = async {
        let granted = call
            .admit(
                &exchange,
                &headers,
                &namespace,
                &name,
                Some(ShareMode::Verify),
            )
            .await?;
        let request: VerifyRequest = serde_json::from_slice(&body).map_err(|e| {
            Problem::bad_request(format!(
                "the body must be {{\"record\": {{<key columns and fields to compare>}}}}: {e}"
            ))
        })?;
        let keys: Vec<String> = match (&granted.item.source.postgres, granted.item.fields.first()) {
            (Some(pg), _) => pg.key_columns.clone(),
            (None, Some(first)) => vec![first.name.clone()],
            (None, None) => return Err(no_source(&granted.item)),
        };
        let mut key = Vec::new();
        for column in &keys {
            let value = request.record.get(column).and_then(text).ok_or_else(|| {
                Problem::bad_request(format!(
                    "record.{column} is required: verification finds the record by its key ({})",
                    keys.join(", ")
                ))
            })?;
            key.push(value);
        }
        let mut offered = Vec::new();
        for (column, value) in &request.record {
            if keys.contains(column) {
                continue;
            }
            if !granted.fields.contains(column) {
                return Err(Problem::bad_request(format!(
                    "record.{column}: only granted fields can be verified ({})",
                    granted.fields.join(", ")
                ))
                .rule("SH-7"));
            }
            offered.push((column.clone(), text(value)));
        }
        let flags = if let Some(pg) = &granted.item.source.postgres {
            let source = granted.postgres(&exchange, pg).await?;
            source
                .verify(&key, &offered)
                .await
                .map_err(source_problem)?
        } else if let Some(file) = file_data(&exchange.file_root, &granted.item)? {
            file.verify(keys.iter().cloned().zip(key).collect(), offered.clone())
                .await
                .map_err(source_problem)?
        } else {
            return Err(no_source(&granted.item));
        };
        let body = match flags {
            None => json!({"found": false, "match": false}),
            Some(flags) => {
                let fields: Map<String, Value> = offered
                    .iter()
                    .zip(&flags)
                    .map(|((c, _), f)| (c.clone(), Value::Bool(*f)))
                    .collect();
                json!({"found": true, "match": flags.iter().all(|f| *f), "fields": fields})
            }
        };
        Ok((Json(body).into_response(), 0))
    }
    .await;
    call.finish(&exchange, outcome).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// The committed OpenAPI document lists exactly the routes [`router`] serves.
    #[test]
    fn the_openapi_document_matches_the_routes() {
        let doc: Value = serde_json::from_str(OPENAPI).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let documented: Vec<&str> = doc["paths"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let source = include_str!("handlers.rs");
        let routed: Vec<&str> = source
            .lines()
            .filter_map(|l| l.trim().strip_prefix(".route(\""))
            .filter_map(|l| l.split('"').next())
            .collect();
        let mut documented_sorted = documented.clone();
        documented_sorted.sort_unstable();
        let mut routed_sorted = routed.clone();
        routed_sorted.sort_unstable();
        assert_eq!(documented_sorted, routed_sorted);
        for slug in [
            "unauthenticated",
            "not-a-grantee",
            "grant-not-active",
            "grant-expired",
            "wrong-mode",
            "record-not-found",
        ] {
            assert!(OPENAPI.contains(slug), "problem type {slug} is documented");
        }
    }
}
