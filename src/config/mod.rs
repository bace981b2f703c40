//! The configuration file: parsing and validation.
//!
//! Two stages: the TOML text becomes a spanned tree (`tree`), then the validator walks it and
//! builds the typed [`Config`], collecting every problem as a [`Problem`] with the line and
//! key path, so that an operator sees all errors at once. Nothing outside this module ever
//! sees an unvalidated value, but a check kind's parser, which reads its own keys through
//! [`KindItem`]. The kinds are not known here: they come as a [`Registry`] (see [`kind`]).
//! It must not touch a routing daemon, the network or the journal.
//!
//! The routing daemons are not known here either: each kind's folder reads its section and
//! its prefix items (see [`routing`]), found through [`crate::routing::KINDS`].
//!
//! The schema is the original anycastd's (`[services.NAME]`, `prefixes.KIND`,
//! `checks.KIND`, each item a string or a table) plus the keys documented in docs/configuration.md.

mod checks;
mod duration;
mod fleet;
pub use fleet::endpoint_problem;
pub mod kind;
pub mod routing;
pub mod schema;
mod services;
pub mod tree;
mod validate;

pub use duration::{duration_of_seconds, parse_duration_text};
pub use kind::{KindItem, KindLoader, KindSettings, Registry};
pub use routing::{
    valid_vrf_name, BackendLoader, BackendSection, DaemonSettings, Report, RouteAt, Sections,
};
pub use services::MAX_DRAIN_GRACE;
pub use tree::{Key, Node, Value};
pub use validate::{parse, parse_prefix, valid_service_name};

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Default config path of `run`.
pub const DEFAULT_PATH: &str = "/etc/anycastd/config.toml";
/// Default `[checks] netns_dir`: where the namespaces of netns-backed VRFs are (iproute2's,
/// and the routing daemons').
pub const DEFAULT_NETNS_DIR: &str = "/run/netns";
/// Default journal directory.
pub const DEFAULT_JOURNAL_PATH: &str = "/var/lib/anycastd/journal";
/// Default check interval.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
/// Default control socket.
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/anycastd/anycastd.sock";
/// Default shutdown timeout.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// The validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Services in file order.
    pub services: Vec<Service>,
    /// `[journal]`.
    pub journal: JournalConfig,
    /// The sections of the routing daemons (`[KEY]`, each read by its kind).
    pub routing: Sections,
    /// `[hooks] on_transition`: programs run on every state transition.
    pub hooks: Vec<Hook>,
    /// `[daemon]`.
    pub daemon: DaemonConfig,
    /// `[control]`.
    pub control: ControlConfig,
    /// `[metrics] listen`: the Prometheus endpoint's address, off when `None`.
    pub metrics_listen: Option<String>,
    /// `[fleet]`: the fleet guard's etcd (off when `None`).
    pub fleet: Option<crate::fleet::Settings>,
    /// `[checks] netns_dir`: where the namespaces of netns-backed VRFs are.
    pub netns_dir: PathBuf,
    /// FNV-1a 64 of the file's bytes, hex.
    pub hash: String,
    /// The line and key of the first exec check, if any: such a config is a program, so its
    /// file must be safe from other users ([`load`]).
    pub exec_line: Option<(usize, String)>,
    /// The `[fleet]` files (`ca`, `cert`, `key`, `password_file`) with their line and key:
    /// [`load`] refuses one that cannot be read (the guard would stay blind for good).
    pub fleet_files: Vec<(usize, String, PathBuf)>,
}

/// `[journal]`.
#[derive(Debug, Clone, PartialEq)]
pub struct JournalConfig {
    /// Directory of the journal.
    pub path: PathBuf,
    /// Records older than this are deleted.
    pub max_age: Duration,
    /// At most this many records per service.
    pub max_records_per_service: u64,
    /// At most this many records in all.
    pub max_records: u64,
    /// The journal's page cache (MiB).
    pub cache_mib: u64,
}

/// Default journal retention by age (90 days).
pub const DEFAULT_JOURNAL_MAX_AGE: Duration = Duration::from_secs(90 * 86_400);
/// Default records kept per service.
pub const DEFAULT_MAX_RECORDS_PER_SERVICE: u64 = 100_000;
/// Default records kept in all.
pub const DEFAULT_MAX_RECORDS: u64 = 1_000_000;
/// Default size of the journal's page cache (MiB).
pub const DEFAULT_JOURNAL_CACHE_MIB: u64 = 8;
/// Largest journal page cache (MiB).
pub const MAX_JOURNAL_CACHE_MIB: u64 = 1024;

impl JournalConfig {
    /// The store's tuning for this configuration (its page cache).
    pub fn store_options(&self) -> anycastd_journal::Options {
        anycastd_journal::Options {
            cache_capacity_bytes: self.cache_mib.saturating_mul(1024 * 1024),
            ..anycastd_journal::Options::default()
        }
    }

    fn default_at(path: PathBuf) -> JournalConfig {
        JournalConfig {
            path,
            max_age: DEFAULT_JOURNAL_MAX_AGE,
            max_records_per_service: DEFAULT_MAX_RECORDS_PER_SERVICE,
            max_records: DEFAULT_MAX_RECORDS,
            cache_mib: DEFAULT_JOURNAL_CACHE_MIB,
        }
    }
}

/// A program run on every state transition (`[hooks] on_transition`).
#[derive(Debug, Clone, PartialEq)]
pub struct Hook {
    /// Absolute path of the program (no shell).
    pub command: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// A run longer than this is killed (its whole process group).
    pub timeout: Duration,
}

/// Default time limit of one hook run.
pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// `[control]`: the control socket.
#[derive(Debug, Clone, PartialEq)]
pub struct ControlConfig {
    /// Unix socket path.
    pub socket: PathBuf,
    /// Members of this group may read (status, history).
    pub group: Option<String>,
    /// Members of this group may also act (stop).
    pub admin_group: Option<String>,
}

/// `[daemon]`.
#[derive(Debug, Clone, PartialEq)]
pub struct DaemonConfig {
    /// How long a shutdown may take to withdraw everything.
    pub shutdown_timeout: Duration,
}

/// One service.
#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    /// Its name (`[A-Za-z0-9_.-]{1,64}`).
    pub name: String,
    /// Consecutive healthy verdicts to announce.
    pub rise: u32,
    /// Consecutive unhealthy verdicts to withdraw.
    pub fall: u32,
    /// Its prefixes.
    pub prefixes: Vec<Prefix>,
    /// Its checks.
    pub checks: Vec<Check>,
    /// Flap damping, off when `None`.
    pub damping: Option<anycastd_fsm::Damping>,
    /// How many checks (shadow checks aside) must pass for a healthy verdict; 0: all.
    pub require: u32,
    /// The poll interval while a rise or fall is being confirmed (`None`: each check's own).
    pub fast_interval: Option<Duration>,
    /// What unhealthy means: withdraw (the default) or stay announced de-preferred.
    pub on_unhealthy: anycastd_fsm::OnUnhealthy,
    /// The attributes of a de-preferred announcement (also added to a graceful drain's),
    /// normalized; `None` when not configured.
    pub deprefer: Option<crate::bgp::Attributes>,
    /// How long a drain or stop keeps an announced service announced with
    /// GRACEFUL_SHUTDOWN before withdrawing it (zero: at once, the default; a removal by a
    /// reload withdraws at once).
    pub drain_grace: Duration,
    /// `fleet`: the fleet guard's rule (`None`: not guarded).
    pub fleet: Option<crate::fleet::Rule>,
}

/// One prefix of a service and the backend that announces it (`prefixes.KEY`: the instance
/// of a routing kind that the item's keys name, and the place there, read by the kind).
pub type Prefix = crate::routing::Route;

/// One check: what every kind has, and the kind's own settings.
#[derive(Debug, Clone)]
pub struct Check {
    /// Its name, unique in its service (for Cabourotte, the check's name there).
    pub name: String,
    /// Poll interval.
    pub interval: Duration,
    /// Time limit of one poll.
    pub timeout: Duration,
    /// How long it may stay pending before it counts as failed.
    pub pending_timeout: Duration,
    /// Polled, journaled and shown, but never part of the verdict.
    pub shadow: bool,
    /// Its failure means the local service is dead: a withdrawal it causes is never held by
    /// the fleet guard.
    pub hard: bool,
    /// The VRF it runs in (`None`: the daemon's own network namespace).
    pub vrf: Option<String>,
    /// The kind and its settings (a type of the kind's module in `checks/`).
    pub kind: Arc<dyn KindSettings>,
}

impl PartialEq for Check {
    fn eq(&self, other: &Check) -> bool {
        // Written out: a derived `==` cannot compare the `dyn` settings.
        self.name == other.name
            && self.interval == other.interval
            && self.timeout == other.timeout
            && self.pending_timeout == other.pending_timeout
            && self.shadow == other.shadow
            && self.hard == other.hard
            && self.vrf == other.vrf
            && self.kind.same(other.kind.as_ref())
    }
}

impl Check {
    /// What, with its kind and name, identifies the check: its kind's identity, and the VRF
    /// it runs in (a check moved to another VRF is a new check).
    pub fn identity(&self) -> String {
        match &self.vrf {
            Some(vrf) => format!("{} vrf {vrf}", self.kind.identity()),
            None => self.kind.identity(),
        }
    }

    /// The kind's settings as their own type, when the check is of that kind.
    pub fn settings<K: KindSettings>(&self) -> Option<&K> {
        self.kind.as_any().downcast_ref::<K>()
    }
}

/// One problem found in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line.
    pub line: usize,
    /// Key path (`services.ntp.checks.cabourotte[1].interval`), empty for syntax errors.
    pub path: String,
    /// What is wrong, lowercase, no trailing dot.
    pub message: String,
}

/// Why a config could not be loaded.
#[derive(Debug)]
pub enum LoadError {
    /// The file could not be read (missing, a directory, permission).
    Unreadable {
        /// The path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The file was read but is invalid.
    Invalid {
        /// The path.
        path: PathBuf,
        /// Every problem, in line order.
        problems: Vec<Problem>,
    },
}

impl LoadError {
    /// One line per problem: `FILE:LINE: KEY: MESSAGE`.
    pub fn lines(&self) -> Vec<String> {
        match self {
            LoadError::Unreadable { path, reason } => {
                vec![format!("{}: cannot read config: {reason}", path.display())]
            }
            LoadError::Invalid { path, problems } => problems
                .iter()
                .map(|p| {
                    if p.path.is_empty() {
                        format!("{}:{}: {}", path.display(), p.line, p.message)
                    } else {
                        format!("{}:{}: {}: {}", path.display(), p.line, p.path, p.message)
                    }
                })
                .collect(),
        }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.lines().join("\n"))
    }
}

/// Read and validate the config file at `path`, its checks being of the kinds of `kinds`.
pub fn load(path: &Path, kinds: &'static dyn Registry) -> Result<Config, LoadError> {
    let unreadable = |reason: String| LoadError::Unreadable {
        path: path.to_path_buf(),
        reason,
    };
    if path.is_dir() {
        return Err(unreadable("is a directory".into()));
    }
    let bytes = std::fs::read(path).map_err(|e| unreadable(io_reason(&e)))?;
    let text = String::from_utf8(bytes).map_err(|_| LoadError::Invalid {
        path: path.to_path_buf(),
        problems: vec![Problem {
            line: 1,
            path: String::new(),
            message: "not valid UTF-8".into(),
        }],
    })?;
    let config = parse(&text, kinds).map_err(|problems| LoadError::Invalid {
        path: path.to_path_buf(),
        problems,
    })?;
    // The fleet guard's TLS and credential files: one that cannot be read would leave the
    // guard blind for good (with on_unreachable = "hold", every guarded withdrawal held).
    let problems: Vec<Problem> = config
        .fleet_files
        .iter()
        .filter_map(|(line, key, file)| {
            let reason = match std::fs::read(file) {
                _ if file.is_dir() => "is a directory, not a file".to_owned(),
                Ok(bytes) if bytes.is_empty() => "is empty".to_owned(),
                Ok(_) => return None,
                Err(e) => format!("cannot be read: {}", io_reason(&e)),
            };
            Some(Problem {
                line: *line,
                path: key.clone(),
                message: format!("{}: {reason}", file.display()),
            })
        })
        .collect();
    if !problems.is_empty() {
        return Err(LoadError::Invalid {
            path: path.to_path_buf(),
            problems,
        });
    }
    if let Some((line, key)) = &config.exec_line {
        if let Some(message) = unsafe_for_exec(path) {
            return Err(LoadError::Invalid {
                path: path.to_path_buf(),
                problems: vec![Problem {
                    line: *line,
                    path: key.clone(),
                    message,
                }],
            });
        }
    }
    Ok(config)
}

/// Why a config file with exec checks must not be used, if it must not: exec checks make the
/// file a program the daemon runs, so (as OpenSSH asks of its files) it must be writable by
/// no one but its owner, and owned by root or by the user the daemon runs as. The file itself
/// is checked (through symbolic links), not the directories above it.
pub fn unsafe_for_exec(path: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => {
            return Some(format!(
                "exec checks: cannot check the file's owner and mode: {}",
                io_reason(&e)
            ))
        }
    };
    let mode = meta.mode() & 0o7777;
    let me = nix::unistd::geteuid().as_raw();
    let owner = meta.uid();
    if owner != 0 && owner != me {
        return Some(format!(
            "exec checks and hooks make this file a program, but it is owned by uid {owner}, neither root nor the daemon's user (uid {me}): chown it"
        ));
    }
    if mode & 0o022 != 0 {
        let who = match (mode & 0o020 != 0, mode & 0o002 != 0) {
            (true, true) => "its group and others",
            (true, false) => "its group",
            _ => "others",
        };
        return Some(format!(
            "exec checks and hooks make this file a program, but {who} can write it (mode {mode:04o}): chmod go-w it"
        ));
    }
    None
}

/// The control socket a config file names, read leniently: for client commands while the
/// file does not validate (the moment after a rejected reload). A file that parses as TOML is
/// asked for `[control] socket`; one that does not (a syntax error) is read line by line for
/// `socket = "..."` under `[control]` (or `control.socket = "..."`). `None` when it cannot
/// tell.
pub fn control_socket_of(path: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(path).ok()?;
    if let Ok(value) = text.parse::<toml::Table>() {
        return value
            .get("control")?
            .get("socket")?
            .as_str()
            .map(PathBuf::from);
    }
    let mut table = String::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.starts_with('[') {
            table = line
                .trim_matches(|c| c == '[' || c == ']')
                .trim()
                .to_owned();
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim().trim_matches('"');
        let wanted = (table == "control" && key == "socket")
            || (table.is_empty() && key == "control.socket");
        if wanted {
            let value = value.trim();
            let quoted = value
                .strip_prefix('"')
                .and_then(|v| v.split_once('"'))
                .or_else(|| value.strip_prefix('\'').and_then(|v| v.split_once('\'')));
            if let Some((socket, _)) = quoted {
                return Some(PathBuf::from(socket));
            }
        }
    }
    None
}

/// An I/O error in words (it lives in [`crate::io_text`], which the routing backends use too).
pub use crate::io_text::io_reason;

/// A stable fingerprint of the config bytes: FNV-1a, 64 bit, as 16 hex digits.
pub fn fnv1a_hex(bytes: &[u8]) -> String {
    use std::hash::Hasher;
    let mut hasher = fnv::FnvHasher::default();
    hasher.write(bytes);
    format!("{:016x}", hasher.finish())
}

impl Config {
    /// How to reach the backends.
    pub fn routing(&self) -> crate::routing::Settings {
        self.routing.settings()
    }

    /// The sections of the routing daemons that differ in `new` (a change needs a restart).
    pub fn routing_sections_changed(&self, new: &Config) -> Vec<&'static str> {
        self.routing.changed(&new.routing)
    }

    /// Every prefix, grouped by backend.
    pub fn prefixes_by_backend(
        &self,
    ) -> BTreeMap<crate::routing::BackendId, Vec<(&Service, &Prefix)>> {
        let mut map: BTreeMap<crate::routing::BackendId, Vec<(&Service, &Prefix)>> =
            BTreeMap::new();
        for service in &self.services {
            for prefix in &service.prefixes {
                map.entry(prefix.backend.clone())
                    .or_default()
                    .push((service, prefix));
            }
        }
        map
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_control_socket_is_found_in_a_file_with_a_syntax_error() {
        let dir = std::env::temp_dir().join(format!("acd-sock-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("config.toml");
        for (text, expected) in [
            (
                "[control]\nsocket = \"/tmp/a.sock\"\n[services.dns]\nrise = 2x\n",
                Some("/tmp/a.sock"),
            ),
            (
                "control.socket = '/tmp/b.sock' # here\n[services\n",
                Some("/tmp/b.sock"),
            ),
            ("[journal]\nsocket = \"/tmp/no.sock\"\nrise = =\n", None),
            ("[control]\nsocket = \"/tmp/c.sock\"\n", Some("/tmp/c.sock")),
        ] {
            let _ = std::fs::write(&path, text);
            assert_eq!(
                control_socket_of(&path),
                expected.map(PathBuf::from),
                "{text}"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
