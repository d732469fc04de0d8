//! The operator's view of channels (CH-1): which objects in the cluster expose workloads
//! outside the exchange (`gongshu_api::rules::channel::exposure`), and which filings
//! (`ChannelExemption`) cover them. The cluster scan and the exemption controller read
//! [`Channels`]; the webhook reads [`Filings`] only (it judges the object in the request).
//!
//! Only exposures are kept, not the objects: 10,000 ClusterIP Services cost nothing here.
//! Gateway API kinds are watched once their CRDs are served (looked up again every minute),
//! at the version the apiserver prefers.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Arc, PoisonError, RwLock,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use futures::{Stream, StreamExt};
use gongshu_api::{
    rules::channel::{Exposure, Filing, exposure},
    v1alpha1::{ChannelExemption, ExposedKind, GATEWAY_GROUP},
};
use kube::{
    Api, Client, ResourceExt,
    core::{ApiResource, DynamicObject, GroupVersionKind},
    runtime::{WatchStreamExt, watcher},
};
use tokio::sync::broadcast;
use tracing::{debug, info, warn};

use crate::{
    cache::{Change, feed, relisting},
    shutdown::Shutdown,
};

/// How often the Gateway API kinds are looked for while their CRDs are not served.
const DISCOVERY_RETRY: Duration = Duration::from_secs(60);

/// What changed: a namespace's exposures or filings (`Some`), or a whole kind after a relist
/// (`None`).
pub type Changed = Option<String>;

/// Filings by namespace, as their status says (approved for which generation, until when).
#[derive(Clone, Debug, Default)]
pub struct Filings {
    view: Arc<RwLock<HashMap<String, Vec<Filing>>>>,
}

impl Filings {
    /// Watches every `ChannelExemption` until `stop`; `synced` counts the first list, and
    /// `changed` hears of each namespace whose filings changed.
    pub fn start(
        client: &Client,
        synced: &Arc<AtomicUsize>,
        stop: &Shutdown,
        purpose: &'static str,
        changed: Option<broadcast::Sender<Changed>>,
    ) -> Self {
        let this = Self::default();
        feed(
            watcher(
                Api::<ChannelExemption>::all(client.clone()),
                watcher::Config::default(),
            ),
            synced,
            stop,
            purpose,
            relisting(
                this.view.clone(),
                move |view: &mut HashMap<String, Vec<Filing>>,
                      change: Change<'_, ChannelExemption>| {
                    let (exemption, keep) = match change {
                        Change::Apply(e) => (e, true),
                        Change::Delete(e) => (e, false),
                    };
                    let namespace = exemption.namespace().unwrap_or_default();
                    let name = exemption.name_any();
                    let filings = view.entry(namespace.clone()).or_default();
                    filings.retain(|f| f.name != name);
                    if keep {
                        filings.push(Filing::of(exemption));
                    }
                    if filings.is_empty() {
                        view.remove(&namespace);
                    }
                    if let Some(changed) = &changed {
                        let _ = changed.send(Some(namespace));
                    }
                },
            ),
        );
        this
    }

    /// The filings in `namespace`.
    pub fn in_namespace(&self, namespace: &str) -> Vec<Filing> {
        self.view
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(namespace)
            .cloned()
            .unwrap_or_default()
    }
}

/// Exposures of one kind: namespace → name → exposure.
type KindView = HashMap<String, BTreeMap<String, Exposure>>;

/// The channel view.
#[derive(Clone)]
pub struct Channels {
    kinds: Arc<HashMap<ExposedKind, Arc<RwLock<KindView>>>>,
    /// The resource each kind is watched at, once it is.
    resources: Arc<RwLock<HashMap<ExposedKind, ApiResource>>>,
    filings: Filings,
    synced: Arc<AtomicUsize>,
    changed: broadcast::Sender<Changed>,
}

impl std::fmt::Debug for Channels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channels")
            .field("synced", &self.is_synced())
            .finish_non_exhaustive()
    }
}

/// The caches that must list before the view is complete: Services, Ingresses, filings.
const CORE_CACHES: usize = 3;

impl Channels {
    /// Starts the watches; they run until `stop`.
    pub fn start(client: &Client, stop: &Shutdown) -> Self {
        let (changed, _) = broadcast::channel(256);
        let synced = Arc::new(AtomicUsize::new(0));
        let kinds = ExposedKind::ALL
            .into_iter()
            .map(|k| (k, Arc::default()))
            .collect();
        let this = Self {
            kinds: Arc::new(kinds),
            resources: Arc::default(),
            filings: Filings::start(client, &synced, stop, "channels", Some(changed.clone())),
            synced,
            changed,
        };
        for kind in [ExposedKind::Service, ExposedKind::Ingress] {
            let gvk = GroupVersionKind::gvk(kind.group(), "v1", kind.as_str());
            let resource = ApiResource::from_gvk_with_plural(&gvk, kind.plural());
            this.watch(client, resource, kind, stop, true);
        }
        let gateway = this.clone();
        let (client, stop) = (client.clone(), stop.clone());
        tokio::spawn(async move { gateway.watch_gateway_api(client, stop).await });
        this
    }

    /// Watches `resource` (of `kind`) into its view; `core` caches count towards sync.
    fn watch(
        &self,
        client: &Client,
        resource: ApiResource,
        kind: ExposedKind,
        stop: &Shutdown,
        core: bool,
    ) {
        self.resources
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(kind, resource.clone());
        let changed = self.changed.clone();
        let on_change = changed.clone();
        let apply = relisting(
            self.kinds[&kind].clone(),
            move |view: &mut KindView, change: Change<'_, DynamicObject>| {
                let (obj, keep) = match change {
                    Change::Apply(o) => (o, true),
                    Change::Delete(o) => (o, false),
                };
                let namespace = obj.namespace().unwrap_or_default();
                let name = obj.name_any();
                let found = keep
                    .then(|| obj.data.get("spec").and_then(|s| exposure(kind, &name, s)))
                    .flatten();
                let names = view.entry(namespace.clone()).or_default();
                let changed = match found {
                    Some(e) => names.insert(name, e.clone()).as_ref() != Some(&e),
                    None => names.remove(&name).is_some(),
                };
                if names.is_empty() {
                    view.remove(&namespace);
                }
                if changed {
                    let _ = on_change.send(Some(namespace));
                }
            },
        );
        let synced = self.synced.clone();
        let stop = stop.clone();
        let api = Api::<DynamicObject>::all_with(client.clone(), &resource);
        tokio::spawn(async move {
            let mut listed = false;
            let run = watcher(api, watcher::Config::default())
                .default_backoff()
                .for_each(|event| {
                    match event {
                        Ok(event) => {
                            apply(&event);
                            if matches!(event, watcher::Event::InitDone) {
                                let _ = changed.send(None);
                                if core && !listed {
                                    synced.fetch_add(1, Ordering::AcqRel);
                                }
                                listed = true;
                            }
                        }
                        Err(error) => {
                            warn!(kind = kind.as_str(), %error, "channel watch failed; retrying")
                        }
                    }
                    futures::future::ready(())
                });
            tokio::select! {
                () = run => {}
                () = stop.wait() => {}
            }
        });
    }

    /// Starts watching each Gateway API kind once the apiserver serves it.
    async fn watch_gateway_api(self, client: Client, stop: Shutdown) {
        let mut pending: Vec<ExposedKind> = ExposedKind::ALL
            .into_iter()
            .filter(|k| k.group() == GATEWAY_GROUP)
            .collect();
        loop {
            match kube::discovery::group(&client, GATEWAY_GROUP).await {
                Ok(group) => pending.retain(|&kind| {
                    let Some((resource, _)) = group.recommended_kind(kind.as_str()) else {
                        return true;
                    };
                    info!(kind = kind.as_str(), version = %resource.version, "watching for the channel rules (CH-1)");
                    self.watch(&client, resource, kind, &stop, false);
                    false
                }),
                Err(error) => debug!(%error, "the Gateway API is not served; looking again later"),
            }
            if pending.is_empty() {
                return;
            }
            tokio::select! {
                () = tokio::time::sleep(DISCOVERY_RETRY) => {}
                () = stop.clone().wait() => return,
            }
        }
    }

    /// Whether Services, Ingresses and filings have all listed once.
    pub fn is_synced(&self) -> bool {
        self.synced.load(Ordering::Acquire) >= CORE_CACHES
    }

    /// Fires when exposures or filings change.
    pub fn changes(&self) -> impl Stream<Item = Changed> + Send + 'static {
        let rx = self.changed.subscribe();
        futures::stream::unfold(rx, |mut rx| async move {
            match rx.recv().await {
                Ok(changed) => Some((changed, rx)),
                Err(broadcast::error::RecvError::Lagged(_)) => Some((None, rx)),
                Err(broadcast::error::RecvError::Closed) => None,
            }
        })
    }

    /// The exposures in `namespace`, every kind.
    pub fn exposures_in(&self, namespace: &str) -> Vec<Exposure> {
        self.kinds
            .values()
            .filter_map(|view| {
                let view = view.read().unwrap_or_else(PoisonError::into_inner);
                view.get(namespace)
                    .map(|n| n.values().cloned().collect::<Vec<_>>())
            })
            .flatten()
            .collect()
    }

    /// The namespaces that hold exposures, sorted.
    pub fn namespaces(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .kinds
            .values()
            .flat_map(|view| {
                let view = view.read().unwrap_or_else(PoisonError::into_inner);
                view.keys().cloned().collect::<Vec<_>>()
            })
            .collect();
        all.sort();
        all.dedup();
        all
    }

    /// The filings in `namespace`.
    pub fn filings_in(&self, namespace: &str) -> Vec<Filing> {
        self.filings.in_namespace(namespace)
    }

    /// The resource `kind` is watched at; `None` for a Gateway API kind not served (yet).
    pub fn resource(&self, kind: ExposedKind) -> Option<ApiResource> {
        self.resources
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&kind)
            .cloned()
    }
}
