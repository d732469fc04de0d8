//! What `/readyz` answers: a leader is ready once the initial list of every kind is complete; a
//! standby is ready while it can reach the apiserver to campaign for the lease.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

/// Where the process stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Role {
    /// Starting up; nothing known yet.
    Starting = 0,
    /// Campaigning for the lease while another process leads.
    Standby = 1,
    /// Holding the lease and running the controllers.
    Leading = 2,
    /// Shutting down.
    Stopping = 3,
}

impl Role {
    fn from_u8(value: u8) -> Self {
        match value {
            1 => Role::Standby,
            2 => Role::Leading,
            3 => Role::Stopping,
            _ => Role::Starting,
        }
    }
}

/// Shared, lock-free health state.
#[derive(Debug, Default)]
pub struct Health {
    role: AtomicU8,
    lists_ready: AtomicBool,
    apiserver_ok: AtomicBool,
}

impl Health {
    /// Records the process's role; leaving `Leading` forgets that the lists were complete.
    /// `Stopping` is final: later roles are ignored.
    pub fn set_role(&self, role: Role) {
        if self.role() == Role::Stopping {
            return;
        }
        if role != Role::Leading {
            self.lists_ready.store(false, Ordering::Relaxed);
        }
        self.role.store(role as u8, Ordering::Relaxed);
    }

    /// Records that every kind's initial list is complete, as the controllers' caches need.
    pub fn set_lists_ready(&self, ready: bool) {
        self.lists_ready.store(ready, Ordering::Relaxed);
    }

    /// Records whether the last call to the apiserver (while campaigning) succeeded.
    pub fn set_apiserver_ok(&self, ok: bool) {
        self.apiserver_ok.store(ok, Ordering::Relaxed);
    }

    /// The current role.
    pub fn role(&self) -> Role {
        Role::from_u8(self.role.load(Ordering::Relaxed))
    }

    /// Whether `/readyz` answers 200, and why (or why not).
    pub fn readiness(&self) -> (bool, &'static str) {
        readiness(
            self.role(),
            self.lists_ready.load(Ordering::Relaxed),
            self.apiserver_ok.load(Ordering::Relaxed),
        )
    }
}

/// Readiness from the role and what the role depends on.
pub fn readiness(role: Role, lists_ready: bool, apiserver_ok: bool) -> (bool, &'static str) {
    match role {
        Role::Starting => (false, "starting"),
        Role::Stopping => (false, "shutting down"),
        Role::Standby if apiserver_ok => (true, "standby: another instance leads"),
        Role::Standby => (false, "standby: cannot reach the apiserver"),
        Role::Leading if lists_ready => (true, "leading: controllers running"),
        Role::Leading => (
            false,
            "leading: controllers are starting (initial lists not complete, or CRDs missing)",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leader_is_ready_only_once_its_initial_lists_are_complete() {
        assert!(!readiness(Role::Leading, false, true).0);
        assert!(readiness(Role::Leading, true, false).0);
    }

    #[test]
    fn a_standby_that_reaches_the_apiserver_is_ready() {
        assert!(readiness(Role::Standby, false, true).0);
        assert!(!readiness(Role::Standby, false, false).0);
    }

    #[test]
    fn starting_and_stopping_are_not_ready() {
        assert!(!readiness(Role::Starting, true, true).0);
        assert!(!readiness(Role::Stopping, true, true).0);
    }

    #[test]
    fn losing_leadership_forgets_the_completed_lists() {
        let health = Health::default();
        health.set_role(Role::Leading);
        health.set_lists_ready(true);
        assert!(health.readiness().0);
        health.set_role(Role::Standby);
        health.set_role(Role::Leading);
        assert!(!health.readiness().0);
    }

    #[test]
    fn stopping_is_final() {
        let health = Health::default();
        health.set_role(Role::Stopping);
        health.set_role(Role::Leading);
        assert_eq!(health.role(), Role::Stopping);
    }
}
