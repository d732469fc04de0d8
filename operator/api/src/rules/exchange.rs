//! Who may read what at the exchange: the access decision for one request, from the grant as
//! the operator last wrote it (SEC-2 authorisation, SH-3 no third parties, SH-5 least
//! privilege, SH-14 suspension).
//!
//! The exchange serves the terms the provider *approved* (`status.approved.terms`), not the
//! spec: a consumer widening its request keeps the narrower approved terms until the provider
//! decides again (SH-5).

use std::{collections::BTreeMap, fmt};

use jiff::Timestamp;

use crate::v1alpha1::{GrantPhase, ProviderRef, ShareGrant, ShareMode};

/// The audience a consumer's projected ServiceAccount token must carry.
pub const AUDIENCE: &str = "gongshu-exchange";
/// The name of the exchange's workload, Service and ServiceAccount.
pub const NAME: &str = "gongshu-exchange";
/// The labels of the exchange's pods: its StatefulSet selects them, and every department
/// namespace's NetworkPolicy admits traffic from them (CH-1).
pub const POD_LABELS: [(&str, &str); 2] = [
    ("app.kubernetes.io/name", NAME),
    ("app.kubernetes.io/part-of", "gongshu"),
];

/// [`POD_LABELS`] as a label map.
pub fn pod_labels() -> BTreeMap<String, String> {
    POD_LABELS
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A caller the apiserver authenticated: a ServiceAccount of some namespace.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ServiceAccount {
    /// Namespace of the ServiceAccount (the consumer department's namespace).
    pub namespace: String,
    /// Its name.
    pub name: String,
}

impl ServiceAccount {
    /// The ServiceAccount behind a TokenReview username
    /// (`system:serviceaccount:<namespace>:<name>`), or `None` for any other user.
    pub fn from_username(username: &str) -> Option<Self> {
        let rest = username.strip_prefix("system:serviceaccount:")?;
        let (namespace, name) = rest.split_once(':')?;
        (!namespace.is_empty() && !name.is_empty() && !name.contains(':')).then(|| Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        })
    }
}

impl fmt::Display for ServiceAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "system:serviceaccount:{}:{}", self.namespace, self.name)
    }
}

/// What an authorised request may touch: the approved terms of an active grant.
#[derive(Clone, Debug, PartialEq)]
pub struct Access<'a> {
    /// The catalog item.
    pub item: &'a str,
    /// The fields the provider approved, in the order it approved them.
    pub fields: &'a [String],
    /// The one mode the grant is served in.
    pub mode: ShareMode,
    /// The end of the licence.
    pub valid_until: Timestamp,
    /// The provider's catalog.
    pub provider: &'a ProviderRef,
}

impl Access<'_> {
    /// Whether `field` is among the approved fields.
    pub fn covers(&self, field: &str) -> bool {
        self.fields.iter().any(|f| f == field)
    }
}

/// Why a request is refused. Each names the rule it enforces and the HTTP status it maps to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Denial {
    /// The caller's ServiceAccount is not in the grant's `spec.serviceAccounts`, or belongs to
    /// another namespace (another department).
    NotListed {
        /// The caller.
        caller: String,
    },
    /// The grant is not `Active` (pending, denied, revoked, expired or suspended).
    NotActive {
        /// Its phase, if it has one.
        phase: Option<GrantPhase>,
    },
    /// `validUntil` has passed (the operator may not have marked it `Expired` yet).
    Expired {
        /// The end of the licence.
        valid_until: Timestamp,
    },
    /// The request uses another mode than the approved one.
    WrongMode {
        /// The approved mode.
        granted: ShareMode,
        /// The mode the request needs.
        asked: ShareMode,
    },
}

impl Denial {
    /// The REQUIREMENTS.md rule the denial enforces.
    pub fn rule(&self) -> &'static str {
        match self {
            Self::NotListed { .. } => "SH-3",
            Self::NotActive {
                phase: Some(GrantPhase::Suspended),
            } => "SH-14",
            Self::NotActive { .. } | Self::Expired { .. } | Self::WrongMode { .. } => "SH-5",
        }
    }

    /// A short, stable slug for the problem type (`/problems/<slug>`).
    pub fn slug(&self) -> &'static str {
        match self {
            Self::NotListed { .. } => "not-a-grantee",
            Self::NotActive { .. } => "grant-not-active",
            Self::Expired { .. } => "grant-expired",
            Self::WrongMode { .. } => "wrong-mode",
        }
    }
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotListed { caller } => write!(
                f,
                "{caller} is not one of this grant's serviceAccounts; only the ServiceAccounts the grant names, in its own namespace, may use it"
            ),
            Self::NotActive { phase: None } => {
                write!(
                    f,
                    "the grant has not been decided yet; it is served once Active"
                )
            }
            Self::NotActive {
                phase: Some(GrantPhase::Suspended),
            } => write!(
                f,
                "the grant is Suspended by the authority until the violation is corrected"
            ),
            Self::NotActive { phase: Some(phase) } => {
                write!(f, "the grant is {phase:?}; only Active grants are served")
            }
            Self::Expired { valid_until } => {
                write!(f, "the grant ended at its validUntil, {valid_until}")
            }
            Self::WrongMode { granted, asked } => write!(
                f,
                "the grant is approved for {} mode; this endpoint serves {} mode",
                mode_name(*granted),
                mode_name(*asked)
            ),
        }
    }
}

/// The lower-case name of a mode, as manifests spell it.
pub fn mode_name(mode: ShareMode) -> &'static str {
    match mode {
        ShareMode::Api => "api",
        ShareMode::File => "file",
        ShareMode::Table => "table",
        ShareMode::Verify => "verify",
    }
}

/// Whether `caller` may use `grant` in `mode` at `now`. Checks, in order: the caller is one
/// of the grant's ServiceAccounts in the grant's namespace (else nothing more is revealed),
/// the grant is Active with approved terms, `validUntil` is ahead, the mode is the approved
/// one.
pub fn authorize<'a>(
    grant: &'a ShareGrant,
    caller: &ServiceAccount,
    mode: ShareMode,
    now: Timestamp,
) -> Result<Access<'a>, Denial> {
    let listed = grant.metadata.namespace.as_deref() == Some(caller.namespace.as_str())
        && grant
            .spec
            .service_accounts
            .iter()
            .any(|sa| sa.0 == caller.name);
    if !listed {
        return Err(Denial::NotListed {
            caller: caller.to_string(),
        });
    }
    let status = grant.status.as_ref();
    let phase = status.and_then(|s| s.phase);
    let (Some(GrantPhase::Active), Some(approved), Some(provider)) = (
        phase,
        status.and_then(|s| s.approved.as_ref()),
        status.and_then(|s| s.provider.as_ref()),
    ) else {
        return Err(Denial::NotActive { phase });
    };
    let terms = &approved.terms;
    let valid_until = terms.valid_until.0;
    if now >= valid_until {
        return Err(Denial::Expired { valid_until });
    }
    if terms.mode != mode {
        return Err(Denial::WrongMode {
            granted: terms.mode,
            asked: mode,
        });
    }
    Ok(Access {
        item: &grant.spec.item,
        fields: &terms.fields,
        mode: terms.mode,
        valid_until,
        provider,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;
    use crate::v1alpha1::{ApprovedTerms, GrantTerms, ShareGrantSpec, ShareGrantStatus, ShareType};

    fn active_grant() -> ShareGrant {
        let spec: ShareGrantSpec = serde_yaml::from_str(
            r#"
item: population.households
scenario: verify household membership for subsidies
purpose: means-tested subsidy eligibility checks
commitment: {signedBy: "Director Li", signedOn: "2026-01-05", document: "MCA-2026-17"}
fields: [householdId, headName]
mode: api
validUntil: "2027-01-01T00:00:00Z"
serviceAccounts: [subsidy-checker]
"#,
        )
        .unwrap();
        let mut grant = ShareGrant::new("subsidies", spec);
        grant.metadata.namespace = Some("civil-affairs".into());
        let until = Time("2027-01-01T00:00:00Z".parse().unwrap());
        grant.status = Some(ShareGrantStatus {
            phase: Some(GrantPhase::Active),
            provider: Some(ProviderRef {
                department: "public-security".into(),
                namespace: "public-security".into(),
                catalog: "population".into(),
                share_type: ShareType::Conditional,
            }),
            approved: Some(ApprovedTerms {
                generation: 1,
                approved_at: Time("2026-02-01T00:00:00Z".parse().unwrap()),
                by: "public-security".into(),
                terms: GrantTerms {
                    fields: vec!["householdId".into()],
                    mode: ShareMode::Api,
                    valid_until: until,
                    scenario_digest: "x".into(),
                },
            }),
            ..ShareGrantStatus::default()
        });
        grant
    }

    fn consumer() -> ServiceAccount {
        ServiceAccount::from_username("system:serviceaccount:civil-affairs:subsidy-checker")
            .unwrap()
    }

    fn now() -> Timestamp {
        "2026-06-01T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn usernames_other_than_service_accounts_are_not_callers() {
        assert_eq!(
            consumer().to_string(),
            "system:serviceaccount:civil-affairs:subsidy-checker"
        );
        for user in [
            "admin",
            "system:serviceaccount:ns",
            "system:serviceaccount::x",
            "system:serviceaccount:a:b:c",
        ] {
            assert_eq!(ServiceAccount::from_username(user), None, "{user}");
        }
    }

    #[test]
    fn an_active_grant_serves_the_approved_fields_not_the_requested_ones() {
        let grant = active_grant();
        let access = authorize(&grant, &consumer(), ShareMode::Api, now()).unwrap();
        assert_eq!(access.fields, ["householdId"]);
        assert!(access.covers("householdId"));
        assert!(
            !access.covers("headName"),
            "requested but not approved (SH-5)"
        );
        assert_eq!(access.item, "population.households");
        assert_eq!(access.provider.namespace, "public-security");
    }

    #[test]
    fn other_service_accounts_and_other_departments_are_refused_under_sh_3() {
        let grant = active_grant();
        for user in [
            "system:serviceaccount:civil-affairs:default",
            "system:serviceaccount:health:subsidy-checker",
        ] {
            let caller = ServiceAccount::from_username(user).unwrap();
            let denial = authorize(&grant, &caller, ShareMode::Api, now()).unwrap_err();
            assert_eq!(
                denial,
                Denial::NotListed {
                    caller: user.into()
                }
            );
            assert_eq!(denial.rule(), "SH-3");
        }
    }

    #[test]
    fn only_active_grants_are_served_and_suspension_cites_sh_14() {
        for phase in [
            GrantPhase::ProviderReview,
            GrantPhase::Revoked,
            GrantPhase::Expired,
            GrantPhase::Suspended,
        ] {
            let mut grant = active_grant();
            grant.status.as_mut().unwrap().phase = Some(phase);
            let denial = authorize(&grant, &consumer(), ShareMode::Api, now()).unwrap_err();
            assert_eq!(denial, Denial::NotActive { phase: Some(phase) });
            let rule = if phase == GrantPhase::Suspended {
                "SH-14"
            } else {
                "SH-5"
            };
            assert_eq!(denial.rule(), rule);
        }
        let mut grant = active_grant();
        grant.status = None;
        assert_eq!(
            authorize(&grant, &consumer(), ShareMode::Api, now()).unwrap_err(),
            Denial::NotActive { phase: None }
        );
    }

    #[test]
    fn a_grant_past_valid_until_is_refused_before_the_operator_marks_it() {
        let grant = active_grant();
        let at_end: Timestamp = "2027-01-01T00:00:00Z".parse().unwrap();
        let denial = authorize(&grant, &consumer(), ShareMode::Api, at_end).unwrap_err();
        assert!(matches!(denial, Denial::Expired { .. }));
        assert!(denial.to_string().contains("2027-01-01T00:00:00Z"));
    }

    #[test]
    fn another_mode_than_the_approved_one_is_refused() {
        let grant = active_grant();
        let denial = authorize(&grant, &consumer(), ShareMode::File, now()).unwrap_err();
        assert_eq!(
            denial,
            Denial::WrongMode {
                granted: ShareMode::Api,
                asked: ShareMode::File
            }
        );
        assert_eq!(
            denial.to_string(),
            "the grant is approved for api mode; this endpoint serves file mode"
        );
    }
}
