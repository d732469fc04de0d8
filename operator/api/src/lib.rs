//! gongshu's API: the `gongshu.io/v1alpha1` custom resources, the pure rules the regulations
//! impose on them, and the working-day calendar their deadlines are counted on.
//!
//! Nothing here performs I/O; the runtime crate (`gongshu`) depends on this one, never the
//! reverse, so every rule can be read and unit-tested in isolation.

pub mod admission;
pub mod calendar;
pub mod index;
pub mod presets;
pub mod rules;
pub mod sla;
pub mod sla_report;
pub mod status;
pub mod v1alpha1;
pub mod workflow;
