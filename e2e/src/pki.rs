//! The control plane's PKI, generated fresh for each control plane: one CA, serving
//! certificates for etcd and the apiserver, client certificates for the apiserver (to etcd),
//! the admin and the controller manager, and the ServiceAccount token signing key.

use std::{
    net::{IpAddr, Ipv4Addr},
    path::{Path, PathBuf},
};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

use crate::Error;

/// Files of a generated PKI.
#[derive(Clone, Debug)]
pub struct Pki {
    /// CA certificate (PEM) that signed everything below.
    pub ca_cert: PathBuf,
    /// CA private key; kept so that the harness can sign a webhook's serving certificate.
    pub ca_key: PathBuf,
    /// etcd serving (and peer) certificate and key.
    pub etcd: CertPair,
    /// The apiserver's client certificate for etcd.
    pub apiserver_etcd_client: CertPair,
    /// The apiserver's serving certificate.
    pub apiserver: CertPair,
    /// `system:masters` client certificate for the admin kubeconfig.
    pub admin: CertPair,
    /// `system:kube-controller-manager` client certificate.
    pub controller_manager: CertPair,
    /// The apiserver's client certificate for kubelets (`system:masters`): logs, exec and
    /// port-forward of a node's pods go through it.
    pub apiserver_kubelet_client: CertPair,
    /// ServiceAccount token signing key (ECDSA P-256, PKCS#8 PEM).
    pub service_account_key: PathBuf,
}

/// A certificate and its private key, both PEM files.
#[derive(Clone, Debug)]
pub struct CertPair {
    /// Certificate.
    pub cert: PathBuf,
    /// Private key.
    pub key: PathBuf,
}

/// DNS names the apiserver serves under, inside and outside a cluster.
const APISERVER_NAMES: &[&str] = &[
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
];
/// The first address of the service range: the in-cluster `kubernetes` Service.
pub const SERVICE_CLUSTER_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 1);

/// Generates the PKI into `dir` (created if missing; private keys are written mode 0600).
pub fn generate(dir: &Path) -> Result<Pki, Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::default();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "gongshu-local-ca");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let ca_cert_path = write(dir, "ca.crt", &ca_cert.pem(), false)?;
    let ca_key_path = write(dir, "ca.key", &ca_key.serialize_pem(), true)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let loopback = [IpAddr::V4(Ipv4Addr::LOCALHOST)];
    let serving = [
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let client = [ExtendedKeyUsagePurpose::ClientAuth];

    let etcd = leaf(
        dir,
        "etcd",
        &issuer,
        "etcd",
        None,
        &["localhost"],
        &loopback,
        &serving,
    )?;
    let apiserver_etcd_client = leaf(
        dir,
        "apiserver-etcd-client",
        &issuer,
        "kube-apiserver-etcd-client",
        None,
        &[],
        &[],
        &client,
    )?;
    let mut apiserver_ips = loopback.to_vec();
    apiserver_ips.push(IpAddr::V4(SERVICE_CLUSTER_IP));
    let apiserver = leaf(
        dir,
        "apiserver",
        &issuer,
        "kube-apiserver",
        None,
        APISERVER_NAMES,
        &apiserver_ips,
        &serving,
    )?;
    let admin = leaf(
        dir,
        "admin",
        &issuer,
        "gongshu-admin",
        Some("system:masters"),
        &[],
        &[],
        &client,
    )?;
    let controller_manager = leaf(
        dir,
        "controller-manager",
        &issuer,
        "system:kube-controller-manager",
        None,
        &[],
        &[],
        &client,
    )?;

    let apiserver_kubelet_client = leaf(
        dir,
        "apiserver-kubelet-client",
        &issuer,
        "kube-apiserver-kubelet-client",
        Some("system:masters"),
        &[],
        &[],
        &client,
    )?;

    let sa_key = KeyPair::generate()?;
    let service_account_key = write(dir, "sa.key", &sa_key.serialize_pem(), true)?;
    // The apiserver verifies tokens with the public half.
    write(dir, "sa.pub", &sa_key.public_key_pem(), false)?;

    Ok(Pki {
        ca_cert: ca_cert_path,
        ca_key: ca_key_path,
        etcd,
        apiserver_etcd_client,
        apiserver,
        admin,
        controller_manager,
        apiserver_kubelet_client,
        service_account_key,
    })
}

/// Signs a serving certificate for `dns_names` and `ips` with the CA in `pki` and writes it to
/// `dir` as `tls.crt` and `tls.key` (mode 0600), e.g. for an admission webhook the apiserver
/// must reach over TLS.
pub fn sign_serving(
    pki: &Pki,
    dir: &Path,
    common_name: &str,
    dns_names: &[&str],
    ips: &[IpAddr],
) -> Result<CertPair, Error> {
    let ca_key_pem = std::fs::read_to_string(&pki.ca_key).map_err(|e| Error::io(&pki.ca_key, e))?;
    let ca_cert_pem =
        std::fs::read_to_string(&pki.ca_cert).map_err(|e| Error::io(&pki.ca_cert, e))?;
    let issuer = Issuer::from_ca_cert_pem(&ca_cert_pem, KeyPair::from_pem(&ca_key_pem)?)?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let key = KeyPair::generate()?;
    let params = leaf_params(
        common_name,
        None,
        dns_names,
        ips,
        &[ExtendedKeyUsagePurpose::ServerAuth],
    )?;
    let cert = params.signed_by(&key, &issuer)?;
    Ok(CertPair {
        cert: write(dir, "tls.crt", &cert.pem(), false)?,
        key: write(dir, "tls.key", &key.serialize_pem(), true)?,
    })
}

/// Signs a certificate for `common_name` in `organization` with the CA in `pki` and writes it to
/// `dir` as `<file>.crt` and `<file>.key` (mode 0600): a client certificate (e.g. a kubelet's
/// `system:node:<name>` in `system:nodes`), also valid for serving `dns_names` and `ips` when
/// any are given.
pub fn sign(
    pki: &Pki,
    dir: &Path,
    file: &str,
    common_name: &str,
    organization: Option<&str>,
    dns_names: &[&str],
    ips: &[IpAddr],
) -> Result<CertPair, Error> {
    let ca_key_pem = std::fs::read_to_string(&pki.ca_key).map_err(|e| Error::io(&pki.ca_key, e))?;
    let ca_cert_pem =
        std::fs::read_to_string(&pki.ca_cert).map_err(|e| Error::io(&pki.ca_cert, e))?;
    let issuer = Issuer::from_ca_cert_pem(&ca_cert_pem, KeyPair::from_pem(&ca_key_pem)?)?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let usages: &[ExtendedKeyUsagePurpose] = if dns_names.is_empty() && ips.is_empty() {
        &[ExtendedKeyUsagePurpose::ClientAuth]
    } else {
        &[
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ]
    };
    leaf(
        dir,
        file,
        &issuer,
        common_name,
        organization,
        dns_names,
        ips,
        usages,
    )
}

/// The PKI generated earlier into `dir` by [`generate`].
pub fn load(dir: &Path) -> Pki {
    let pair = |name: &str| CertPair {
        cert: dir.join(format!("{name}.crt")),
        key: dir.join(format!("{name}.key")),
    };
    Pki {
        ca_cert: dir.join("ca.crt"),
        ca_key: dir.join("ca.key"),
        etcd: pair("etcd"),
        apiserver_etcd_client: pair("apiserver-etcd-client"),
        apiserver: pair("apiserver"),
        admin: pair("admin"),
        controller_manager: pair("controller-manager"),
        apiserver_kubelet_client: pair("apiserver-kubelet-client"),
        service_account_key: dir.join("sa.key"),
    }
}

#[allow(clippy::too_many_arguments)]
fn leaf(
    dir: &Path,
    file: &str,
    issuer: &Issuer<'_, KeyPair>,
    common_name: &str,
    organization: Option<&str>,
    dns_names: &[&str],
    ips: &[IpAddr],
    usages: &[ExtendedKeyUsagePurpose],
) -> Result<CertPair, Error> {
    let key = KeyPair::generate()?;
    let cert =
        leaf_params(common_name, organization, dns_names, ips, usages)?.signed_by(&key, issuer)?;
    Ok(CertPair {
        cert: write(dir, &format!("{file}.crt"), &cert.pem(), false)?,
        key: write(dir, &format!("{file}.key"), &key.serialize_pem(), true)?,
    })
}

fn leaf_params(
    common_name: &str,
    organization: Option<&str>,
    dns_names: &[&str],
    ips: &[IpAddr],
    usages: &[ExtendedKeyUsagePurpose],
) -> Result<CertificateParams, Error> {
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    if let Some(org) = organization {
        params
            .distinguished_name
            .push(DnType::OrganizationName, org);
    }
    for name in dns_names {
        params
            .subject_alt_names
            .push(SanType::DnsName((*name).try_into()?));
    }
    params
        .subject_alt_names
        .extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = usages.to_vec();
    Ok(params)
}

fn write(dir: &Path, name: &str, contents: &str, private: bool) -> Result<PathBuf, Error> {
    use std::{fs::OpenOptions, io::Write, os::unix::fs::OpenOptionsExt};
    let path = dir.join(name);
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if private { 0o600 } else { 0o644 })
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    file.write_all(contents.as_bytes())
        .map_err(|e| Error::io(&path, e))?;
    Ok(path)
}
