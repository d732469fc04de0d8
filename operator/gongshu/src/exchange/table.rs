//! `table` mode (SH-6 "real-time database tables"): the exchange copies the granted columns of
//! an active grant's item into the consumer's own PostgreSQL (`spec.tableTarget`), refreshes
//! the copy at the item's update frequency (SH-15), and drops it when the grant stops being
//! active: revoked, suspended (SH-14), expired or deleted.
//!
//! While a replica exists the grant carries the finalizer [`FINALIZER`], so deleting the grant
//! waits until the copy is gone. Every copy and drop is audited like a request.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use gongshu_api::{
    rules::exchange::mode_name,
    v1alpha1::{GrantPhase, ShareGrant, ShareMode, UpdateFrequency},
};
use kube::{
    Api, Client, ResourceExt,
    api::{Patch, PatchParams},
};
use serde_json::json;
use tracing::{info, warn};

use super::{Exchange, postgres};
use crate::{audit::Record, shutdown::Shutdown};

/// The finalizer a grant carries while its replica exists.
pub const FINALIZER: &str = "gongshu.io/table-replica";
/// How often the replicator looks at the grants.
const TICK: Duration = Duration::from_secs(1);
/// The caller recorded in the audit log for replication.
const CALLER: &str = "gongshu-exchange (table replication)";

/// How stale a replica may get: the item's declared update frequency (SH-15), at most
/// `ceiling` when one is set (`--table-refresh-max-seconds`).
pub fn refresh_period(frequency: UpdateFrequency, ceiling: Option<Duration>) -> Duration {
    const DAY: u64 = 24 * 3600;
    let declared = Duration::from_secs(match frequency {
        UpdateFrequency::RealTime => 60,
        UpdateFrequency::Daily | UpdateFrequency::OnChange => DAY,
        UpdateFrequency::Weekly => 7 * DAY,
        UpdateFrequency::Monthly => 30 * DAY,
        UpdateFrequency::Quarterly => 91 * DAY,
        UpdateFrequency::Yearly => 365 * DAY,
    });
    ceiling.map_or(declared, |c| declared.min(c))
}

/// What to do with one grant's replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Copy (first time, due, or the approved fields changed).
    Copy,
    /// Drop the copy and release the grant.
    Drop,
    /// Nothing now.
    Wait,
}

/// The last copy this process made of a grant.
#[derive(Clone, Debug)]
pub struct Replica {
    /// When.
    pub at: Instant,
    /// Of which fields.
    pub fields: Vec<String>,
}

/// The action for a grant that is `serving` (Active, table mode, before `validUntil`, not
/// being deleted) or not, holds the finalizer or not, whose approved `fields` were last
/// copied as `last`, refreshed every `period`.
pub fn plan(
    serving: bool,
    finalized: bool,
    fields: &[String],
    last: Option<&Replica>,
    period: Duration,
    now: Instant,
) -> Action {
    if !serving {
        return if finalized {
            Action::Drop
        } else {
            Action::Wait
        };
    }
    match last {
        None => Action::Copy,
        Some(replica) if replica.fields != fields => Action::Copy,
        Some(replica) if now.duration_since(replica.at) >= period => Action::Copy,
        Some(_) => Action::Wait,
    }
}

/// Whether `grant` is to be replicated now: Active in table mode before its end, not deleted.
fn serving(grant: &ShareGrant, now: jiff::Timestamp) -> Option<&[String]> {
    if grant.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let status = grant.status.as_ref()?;
    let terms = &status.approved.as_ref()?.terms;
    (status.phase == Some(GrantPhase::Active)
        && terms.mode == ShareMode::Table
        && now < terms.valid_until.0)
        .then_some(terms.fields.as_slice())
}

/// Replicates until `shutdown`.
pub async fn run(
    exchange: Arc<Exchange>,
    client: Client,
    ceiling: Option<Duration>,
    shutdown: Shutdown,
) {
    let mut replicas: HashMap<String, Replica> = HashMap::new();
    loop {
        tokio::select! {
            () = tokio::time::sleep(TICK) => {}
            () = shutdown.clone().wait() => return,
        }
        if !exchange.ready() {
            continue;
        }
        for grant in exchange.grants.state() {
            if grant.spec.mode != ShareMode::Table {
                continue;
            }
            let key = format!(
                "{}/{}",
                grant.namespace().unwrap_or_default(),
                grant.name_any()
            );
            let fields = serving(&grant, jiff::Timestamp::now()).map(<[String]>::to_vec);
            let finalized = grant.finalizers().iter().any(|f| f == FINALIZER);
            let Some(item) = exchange.item_of(&grant) else {
                continue;
            };
            let period = refresh_period(item.update_frequency, ceiling);
            let action = plan(
                fields.is_some(),
                finalized,
                fields.as_deref().unwrap_or_default(),
                replicas.get(&key),
                period,
                Instant::now(),
            );
            let outcome = match action {
                Action::Wait => continue,
                Action::Copy => {
                    let fields = fields.unwrap_or_default();
                    let copied = copy(&exchange, &client, &grant, &item, &fields, finalized).await;
                    if copied.is_ok() {
                        replicas.insert(
                            key.clone(),
                            Replica {
                                at: Instant::now(),
                                fields: fields.clone(),
                            },
                        );
                    } else {
                        // Retried after a period's tenth, not every tick.
                        replicas.insert(
                            key.clone(),
                            Replica {
                                at: Instant::now() - period + period / 10,
                                fields: Vec::new(),
                            },
                        );
                    }
                    ("replicate", fields, copied)
                }
                Action::Drop => {
                    replicas.remove(&key);
                    (
                        "drop",
                        Vec::new(),
                        drop_copy(&exchange, &client, &grant).await.map(|()| 0),
                    )
                }
            };
            let (operation, fields, result) = outcome;
            let (status, problem, rows) = match &result {
                Ok(rows) => (200, None, *rows),
                Err(error) => {
                    warn!(grant = key, operation, %error, "table replication failed; will retry");
                    (502, Some(error.clone()), 0)
                }
            };
            if status == 200 {
                info!(grant = key, operation, rows, "table replica updated");
                exchange.usage.add(&key, rows);
            }
            let record = Record {
                caller: CALLER.into(),
                grant: Some(key),
                item: Some(grant.spec.item.clone()),
                fields,
                mode: Some(mode_name(ShareMode::Table).into()),
                operation: operation.into(),
                rows,
                status,
                problem,
                latency_us: 0,
                remote: None,
            };
            if let Err(error) = exchange.audit.append(record).await {
                warn!(%error, "cannot audit a table replication");
            }
        }
    }
}

/// Takes the finalizer (once), then copies. Returns the rows copied or a printable error.
async fn copy(
    exchange: &Exchange,
    client: &Client,
    grant: &ShareGrant,
    item: &gongshu_api::v1alpha1::CatalogItem,
    fields: &[String],
    finalized: bool,
) -> Result<u64, String> {
    let target = grant
        .spec
        .table_target
        .as_ref()
        .ok_or("the grant has no tableTarget")?;
    let pg = item
        .source
        .postgres
        .as_ref()
        .ok_or("table mode replicates PostgreSQL items only")?;
    if !finalized {
        set_finalizer(client, grant, true).await?;
    }
    let namespace = grant.namespace().unwrap_or_default();
    let provider = &grant
        .status
        .as_ref()
        .and_then(|s| s.provider.as_ref())
        .ok_or("no provider")?
        .namespace;
    let declared: Vec<String> = item.fields.iter().map(|f| f.name.clone()).collect();
    let source = exchange
        .postgres
        .source(provider, pg, &declared)
        .await
        .map_err(|e| e.to_string())?;
    let into = exchange
        .postgres
        .pool(&namespace, &target.connection_secret_ref)
        .await
        .map_err(|e| e.to_string())?;
    source
        .replicate(fields, &into, &target.table)
        .await
        .map_err(|e| e.to_string())
}

/// Drops the copy, then releases the grant.
async fn drop_copy(exchange: &Exchange, client: &Client, grant: &ShareGrant) -> Result<(), String> {
    if let Some(target) = &grant.spec.table_target {
        let namespace = grant.namespace().unwrap_or_default();
        let into = exchange
            .postgres
            .pool(&namespace, &target.connection_secret_ref)
            .await
            .map_err(|e| e.to_string())?;
        postgres::drop_replica(&into, &target.table)
            .await
            .map_err(|e| e.to_string())?;
    }
    set_finalizer(client, grant, false).await
}

/// Adds or removes [`FINALIZER`], keeping the others; the resourceVersion precondition makes
/// a concurrent change fail (retried next tick) instead of being overwritten.
async fn set_finalizer(client: &Client, grant: &ShareGrant, present: bool) -> Result<(), String> {
    let mut finalizers: Vec<String> = grant
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    if present {
        finalizers.push(FINALIZER.to_owned());
    }
    let patch = json!({
        "metadata": {"finalizers": finalizers, "resourceVersion": grant.resource_version()},
    });
    Api::<ShareGrant>::namespaced(client.clone(), &grant.namespace().unwrap_or_default())
        .patch(
            &grant.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .map(drop)
        .map_err(|e| format!("cannot update the grant's finalizers: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_serving_grant_is_copied_first_then_when_due_or_when_its_fields_change() {
        let now = Instant::now();
        let day = Duration::from_secs(86_400);
        let fields = names(&["a", "b"]);
        assert_eq!(plan(true, false, &fields, None, day, now), Action::Copy);
        let fresh = Replica {
            at: now,
            fields: fields.clone(),
        };
        assert_eq!(
            plan(true, true, &fields, Some(&fresh), day, now),
            Action::Wait
        );
        let narrowed = names(&["a"]);
        assert_eq!(
            plan(true, true, &narrowed, Some(&fresh), day, now),
            Action::Copy
        );
        let later = now + day;
        assert_eq!(
            plan(true, true, &fields, Some(&fresh), day, later),
            Action::Copy
        );
    }

    #[test]
    fn a_grant_no_longer_served_loses_its_copy_once() {
        let now = Instant::now();
        let period = Duration::from_secs(60);
        assert_eq!(plan(false, true, &[], None, period, now), Action::Drop);
        assert_eq!(
            plan(false, false, &[], None, period, now),
            Action::Wait,
            "nothing left to drop"
        );
    }

    #[test]
    fn the_refresh_follows_the_declared_frequency_under_a_ceiling_sh_15() {
        assert_eq!(
            refresh_period(UpdateFrequency::RealTime, None),
            Duration::from_secs(60)
        );
        assert_eq!(
            refresh_period(UpdateFrequency::Weekly, None),
            Duration::from_secs(7 * 86_400)
        );
        assert_eq!(
            refresh_period(UpdateFrequency::Daily, Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
    }
}
