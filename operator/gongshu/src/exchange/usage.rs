//! Usage in grant status (SH-12): requests and rows served per grant, counted in memory and
//! written to `status.usage` every few seconds, one merge patch per grant that was used, so
//! traffic does not turn into apiserver load.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use gongshu_api::v1alpha1::{ShareGrant, Usage as GrantUsage};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};
use serde_json::json;
use tracing::debug;

use super::Exchange;
use crate::shutdown::Shutdown;

/// The field manager of the exchange's status writes.
pub const FIELD_MANAGER: &str = "gongshu-exchange";

/// Counts since the last flush, by grant (`namespace/name`).
#[derive(Debug, Default)]
pub struct Usage {
    pending: Mutex<HashMap<String, Delta>>,
}

#[derive(Clone, Copy, Debug)]
struct Delta {
    requests: i64,
    rows: i64,
    last: jiff::Timestamp,
}

impl Usage {
    /// One served request of `grant` that returned `rows`.
    pub fn add(&self, grant: &str, rows: u64) {
        let now = jiff::Timestamp::now();
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let delta = pending.entry(grant.to_owned()).or_insert(Delta {
            requests: 0,
            rows: 0,
            last: now,
        });
        delta.requests += 1;
        delta.rows += i64::try_from(rows).unwrap_or(i64::MAX);
        delta.last = now;
    }

    fn take(&self) -> HashMap<String, Delta> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Puts back deltas that could not be written, for the next flush.
    fn restore(&self, grant: String, delta: Delta) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = pending.entry(grant).or_insert(Delta {
            requests: 0,
            rows: 0,
            last: delta.last,
        });
        entry.requests += delta.requests;
        entry.rows += delta.rows;
        entry.last = entry.last.max(delta.last);
    }
}

/// The new totals: the last ones known (written by this process, else read from the grant)
/// plus what was counted since.
fn total(base: Option<&GrantUsage>, delta: Delta) -> GrantUsage {
    let base = base.cloned().unwrap_or_default();
    GrantUsage {
        requests: base.requests + delta.requests,
        rows: base.rows + delta.rows,
        last_access: Some(Time(delta.last)),
    }
}

/// Writes the usage counted so far: per grant, the current totals are read and the delta
/// added, under a resourceVersion precondition, so several exchange replicas add up instead
/// of overwriting each other; a conflict keeps the delta for the next flush.
pub async fn flush(exchange: &Exchange, client: &Client) {
    for (grant, delta) in exchange.usage.take() {
        let Some((namespace, name)) = grant.split_once('/') else {
            continue;
        };
        let api = Api::<ShareGrant>::namespaced(client.clone(), namespace);
        let written = async {
            let current = api.get_status(name).await?;
            let usage = total(
                current.status.as_ref().and_then(|s| s.usage.as_ref()),
                delta,
            );
            let patch = json!({
                "metadata": {"resourceVersion": current.metadata.resource_version},
                "status": {"usage": usage},
            });
            api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map(|_| usage)
        }
        .await;
        match written {
            Ok(usage) => debug!(
                grant,
                requests = usage.requests,
                rows = usage.rows,
                "usage written"
            ),
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(error) => {
                debug!(grant, %error, "cannot write usage now; will retry");
                exchange.usage.restore(grant, delta);
            }
        }
    }
}

/// Flushes every `interval` until `shutdown`.
pub async fn flush_every(
    exchange: Arc<Exchange>,
    client: Client,
    interval: Duration,
    shutdown: Shutdown,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => flush(&exchange, &client).await,
            () = shutdown.clone().wait() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn counts_accumulate_per_grant_onto_the_last_known_totals() {
        let usage = Usage::default();
        usage.add("ns/a", 10);
        usage.add("ns/a", 5);
        usage.add("ns/b", 0);
        let mut taken = usage.take();
        assert!(usage.take().is_empty(), "taking empties the counts");
        let a = taken.remove("ns/a").unwrap();
        let base = GrantUsage {
            requests: 7,
            rows: 70,
            last_access: None,
        };
        let written = total(Some(&base), a);
        assert_eq!((written.requests, written.rows), (9, 85));
        assert!(written.last_access.is_some());
        usage.restore("ns/b".into(), taken.remove("ns/b").unwrap());
        usage.add("ns/b", 3);
        let b = usage.take().remove("ns/b").unwrap();
        assert_eq!((b.requests, b.rows), (2, 3));
    }
}
