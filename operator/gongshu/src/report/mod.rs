//! `gongshu report`: the monthly SLA report per department (SUP-1: PJ34 statistics; SUP-2:
//! XJ44(4), NM49, NM51, overdue handling is a violation). The I/O shell around
//! [`gongshu_api::sla_report::compute`]: it lists the cluster's ShareGrants, DataCatalogs and
//! department Namespaces and reads the `default` Regulation (read-only, with the kubeconfig
//! like the other subcommands), computes the report and renders it as a table, CSV or JSON.

pub mod render;

use std::{collections::BTreeMap, future::Future, io::Write, path::PathBuf};

use clap::{Args, ValueEnum};
use gongshu_api::{
    calendar::calendar_2026_cn,
    sla_report::{self, CatalogRecord, GrantRecord, Month, ReportFacts, Scope},
    v1alpha1::{DataCatalog, LABEL_DEPARTMENT, Regulation, ShareGrant},
    workflow::RegulationFacts,
};
use jiff::{Timestamp, tz::TimeZone};
use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api, Client, ResourceExt,
    api::{ListParams, ObjectList},
};

use crate::controller::facts::{FALLBACK_PRESET, REGULATION};

/// Objects listed per request: large clusters (the 10,000-grant benchmark) are read in pages.
const PAGE: u32 = 500;

/// `gongshu report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The month to report, `YYYY-MM`, bounded by midnights in the Regulation's time zone
    /// (Asia/Shanghai by default).
    #[arg(long)]
    pub month: Month,
    /// How to print it: aligned columns, CSV (one row per department and step) or JSON.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// Write the report to this file instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Report only the departments whose namespaces match this label selector, e.g.
    /// `gongshu.io/level=city` or `gongshu.io/department in (civil-affairs,health)`; the
    /// authority's row then counts only its work on their grants and catalogs.
    #[arg(long)]
    pub namespace_selector: Option<String>,
}

/// Output formats.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns for a terminal: a summary per department, then each step.
    #[default]
    Table,
    /// One row per department and step (`step` = `all` for the department's totals).
    Csv,
    /// The whole report as one JSON object.
    Json,
}

/// Why `gongshu report` failed (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// No client could be built.
    #[error(
        "cannot connect to the cluster (the kubeconfig in $KUBECONFIG or ~/.kube/config, or the pod's ServiceAccount): {0}"
    )]
    Client(#[source] kube::Error),
    /// A list call failed (RBAC, a bad selector, the apiserver).
    #[error("cannot list {kind}: {source}")]
    List {
        /// What was listed.
        kind: &'static str,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// The `default` Regulation could not be read.
    #[error("cannot read Regulation {REGULATION}: {0}")]
    Regulation(#[source] kube::Error),
    /// The selector matches no department namespace.
    #[error(
        "no department namespace (label {LABEL_DEPARTMENT}) matches --namespace-selector {0:?}"
    )]
    NoDepartments(String),
    /// The report cannot be computed (a month not begun yet).
    #[error(transparent)]
    Report(#[from] sla_report::ReportError),
    /// Rendering failed.
    #[error("cannot render the report: {0}")]
    Render(#[from] render::RenderError),
    /// The output could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// Where.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl ReportError {
    /// A stable label of the error's kind.
    pub fn category(&self) -> &'static str {
        match self {
            Self::Client(_) => "client",
            Self::List { .. } | Self::Regulation(_) => "api",
            Self::NoDepartments(_) => "selector",
            Self::Report(_) => "month",
            Self::Render(_) => "render",
            Self::Write { .. } => "write",
        }
    }
}

/// Makes the report and writes it where `args` say.
pub async fn run(args: &ReportArgs) -> Result<(), ReportError> {
    let client = Client::try_default().await.map_err(ReportError::Client)?;
    let world = fetch(&client, args.namespace_selector.as_deref()).await?;
    let report = sla_report::compute(&ReportFacts {
        month: args.month,
        time_zone: &world.time_zone,
        now: Timestamp::now(),
        authority_namespace: &world.authority_namespace,
        departments: &world.departments,
        scope: &world.scope,
        grants: &world.grants,
        catalogs: &world.catalogs,
    })?;
    let document = render::Document {
        report: &report,
        regulation: world.regulation,
        namespace_selector: args.namespace_selector.as_deref(),
        time_zone: world.time_zone,
    };
    let text = match args.format {
        Format::Table => render::table(&document),
        Format::Csv => render::csv(&document)?,
        Format::Json => render::json(&document)?,
    };
    match &args.out {
        Some(path) => std::fs::write(path, text).map_err(|source| ReportError::Write {
            path: path.display().to_string(),
            source,
        }),
        None => std::io::stdout()
            .lock()
            .write_all(text.as_bytes())
            .map_err(|source| ReportError::Write {
                path: "stdout".to_owned(),
                source,
            }),
    }
}

/// What the report is computed from, as read from the cluster.
struct World {
    time_zone: TimeZone,
    authority_namespace: String,
    /// Which Regulation the time zone and authority come from.
    regulation: String,
    departments: BTreeMap<String, String>,
    scope: Scope,
    grants: Vec<GrantRecord>,
    catalogs: Vec<CatalogRecord>,
}

async fn fetch(client: &Client, selector: Option<&str>) -> Result<World, ReportError> {
    let (in_force, regulation) = regulation(client).await?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let department_namespaces = |labels: String| {
        let namespaces = namespaces.clone();
        async move {
            let listed = paged("namespaces", ListParams::default().labels(&labels), |lp| {
                let namespaces = namespaces.clone();
                async move { namespaces.list_metadata(&lp).await }
            })
            .await?;
            Ok::<BTreeMap<String, String>, ReportError>(
                listed
                    .into_iter()
                    .filter_map(|ns| {
                        let code = ns.labels().get(LABEL_DEPARTMENT)?.clone();
                        Some((ns.name_any(), code))
                    })
                    .collect(),
            )
        }
    };
    let departments = department_namespaces(LABEL_DEPARTMENT.to_owned()).await?;
    let scope = match selector {
        None => Scope::All,
        Some(selector) => {
            let selected = department_namespaces(format!("{LABEL_DEPARTMENT},{selector}")).await?;
            if selected.is_empty() {
                return Err(ReportError::NoDepartments(selector.to_owned()));
            }
            Scope::Departments(selected.into_values().collect())
        }
    };
    let grants: Api<ShareGrant> = Api::all(client.clone());
    let grants = paged("sharegrants", ListParams::default(), |lp| {
        let grants = grants.clone();
        async move { grants.list(&lp).await }
    })
    .await?;
    let catalogs: Api<DataCatalog> = Api::all(client.clone());
    let catalogs = paged("datacatalogs", ListParams::default(), |lp| {
        let catalogs = catalogs.clone();
        async move { catalogs.list(&lp).await }
    })
    .await?;
    Ok(World {
        time_zone: in_force.calendar.time_zone().clone(),
        authority_namespace: in_force.authority_namespace,
        regulation,
        departments,
        scope,
        grants: grants
            .into_iter()
            .filter_map(GrantRecord::from_grant)
            .collect(),
        catalogs: catalogs
            .into_iter()
            .filter_map(CatalogRecord::from_catalog)
            .collect(),
    })
}

/// The regulation in force, as the operator takes it (`controller::facts`): the `default`
/// Regulation's, or the fallback preset on the 2026 national calendar (Asia/Shanghai) when it
/// is missing or invalid; and a line saying which.
async fn regulation(client: &Client) -> Result<(RegulationFacts, String), ReportError> {
    let fallback = || RegulationFacts::new(FALLBACK_PRESET, calendar_2026_cn());
    let found = Api::<Regulation>::all(client.clone())
        .get_opt(REGULATION)
        .await
        .map_err(ReportError::Regulation)?;
    Ok(match found {
        None => (
            fallback(),
            format!(
                "no Regulation named {REGULATION}: the operator's fallback ({FALLBACK_PRESET})"
            ),
        ),
        Some(r) => match RegulationFacts::from_spec(&r.spec) {
            Ok(facts) => {
                let line = format!("Regulation {REGULATION} ({})", r.spec.preset);
                (facts, line)
            }
            Err(problems) => (
                fallback(),
                format!(
                    "Regulation {REGULATION} is invalid ({}): the operator's fallback ({FALLBACK_PRESET})",
                    gongshu_api::rules::summarize(&problems)
                ),
            ),
        },
    })
}

/// Every object of a list, page by page.
async fn paged<T, F, Fut>(
    kind: &'static str,
    params: ListParams,
    mut list: F,
) -> Result<Vec<T>, ReportError>
where
    T: Clone,
    F: FnMut(ListParams) -> Fut,
    Fut: Future<Output = kube::Result<ObjectList<T>>>,
{
    let mut items = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut lp = params.clone().limit(PAGE);
        if let Some(t) = token.take() {
            lp = lp.continue_token(&t);
        }
        let page = list(lp)
            .await
            .map_err(|source| ReportError::List { kind, source })?;
        items.extend(page.items);
        match page.metadata.continue_ {
            Some(t) if !t.is_empty() => token = Some(t),
            _ => return Ok(items),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn parse(args: &[&str]) -> Result<ReportArgs, clap::Error> {
        let cli = Cli::try_parse_from(args)?;
        match cli.command {
            Command::Report(args) => Ok(*args),
            other => panic!("not the report command: {other:?}"),
        }
    }

    #[test]
    fn report_takes_a_month_a_format_a_file_and_a_selector() {
        let args = parse(&[
            "gongshu",
            "report",
            "--month",
            "2026-11",
            "--format",
            "csv",
            "--out",
            "november.csv",
            "--namespace-selector",
            "gongshu.io/level=city",
        ])
        .unwrap();
        assert_eq!(args.month.to_string(), "2026-11");
        assert_eq!(args.format, Format::Csv);
        assert_eq!(args.out, Some(PathBuf::from("november.csv")));
        assert_eq!(
            args.namespace_selector.as_deref(),
            Some("gongshu.io/level=city")
        );
        let defaults = parse(&["gongshu", "report", "--month", "2026-11"]).unwrap();
        assert_eq!((defaults.format, defaults.out), (Format::Table, None));
    }

    #[test]
    fn a_malformed_month_is_a_usage_error_with_exit_code_2() {
        let err = parse(&["gongshu", "report", "--month", "2026-13"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("01–12"), "{err}");
        let err = parse(&["gongshu", "report"]).unwrap_err();
        assert_eq!(err.exit_code(), 2, "--month is required");
    }
}
