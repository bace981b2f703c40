//! What the configuration needs from the process's Linux capabilities, and what its children
//! must not inherit. A check in a VRF enters the VRF's network namespace (`setns(2)`: needs
//! `CAP_SYS_ADMIN`); an exec check with `user` switches to that user (`CAP_SETUID`,
//! `CAP_SETGID`). Root has them unless its unit's `CapabilityBoundingSet=` removes them; the
//! packaged unit's user `anycastd` has them only through `AmbientCapabilities=`. A process
//! without them would fail those checks and withdraw a healthy service, so `run` (at start
//! and at each reload) logs and `check-config` prints one line per such check, naming the unit
//! settings to change.
//!
//! Ambient capabilities pass to every program a process runs (vtysh, exec checks, hooks):
//! [`keep_from_children`] clears the ambient set at start, which leaves the daemon's own
//! effective set as it is. It must not decide anything: it reads the process and the config.

use crate::checks::exec::Exec;
use crate::config::Config;
use caps::{CapSet, Capability};

/// Where a unit grants `caps`, for the lines that say they are missing.
fn unit_settings(caps: &str) -> String {
    format!("which this process lacks (its systemd unit must have {caps} in CapabilityBoundingSet= and, with User=, in AmbientCapabilities=; see dist/anycastd.service)")
}

/// One line per check this process cannot run as configured, given whether it holds a
/// capability (`held`) and its own uid and gid.
pub fn missing_lines(
    config: &Config,
    held: impl Fn(Capability) -> bool,
    own: (u32, u32),
) -> Vec<String> {
    let mut lines = Vec::new();
    for service in &config.services {
        for check in &service.checks {
            let what = format!("service \"{}\": check \"{}\"", service.name, check.name);
            if let Some(vrf) = &check.vrf {
                if !held(Capability::CAP_SYS_ADMIN) {
                    lines.push(format!(
                        "{what} runs in VRF {vrf}: entering its network namespace needs CAP_SYS_ADMIN, {}, and RestrictNamespaces= must allow net",
                        unit_settings("CAP_SYS_ADMIN")
                    ));
                }
            }
            let Some(Exec(exec)) = check.settings::<Exec>() else {
                continue;
            };
            let Some(name) = &exec.user else {
                continue;
            };
            // A user that does not resolve fails its check with its own reason.
            let Ok(Some(user)) = nix::unistd::User::from_name(name) else {
                continue;
            };
            if (user.uid.as_raw(), user.gid.as_raw()) == own {
                continue;
            }
            let lacking: Vec<&str> = [
                (Capability::CAP_SETUID, "CAP_SETUID"),
                (Capability::CAP_SETGID, "CAP_SETGID"),
            ]
            .into_iter()
            .filter(|(cap, _)| !held(*cap))
            .map(|(_, name)| name)
            .collect();
            if !lacking.is_empty() {
                let lacking = lacking.join(" and ");
                lines.push(format!(
                    "{what} runs as user {name:?}: switching to it needs {lacking}, {}",
                    unit_settings(&lacking)
                ));
            }
        }
    }
    lines
}

/// [`missing_lines`] for this process: its effective capabilities, uid and gid.
pub fn missing_here(config: &Config) -> Vec<String> {
    let effective = caps::read(None, CapSet::Effective).unwrap_or_default();
    missing_lines(
        config,
        |cap| effective.contains(&cap),
        (
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
        ),
    )
}

/// Clear this thread's ambient capabilities, so that the programs it and the threads it
/// starts run do not inherit what a unit's `AmbientCapabilities=` granted the daemon. Call
/// before any other thread starts (capability sets are per thread). Its own effective and
/// permitted sets stay.
pub fn keep_from_children() -> Result<(), AmbientError> {
    match caps::read(None, CapSet::Ambient) {
        Ok(ambient) if ambient.is_empty() => Ok(()),
        Ok(_) => caps::clear(None, CapSet::Ambient).map_err(AmbientError::Clear),
        Err(e) => Err(AmbientError::Read(e)),
    }
}

/// Why the ambient capabilities could not be cleared (logged; the daemon runs on).
#[derive(Debug, thiserror::Error)]
pub enum AmbientError {
    /// They could not be read.
    #[error("cannot read the ambient capabilities: {0}")]
    Read(caps::errors::CapsError),
    /// They could not be cleared.
    #[error("cannot clear the ambient capabilities: {0}")]
    Clear(caps::errors::CapsError),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(checks: &str) -> Config {
        let text = format!("[services.ntp]\nprefixes.frrouting = [\"203.0.113.123\"]\n{checks}\n");
        match crate::config::parse(&text, &crate::checks::REGISTRY) {
            Ok(config) => config,
            Err(problems) => panic!("{problems:?}"),
        }
    }

    #[test]
    fn a_vrf_check_without_cap_sys_admin_is_one_line_naming_the_unit_settings() {
        let config = config(
            "checks.tcp = [{ address = \"127.0.0.1:123\", vrf = \"blue\" }, \"127.0.0.1:124\"]",
        );
        let lines = missing_lines(&config, |_| false, (1000, 1000));
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].starts_with("service \"ntp\": check \"")
                && lines[0].ends_with(" runs in VRF blue: entering its network namespace needs CAP_SYS_ADMIN, which this process lacks (its systemd unit must have CAP_SYS_ADMIN in CapabilityBoundingSet= and, with User=, in AmbientCapabilities=; see dist/anycastd.service), and RestrictNamespaces= must allow net"),
            "{lines:?}"
        );
        // Held: nothing to say.
        let held = missing_lines(
            &config,
            |cap| cap == Capability::CAP_SYS_ADMIN,
            (1000, 1000),
        );
        assert_eq!(held, Vec::<String>::new());
    }

    #[test]
    fn an_exec_check_as_another_user_needs_setuid_and_setgid_unless_it_is_this_user() {
        let config = config(
            "checks.exec = [{ command = \"/bin/true\", user = \"root\", name = \"as-root\" }, \"/bin/true\"]",
        );
        let lines = missing_lines(&config, |cap| cap == Capability::CAP_SETGID, (1000, 1000));
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].starts_with("service \"ntp\": check \"as-root\" runs as user \"root\": switching to it needs CAP_SETUID, which this process lacks (its systemd unit must have CAP_SETUID in "),
            "{lines:?}"
        );
        assert_eq!(
            missing_lines(&config, |_| false, (0, 0)),
            Vec::<String>::new(),
            "already that user"
        );
        assert_eq!(
            missing_lines(&config, |_| true, (1000, 1000)),
            Vec::<String>::new()
        );
    }
}
