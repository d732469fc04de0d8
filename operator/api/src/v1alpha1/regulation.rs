//! `Regulation`: which measures apply, their deadlines, and the work calendar they are counted
//! on (REQUIREMENTS.md "How a deadline is counted", SH-4).

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{CommonStatus, DATE, DNS_LABEL};
use crate::presets::{Preset, Step};

/// The regulation in force: a preset deadline table, per-step overrides, and the work calendar
/// (holidays and make-up working days) maintained by the data authority. Cluster-scoped; the
/// operator uses the one named `default`.
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "gongshu.io",
    version = "v1alpha1",
    kind = "Regulation",
    status = "RegulationStatus",
    shortname = "reg",
    category = "gongshu",
    doc = "The regulation in force: deadline preset, overrides and work calendar. The operator uses the one named `default`.",
    printcolumn = r#"{"name":"Preset","type":"string","jsonPath":".spec.preset"}"#,
    printcolumn = r#"{"name":"Authority","type":"string","jsonPath":".spec.authorityNamespace"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!has(self.validUntil) || self.validUntil > self.validFrom")
        .message("validUntil must be after validFrom")
        .field_path(".validUntil")
        .reason(Reason::FieldValueInvalid),
)]
pub struct RegulationSpec {
    /// The measures whose deadline table applies (see REQUIREMENTS.md SH-4).
    pub preset: Preset,
    /// Per-step deadlines in working days that replace the preset's, e.g. for a renewed
    /// measure.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["step"]))]
    pub deadlines: Vec<DeadlineOverride>,
    /// The work calendar deadlines are counted on.
    #[serde(default)]
    pub calendar: CalendarSpec,
    /// Namespace of the data authority (数据主管部门); its Reviews decide catalog and
    /// compliance questions.
    #[serde(default = "default_authority_namespace")]
    #[schemars(length(min = 1, max = 63), regex(pattern = DNS_LABEL))]
    pub authority_namespace: String,
    /// First day the measures apply, `YYYY-MM-DD`.
    #[schemars(regex(pattern = DATE))]
    pub valid_from: String,
    /// Last day the measures apply, if they are time-limited (XJ47 and PJ40 are two-year
    /// trial measures).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DATE))]
    pub valid_until: Option<String>,
    /// How the one-channel rules apply (CH-1, CH-2): admission mode and network isolation of
    /// department namespaces. Only the `default` Regulation's policy is in force.
    #[serde(default)]
    pub channels: super::channel::ChannelPolicy,
}

fn default_authority_namespace() -> String {
    "gongshu-system".to_owned()
}

/// A per-step deadline that replaces the preset's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadlineOverride {
    /// The step.
    pub step: Step,
    /// Working days allowed.
    #[schemars(range(min = 0, max = 365))]
    pub working_days: i32,
}

/// The work calendar (工作日历). Weekends are rest days unless listed as make-up working days.
#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.closeOfBusiness) || self.closeOfBusiness.matches('^([01][0-9]|2[0-3]):[0-5][0-9]$')")
    .message("closeOfBusiness is a local time HH:MM")
    .field_path(".closeOfBusiness")
    .reason(Reason::FieldValueInvalid))]
pub struct CalendarSpec {
    /// IANA time zone deadlines are counted in.
    #[serde(default = "default_time_zone")]
    #[schemars(length(min = 1, max = 64))]
    pub time_zone: String,
    /// Local time a working day ends (`HH:MM`); the end of the day (24:00) when absent
    /// (Civil Code art. 203).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub close_of_business: Option<String>,
    /// Drill mode, for demos, tests and alert drills only: every working day lasts this many
    /// seconds of wall-clock time from the event that starts a step, so a 5-working-day
    /// deadline falls 5 × workingDaySeconds after it. Weekends, holidays and closeOfBusiness
    /// are then ignored. Never set it for measures in force: the Regulation says so in its
    /// `Drill` condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 86400))]
    pub working_day_seconds: Option<i32>,
    /// Holidays and make-up working days per year, as the State Council announces them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["year"]))]
    pub years: Vec<CalendarYear>,
}

impl Default for CalendarSpec {
    fn default() -> Self {
        Self {
            time_zone: default_time_zone(),
            close_of_business: None,
            working_day_seconds: None,
            years: Vec::new(),
        }
    }
}

fn default_time_zone() -> String {
    "Asia/Shanghai".to_owned()
}

/// One year of the work calendar.
#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.holidays.all(d, int(d.substring(0, 4)) == self.year) && self.makeupWorkdays.all(d, int(d.substring(0, 4)) == self.year)")
        .message("every holiday and make-up working day must fall in the calendar year it is listed under")
        .reason(Reason::FieldValueInvalid),
    validation = Rule::new("!self.holidays.exists(d, d in self.makeupWorkdays)")
        .message("a date cannot be both a holiday and a make-up working day")
        .reason(Reason::FieldValueInvalid),
)]
pub struct CalendarYear {
    /// The year.
    #[schemars(range(min = 2000, max = 2200))]
    pub year: i32,
    /// Public holidays (`YYYY-MM-DD`) that are not working days.
    #[serde(default)]
    #[schemars(length(max = 64))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub holidays: Vec<Date>,
    /// Weekend days (`YYYY-MM-DD`) that are working days (调休).
    #[serde(default)]
    #[schemars(length(max = 32))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub makeup_workdays: Vec<Date>,
}

/// An ISO date, `YYYY-MM-DD`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct Date(#[schemars(regex(pattern = DATE), length(equal = 10))] pub String);

/// Observed state of a regulation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegulationStatus {
    /// Generation and conditions (kstatus).
    #[serde(flatten)]
    pub common: CommonStatus,
    /// The deadline table in force after overrides.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub effective_deadlines: Vec<EffectiveDeadline>,
    /// Years the calendar covers; other years count weekends only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub calendar_years: Vec<i32>,
    /// What the channel scan found in department namespaces (CH-1); on the `default`
    /// Regulation only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<super::channel::ChannelReport>,
}

/// One row of the deadline table in force.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EffectiveDeadline {
    /// The step.
    pub step: Step,
    /// `within`, `direct`, `unbounded` or `notApplicable`.
    pub rule: String,
    /// Working days allowed, for `within`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_days: Option<i32>,
    /// Who acts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// Where the number comes from: articles, or `override`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source: Vec<String>,
}
