//! Publishing Kubernetes Events (`events.k8s.io/v1`) about gongshu objects.
//!
//! Written here rather than using kube's `Recorder` because of how that one scales: it keeps
//! every Event of the last six minutes in one map and sweeps the whole map, under a write
//! lock, on every publish. At 10,000 grants that sweep was the operator's largest single CPU
//! cost in the scale benchmark's profile, and the map held 10,000 Events. What the sweep buys
//! (an Event series for an Event repeated within six minutes) never happens for workflow
//! transitions, which do not repeat; a failing reconcile's Warning repeats only as often as its
//! backoff allows. So each Event is one create, and nothing is kept.

use k8s_openapi::{
    api::{core::v1::ObjectReference, events::v1::Event as K8sEvent},
    apimachinery::pkg::apis::meta::v1::MicroTime,
};
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
    runtime::events::{Event, EventType},
};

/// Publishes Events as one reporting controller and instance.
#[derive(Clone)]
pub struct Publisher {
    client: Client,
    controller: String,
    instance: String,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("controller", &self.controller)
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

impl Publisher {
    /// Events reported by `controller` (e.g. `gongshu-operator`) from `instance` (the pod).
    pub fn new(client: Client, controller: &str, instance: &str) -> Self {
        Self {
            client,
            controller: controller.to_owned(),
            instance: instance.to_owned(),
        }
    }

    /// Creates an Event about `regarding` in its namespace.
    pub async fn publish(
        &self,
        event: &Event,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let namespace = regarding.namespace.as_deref().unwrap_or("default");
        Api::<K8sEvent>::namespaced(self.client.clone(), namespace)
            .create(
                &PostParams::default(),
                &build(&self.controller, &self.instance, event, regarding),
            )
            .await
            .map(drop)
    }
}

/// The most bytes the apiserver accepts in an Event's `note` (longer ones are refused, so the
/// whole Event is lost).
pub const NOTE_MAX_BYTES: usize = 1024;

/// `note` cut to [`NOTE_MAX_BYTES`] on a character boundary, ending in `…` when cut (an S3
/// error with the server's XML body is longer).
fn fit_note(note: &str) -> String {
    if note.len() <= NOTE_MAX_BYTES {
        return note.to_owned();
    }
    let mut end = NOTE_MAX_BYTES - '…'.len_utf8();
    while !note.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &note[..end])
}

/// The Event object: named `<regarding>.<nanoseconds in hex>`, like client-go's, so names sort
/// by time and never collide in practice.
fn build(controller: &str, instance: &str, event: &Event, regarding: &ObjectReference) -> K8sEvent {
    let now = jiff::Timestamp::now();
    let subject = regarding.name.as_deref().unwrap_or(controller);
    K8sEvent {
        metadata: ObjectMeta {
            name: Some(format!("{subject}.{:x}", now.as_nanosecond())),
            namespace: regarding.namespace.clone(),
            ..Default::default()
        },
        event_time: Some(MicroTime(now)),
        action: Some(event.action.clone()),
        reason: Some(event.reason.clone()),
        note: event.note.as_deref().map(fit_note),
        regarding: Some(regarding.clone()),
        related: event.secondary.clone(),
        reporting_controller: Some(controller.to_owned()),
        reporting_instance: Some(instance.to_owned()),
        type_: Some(
            match event.type_ {
                EventType::Normal => "Normal",
                EventType::Warning => "Warning",
            }
            .to_owned(),
        ),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A note over the apiserver's 1024 bytes (a runner's S3 error with the server's XML) is
    /// cut on a character boundary instead of losing the Event (found on the e2e node).
    #[test]
    fn a_long_note_is_cut_to_what_the_apiserver_accepts() {
        assert_eq!(fit_note("short"), "short");
        let exact = "a".repeat(NOTE_MAX_BYTES);
        assert_eq!(fit_note(&exact), exact);
        for long in [
            "b".repeat(5000),
            "数".repeat(700),
            format!("x{}", "数".repeat(400)),
        ] {
            let cut = fit_note(&long);
            assert!(cut.len() <= NOTE_MAX_BYTES, "{}", cut.len());
            assert!(cut.len() > NOTE_MAX_BYTES - 6, "{}", cut.len());
            assert!(cut.ends_with('…'));
            assert!(long.starts_with(cut.trim_end_matches('…')));
        }
    }

    #[test]
    fn an_event_names_its_subject_reporter_and_type() {
        let regarding = ObjectReference {
            kind: Some("ShareGrant".into()),
            name: Some("allowance".into()),
            namespace: Some("dept-a".into()),
            ..Default::default()
        };
        let event = build(
            "gongshu-operator",
            "pod-1",
            &Event {
                type_: EventType::Warning,
                reason: "DeadlineBreached".into(),
                note: Some("late".into()),
                action: "Deadline".into(),
                secondary: None,
            },
            &regarding,
        );
        assert!(event.metadata.name.unwrap().starts_with("allowance."));
        assert_eq!(event.metadata.namespace.as_deref(), Some("dept-a"));
        assert_eq!(event.type_.as_deref(), Some("Warning"));
        assert_eq!(
            event.reporting_controller.as_deref(),
            Some("gongshu-operator")
        );
        assert_eq!(event.reporting_instance.as_deref(), Some("pod-1"));
        assert_eq!(event.regarding, Some(regarding));
        assert!(
            event.event_time.is_some(),
            "events.k8s.io/v1 requires eventTime"
        );
    }
}
