//! `gongshu.io/v1alpha1`: the custom resources departments, the authority and SREs write.
//!
//! Each kind lives in its own module with the single-object rules the apiserver enforces
//! through CEL (`x-kubernetes-validations`). Rules that need other objects live in the
//! admission webhook, never here.

pub mod backup;
pub mod catalog;
pub mod channel;
pub mod common;
pub mod grant;
pub mod open;
pub mod regulation;
pub mod review;

pub use backup::*;
pub use catalog::*;
pub use channel::*;
pub use common::*;
pub use grant::*;
pub use open::*;
pub use regulation::*;
pub use review::*;

/// The API group of every gongshu kind.
pub const GROUP: &str = "gongshu.io";
/// The served and stored version.
pub const VERSION: &str = "v1alpha1";

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// Every gongshu CRD, in the order they are installed.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        Regulation::crd(),
        DataCatalog::crd(),
        ShareGrant::crd(),
        OpenDataset::crd(),
        BackupPolicy::crd(),
        Review::crd(),
        ChannelExemption::crd(),
    ]
}
