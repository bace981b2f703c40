//! The configuration file: parsing and validation.
//!
//! Two stages (STYLE 6): the TOML text becomes a spanned tree (`tree`), then the validator
//! walks it and builds the typed [`Config`], collecting every problem as a [`Problem`] with the
//! line and key path, so that an operator sees all errors at once. Nothing outside this module
//! ever sees an unvalidated value. It must not touch FRR, the network or the journal.
//!
//! The schema is the original anycastd's (`[services.NAME]`, `prefixes.frrouting`,
//! `checks.cabourotte`, each item a string or a table) plus the keys documented in the README.

mod tree;

use ipnet::IpNet;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tree::{Key, Node, Value};

/// Default config path of `run`.
pub const DEFAULT_PATH: &str = "/etc/anycastd/config.toml";
/// Default vtysh binary.
pub const DEFAULT_VTYSH: &str = "/usr/bin/vtysh";
/// Default Cabourotte base URL.
pub const DEFAULT_CABOUROTTE_URL: &str = "http://127.0.0.1:9013";
/// Default journal directory.
pub const DEFAULT_JOURNAL_PATH: &str = "/var/lib/anycastd/journal";
/// Default check interval.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
/// Default vtysh timeout.
pub const DEFAULT_VTYSH_TIMEOUT: Duration = Duration::from_secs(10);
/// Default control socket.
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/anycastd/anycastd.sock";
/// Default drift-repair period.
pub const DEFAULT_RECONCILE_INTERVAL: Duration = Duration::from_secs(30);
/// Default shutdown timeout.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// The validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Services in file order.
    pub services: Vec<Service>,
    /// `[journal]`.
    pub journal: JournalConfig,
    /// `[frrouting]`.
    pub frrouting: FrrConfig,
    /// `[daemon]`.
    pub daemon: DaemonConfig,
    /// `[control]`.
    pub control: ControlConfig,
    /// `[metrics] listen`: the Prometheus endpoint's address, off when `None`.
    pub metrics_listen: Option<String>,
    /// FNV-1a 64 of the file's bytes, hex.
    pub hash: String,
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

/// `[frrouting]`.
#[derive(Debug, Clone, PartialEq)]
pub struct FrrConfig {
    /// Extra arguments before every vtysh command (e.g. `--vty_socket DIR`).
    pub vtysh_args: Vec<String>,
    /// Time limit of one vtysh process.
    pub vtysh_timeout: Duration,
    /// How often the writers re-read FRR and repair drift.
    pub reconcile_interval: Duration,
}

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
}

/// One prefix of a service and the backend that announces it (`prefixes.frrouting`: the FRR
/// of a vtysh binary).
pub type Prefix = crate::routing::Route;

/// One check: what every kind has, and the kind's own settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// Its name, unique in its service (for Cabourotte, the check's name there).
    pub name: String,
    /// Poll interval.
    pub interval: Duration,
    /// Time limit of one poll.
    pub timeout: Duration,
    /// How long it may stay pending before it counts as failed.
    pub pending_timeout: Duration,
    /// The kind and its settings.
    pub kind: CheckKind,
}

/// A check's kind and the settings only that kind has.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckKind {
    /// A result read from Cabourotte's HTTP API (`checks.cabourotte`).
    Cabourotte {
        /// Base URL, without a trailing slash.
        url: String,
        /// Results older than this fail as stale.
        max_age: Option<Duration>,
    },
}

impl CheckKind {
    /// The kind's name as the config file and the journal spell it.
    pub fn name(&self) -> &'static str {
        match self {
            CheckKind::Cabourotte { .. } => "cabourotte",
        }
    }

    /// The kind's name in log lines (`Cabourotte health check "dns" failed.`).
    pub fn label(&self) -> &'static str {
        match self {
            CheckKind::Cabourotte { .. } => "Cabourotte",
        }
    }

    /// What, with the kind and the check's name, identifies the check (the Cabourotte URL):
    /// a reload keeps the state of a check whose identity is unchanged.
    pub fn identity(&self) -> &str {
        match self {
            CheckKind::Cabourotte { url, .. } => url,
        }
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

/// Read and validate the config file at `path`.
pub fn load(path: &Path) -> Result<Config, LoadError> {
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
    parse(&text).map_err(|problems| LoadError::Invalid {
        path: path.to_path_buf(),
        problems,
    })
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

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string().to_lowercase(),
    }
}

/// Validate config text. Every problem is returned, sorted by line.
pub fn parse(text: &str) -> Result<Config, Vec<Problem>> {
    let lines = LineIndex::new(text);
    let root: Node = match tree::parse(text) {
        Ok(root) => root,
        Err(e) => {
            let line = lines.line(e.offset);
            let message = e.message.trim().to_lowercase().replace('\n', " ");
            return Err(vec![Problem {
                line,
                path: String::new(),
                message: format!("toml syntax error: {message}"),
            }]);
        }
    };
    let mut v = Validator {
        lines,
        problems: Vec::new(),
    };
    let config = v.root(&root, text);
    if v.problems.is_empty() {
        if let Some(config) = config {
            return Ok(config);
        }
    }
    let mut problems = v.problems;
    problems.sort_by_key(|p| p.line);
    Err(problems)
}

struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(text: &str) -> LineIndex {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { starts }
    }

    fn line(&self, offset: usize) -> usize {
        match self.starts.binary_search(&offset) {
            Ok(i) => i + 1,
            Err(i) => i,
        }
    }
}

struct Validator {
    lines: LineIndex,
    problems: Vec<Problem>,
}

/// A table being validated: its entries, and which keys were consumed.
struct Table<'a> {
    entries: &'a [(Key, Node)],
    path: String,
    used: Vec<bool>,
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

impl Validator {
    fn problem(&mut self, span_start: usize, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            line: self.lines.line(span_start),
            path: path.into(),
            message: message.into(),
        });
    }

    fn table<'a>(&mut self, node: &'a Node, path: &str) -> Option<Table<'a>> {
        match &node.value {
            Value::Table(entries) => Some(Table {
                entries,
                path: path.to_owned(),
                used: vec![false; entries.len()],
            }),
            other => {
                self.problem(
                    node.span.start,
                    path,
                    format!("must be a table, not {}", other.kind()),
                );
                None
            }
        }
    }

    /// Take key `name` from `table` (marking it used).
    fn take<'a>(&self, table: &mut Table<'a>, name: &str) -> Option<&'a Node> {
        let index = table.entries.iter().position(|(k, _)| k.name == name)?;
        table.used[index] = true;
        Some(&table.entries[index].1)
    }

    /// Report every key of `table` that was not taken.
    fn finish(&mut self, table: Table<'_>) {
        for ((key, _), used) in table.entries.iter().zip(table.used) {
            if !used {
                self.problem(key.span.start, join(&table.path, &key.name), "unknown key");
            }
        }
    }

    fn string(&mut self, node: &Node, path: &str) -> Option<String> {
        match &node.value {
            Value::String(s) => Some(s.clone()),
            other => {
                self.problem(
                    node.span.start,
                    path,
                    format!("must be a string, not {}", other.kind()),
                );
                None
            }
        }
    }

    fn positive_u32(&mut self, node: &Node, path: &str) -> Option<u32> {
        match &node.value {
            Value::Integer(n) if *n >= 1 && *n <= 1000 => u32::try_from(*n).ok(),
            Value::Integer(_) => {
                self.problem(node.span.start, path, "must be between 1 and 1000");
                None
            }
            other => {
                self.problem(
                    node.span.start,
                    path,
                    format!("must be an integer, not {}", other.kind()),
                );
                None
            }
        }
    }

    fn duration(&mut self, node: &Node, path: &str) -> Option<Duration> {
        match parse_duration(&node.value) {
            Ok(d) => Some(d),
            Err(message) => {
                self.problem(node.span.start, path, message);
                None
            }
        }
    }

    fn root(&mut self, root: &Node, text: &str) -> Option<Config> {
        let mut top = self.table(root, "")?;
        let journal = match self.take(&mut top, "journal") {
            Some(node) => self.journal(node),
            None => Some(JournalConfig::default_at(PathBuf::from(
                DEFAULT_JOURNAL_PATH,
            ))),
        };
        let frrouting = match self.take(&mut top, "frrouting") {
            Some(node) => self.frrouting(node),
            None => Some(FrrConfig {
                vtysh_args: Vec::new(),
                vtysh_timeout: DEFAULT_VTYSH_TIMEOUT,
                reconcile_interval: DEFAULT_RECONCILE_INTERVAL,
            }),
        };
        let daemon = match self.take(&mut top, "daemon") {
            Some(node) => self.daemon(node),
            None => Some(DaemonConfig {
                shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            }),
        };
        let control = match self.take(&mut top, "control") {
            Some(node) => self.control(node),
            None => Some(ControlConfig {
                socket: PathBuf::from(DEFAULT_CONTROL_SOCKET),
                group: None,
                admin_group: None,
            }),
        };
        let metrics_listen = match self.take(&mut top, "metrics") {
            Some(node) => self.metrics(node),
            None => Some(None),
        };
        let services = match self.take(&mut top, "services") {
            Some(node) => self.services(node),
            None => {
                self.problem(0, "services", "missing required table");
                None
            }
        };
        self.finish(top);
        Some(Config {
            services: services?,
            journal: journal?,
            frrouting: frrouting?,
            daemon: daemon?,
            control: control?,
            metrics_listen: metrics_listen?,
            hash: fnv1a_hex(text.as_bytes()),
        })
    }

    fn journal(&mut self, node: &Node) -> Option<JournalConfig> {
        let mut table = self.table(node, "journal")?;
        let path = match self.take(&mut table, "path") {
            Some(n) => match self.string(n, "journal.path") {
                Some(s) if s.is_empty() => {
                    self.problem(n.span.start, "journal.path", "must not be empty");
                    None
                }
                other => other.map(PathBuf::from),
            },
            None => Some(PathBuf::from(DEFAULT_JOURNAL_PATH)),
        };
        let mut count = |v: &mut Validator, key: &str, default: u64, max: u64| -> Option<u64> {
            match v.take(&mut table, key) {
                Some(n) => match &n.value {
                    Value::Integer(i) if *i >= 1 && *i as u64 <= max => Some(*i as u64),
                    Value::Integer(i) if *i >= 1 => {
                        v.problem(
                            n.span.start,
                            format!("journal.{key}"),
                            format!("must be at most {max}"),
                        );
                        None
                    }
                    Value::Integer(_) => {
                        v.problem(n.span.start, format!("journal.{key}"), "must be at least 1");
                        None
                    }
                    other => {
                        v.problem(
                            n.span.start,
                            format!("journal.{key}"),
                            format!("must be an integer, not {}", other.kind()),
                        );
                        None
                    }
                },
                None => Some(default),
            }
        };
        let max_records_per_service = count(
            self,
            "max_records_per_service",
            DEFAULT_MAX_RECORDS_PER_SERVICE,
            u64::MAX,
        );
        let max_records = count(self, "max_records", DEFAULT_MAX_RECORDS, u64::MAX);
        let cache_mib = count(
            self,
            "cache_mib",
            DEFAULT_JOURNAL_CACHE_MIB,
            MAX_JOURNAL_CACHE_MIB,
        );
        let max_age = match self.take(&mut table, "max_age") {
            Some(n) => self.duration(n, "journal.max_age"),
            None => Some(DEFAULT_JOURNAL_MAX_AGE),
        };
        self.finish(table);
        Some(JournalConfig {
            path: path?,
            max_age: max_age?,
            max_records_per_service: max_records_per_service?,
            max_records: max_records?,
            cache_mib: cache_mib?,
        })
    }

    fn frrouting(&mut self, node: &Node) -> Option<FrrConfig> {
        let mut table = self.table(node, "frrouting")?;
        let vtysh_args = match self.take(&mut table, "vtysh_args") {
            Some(n) => match &n.value {
                Value::Array(items) => {
                    let mut args = Vec::new();
                    let mut ok = true;
                    for (i, item) in items.iter().enumerate() {
                        match self.string(item, &format!("frrouting.vtysh_args[{i}]")) {
                            Some(s) => args.push(s),
                            None => ok = false,
                        }
                    }
                    ok.then_some(args)
                }
                other => {
                    self.problem(
                        n.span.start,
                        "frrouting.vtysh_args",
                        format!("must be an array of strings, not {}", other.kind()),
                    );
                    None
                }
            },
            None => Some(Vec::new()),
        };
        let vtysh_timeout = match self.take(&mut table, "vtysh_timeout") {
            Some(n) => self.duration(n, "frrouting.vtysh_timeout"),
            None => Some(DEFAULT_VTYSH_TIMEOUT),
        };
        let reconcile_interval = match self.take(&mut table, "reconcile_interval") {
            Some(n) => self.duration(n, "frrouting.reconcile_interval"),
            None => Some(DEFAULT_RECONCILE_INTERVAL),
        };
        self.finish(table);
        Some(FrrConfig {
            vtysh_args: vtysh_args?,
            vtysh_timeout: vtysh_timeout?,
            reconcile_interval: reconcile_interval?,
        })
    }

    fn control(&mut self, node: &Node) -> Option<ControlConfig> {
        let mut table = self.table(node, "control")?;
        let socket = match self.take(&mut table, "socket") {
            Some(n) => match self.string(n, "control.socket") {
                Some(s) if !s.starts_with('/') => {
                    self.problem(n.span.start, "control.socket", "must be an absolute path");
                    None
                }
                other => other.map(PathBuf::from),
            },
            None => Some(PathBuf::from(DEFAULT_CONTROL_SOCKET)),
        };
        let mut group_key = |v: &mut Validator, key: &str| -> Option<Option<String>> {
            match v.take(&mut table, key) {
                Some(n) => match v.string(n, &format!("control.{key}")) {
                    Some(s) if s.is_empty() => {
                        v.problem(n.span.start, format!("control.{key}"), "must not be empty");
                        None
                    }
                    other => other.map(Some),
                },
                None => Some(None),
            }
        };
        let group = group_key(self, "group");
        let admin_group = group_key(self, "admin_group");
        self.finish(table);
        Some(ControlConfig {
            socket: socket?,
            group: group?,
            admin_group: admin_group?,
        })
    }

    fn metrics(&mut self, node: &Node) -> Option<Option<String>> {
        let mut table = self.table(node, "metrics")?;
        let listen = match self.take(&mut table, "listen") {
            Some(n) => match self.string(n, "metrics.listen") {
                Some(s) if s.parse::<std::net::SocketAddr>().is_err() => {
                    self.problem(
                        n.span.start,
                        "metrics.listen",
                        format!("{s:?} is not an address and port like \"127.0.0.1:9250\" or \"[::1]:9250\""),
                    );
                    None
                }
                other => other.map(Some),
            },
            None => Some(None),
        };
        self.finish(table);
        listen
    }

    fn daemon(&mut self, node: &Node) -> Option<DaemonConfig> {
        let mut table = self.table(node, "daemon")?;
        let shutdown_timeout = match self.take(&mut table, "shutdown_timeout") {
            Some(n) => self.duration(n, "daemon.shutdown_timeout"),
            None => Some(DEFAULT_SHUTDOWN_TIMEOUT),
        };
        self.finish(table);
        Some(DaemonConfig {
            shutdown_timeout: shutdown_timeout?,
        })
    }

    fn services(&mut self, node: &Node) -> Option<Vec<Service>> {
        let table = self.table(node, "services")?;
        let mut services = Vec::new();
        let mut ok = true;
        for (key, node) in table.entries {
            let path = format!("services.{}", key.name);
            if !valid_service_name(&key.name) {
                self.problem(
                    key.span.start,
                    &path,
                    "service name must be 1-64 characters of A-Z a-z 0-9 _ . -",
                );
                ok = false;
            }
            match self.service(&key.name, node, &path) {
                Some(service) => services.push((node.span.start, service)),
                None => ok = false,
            }
        }
        if table.entries.is_empty() {
            self.problem(
                node.span.start,
                "services",
                "must define at least one service",
            );
            ok = false;
        }
        self.duplicate_prefixes(&services);
        ok.then(|| services.into_iter().map(|(_, s)| s).collect())
    }

    fn duplicate_prefixes(&mut self, services: &[(usize, Service)]) {
        let mut owner: HashMap<&Prefix, &str> = HashMap::new();
        for (span, service) in services {
            for prefix in &service.prefixes {
                match owner.get(prefix) {
                    Some(other) if *other != service.name => {
                        let other = other.to_string();
                        self.problem(
                            *span,
                            format!("services.{}.prefixes.frrouting", service.name),
                            format!(
                                "prefix {}{} is also in service \"{other}\"",
                                prefix.prefix,
                                vrf_suffix(&prefix.vrf)
                            ),
                        );
                    }
                    Some(_) => {
                        self.problem(
                            *span,
                            format!("services.{}.prefixes.frrouting", service.name),
                            format!(
                                "prefix {}{} is listed twice",
                                prefix.prefix,
                                vrf_suffix(&prefix.vrf)
                            ),
                        );
                    }
                    None => {
                        owner.insert(prefix, &service.name);
                    }
                }
            }
        }
    }

    fn service(&mut self, name: &str, node: &Node, path: &str) -> Option<Service> {
        let mut table = self.table(node, path)?;
        let rise = match self.take(&mut table, "rise") {
            Some(n) => self.positive_u32(n, &join(path, "rise")),
            None => Some(1),
        };
        let fall = match self.take(&mut table, "fall") {
            Some(n) => self.positive_u32(n, &join(path, "fall")),
            None => Some(1),
        };
        let damping = match self.take(&mut table, "damping") {
            Some(n) => self.damping(n, &join(path, "damping")).map(Some),
            None => Some(None),
        };
        let prefixes = match self.take(&mut table, "prefixes") {
            Some(n) => self.prefixes(n, &join(path, "prefixes")),
            None => {
                let line_start = node.span.start;
                self.problem(line_start, join(path, "prefixes"), "missing required key");
                None
            }
        };
        let checks = match self.take(&mut table, "checks") {
            Some(n) => self.checks(n, &join(path, "checks")),
            None => {
                self.problem(
                    node.span.start,
                    join(path, "checks"),
                    "missing required key",
                );
                None
            }
        };
        self.finish(table);
        Some(Service {
            name: name.to_owned(),
            rise: rise?,
            fall: fall?,
            prefixes: prefixes?,
            checks: checks?,
            damping: damping?,
        })
    }

    fn damping(&mut self, node: &Node, path: &str) -> Option<anycastd_fsm::Damping> {
        let mut table = self.table(node, path)?;
        let half_life = match self.take(&mut table, "half_life") {
            Some(n) => self.duration(n, &join(path, "half_life")),
            None => {
                self.problem(
                    node.span.start,
                    join(path, "half_life"),
                    "missing required key",
                );
                None
            }
        };
        let mut number = |v: &mut Validator, key: &str, default: u32| -> Option<(u32, usize)> {
            match v.take(&mut table, key) {
                Some(n) => match &n.value {
                    Value::Integer(i) if (1..=1_000_000).contains(i) => {
                        Some((*i as u32, n.span.start))
                    }
                    _ => {
                        v.problem(
                            n.span.start,
                            join(path, key),
                            "must be an integer from 1 to 1000000",
                        );
                        None
                    }
                },
                None => Some((default, node.span.start)),
            }
        };
        let penalty = number(self, "penalty", 1000);
        let suppress = number(self, "suppress", 2000);
        let reuse = number(self, "reuse", 750);
        let max_suppress = match self.take(&mut table, "max_suppress") {
            Some(n) => self.duration(n, &join(path, "max_suppress")).map(Some),
            None => Some(None),
        };
        self.finish(table);
        let (half_life, (penalty, _), (suppress, _), (reuse, reuse_at), max_suppress) =
            (half_life?, penalty?, suppress?, reuse?, max_suppress?);
        if reuse >= suppress {
            self.problem(
                reuse_at,
                join(path, "reuse"),
                format!("must be less than suppress ({reuse} >= {suppress})"),
            );
            return None;
        }
        Some(anycastd_fsm::Damping {
            penalty,
            suppress,
            reuse,
            half_life,
            max_suppress: max_suppress.unwrap_or(half_life * 4),
        })
    }

    /// `prefixes` / `checks`: a table of type -> array of items, where each item is a string
    /// (filling the one required field) or a table.
    fn items<'a>(
        &mut self,
        node: &'a Node,
        path: &str,
        kind: &str,
        known: &str,
    ) -> Option<Vec<(String, &'a Node)>> {
        let mut table = self.table(node, path)?;
        let mut items = Vec::new();
        let mut ok = true;
        for (i, (key, value)) in table.entries.iter().enumerate() {
            let key_path = join(path, &key.name);
            if key.name != known {
                self.problem(
                    key.span.start,
                    &key_path,
                    format!("unknown {kind} type \"{}\" (known: {known})", key.name),
                );
                table.used[i] = true;
                ok = false;
                continue;
            }
            table.used[i] = true;
            match &value.value {
                Value::Array(list) => {
                    for (j, item) in list.iter().enumerate() {
                        items.push((format!("{key_path}[{j}]"), item));
                    }
                }
                other => {
                    self.problem(
                        value.span.start,
                        &key_path,
                        format!("must be an array, not {}", other.kind()),
                    );
                    ok = false;
                }
            }
        }
        self.finish(table);
        ok.then_some(items)
    }

    fn prefixes(&mut self, node: &Node, path: &str) -> Option<Vec<Prefix>> {
        let items = self.items(node, path, "prefix", "frrouting")?;
        if items.is_empty() {
            self.problem(
                node.span.start,
                path,
                "a service needs at least one prefix (it could never announce anything)",
            );
            return None;
        }
        let mut prefixes = Vec::new();
        let mut ok = true;
        for (item_path, item) in items {
            match self.prefix(item, &item_path) {
                Some(p) => prefixes.push(p),
                None => ok = false,
            }
        }
        ok.then_some(prefixes)
    }

    fn prefix(&mut self, node: &Node, path: &str) -> Option<Prefix> {
        let (prefix_node, vrf, vtysh) = match &node.value {
            Value::Table(_) => {
                let mut table = self.table(node, path)?;
                let prefix = self.take(&mut table, "prefix");
                let vrf = match self.take(&mut table, "vrf") {
                    Some(n) => self.vrf(n, &join(path, "vrf")).map(Some),
                    None => Some(None),
                };
                let vtysh = match self.take(&mut table, "vtysh") {
                    Some(n) => match self.string(n, &join(path, "vtysh")) {
                        Some(s) if s.is_empty() => {
                            self.problem(n.span.start, join(path, "vtysh"), "must not be empty");
                            None
                        }
                        other => other.map(PathBuf::from),
                    },
                    None => Some(PathBuf::from(DEFAULT_VTYSH)),
                };
                self.finish(table);
                let Some(prefix) = prefix else {
                    self.problem(
                        node.span.start,
                        join(path, "prefix"),
                        "missing required key",
                    );
                    return None;
                };
                (prefix, vrf?.flatten(), vtysh?)
            }
            _ => (node, None, PathBuf::from(DEFAULT_VTYSH)),
        };
        let prefix_path = if std::ptr::eq(prefix_node, node) {
            path.to_owned()
        } else {
            join(path, "prefix")
        };
        let prefix = match &prefix_node.value {
            Value::String(s) => match parse_prefix(s) {
                Ok(p) => p,
                Err(message) => {
                    self.problem(prefix_node.span.start, prefix_path, message);
                    return None;
                }
            },
            other => {
                self.problem(
                    prefix_node.span.start,
                    prefix_path,
                    format!(
                        "must be a string like \"203.0.113.53/32\", not {}",
                        other.kind()
                    ),
                );
                return None;
            }
        };
        Some(Prefix {
            prefix,
            vrf,
            backend: crate::routing::BackendId::frr(vtysh),
        })
    }

    /// A VRF name; the empty string means the default VRF (as in the original).
    fn vrf(&mut self, node: &Node, path: &str) -> Option<Option<String>> {
        let name = self.string(node, path)?;
        if name.is_empty() {
            return Some(None);
        }
        if name.len() > 36
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        {
            self.problem(
                node.span.start,
                path,
                format!(
                    "VRF name {name:?} must be 1-36 characters of A-Z a-z 0-9 _ . - (it is pasted into vtysh commands)"
                ),
            );
            return None;
        }
        Some(Some(name))
    }

    fn checks(&mut self, node: &Node, path: &str) -> Option<Vec<Check>> {
        let items = self.items(node, path, "check", "cabourotte")?;
        let mut checks: Vec<Check> = Vec::new();
        let mut ok = true;
        for (item_path, item) in items {
            match self.check(item, &item_path) {
                Some(c) => {
                    if checks.iter().any(|o| o.name == c.name) {
                        self.problem(
                            item.span.start,
                            &item_path,
                            format!("check \"{}\" appears twice in this service", c.name),
                        );
                        ok = false;
                    }
                    checks.push(c)
                }
                None => ok = false,
            }
        }
        ok.then_some(checks)
    }

    fn check(&mut self, node: &Node, path: &str) -> Option<Check> {
        let mut name = None;
        let mut url = Some(DEFAULT_CABOUROTTE_URL.to_owned());
        let mut interval = Some(DEFAULT_INTERVAL);
        let mut timeout = None;
        let mut pending_timeout = None;
        let mut max_age = None;
        match &node.value {
            Value::String(s) => name = Some(s.clone()),
            Value::Table(_) => {
                let mut table = self.table(node, path)?;
                match self.take(&mut table, "name") {
                    Some(n) => name = self.string(n, &join(path, "name")),
                    None => {
                        self.problem(node.span.start, join(path, "name"), "missing required key");
                    }
                }
                if let Some(n) = self.take(&mut table, "url") {
                    url = self.url(n, &join(path, "url"));
                }
                if let Some(n) = self.take(&mut table, "interval") {
                    interval = self.duration(n, &join(path, "interval"));
                }
                if let Some(n) = self.take(&mut table, "timeout") {
                    timeout = Some(self.duration(n, &join(path, "timeout")));
                }
                if let Some(n) = self.take(&mut table, "pending_timeout") {
                    pending_timeout = Some(self.duration(n, &join(path, "pending_timeout")));
                }
                if let Some(n) = self.take(&mut table, "max_age") {
                    max_age = Some(self.duration(n, &join(path, "max_age")));
                }
                self.finish(table);
            }
            other => {
                self.problem(
                    node.span.start,
                    path,
                    format!("must be a check name or a table, not {}", other.kind()),
                );
                return None;
            }
        }
        let name = name?;
        if name.is_empty() {
            self.problem(node.span.start, join(path, "name"), "must not be empty");
            return None;
        }
        let interval = interval?;
        let timeout = match timeout {
            Some(t) => t?,
            None => interval.min(Duration::from_secs(5)),
        };
        let pending_timeout = match pending_timeout {
            Some(t) => t?,
            None => (interval * 3).max(Duration::from_secs(10)),
        };
        let max_age = match max_age {
            Some(t) => Some(t?),
            None => None,
        };
        Some(Check {
            name,
            interval,
            timeout,
            pending_timeout,
            kind: CheckKind::Cabourotte { url: url?, max_age },
        })
    }

    fn url(&mut self, node: &Node, path: &str) -> Option<String> {
        let url = self.string(node, path)?;
        let ok = match reqwest::Url::parse(&url) {
            Ok(parsed) => {
                matches!(parsed.scheme(), "http" | "https")
                    && parsed.host_str().is_some()
                    && parsed.query().is_none()
                    && parsed.fragment().is_none()
            }
            Err(_) => false,
        };
        if !ok {
            self.problem(
                node.span.start,
                path,
                format!("{url:?} is not an http(s) URL like \"http://127.0.0.1:9013\""),
            );
            return None;
        }
        Some(url.trim_end_matches('/').to_owned())
    }
}

fn vrf_suffix(vrf: &Option<String>) -> String {
    match vrf {
        Some(v) => format!(" (VRF {v})"),
        None => String::new(),
    }
}

/// Service names are journal keys, log fields and metric labels.
pub fn valid_service_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// `203.0.113.53` -> /32, `2001:db8::1` -> /128, `192.0.2.0/24` as is; host bits are an error.
pub fn parse_prefix(text: &str) -> Result<IpNet, String> {
    if text.contains('/') {
        let net: IpNet = text
            .parse()
            .map_err(|_| format!("{text:?} is not an IP network"))?;
        if net.trunc() != net {
            return Err(format!(
                "{text:?} has host bits set (did you mean \"{}\"?)",
                net.trunc()
            ));
        }
        Ok(net)
    } else {
        let addr: IpAddr = text
            .parse()
            .map_err(|_| format!("{text:?} is not an IP address or network"))?;
        Ok(IpNet::from(addr))
    }
}

/// A duration given as text on the command line: `500ms`, `5s`, `2m`, `1h`, `1d`, or seconds.
pub fn parse_duration_text(text: &str) -> Result<Duration, String> {
    parse_duration(&Value::String(text.to_owned()))
}

/// The longest duration accepted anywhere (config, `--for`, `--since`).
const MAX_DURATION_SECONDS: f64 = 1e9;

/// A duration: a number of seconds (integer or float) or a string like `500ms`, `5s`, `2m`,
/// `1h`, `90d`, `2w`.
fn parse_duration(value: &Value) -> Result<Duration, String> {
    let positive = |seconds: f64| {
        if !(seconds.is_finite() && seconds > 0.0) {
            Err("must be greater than 0".to_owned())
        } else if seconds >= MAX_DURATION_SECONDS {
            Err("too long: at most 1000000000 seconds (about 31 years)".to_owned())
        } else {
            Ok(Duration::from_secs_f64(seconds))
        }
    };
    match value {
        Value::Integer(n) => positive(*n as f64),
        Value::Float(f) => positive(*f),
        Value::String(s) => {
            let s = s.trim();
            if s.starts_with('P') || s.starts_with('p') {
                return Err(format!(
                    "{s:?}: ISO-8601 durations are not accepted; write seconds or a string like \"5s\" or \"500ms\""
                ));
            }
            let split = s
                .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
                .unwrap_or(s.len());
            let (number, unit) = s.split_at(split);
            let number: f64 = number.parse().map_err(|_| {
                format!(
                    "{s:?} is not a duration (write seconds or a string like \"5s\" or \"500ms\")"
                )
            })?;
            let scale = match unit.trim() {
                "ms" => 0.001,
                "s" | "" => 1.0,
                "m" => 60.0,
                "h" => 3600.0,
                "d" => 86400.0,
                "w" => 7.0 * 86400.0,
                _ => {
                    return Err(format!(
                    "{s:?} is not a duration (units: ms, s, m, h, d, w; e.g. \"5s\" or \"500ms\")"
                ))
                }
            };
            positive(number * scale)
        }
        other => Err(format!(
            "must be a number of seconds or a string like \"5s\", not {}",
            other.kind()
        )),
    }
}

/// FNV-1a, 64 bit, as 16 hex digits: a stable fingerprint of the config bytes.
pub fn fnv1a_hex(bytes: &[u8]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}")
}

impl Config {
    /// How to reach the backends.
    pub fn routing(&self) -> crate::routing::Settings {
        crate::routing::Settings {
            frr: crate::routing::frr::Settings {
                args: self.frrouting.vtysh_args.clone(),
                timeout: self.frrouting.vtysh_timeout,
            },
        }
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
