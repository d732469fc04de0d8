//! What Pod Security Standards `restricted` asks of the pods the operator creates (the
//! exchange's StatefulSet and the backup runners' Jobs), with a read-only root filesystem.

use k8s_openapi::api::core::v1::{
    Capabilities, PodSecurityContext, SeccompProfile, SecurityContext,
};

/// The non-root user and group of the containers (distroless `nonroot`), as the chart's pods.
pub const USER: i64 = 65532;

/// The pod's context: non-root as [`USER`], whose group also owns the mounted volumes
/// (`fsGroup`), and the runtime's default seccomp profile.
pub fn restricted_pod() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(USER),
        run_as_group: Some(USER),
        fs_group: Some(USER),
        seccomp_profile: Some(runtime_default()),
        ..PodSecurityContext::default()
    }
}

/// A container's context: non-root, no privilege escalation, no capabilities, a read-only
/// root filesystem, the runtime's default seccomp profile.
pub fn restricted_container() -> SecurityContext {
    SecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(USER),
        run_as_group: Some(USER),
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Capabilities::default()
        }),
        seccomp_profile: Some(runtime_default()),
        ..SecurityContext::default()
    }
}

/// The container runtime's default seccomp profile.
pub fn runtime_default() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".into(),
        ..SeccompProfile::default()
    }
}
