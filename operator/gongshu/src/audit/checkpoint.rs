//! Segment heads checkpointed into the API server: a ConfigMap with one key per segment file
//! (`<first seq>:<last seq>:<head hash>:<sealed|open>`) and `retired.<file>` for segments
//! removed by retention. Deleting or rewriting files then shows against state held outside
//! the node.

use std::{collections::BTreeMap, fmt, time::Duration};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::{
    Api, Client,
    api::{ObjectMeta, Patch, PatchParams, PostParams},
};
use tokio::sync::watch;

use super::{AuditError, AuditMetrics, format::parse_segment_name};

/// Default name of the checkpoint ConfigMap.
pub const CHECKPOINT_NAME: &str = "gongshu-audit-checkpoint";
/// Key prefix of segments removed by retention.
pub const RETIRED_PREFIX: &str = "retired.";
/// A failed checkpoint write is retried after this long.
const RETRY: Duration = Duration::from_secs(5);

/// Keys to set (`Some`) or remove (`None`): a JSON merge patch of the ConfigMap's `data`,
/// which leaves keys it does not name alone.
pub(crate) type DataPatch = BTreeMap<String, Option<String>>;

/// What a checkpoint says about one segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentHead {
    /// Segment file name.
    pub name: String,
    /// Sequence number of its first record.
    pub first: u64,
    /// Sequence number of its last record.
    pub last: u64,
    /// Hash of its last record (64 hex digits).
    pub head: String,
    /// Whether it is sealed (never written again).
    pub sealed: bool,
}

impl SegmentHead {
    /// The checkpoint value, `<first>:<last>:<head>:<sealed|open>`.
    pub fn value(&self) -> String {
        let state = if self.sealed { "sealed" } else { "open" };
        format!("{}:{}:{}:{state}", self.first, self.last, self.head)
    }

    /// Parses the checkpoint value of segment `name`.
    pub fn parse(name: &str, value: &str) -> Result<Self, AuditError> {
        let malformed = || AuditError::CheckpointEntry {
            key: name.to_owned(),
            value: value.to_owned(),
        };
        let mut parts = value.split(':');
        let (Some(first), Some(last), Some(head), Some(state), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(malformed());
        };
        let sealed = match state {
            "sealed" => true,
            "open" => false,
            _ => return Err(malformed()),
        };
        if head.len() != 64 || !head.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(malformed());
        }
        Ok(Self {
            name: name.to_owned(),
            first: first.parse().map_err(|_| malformed())?,
            last: last.parse().map_err(|_| malformed())?,
            head: head.to_owned(),
            sealed,
        })
    }
}

/// The ConfigMap data for the segments on disk and those retired.
pub fn checkpoint_data(
    segments: &[SegmentHead],
    retired: &[SegmentHead],
) -> BTreeMap<String, String> {
    let present = segments.iter().map(|s| (s.name.clone(), s.value()));
    let gone = retired
        .iter()
        .map(|s| (format!("{RETIRED_PREFIX}{}", s.name), s.value()));
    present.chain(gone).collect()
}

/// The patch that records `names` (removed by [`super::retire`]) as retired in checkpoint
/// `data`: each `<name>` moves to `retired.<name>`. Names the checkpoint does not know are
/// skipped.
pub fn mark_retired(
    data: &BTreeMap<String, String>,
    names: &[String],
) -> BTreeMap<String, Option<String>> {
    let mut patch = BTreeMap::new();
    for name in names {
        if let Some(value) = data.get(name) {
            patch.insert(format!("{RETIRED_PREFIX}{name}"), Some(value.clone()));
            patch.insert(name.clone(), None);
        }
    }
    patch
}

/// The checkpoint read back, for verification.
#[derive(Debug, Default)]
pub(crate) struct Checkpoint {
    /// Segments that should be on disk, by file name.
    pub segments: BTreeMap<String, SegmentHead>,
    /// Segments removed by retention, by file name.
    pub retired: BTreeMap<String, SegmentHead>,
}

impl Checkpoint {
    /// Parses ConfigMap data; keys that are not segment names are ignored.
    pub fn parse(data: &BTreeMap<String, String>) -> Result<Self, AuditError> {
        let mut checkpoint = Self::default();
        for (key, value) in data {
            let (name, retired) = match key.strip_prefix(RETIRED_PREFIX) {
                Some(name) => (name, true),
                None => (key.as_str(), false),
            };
            if parse_segment_name(name).is_none() {
                continue;
            }
            let head = SegmentHead::parse(name, value)?;
            let map = if retired {
                &mut checkpoint.retired
            } else {
                &mut checkpoint.segments
            };
            map.insert(name.to_owned(), head);
        }
        // A retired segment is gone on purpose, whatever its old entry says.
        let retired = &checkpoint.retired;
        checkpoint
            .segments
            .retain(|name, _| !retired.contains_key(name));
        Ok(checkpoint)
    }
}

/// Writes segment heads into a ConfigMap.
#[derive(Clone)]
pub struct Checkpointer {
    client: Client,
    namespace: String,
    name: String,
}

impl fmt::Debug for Checkpointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Checkpointer")
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Checkpointer {
    /// Checkpoints into ConfigMap [`CHECKPOINT_NAME`] in `namespace`.
    pub fn new(client: Client, namespace: impl Into<String>) -> Self {
        Self {
            client,
            namespace: namespace.into(),
            name: CHECKPOINT_NAME.to_owned(),
        }
    }

    /// The same, into ConfigMap `name`.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    fn api(&self) -> Api<ConfigMap> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    fn error(&self, source: kube::Error) -> AuditError {
        AuditError::Checkpoint {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            source: Box::new(source),
        }
    }

    /// The checkpoint data; `None` when the ConfigMap does not exist.
    pub async fn read(&self) -> Result<Option<BTreeMap<String, String>>, AuditError> {
        let config_map = self
            .api()
            .get_opt(&self.name)
            .await
            .map_err(|e| self.error(e))?;
        Ok(config_map.map(|c| c.data.unwrap_or_default()))
    }

    /// Applies `patch` to the data (a JSON merge patch), creating the ConfigMap if needed.
    pub(crate) async fn apply(&self, patch: &DataPatch) -> Result<(), AuditError> {
        let api = self.api();
        let body = serde_json::json!({ "data": patch });
        let params = PatchParams::default();
        match api.patch(&self.name, &params, &Patch::Merge(&body)).await {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(e) => return Err(self.error(e)),
        }
        let config_map = ConfigMap {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                namespace: Some(self.namespace.clone()),
                ..ObjectMeta::default()
            },
            data: Some(
                patch
                    .iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.clone()?)))
                    .collect(),
            ),
            ..ConfigMap::default()
        };
        match api.create(&PostParams::default(), &config_map).await {
            Ok(_) => Ok(()),
            // Created meanwhile: patch that one.
            Err(kube::Error::Api(status)) if status.code == 409 => api
                .patch(&self.name, &params, &Patch::Merge(&body))
                .await
                .map(drop)
                .map_err(|e| self.error(e)),
            Err(e) => Err(self.error(e)),
        }
    }

    /// Records `names` (returned by [`super::retire`]) as retired, see [`mark_retired`].
    pub async fn record_retired(&self, names: &[String]) -> Result<(), AuditError> {
        let data = self.read().await?.unwrap_or_default();
        let patch = mark_retired(&data, names);
        if patch.is_empty() {
            return Ok(());
        }
        self.apply(&patch).await
    }
}

/// Writes each checkpoint the writer publishes; a failure is logged and retried, never
/// blocking appends. Ends when the writer drops its sender (after its last checkpoint).
pub(crate) async fn run(
    checkpointer: Checkpointer,
    mut published: watch::Receiver<DataPatch>,
    metrics: AuditMetrics,
) {
    let mut failed = false;
    loop {
        if failed {
            tokio::select! {
                () = tokio::time::sleep(RETRY) => {}
                changed = published.changed() => if changed.is_err() { return },
            }
        } else if published.changed().await.is_err() {
            return;
        }
        let patch = published.borrow_and_update().clone();
        failed = match checkpointer.apply(&patch).await {
            Ok(()) => {
                metrics.checkpointed();
                false
            }
            Err(error) => {
                tracing::warn!(%error, "audit checkpoint not written; retrying");
                true
            }
        };
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn head(first: u64, last: u64, sealed: bool) -> SegmentHead {
        SegmentHead {
            name: crate::audit::segment_name(first),
            first,
            last,
            head: "ab".repeat(32),
            sealed,
        }
    }

    #[test]
    fn checkpoint_data_has_one_key_per_segment_and_retired_ones_prefixed() {
        let data = checkpoint_data(
            &[head(11, 20, true), head(21, 25, false)],
            &[head(1, 10, true)],
        );
        let ab = "ab".repeat(32);
        assert_eq!(
            data,
            BTreeMap::from([
                (
                    "audit-00000000000000000011.jsonl".into(),
                    format!("11:20:{ab}:sealed")
                ),
                (
                    "audit-00000000000000000021.jsonl".into(),
                    format!("21:25:{ab}:open")
                ),
                (
                    "retired.audit-00000000000000000001.jsonl".into(),
                    format!("1:10:{ab}:sealed")
                ),
            ])
        );
        let parsed = Checkpoint::parse(&data).unwrap();
        assert_eq!(parsed.segments.len(), 2);
        assert_eq!(parsed.retired.values().next(), Some(&head(1, 10, true)));
    }

    #[test]
    fn retiring_moves_the_entry_under_the_retired_prefix() {
        let data = checkpoint_data(&[head(1, 10, true), head(11, 12, false)], &[]);
        let name = segment_name_of(1);
        let patch = mark_retired(&data, &[name.clone(), "unknown.jsonl".into()]);
        assert_eq!(patch.len(), 2);
        assert_eq!(patch.get(&name), Some(&None));
        assert_eq!(
            patch.get(&format!("{RETIRED_PREFIX}{name}")),
            Some(&data.get(&name).cloned())
        );
    }

    #[test]
    fn malformed_entries_are_errors_naming_the_key() {
        let data = BTreeMap::from([(segment_name_of(1), "1:2:zz:open".to_owned())]);
        let error = Checkpoint::parse(&data).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("audit-00000000000000000001.jsonl")
        );
    }

    fn segment_name_of(first: u64) -> String {
        crate::audit::segment_name(first)
    }
}
