//! The webhook's own certificates, when no cert-manager or chart provides them
//! (`--webhook-cert-secret`): a CA and a serving certificate in one Secret in the operator's
//! namespace, rotated before they expire, and the CA bundle the apiserver trusts kept in the
//! `ValidatingWebhookConfiguration`.
//!
//! Every replica runs the same loop, so the webhook works with no leader: writes carry the
//! Secret's `resourceVersion`, and a replica that loses the race reads the winner's next time.
//! Rotation never leaves the apiserver unable to verify the serving certificate:
//! - the serving certificate is renewed with a third of its life left;
//! - the CA (three serving lifetimes) is renewed with one serving lifetime left, and the new CA
//!   joins the old one in the bundle; the serving certificate moves to the new CA only once
//!   the apiserver has had the bundle for [`PUBLISH_GRACE`];
//! - an expired CA leaves the bundle.
//!
//! Written here rather than taken from a crate: the pieces (rcgen, x509-parser, a Secret) are
//! crates already; what is ours is only the schedule above.

use std::{collections::BTreeMap, time::Duration};

use jiff::Timestamp;
use k8s_openapi::{ByteString, api::core::v1::Secret};
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

/// How long after the bundle with a new CA is published the serving certificate may move to
/// it: the apiserver reloads webhook configurations from its watch within about a second.
pub const PUBLISH_GRACE: Duration = Duration::from_secs(10);

/// Keys of the Secret.
const CA_CERT: &str = "ca.crt";
const CA_KEY: &str = "ca.key";
const BUNDLE: &str = "ca-bundle.crt";
const TLS_CERT: &str = "tls.crt";
const TLS_KEY: &str = "tls.key";
const CA_ROTATED_AT: &str = "ca-rotated-at";

/// What the operator manages.
#[derive(Clone, Debug)]
pub struct ManagedTls {
    /// The operator's namespace, where the Secret lives.
    pub namespace: String,
    /// The Secret's name.
    pub secret: String,
    /// The serving certificate's names: DNS names and IP addresses the apiserver dials.
    pub names: Vec<String>,
    /// The serving certificate's lifetime; the CA's is three times as long.
    pub validity: Duration,
}

/// The certificate material, as the Secret holds it (PEM).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Material {
    /// The current CA.
    pub ca_cert: String,
    ca_key: String,
    /// The CAs the apiserver must trust: the current one, and the previous one while it is
    /// valid.
    pub bundle: String,
    /// The serving certificate.
    pub cert: String,
    /// Its key.
    pub key: String,
    ca_rotated_at: Timestamp,
}

/// Why certificates could not be made or kept.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// A certificate could not be generated.
    #[error("cannot generate the webhook certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// The Secret could not be read or written.
    #[error("cannot read or write Secret {namespace}/{name}: {source}")]
    Secret {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
}

/// What a look at the material calls for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Nothing to do.
    Keep,
    /// No usable material: a new CA and serving certificate.
    Create,
    /// A new CA, trusted beside the old one; the serving certificate stays for now.
    RotateCa,
    /// A new serving certificate from the current CA.
    RotateCert,
    /// Drop expired CAs from the bundle.
    Prune,
}

/// What [`plan`] reads of the material.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Facts {
    /// The current CA's validity.
    pub ca: (Timestamp, Timestamp),
    /// When the current CA was made.
    pub ca_rotated_at: Timestamp,
    /// The serving certificate's validity.
    pub cert: (Timestamp, Timestamp),
    /// Whether the current CA signed the serving certificate.
    pub cert_from_current_ca: bool,
    /// Whether the serving certificate has every name it needs.
    pub names_match: bool,
    /// Expiry of each CA in the bundle.
    pub bundle: Vec<Timestamp>,
    /// Whether the apiserver's configuration trusts the current CA.
    pub published: bool,
}

/// The next step for `facts` at `now`, for serving certificates of `validity` (pure).
pub fn plan(facts: Option<&Facts>, validity: Duration, now: Timestamp) -> Plan {
    let Some(f) = facts else {
        return Plan::Create;
    };
    let remaining = |(_, until): (Timestamp, Timestamp)| {
        Duration::try_from(until.duration_since(now)).unwrap_or(Duration::ZERO)
    };
    if remaining(f.ca).is_zero() {
        return Plan::Create;
    }
    if remaining(f.ca) < validity {
        return Plan::RotateCa;
    }
    let settled = f.published
        && Duration::try_from(now.duration_since(f.ca_rotated_at)).unwrap_or(Duration::ZERO)
            >= PUBLISH_GRACE;
    // On the configured lifetime, not the certificate's: its start is back-dated for clock skew.
    let cert_due = remaining(f.cert) < validity / 3 || !f.names_match;
    if (cert_due || !f.cert_from_current_ca) && (settled || remaining(f.cert).is_zero()) {
        return Plan::RotateCert;
    }
    if f.bundle.iter().any(|until| *until <= now) {
        return Plan::Prune;
    }
    Plan::Keep
}

impl Material {
    fn from_secret(secret: &Secret) -> Option<Self> {
        let data = secret.data.as_ref()?;
        let text = |key: &str| {
            data.get(key)
                .and_then(|b| String::from_utf8(b.0.clone()).ok())
        };
        Some(Self {
            ca_cert: text(CA_CERT)?,
            ca_key: text(CA_KEY)?,
            bundle: text(BUNDLE)?,
            cert: text(TLS_CERT)?,
            key: text(TLS_KEY)?,
            ca_rotated_at: text(CA_ROTATED_AT)?.parse().ok()?,
        })
    }

    fn data(&self) -> BTreeMap<String, ByteString> {
        [
            (CA_CERT, &self.ca_cert),
            (CA_KEY, &self.ca_key),
            (BUNDLE, &self.bundle),
            (TLS_CERT, &self.cert),
            (TLS_KEY, &self.key),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), ByteString(v.clone().into_bytes())))
        .chain([(
            CA_ROTATED_AT.to_owned(),
            ByteString(self.ca_rotated_at.to_string().into_bytes()),
        )])
        .collect()
    }

    /// What [`plan`] needs to know, or `None` if a certificate does not parse.
    fn facts(&self, names: &[String], published_bundle: Option<&str>) -> Option<Facts> {
        let ca_der = pem_blocks(&self.ca_cert).into_iter().next()?;
        let cert_der = pem_blocks(&self.cert).into_iter().next()?;
        let (_, ca) = x509_parser::parse_x509_certificate(&ca_der).ok()?;
        let (_, cert) = x509_parser::parse_x509_certificate(&cert_der).ok()?;
        let validity = |c: &x509_parser::certificate::X509Certificate<'_>| {
            let v = c.validity();
            Some((
                Timestamp::from_second(v.not_before.timestamp()).ok()?,
                Timestamp::from_second(v.not_after.timestamp()).ok()?,
            ))
        };
        let cert_names: Vec<String> = cert
            .subject_alternative_name()
            .ok()
            .flatten()
            .map(|san| {
                san.value
                    .general_names
                    .iter()
                    .map(|n| match n {
                        x509_parser::extensions::GeneralName::DNSName(d) => (*d).to_owned(),
                        x509_parser::extensions::GeneralName::IPAddress(ip) => ip_text(ip),
                        other => format!("{other:?}"),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let bundle = pem_blocks(&self.bundle)
            .iter()
            .filter_map(|der| {
                let (_, c) = x509_parser::parse_x509_certificate(der).ok()?;
                Timestamp::from_second(c.validity().not_after.timestamp()).ok()
            })
            .collect();
        Some(Facts {
            ca: validity(&ca)?,
            ca_rotated_at: self.ca_rotated_at,
            cert: validity(&cert)?,
            cert_from_current_ca: cert.verify_signature(Some(ca.public_key())).is_ok(),
            names_match: names.iter().all(|n| cert_names.contains(n)),
            bundle,
            published: published_bundle.is_some_and(|b| b.contains(self.ca_cert.trim())),
        })
    }
}

fn ip_text(bytes: &[u8]) -> String {
    match bytes.len() {
        4 => std::net::Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]).to_string(),
        16 => <[u8; 16]>::try_from(bytes)
            .map(|b| std::net::Ipv6Addr::from(b).to_string())
            .unwrap_or_default(),
        _ => String::new(),
    }
}

/// The DER contents of each `CERTIFICATE` block in `pem`.
fn pem_blocks(pem: &str) -> Vec<Vec<u8>> {
    x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes())
        .filter_map(Result::ok)
        .filter(|p| p.label == "CERTIFICATE")
        .map(|p| p.contents)
        .collect()
}

fn offset(at: Timestamp) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(at.as_second())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

/// A new CA valid for three serving lifetimes from `now` (a minute early, for clock skew).
fn new_ca(now: Timestamp, validity: Duration) -> Result<(String, String), rcgen::Error> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(
        DnType::CommonName,
        format!("gongshu webhook CA {}", now.as_second()),
    );
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = offset(now) - time::Duration::minutes(1);
    params.not_after =
        offset(now) + time::Duration::try_from(validity * 3).unwrap_or(time::Duration::DAY);
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// A serving certificate for `names` signed by the CA.
fn new_cert(
    ca_cert: &str,
    ca_key: &str,
    names: &[String],
    now: Timestamp,
    validity: Duration,
) -> Result<(String, String), rcgen::Error> {
    let issuer = Issuer::from_ca_cert_pem(ca_cert, KeyPair::from_pem(ca_key)?)?;
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(names.to_vec())?;
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, "gongshu webhook");
    params.distinguished_name = name;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.not_before = offset(now) - time::Duration::minutes(1);
    params.not_after =
        offset(now) + time::Duration::try_from(validity).unwrap_or(time::Duration::DAY);
    let cert = params.signed_by(&key, &issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

impl ManagedTls {
    fn api(&self, client: &Client) -> Api<Secret> {
        Api::namespaced(client.clone(), &self.namespace)
    }

    fn secret_error(&self, source: kube::Error) -> CertError {
        CertError::Secret {
            namespace: self.namespace.clone(),
            name: self.secret.clone(),
            source,
        }
    }

    /// Looks at the Secret once and does what [`plan`] says; returns the material in force
    /// and what was done. `published_bundle` is the caBundle the apiserver has now.
    pub async fn tick(
        &self,
        client: &Client,
        published_bundle: Option<&str>,
        now: Timestamp,
    ) -> Result<(Material, Plan), CertError> {
        let api = self.api(client);
        let stored = api
            .get_opt(&self.secret)
            .await
            .map_err(|e| self.secret_error(e))?;
        let material = stored.as_ref().and_then(Material::from_secret);
        let facts = material
            .as_ref()
            .and_then(|m| m.facts(&self.names, published_bundle));
        let step = plan(facts.as_ref(), self.validity, now);
        let next = match (step, material) {
            (Plan::Keep, Some(m)) => return Ok((m, Plan::Keep)),
            (Plan::Create, _) | (_, None) => {
                let (ca_cert, ca_key) = new_ca(now, self.validity)?;
                let (cert, key) = new_cert(&ca_cert, &ca_key, &self.names, now, self.validity)?;
                Material {
                    bundle: ca_cert.clone(),
                    ca_cert,
                    ca_key,
                    cert,
                    key,
                    ca_rotated_at: now,
                }
            }
            (Plan::RotateCa, Some(old)) => {
                let (ca_cert, ca_key) = new_ca(now, self.validity)?;
                Material {
                    bundle: format!("{ca_cert}{}", old.ca_cert),
                    ca_cert,
                    ca_key,
                    ca_rotated_at: now,
                    ..old
                }
            }
            (Plan::RotateCert, Some(old)) => {
                let (cert, key) =
                    new_cert(&old.ca_cert, &old.ca_key, &self.names, now, self.validity)?;
                Material { cert, key, ..old }
            }
            (Plan::Prune, Some(old)) => {
                let bundle = pem_blocks(&old.bundle)
                    .into_iter()
                    .filter(|der| {
                        x509_parser::parse_x509_certificate(der)
                            .ok()
                            .and_then(|(_, c)| {
                                Timestamp::from_second(c.validity().not_after.timestamp()).ok()
                            })
                            .is_some_and(|until| until > now)
                    })
                    .map(|der| pem_of(&der))
                    .collect::<String>();
                Material { bundle, ..old }
            }
        };
        let mut secret = Secret {
            metadata: ObjectMeta {
                name: Some(self.secret.clone()),
                namespace: Some(self.namespace.clone()),
                labels: Some(BTreeMap::from([(
                    "app.kubernetes.io/managed-by".to_owned(),
                    "gongshu".to_owned(),
                )])),
                ..ObjectMeta::default()
            },
            type_: Some("kubernetes.io/tls".into()),
            data: Some(next.data()),
            ..Secret::default()
        };
        let written = match stored {
            Some(old) => {
                secret.metadata.resource_version = old.metadata.resource_version;
                api.replace(&self.secret, &PostParams::default(), &secret)
                    .await
            }
            None => api.create(&PostParams::default(), &secret).await,
        };
        match written {
            Ok(_) => Ok((next, step)),
            // Another replica wrote first: take what it wrote.
            Err(kube::Error::Api(e)) if e.code == 409 => {
                let current = api
                    .get(&self.secret)
                    .await
                    .map_err(|e| self.secret_error(e))?;
                Material::from_secret(&current)
                    .map(|m| (m, Plan::Keep))
                    .ok_or_else(|| self.secret_error(kube::Error::Api(e)))
            }
            Err(e) => Err(self.secret_error(e)),
        }
    }

    /// How often to look: a tenth of the serving lifetime, at most a minute.
    pub fn check_every(&self) -> Duration {
        (self.validity / 10).clamp(Duration::from_secs(1), Duration::from_secs(60))
    }
}

fn pem_of(der: &[u8]) -> String {
    use base64::Engine;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}

#[cfg(test)]
mod tests;
