//! Validation: the TOML tree ([`super::tree`]) walked against the schema, each problem named
//! by line and key path, every problem reported at once, section by section.

use super::duration::parse_duration;
use super::kind::{Item, KindItem};
use super::routing::{loaders, BackendLoader, Report, Sections};
use super::tree::{Key, Node, Value};
use super::*;
use ipnet::IpNet;
use std::net::IpAddr;

/// Validate config text, its checks being of the kinds of `kinds`. Every problem is returned,
/// sorted by line.
pub fn parse(text: &str, kinds: &'static dyn Registry) -> Result<Config, Vec<Problem>> {
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
        exec_line: None,
        fleet_files: Vec::new(),
        prefix_items: Default::default(),
        kinds: kinds.kinds(),
        fleet_keys: Vec::new(),
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

/// A routing kind and its section's node (`None`: the file has none).
type SectionNode<'a> = (&'static dyn BackendLoader, Option<&'a Node>);

pub(super) struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub(super) fn new(text: &str) -> LineIndex {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { starts }
    }

    pub(super) fn line(&self, offset: usize) -> usize {
        match self.starts.binary_search(&offset) {
            Ok(i) => i + 1,
            Err(i) => i,
        }
    }
}

pub(super) struct Validator {
    pub(super) lines: LineIndex,
    pub(super) problems: Vec<Problem>,
    /// The line and key of the first exec check seen.
    pub(super) exec_line: Option<(usize, String)>,
    /// The `[fleet]` TLS and credential files with their line and key (checked by `load`).
    pub(super) fleet_files: Vec<(usize, String, std::path::PathBuf)>,
    /// Where each parsed prefix item is, by (the service's `prefixes` path, index among its
    /// parsed prefixes): its key path and offset (so that rules across services name the
    /// item, not the service).
    pub(super) prefix_items: std::collections::HashMap<(String, usize), (String, usize)>,
    /// The check kinds (`checks.KIND`).
    pub(super) kinds: Vec<&'static dyn KindLoader>,
    /// Where each service's `fleet` key is (it needs a `[fleet]` table).
    pub(super) fleet_keys: Vec<(usize, String)>,
}

/// A table being validated: its entries, and which keys were consumed.
pub(super) struct Table<'a> {
    pub(super) entries: &'a [(Key, Node)],
    pub(super) path: String,
    pub(super) used: Vec<bool>,
    /// The keys asked for (present or not): what an unknown key may have meant.
    pub(super) asked: Vec<String>,
}

/// The edit distance of `a` and `b` (insertions, deletions, substitutions, and swaps of
/// two neighbours: `rsie` is one step from `rise`).
fn distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// The asked-for key `key` most likely meant (at most two edits away, and closer than
/// half its length), if any.
fn meant<'k>(key: &str, asked: &'k [String]) -> Option<&'k str> {
    asked
        .iter()
        .map(|k| (distance(key, k), k.as_str()))
        .filter(|(d, k)| *d > 0 && *d <= 2 && *d * 2 < k.chars().count())
        .min()
        .map(|(_, k)| k)
}

pub(super) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

impl Validator {
    pub(super) fn problem(
        &mut self,
        span_start: usize,
        path: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.problems.push(Problem {
            line: self.lines.line(span_start),
            path: path.into(),
            message: message.into(),
        });
    }

    pub(super) fn table<'a>(&mut self, node: &'a Node, path: &str) -> Option<Table<'a>> {
        match &node.value {
            Value::Table(entries) => Some(Table {
                entries,
                path: path.to_owned(),
                used: vec![false; entries.len()],
                asked: Vec::new(),
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
    pub(super) fn take<'a>(&self, table: &mut Table<'a>, name: &str) -> Option<&'a Node> {
        table.asked.push(name.to_owned());
        let index = table.entries.iter().position(|(k, _)| k.name == name)?;
        table.used[index] = true;
        Some(&table.entries[index].1)
    }

    /// Report every key of `table` that was not taken.
    pub(super) fn finish(&mut self, table: Table<'_>) {
        for ((key, _), used) in table.entries.iter().zip(table.used) {
            if !used {
                let message = match meant(&key.name, &table.asked) {
                    Some(k) => format!("unknown key (did you mean {k}?)"),
                    None => "unknown key".to_owned(),
                };
                self.problem(key.span.start, join(&table.path, &key.name), message);
            }
        }
    }

    pub(super) fn string(&mut self, node: &Node, path: &str) -> Option<String> {
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

    pub(super) fn positive_u32(&mut self, node: &Node, path: &str) -> Option<u32> {
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

    pub(super) fn duration(&mut self, node: &Node, path: &str) -> Option<Duration> {
        match parse_duration(&node.value) {
            Ok(d) => Some(d),
            Err(message) => {
                self.problem(node.span.start, path, message);
                None
            }
        }
    }

    pub(super) fn root(&mut self, root: &Node, text: &str) -> Option<Config> {
        let mut top = self.table(root, "")?;
        let journal = match self.take(&mut top, "journal") {
            Some(node) => self.journal(node),
            None => Some(JournalConfig::default_at(PathBuf::from(
                DEFAULT_JOURNAL_PATH,
            ))),
        };
        let (routing, section_nodes) = self.routing_sections(&mut top);
        let hooks = match self.take(&mut top, "hooks") {
            Some(node) => self.hooks(node),
            None => Some(Vec::new()),
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
        let netns_dir = match self.take(&mut top, "checks") {
            Some(node) => self.checks_section(node),
            None => Some(PathBuf::from(DEFAULT_NETNS_DIR)),
        };
        let metrics_listen = match self.take(&mut top, "metrics") {
            Some(node) => self.metrics(node),
            None => Some(None),
        };
        let fleet = match self.take(&mut top, "fleet") {
            Some(node) => self.fleet(node).map(Some),
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
        if let Some(services) = &services {
            let routes: Vec<&Prefix> = services.iter().flat_map(|s| &s.prefixes).collect();
            for (loader, node) in section_nodes {
                loader.check_use(
                    node,
                    &routes,
                    &mut Report {
                        validator: &mut *self,
                    },
                );
            }
        }
        if matches!(fleet, Some(None)) {
            for (at, path) in std::mem::take(&mut self.fleet_keys) {
                self.problem(
                    at,
                    path,
                    "the fleet guard needs a [fleet] table (how to reach etcd)",
                );
            }
        }
        Some(Config {
            services: services?,
            journal: journal?,
            routing: routing?,
            hooks: hooks?,
            daemon: daemon?,
            control: control?,
            metrics_listen: metrics_listen?,
            fleet: fleet?,
            netns_dir: netns_dir?,
            hash: fnv1a_hex(text.as_bytes()),
            exec_line: self.exec_line.clone(),
            fleet_files: self.fleet_files.clone(),
        })
    }

    /// The sections of the routing kinds (`[KEY]`, each read by its kind), in the order of
    /// [`crate::routing::KINDS`], with their nodes (for [`BackendLoader::check_use`]).
    fn routing_sections<'a>(
        &mut self,
        top: &mut Table<'a>,
    ) -> (Option<Sections>, Vec<SectionNode<'a>>) {
        let mut sections = Some(Vec::new());
        let mut nodes = Vec::new();
        for loader in loaders() {
            let node = self.take(top, loader.key());
            nodes.push((loader, node));
            let section = match node {
                Some(node) => match self.table(node, loader.key()) {
                    Some(mut table) => {
                        let section = loader.section(Some(&mut KindItem {
                            validator: &mut *self,
                            item: Item::Table(node, &mut table),
                            path: loader.key(),
                        }));
                        self.finish(table);
                        section
                    }
                    None => None,
                },
                None => loader.section(None),
            };
            match (section, &mut sections) {
                (Some(section), Some(list)) => list.push((loader, section)),
                _ => sections = None,
            }
        }
        (sections.map(Sections), nodes)
    }

    pub(super) fn journal(&mut self, node: &Node) -> Option<JournalConfig> {
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

    /// `[hooks] on_transition`: items are a program's absolute path, or tables with
    /// `command`, `args` and `timeout`. A config with hooks is a program the daemon runs: the
    /// file rule of exec checks applies (the first hook's line is noted).
    pub(super) fn hooks(&mut self, node: &Node) -> Option<Vec<Hook>> {
        let mut table = self.table(node, "hooks")?;
        let list = self.take(&mut table, "on_transition");
        self.finish(table);
        let Some(list) = list else {
            return Some(Vec::new());
        };
        let Value::Array(items) = &list.value else {
            self.problem(
                list.span.start,
                "hooks.on_transition",
                format!(
                    "must be an array of programs (absolute paths or tables), not {}",
                    list.value.kind()
                ),
            );
            return None;
        };
        let mut hooks = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let path = format!("hooks.on_transition[{i}]");
            if self.exec_line.is_none() {
                self.exec_line = Some((self.lines.line(item.span.start), path.clone()));
            }
            let (command_node, command_path, args, timeout) = match &item.value {
                Value::Table(_) => {
                    let Some(mut t) = self.table(item, &path) else {
                        ok = false;
                        continue;
                    };
                    let command = self.take(&mut t, "command");
                    let args = match self.take(&mut t, "args") {
                        Some(n) => self.strings(n, &join(&path, "args")),
                        None => Some(Vec::new()),
                    };
                    let timeout = match self.take(&mut t, "timeout") {
                        Some(n) => self.duration(n, &join(&path, "timeout")),
                        None => Some(DEFAULT_HOOK_TIMEOUT),
                    };
                    self.finish(t);
                    let Some(command) = command else {
                        self.problem(
                            item.span.start,
                            join(&path, "command"),
                            "missing required key",
                        );
                        ok = false;
                        continue;
                    };
                    (command, join(&path, "command"), args, timeout)
                }
                _ => (
                    item,
                    path.clone(),
                    Some(Vec::new()),
                    Some(DEFAULT_HOOK_TIMEOUT),
                ),
            };
            let command = self.string(command_node, &command_path).and_then(|c| {
                if c.starts_with('/') && !c.ends_with('/') {
                    Some(c)
                } else {
                    self.problem(
                        command_node.span.start,
                        &command_path,
                        format!("{c:?} must be an absolute path of a program (no shell: write \"/bin/sh\", \"-c\", ... in args for one)"),
                    );
                    None
                }
            });
            match (command, args, timeout) {
                (Some(command), Some(args), Some(timeout)) => hooks.push(Hook {
                    command,
                    args,
                    timeout,
                }),
                _ => ok = false,
            }
        }
        ok.then_some(hooks)
    }

    pub(super) fn control(&mut self, node: &Node) -> Option<ControlConfig> {
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

    /// `[checks]`: `netns_dir` (absolute).
    pub(super) fn checks_section(&mut self, node: &Node) -> Option<PathBuf> {
        let mut table = self.table(node, "checks")?;
        let dir = match self.take(&mut table, "netns_dir") {
            Some(n) => self.string(n, "checks.netns_dir").and_then(|d| {
                if d.starts_with('/') {
                    Some(PathBuf::from(d))
                } else {
                    self.problem(
                        n.span.start,
                        "checks.netns_dir",
                        format!("{d:?} must be an absolute path"),
                    );
                    None
                }
            }),
            None => Some(PathBuf::from(DEFAULT_NETNS_DIR)),
        };
        self.finish(table);
        dir
    }

    pub(super) fn metrics(&mut self, node: &Node) -> Option<Option<String>> {
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

    pub(super) fn daemon(&mut self, node: &Node) -> Option<DaemonConfig> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_key_suggests_the_asked_key_it_most_likely_meant() {
        let asked: Vec<String> = ["rise", "fall", "interval", "control", "vrf", "checks"]
            .map(str::to_owned)
            .to_vec();
        assert_eq!(meant("rsie", &asked), Some("rise"), "a swap is one edit");
        assert_eq!(meant("intervall", &asked), Some("interval"));
        assert_eq!(meant("contrl", &asked), Some("control"));
        assert_eq!(meant("vfr", &asked), Some("vrf"));
        assert_eq!(meant("colour", &asked), None, "nothing close");
        assert_eq!(
            meant("fa", &asked),
            None,
            "two edits of a four-letter key is a guess"
        );
        assert_eq!(
            meant("rise", &asked),
            None,
            "the key itself is not a suggestion"
        );
    }
}
