//! The fleet guard: the last sites of a service never withdraw together.
//!
//! Every site (one anycastd) publishes the state of each guarded service under its own key in
//! etcd, `PREFIX/SERVICE/sites/SITE`, attached to a lease it keeps alive, so a dead site's
//! keys vanish by themselves. A health withdrawal of a guarded service asks first: it is
//! granted only if at least the service's minimum of *other* sites would still announce.
//!
//! This module owns the rule (what a count allows), the published record and the words; the
//! etcd conversation is [`store`], the task that holds the lease and answers the drivers is
//! [`guard`]. It must not touch the routing daemons or the journal: the driver does.

pub mod guard;
pub mod store;

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// Default `[fleet] prefix`.
pub const DEFAULT_PREFIX: &str = "/anycastd";
/// Default `[fleet] lease`.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(10);

/// `[fleet]`: how this site reaches etcd and what it is called there.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// etcd's client URLs (`http://` or `https://`).
    pub endpoints: Vec<String>,
    /// This site's name in the fleet (default: the hostname).
    pub site: String,
    /// Keys live under it (no trailing slash).
    pub prefix: String,
    /// A site that stops renewing its lease is gone after this.
    pub lease: Duration,
    /// What a guarded withdrawal does while etcd cannot be reached.
    pub on_unreachable: OnUnreachable,
    /// TLS: the CA that signed etcd's certificate, and this site's certificate and key.
    pub tls: Option<Tls>,
    /// etcd user and the file holding its password.
    pub user: Option<(String, PathBuf)>,
}

impl Settings {
    /// `why` said of this site's etcd: `etcd at https://10.0.0.1:2379: connecting: connection
    /// refused` (the blind answers in the journal and status name where etcd was looked for).
    pub fn at(&self, why: &str) -> String {
        format!("etcd at {}: {why}", self.endpoints.join(", "))
    }
}

/// `[fleet] on_unreachable`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnUnreachable {
    /// Keep guarded services announced (a fleet that cannot tell fails open).
    Hold,
    /// Decide alone, as without a guard.
    Local,
}

impl OnUnreachable {
    /// The config's word.
    pub fn name(self) -> &'static str {
        match self {
            OnUnreachable::Hold => "hold",
            OnUnreachable::Local => "local",
        }
    }
}

/// `[fleet] ca`, `cert`, `key`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Tls {
    /// The CA certificate (PEM) etcd's certificate must chain to.
    pub ca: Option<PathBuf>,
    /// This site's client certificate (PEM).
    pub cert: Option<PathBuf>,
    /// Its private key (PEM).
    pub key: Option<PathBuf>,
}

/// A service's `fleet = { ... }`: how many sites must keep announcing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// `min_announcing = N`: at least N sites announce.
    MinAnnouncing(u32),
    /// `max_withdrawn = "P%"`: at most P % of the sites (rounded down) are withdrawn.
    MaxWithdrawnPercent(u32),
}

impl Rule {
    /// How many sites must still announce in a fleet of `sites` sites.
    pub fn needed(self, sites: u32) -> u32 {
        match self {
            Rule::MinAnnouncing(n) => n,
            Rule::MaxWithdrawnPercent(p) => {
                let withdrawable = (u64::from(sites) * u64::from(p.min(100))) / 100;
                sites.saturating_sub(withdrawable as u32)
            }
        }
    }

    /// In words, for the journal and status (`minimum 3`, `at most 25% withdrawn`).
    pub fn text(self) -> String {
        match self {
            Rule::MinAnnouncing(n) => format!("minimum {n}"),
            Rule::MaxWithdrawnPercent(p) => format!("at most {p}% withdrawn"),
        }
    }
}

/// A site's state of a service, as published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord, Hash)]
#[serde(rename_all = "snake_case")]
pub enum SiteState {
    /// Not decided yet (starting).
    Starting,
    /// Announcing: healthy.
    Announcing,
    /// Announcing although unhealthy: its withdrawal is held by the guard.
    Held,
    /// Announcing de-preferred: unhealthy under `on_unhealthy = "deprefer"`, never a
    /// withdrawal to ask for (it still draws traffic where no better route is).
    #[serde(rename = "de-preferred")]
    Depreferred,
    /// Withdrawn by its health checks (granted, or decided alone).
    Withdrawn,
    /// Withdrawn by an operator's drain, a stop or a reload.
    Drained,
}

impl SiteState {
    /// Whether a site in this state attracts traffic (counts towards the minimum).
    pub fn announces(self) -> bool {
        matches!(
            self,
            SiteState::Announcing | SiteState::Held | SiteState::Depreferred
        )
    }

    /// The word (as in the JSON and the metrics' `state` label).
    pub fn name(self) -> &'static str {
        match self {
            SiteState::Starting => "starting",
            SiteState::Announcing => "announcing",
            SiteState::Held => "held",
            SiteState::Depreferred => "de-preferred",
            SiteState::Withdrawn => "withdrawn",
            SiteState::Drained => "drained",
        }
    }

    /// What a service in state `state`, announced at `wanted` (`Machine::wanted`), publishes
    /// (an unhealthy one whose withdrawal is held publishes [`SiteState::Held`] through the
    /// guard instead).
    pub fn of(state: &anycastd_fsm::State, wanted: Option<anycastd_fsm::Level>) -> SiteState {
        match state {
            anycastd_fsm::State::Starting => SiteState::Starting,
            anycastd_fsm::State::Healthy => SiteState::Announcing,
            anycastd_fsm::State::Unhealthy if wanted.is_some() => SiteState::Depreferred,
            anycastd_fsm::State::Unhealthy => SiteState::Withdrawn,
            anycastd_fsm::State::Draining(_) => SiteState::Drained,
        }
    }

    /// Every state, for the metrics.
    pub const ALL: [SiteState; 6] = [
        SiteState::Starting,
        SiteState::Announcing,
        SiteState::Held,
        SiteState::Depreferred,
        SiteState::Withdrawn,
        SiteState::Drained,
    ];
}

/// The value of `PREFIX/SERVICE/sites/SITE` (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    /// The state.
    pub state: SiteState,
    /// Why, in words.
    pub cause: String,
    /// Since when (ms since the epoch, the site's own clock: shown, never compared).
    pub since_ms: i64,
}

/// The key of a site's record of a service.
pub fn site_key(prefix: &str, service: &str, site: &str) -> String {
    format!("{prefix}/{service}/sites/{site}")
}

/// The key prefix of every site's record of a service.
pub fn sites_prefix(prefix: &str, service: &str) -> String {
    format!("{prefix}/{service}/sites/")
}

/// The fleet as one site saw it when it asked: how many sites announce (itself excluded),
/// how many there are (itself included), and how many must.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    /// Other sites announcing (announcing or held).
    pub others_announcing: u32,
    /// Sites in all, this one included.
    pub sites: u32,
    /// Sites that must still announce.
    pub needed: u32,
}

impl Count {
    /// Whether this site may withdraw: the others announcing are enough without it.
    pub fn grants(self) -> bool {
        self.others_announcing >= self.needed
    }
}

/// What the guard answered a withdrawal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Withdraw: enough other sites announce (and this site is published withdrawn).
    Granted(Count),
    /// Stay announced: too few other sites announce.
    Held(Count),
    /// etcd cannot be reached (since when, why): `on_unreachable` decides.
    Blind {
        /// Since when (ms).
        since_ms: i64,
        /// Why, in words.
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_withdrawn_rounds_the_withdrawable_sites_down() {
        let rule = Rule::MaxWithdrawnPercent(25);
        assert_eq!(rule.needed(9), 7, "25% of 9 is 2.25: 2 may be withdrawn");
        assert_eq!(rule.needed(4), 3);
        assert_eq!(rule.needed(3), 3, "25% of 3 rounds to 0: none may go");
        assert_eq!(Rule::MaxWithdrawnPercent(100).needed(5), 0);
        assert_eq!(Rule::MinAnnouncing(3).needed(9), 3);
    }

    #[test]
    fn a_withdrawal_is_granted_only_when_enough_others_announce() {
        let count = |others| Count {
            others_announcing: others,
            sites: 5,
            needed: 3,
        };
        assert!(count(3).grants());
        assert!(!count(2).grants());
    }

    #[test]
    fn the_published_record_is_json_with_the_state_as_a_word() {
        let p = Published {
            state: SiteState::Held,
            cause: "check resolver failed".into(),
            since_ms: 5,
        };
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(
            json,
            r#"{"state":"held","cause":"check resolver failed","since_ms":5}"#
        );
        assert!(SiteState::Held.announces() && !SiteState::Withdrawn.announces());
    }
}
