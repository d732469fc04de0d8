//! Reading one key of a Secret: connection URIs, S3 credentials, `age` keys. Values are never
//! logged; errors name the Secret and the key, never the value.

use gongshu_api::v1alpha1::SecretKeyRef;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};

/// A Secret key cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The apiserver refused or the Secret does not exist.
    #[error("cannot read Secret {namespace}/{name}: {source}")]
    Get {
        /// Namespace.
        namespace: String,
        /// Secret name.
        name: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// The key is missing or its value is not what it should be.
    #[error("Secret {namespace}/{name} key {key:?}: {reason}")]
    Key {
        /// Namespace.
        namespace: String,
        /// Secret name.
        name: String,
        /// The key.
        key: String,
        /// What is wrong.
        reason: String,
    },
}

/// The value of `key` in Secret `name` of `namespace`, as trimmed UTF-8 text.
pub async fn read(
    client: &Client,
    namespace: &str,
    name: &str,
    key: &str,
) -> Result<String, SecretError> {
    read_optional(client, namespace, name, key)
        .await?
        .ok_or_else(|| SecretError::Key {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            key: key.to_owned(),
            reason: "no such key".to_owned(),
        })
}

/// [`read`], `None` when the Secret exists without `key` (an optional setting).
pub async fn read_optional(
    client: &Client,
    namespace: &str,
    name: &str,
    key: &str,
) -> Result<Option<String>, SecretError> {
    let found = Api::<Secret>::namespaced(client.clone(), namespace)
        .get(name)
        .await
        .map_err(|source| SecretError::Get {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            source,
        })?;
    let bytes = found
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| b.0.clone())
        .or_else(|| {
            found
                .string_data
                .as_ref()
                .and_then(|d| d.get(key))
                .map(|s| s.clone().into_bytes())
        });
    bytes
        .map(|bytes| {
            String::from_utf8(bytes)
                .map(|s| s.trim().to_owned())
                .map_err(|_| SecretError::Key {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                    key: key.to_owned(),
                    reason: "not UTF-8".to_owned(),
                })
        })
        .transpose()
}

/// The value a [`SecretKeyRef`] of an object in `namespace` points at.
pub async fn read_ref(
    client: &Client,
    namespace: &str,
    secret: &SecretKeyRef,
) -> Result<String, SecretError> {
    read(client, namespace, &secret.name, &secret.key).await
}
