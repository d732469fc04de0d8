//! The deadline tables of the five regulations (REQUIREMENTS.md SH-4, CAT-2, CAT-3, SH-8, SH-11)
//! as data. A `Regulation` picks one preset and may override any step.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A regulation whose deadline table gongshu ships.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// Xinjiang Uyghur Autonomous Region, Public Data Management Measures (trial), 2023 (XJ).
    Xinjiang,
    /// Inner Mongolia Autonomous Region, Public Data Management Interim Measures, 2024 (NM).
    InnerMongolia,
    /// Yunnan Province, Public Data Management Measures (trial), 2024 (YN).
    Yunnan,
    /// Hebei Province, Government Data Sharing and Application Measures, 2023 (HB).
    Hebei,
    /// Panjin (Liaoning), Government Data Resources Co-construction and Sharing Measures (trial), 2016 (PJ).
    Panjin,
}

/// A step of a workflow that a regulation may put a working-day deadline on.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum Step {
    /// The authority decides on an updated catalog (CAT-2).
    CatalogUpdateReview,
    /// A department fixes a catalog returned for changes (CAT-2, YN12).
    CatalogChangesFix,
    /// A department updates its catalog after its legal basis or duties changed (CAT-3).
    CatalogUpdate,
    /// An unconditional share request is reviewed or provided (SH-4, first row).
    UnconditionalProvision,
    /// The authority's compliance review of a conditional share request (SH-4).
    ComplianceReview,
    /// The provider replies to a conditional share request (SH-4).
    ProviderReply,
    /// Data is provided after a conditional request was approved (SH-4).
    ProvisionAfterApproval,
    /// Reply to a request for an item not yet in the catalog (SH-4, NM24).
    UncatalogedReply,
    /// Provision of an item not yet in the catalog after a positive reply (SH-4, NM24).
    UncatalogedProvision,
    /// The authority forwards a data-quality objection to the provider (SH-8).
    ObjectionForward,
    /// The provider answers a data-quality objection (SH-8).
    ObjectionAnswer,
    /// An upper level replies to a backflow request (SH-11, YN18).
    BackflowReply,
    /// A public request for correction of data is handled (SH-8, YN22, YN24).
    PublicCorrection,
}

impl Preset {
    /// Every preset, in the order of REQUIREMENTS.md's table.
    pub const fn all() -> [Preset; 5] {
        [
            Preset::Xinjiang,
            Preset::InnerMongolia,
            Preset::Yunnan,
            Preset::Hebei,
            Preset::Panjin,
        ]
    }

    /// The two-letter code REQUIREMENTS.md uses for article ids ("HB15").
    pub const fn code(self) -> &'static str {
        match self {
            Preset::Xinjiang => "XJ",
            Preset::InnerMongolia => "NM",
            Preset::Yunnan => "YN",
            Preset::Hebei => "HB",
            Preset::Panjin => "PJ",
        }
    }

    /// The name as written in a `Regulation` (`inner-mongolia`), same as its serde form.
    pub const fn as_str(self) -> &'static str {
        match self {
            Preset::Xinjiang => "xinjiang",
            Preset::InnerMongolia => "inner-mongolia",
            Preset::Yunnan => "yunnan",
            Preset::Hebei => "hebei",
            Preset::Panjin => "panjin",
        }
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Step {
    /// Every step, in declaration order.
    pub const fn all() -> [Step; 13] {
        [
            Step::CatalogUpdateReview,
            Step::CatalogChangesFix,
            Step::CatalogUpdate,
            Step::UnconditionalProvision,
            Step::ComplianceReview,
            Step::ProviderReply,
            Step::ProvisionAfterApproval,
            Step::UncatalogedReply,
            Step::UncatalogedProvision,
            Step::ObjectionForward,
            Step::ObjectionAnswer,
            Step::BackflowReply,
            Step::PublicCorrection,
        ]
    }

    /// The name as written in a `Regulation`'s overrides (`providerReply`), same as its serde
    /// form.
    pub const fn as_str(self) -> &'static str {
        match self {
            Step::CatalogUpdateReview => "catalogUpdateReview",
            Step::CatalogChangesFix => "catalogChangesFix",
            Step::CatalogUpdate => "catalogUpdate",
            Step::UnconditionalProvision => "unconditionalProvision",
            Step::ComplianceReview => "complianceReview",
            Step::ProviderReply => "providerReply",
            Step::ProvisionAfterApproval => "provisionAfterApproval",
            Step::UncatalogedReply => "uncatalogedReply",
            Step::UncatalogedProvision => "uncatalogedProvision",
            Step::ObjectionForward => "objectionForward",
            Step::ObjectionAnswer => "objectionAnswer",
            Step::BackflowReply => "backflowReply",
            Step::PublicCorrection => "publicCorrection",
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who must act before a step's deadline (REQUIREMENTS.md, Roles).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Actor {
    /// The data authority (公共数据主管部门), or the platform it runs.
    Authority,
    /// The provider or source department (数源部门), or an upper level returning data.
    Provider,
    /// The consumer department (数据使用部门).
    Consumer,
    /// A department acting on its own catalog or data.
    Department,
}

/// The event a step's working days are counted from (REQUIREMENTS.md, "How a deadline is
/// counted": where a text names no trigger, receipt of the request).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Trigger {
    /// The acting body receives what it must act on: a request, a request forwarded after a
    /// compliance review, an objection, a catalog, comments on a returned catalog.
    Receipt,
    /// The date of the actor's own reply agreeing to share (NM23, NM24, YN29).
    Reply,
    /// The authority receives the provider's reply (HB15).
    ProviderReply,
    /// The legal basis or the department's duties change (XJ11, NM11, YN13, HB9).
    LawChange,
}

/// What a regulation says about one step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepRule {
    /// The regulation has no such step.
    NotApplicable,
    /// The step happens directly, with no waiting (NM23 unconditional sharing, PJ17
    /// self-service).
    Direct,
    /// The step exists but the text sets no number ("promptly", "consultation", "negotiate").
    Unbounded {
        /// Who acts.
        actor: Actor,
        /// The articles the step comes from ("PJ18").
        articles: &'static [&'static str],
    },
    /// Within `working_days` WD of `trigger`, extendable once by `extension` WD counted from the
    /// same trigger.
    Within {
        /// The number of working days.
        working_days: u32,
        /// The working days an extension adds, where the text allows one.
        extension: Option<u32>,
        /// Who acts and is liable for the clock.
        actor: Actor,
        /// The event the days are counted from.
        trigger: Trigger,
        /// The articles the deadline comes from ("HB15").
        articles: &'static [&'static str],
    },
}

impl StepRule {
    /// The number of working days, for a [`StepRule::Within`].
    pub const fn working_days(&self) -> Option<u32> {
        match self {
            StepRule::Within { working_days, .. } => Some(*working_days),
            _ => None,
        }
    }

    /// The extension the text allows, for a [`StepRule::Within`].
    pub const fn extension(&self) -> Option<u32> {
        match self {
            StepRule::Within { extension, .. } => *extension,
            _ => None,
        }
    }

    /// Who acts, where the step has a deadline or at least an actor.
    pub const fn actor(&self) -> Option<Actor> {
        match self {
            StepRule::Unbounded { actor, .. } | StepRule::Within { actor, .. } => Some(*actor),
            _ => None,
        }
    }

    /// The event the days are counted from, for a [`StepRule::Within`].
    pub const fn trigger(&self) -> Option<Trigger> {
        match self {
            StepRule::Within { trigger, .. } => Some(*trigger),
            _ => None,
        }
    }

    /// The articles the rule comes from; empty for [`StepRule::NotApplicable`] and
    /// [`StepRule::Direct`].
    pub const fn articles(&self) -> &'static [&'static str] {
        match self {
            StepRule::Unbounded { articles, .. } | StepRule::Within { articles, .. } => articles,
            _ => &[],
        }
    }

    /// Whether the regulation has this step at all.
    pub const fn applies(&self) -> bool {
        !matches!(self, StepRule::NotApplicable)
    }
}

const fn within(
    working_days: u32,
    actor: Actor,
    trigger: Trigger,
    articles: &'static [&'static str],
) -> StepRule {
    StepRule::Within {
        working_days,
        extension: None,
        actor,
        trigger,
        articles,
    }
}

const fn extendable(
    working_days: u32,
    extension: u32,
    actor: Actor,
    trigger: Trigger,
    articles: &'static [&'static str],
) -> StepRule {
    StepRule::Within {
        working_days,
        extension: Some(extension),
        actor,
        trigger,
        articles,
    }
}

const fn unbounded(actor: Actor, articles: &'static [&'static str]) -> StepRule {
    StepRule::Unbounded { actor, articles }
}

/// What `preset` says about `step`, strictly from REQUIREMENTS.md (CAT-2, CAT-3, SH-4, SH-8,
/// SH-11); no number here is not in the text.
pub fn rule(preset: Preset, step: Step) -> StepRule {
    use Actor::{Authority, Department, Provider};
    use Preset::{Hebei, InnerMongolia, Panjin, Xinjiang, Yunnan};
    use StepRule::{Direct, NotApplicable};
    use Trigger::{LawChange, Receipt, Reply};

    match (step, preset) {
        // CAT-2: an updated catalog is decided within 5 WD (NM11, YN13) or 10 WD of receipt
        // (HB9). XJ11 only files the update with the authority; PJ has no catalog review.
        (Step::CatalogUpdateReview, Xinjiang | Panjin) => NotApplicable,
        (Step::CatalogUpdateReview, InnerMongolia) => within(5, Authority, Receipt, &["NM11"]),
        (Step::CatalogUpdateReview, Yunnan) => within(5, Authority, Receipt, &["YN13"]),
        (Step::CatalogUpdateReview, Hebei) => within(10, Authority, Receipt, &["HB9"]),

        // CAT-2: only YN12 gives a department a deadline to fix a returned catalog.
        (Step::CatalogChangesFix, Yunnan) => within(10, Department, Receipt, &["YN12"]),
        (Step::CatalogChangesFix, _) => NotApplicable,

        // CAT-3: 15 WD after the law or duties change; HB9 10 WD, once +10 with consent.
        (Step::CatalogUpdate, Xinjiang) => within(15, Department, LawChange, &["XJ11"]),
        (Step::CatalogUpdate, InnerMongolia) => within(15, Department, LawChange, &["NM11"]),
        (Step::CatalogUpdate, Yunnan) => within(15, Department, LawChange, &["YN13"]),
        (Step::CatalogUpdate, Hebei) => extendable(10, 10, Department, LawChange, &["HB9"]),
        (Step::CatalogUpdate, Panjin) => NotApplicable,

        // SH-4 row 1: unconditional data.
        (Step::UnconditionalProvision, Xinjiang) => within(3, Authority, Receipt, &["XJ21"]),
        (Step::UnconditionalProvision, InnerMongolia) => Direct, // NM23
        (Step::UnconditionalProvision, Yunnan) => within(2, Provider, Receipt, &["YN29"]),
        (Step::UnconditionalProvision, Hebei) => within(3, Authority, Receipt, &["HB15"]),
        (Step::UnconditionalProvision, Panjin) => Direct, // PJ17: self-service via the platform

        // SH-4 row 2: the authority's compliance review of a conditional request.
        (Step::ComplianceReview, Xinjiang) => within(3, Authority, Receipt, &["XJ21"]),
        (Step::ComplianceReview, InnerMongolia | Yunnan) => NotApplicable,
        (Step::ComplianceReview, Hebei) => within(3, Authority, Receipt, &["HB15"]),
        // PJ18: approved directly if the conditions are met; no number.
        (Step::ComplianceReview, Panjin) => unbounded(Authority, &["PJ18"]),

        // SH-4 row 3: the provider's reply, counted from when it receives the request (in XJ
        // and HB, the request the authority forwarded).
        (Step::ProviderReply, Xinjiang) => within(5, Provider, Receipt, &["XJ21"]),
        (Step::ProviderReply, InnerMongolia) => within(5, Provider, Receipt, &["NM23"]),
        (Step::ProviderReply, Yunnan) => within(5, Provider, Receipt, &["YN29"]),
        (Step::ProviderReply, Hebei) => within(5, Provider, Receipt, &["HB15"]),
        // PJ18: consultation (会商) between authority and provider; no number.
        (Step::ProviderReply, Panjin) => unbounded(Provider, &["PJ18"]),

        // SH-4 row 4: provision after approval. In HB the authority provides, and is liable.
        (Step::ProvisionAfterApproval, Xinjiang | Panjin) => NotApplicable,
        (Step::ProvisionAfterApproval, InnerMongolia) => within(5, Provider, Reply, &["NM23"]),
        (Step::ProvisionAfterApproval, Yunnan) => within(5, Provider, Reply, &["YN29"]),
        (Step::ProvisionAfterApproval, Hebei) => {
            within(3, Authority, Trigger::ProviderReply, &["HB15"])
        }

        // SH-4 row 5: an item not yet in the catalog. NM24: after the authority's review and
        // the source's confirmation, reply (or refuse) in 5 WD and provide in 7 from the reply;
        // where processing is needed the source names a date, which a `Regulation` cannot know.
        // XJ21(5): consumer and provider negotiate, and an agreed item enters the catalog and
        // follows the ordinary steps. YN28: a demand list to the authority, which negotiates.
        (Step::UncatalogedReply, Xinjiang) => unbounded(Provider, &["XJ21"]),
        (Step::UncatalogedReply, InnerMongolia) => within(5, Provider, Receipt, &["NM24"]),
        (Step::UncatalogedReply, Yunnan) => unbounded(Authority, &["YN28"]),
        (Step::UncatalogedReply, Hebei | Panjin) => NotApplicable,
        (Step::UncatalogedProvision, InnerMongolia) => within(7, Provider, Reply, &["NM24"]),
        (Step::UncatalogedProvision, _) => NotApplicable,

        // SH-8: a consumer's data-quality objection. HB16: the authority forwards in 3 WD, the
        // provider answers in 10 (+10 once with the authority's consent). PJ20: the authority
        // re-checks in 5 WD itself; for non-technical discrepancies the provider, prompted by
        // the authority, checks in 3. XJ23: consumer and provider negotiate, the authority
        // coordinates if that fails. YN22: the authority has the provider check "within a
        // period" it sets; YN47(5) punishes checking objections late. NM sets no procedure.
        (Step::ObjectionForward, Hebei) => within(3, Authority, Receipt, &["HB16"]),
        (Step::ObjectionForward, Panjin) => within(5, Authority, Receipt, &["PJ20"]),
        (Step::ObjectionForward, Yunnan) => unbounded(Authority, &["YN22"]),
        (Step::ObjectionForward, Xinjiang | InnerMongolia) => NotApplicable,
        (Step::ObjectionAnswer, Hebei) => extendable(10, 10, Provider, Receipt, &["HB16"]),
        (Step::ObjectionAnswer, Panjin) => within(3, Provider, Receipt, &["PJ20"]),
        (Step::ObjectionAnswer, Xinjiang) => unbounded(Provider, &["XJ23"]),
        (Step::ObjectionAnswer, Yunnan) => unbounded(Provider, &["YN22", "YN47"]),
        (Step::ObjectionAnswer, InnerMongolia) => NotApplicable,

        // SH-11: backflow. Only YN18 numbers the upper level's reply; elsewhere delivery is
        // "prompt" (及时): XJ21(6) upper-level departments, NM19 the region's authority, HB22
        // the province's platform, PJ15 the department sends data from an upper-level system.
        (Step::BackflowReply, Yunnan) => within(5, Provider, Receipt, &["YN18"]),
        (Step::BackflowReply, Xinjiang) => unbounded(Provider, &["XJ21"]),
        (Step::BackflowReply, InnerMongolia) => unbounded(Authority, &["NM19"]),
        (Step::BackflowReply, Hebei) => unbounded(Authority, &["HB22"]),
        (Step::BackflowReply, Panjin) => unbounded(Department, &["PJ15"]),

        // SH-8: a public request for correction. YN22: the collecting body checks in 5 WD, up
        // to 10 if complex (+5) with its head's approval (YN24: the data subject's right to
        // object). XJ30: the provider verifies feedback on errors "at once", no number.
        (Step::PublicCorrection, Yunnan) => extendable(5, 5, Provider, Receipt, &["YN22", "YN24"]),
        (Step::PublicCorrection, Xinjiang) => unbounded(Provider, &["XJ30"]),
        (Step::PublicCorrection, InnerMongolia | Hebei | Panjin) => NotApplicable,
    }
}

/// The working days `step` gets under `preset` once a `Regulation`'s per-step `overrides` are
/// applied: an override always wins (it may also number a step the text leaves open, for a
/// renewed or local measure), otherwise the preset's [`StepRule::Within`] number, otherwise
/// `None`. Where a step is overridden more than once, the last entry wins. Extensions are
/// separate: see [`StepRule::extension`].
pub fn effective_working_days(
    preset: Preset,
    step: Step,
    overrides: &[(Step, u32)],
) -> Option<u32> {
    overrides
        .iter()
        .rev()
        .find_map(|&(overridden, days)| (overridden == step).then_some(days))
        .or_else(|| rule(preset, step).working_days())
}

#[cfg(test)]
mod tests;
