//! BIRD 2 (and 3) as a [`Backend`]: `route P blackhole;` lines in a file per static protocol
//! that anycastd owns and the operator's `protocol static` includes (a route announced with
//! attributes has them as its filter block, [`attrs`]), loaded with `configure` over the
//! control socket ([`control`]), read back with `show route protocol NAME all`, and shown
//! with `show route export BGP table T` for every established BGP protocol (and what the
//! table's best route carries, `show route P table T primary all`).
//!
//! The backend's instance is the control socket; a prefix's place is the name of the static
//! protocol it goes into ([`kind`] puts it in words: `BIRD protocol anycastd4`). The file of protocol `P` is
//! `DIR/bird-P.conf` (`[bird] include_dir`, default `/run/anycastd`). It is written whole:
//! what BIRD has in `P` now (read just before), with the batch's changes; to a temporary file,
//! fsynced, renamed over the old one, and the directory fsynced. BIRD's static protocol then
//! adds and removes only the routes that changed, and the BGP export filter text never
//! changes, so a change does not re-feed any session.
//!
//! Why the file is under `/run`: BIRD reads it whenever it starts or reconfigures. Under
//! `/run` (a tmpfs) it is gone after a reboot, and the include pattern docs/backends.md gives
//! (`include "/run/anycast[d]/bird-P.conf";`, a wildcard in the directory part that matches
//! only that directory) lets BIRD start without it; the shipped unit's `RuntimeDirectory=` removes it when the daemon
//! stops or dies. So BIRD never announces from a file no running anycastd stands behind,
//! and the start-up reconciliation applies to what BIRD has as it does to FRR's running
//! config.
//!
//! Reply codes: `configure` is accepted on `0003 Reconfigured`, `0004 Reconfiguration in
//! progress` (the normal answer of BIRD 3) and `0005 ... queueing new config`; after 0004 or
//! 0005 the apply waits (at most [`SETTLE`]) until BIRD shows the routes the file holds. Any
//! other code is a failure with BIRD's text (`8002 file:line:col message` names a config
//! error, `8007 Access denied` a restricted socket).

pub mod attrs;
pub mod control;

pub mod config;
pub mod kind;

pub use kind::KIND;

use super::{
    Backend, BackendId, BoxFuture, Change, Installed, KeptBeside, Place, PrefixKey,
    Reconfigurations, RuntimeFileUnknown, Shown, Snapshot,
};
use attrs::RouteOptions;
use control::{within, BirdError, Reply, Session};
use ipnet::IpNet;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The control socket used when a prefix names none.
pub const DEFAULT_SOCKET: &str = "/run/bird/bird.ctl";
/// Where the include files go by default.
pub const DEFAULT_INCLUDE_DIR: &str = "/run/anycastd";
/// The static protocol of an IPv4 prefix that names none.
pub const DEFAULT_PROTOCOL4: &str = "anycastd4";
/// The static protocol of an IPv6 prefix that names none.
pub const DEFAULT_PROTOCOL6: &str = "anycastd6";
/// After `0004`/`0005`, how long an apply waits for BIRD to show the new routes (at most half
/// the conversation's time limit); the read-back then tells what took.
pub const SETTLE: Duration = Duration::from_secs(2);

/// How every BIRD is reached (`[bird]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Where the include files are written (`include_dir`).
    pub include_dir: PathBuf,
    /// Time limit of one conversation with BIRD (`timeout`).
    pub timeout: Duration,
    /// How often the writer reads BIRD afresh and repairs drift (`reconcile_interval`).
    pub reconcile_interval: Duration,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            include_dir: PathBuf::from(DEFAULT_INCLUDE_DIR),
            timeout: Duration::from_secs(10),
            reconcile_interval: Duration::from_secs(30),
        }
    }
}

/// The include file of static protocol `protocol` in `dir`.
pub fn include_file(dir: &Path, protocol: &str) -> PathBuf {
    dir.join(format!("bird-{protocol}.conf"))
}

/// The static protocol a prefix goes into when it names none.
pub fn default_protocol(prefix: &IpNet) -> &'static str {
    match prefix {
        IpNet::V4(_) => DEFAULT_PROTOCOL4,
        IpNet::V6(_) => DEFAULT_PROTOCOL6,
    }
}

/// One BIRD, reached through one control socket.
#[derive(Debug, Clone)]
pub struct Bird {
    id: BackendId,
    socket: PathBuf,
    settings: Settings,
}

/// A protocol as `show protocols` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protocol {
    /// Its name.
    pub name: String,
    /// Its kind (`Static`, `BGP`, ...).
    pub proto: String,
    /// Its table (`---` for BGP, whose channels have their own).
    pub table: String,
    /// `up`, `down`, `start`, ...
    pub state: String,
    /// The rest of the line (`Established` for a BGP session that is up).
    pub info: String,
}

/// Parse the `1002` lines of `show protocols`.
pub fn parse_protocols(reply: &Reply) -> Vec<Protocol> {
    reply
        .with_code(1002)
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let name = words.next()?.to_owned();
            let proto = words.next()?.to_owned();
            let table = words.next()?.to_owned();
            let state = words.next()?.to_owned();
            // Since: one word (a time) or two (a date and a time).
            let rest: Vec<&str> = words.collect();
            let skip = match rest.as_slice() {
                [day, time, ..] if day.contains('-') && time.contains(':') => 2,
                [_, ..] => 1,
                [] => 0,
            };
            Some(Protocol {
                name,
                proto,
                table,
                state,
                info: rest[skip..].join(" "),
            })
        })
        .collect()
}

/// Whether a protocol's channel is IPv6, from `show protocols all NAME` (its `Channel ipv4`
/// or `Channel ipv6` line); `None` when it names neither.
pub fn channel_of(reply: &Reply) -> Option<bool> {
    reply.lines.iter().find_map(
        |(_, line)| match line.trim().strip_prefix("Channel ")?.trim() {
            "ipv4" => Some(false),
            "ipv6" => Some(true),
            _ => None,
        },
    )
}

/// The networks of a `show route` reply (its `1007` lines; an alternative route of the
/// same network is a line without one).
pub fn parse_routes(reply: &Reply) -> BTreeSet<IpNet> {
    reply
        .with_code(1007)
        .filter_map(|line| line.split_whitespace().next()?.parse::<IpNet>().ok())
        .collect()
}

/// What one BIRD has: its static protocols (with their table) and their routes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BirdState {
    /// Static protocol name -> (table, routes).
    pub statics: BTreeMap<String, (String, BTreeSet<IpNet>)>,
    /// What the routes not announced plain carry: (static protocol, prefix) -> options.
    pub options: BTreeMap<(String, IpNet), RouteOptions>,
}

impl BirdState {
    /// The routes of static protocol `protocol` with what each carries.
    fn routes_of(&self, protocol: &str) -> Option<BTreeMap<IpNet, RouteOptions>> {
        let (_, routes) = self.statics.get(protocol)?;
        Some(
            routes
                .iter()
                .map(|net| {
                    let options = self
                        .options
                        .get(&(protocol.to_owned(), *net))
                        .cloned()
                        .unwrap_or_default();
                    (*net, options)
                })
                .collect(),
        )
    }
}

impl Installed for BirdState {
    fn has_table(&self, place: &Place) -> bool {
        place.name().is_some_and(|p| self.statics.contains_key(p))
    }

    fn contains(&self, place: &Place, prefix: &IpNet) -> bool {
        place
            .name()
            .and_then(|p| self.statics.get(p))
            .is_some_and(|(_, routes)| routes.contains(prefix))
    }

    /// Read from BIRD (`show route protocol P all`): a prepend counts the ASes of the
    /// route's own path, whichever they are.
    fn attributes(&self, place: &Place, prefix: &IpNet) -> crate::bgp::Attributes {
        place
            .name()
            .and_then(|p| self.options.get(&(p.to_owned(), *prefix)))
            .map(RouteOptions::attributes)
            .unwrap_or_default()
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            attributes: self
                .options
                .iter()
                .map(|((protocol, net), o)| {
                    ((Place::named(protocol.clone()), *net), o.attributes())
                })
                .collect(),
            tables: self
                .statics
                .iter()
                .map(|(name, (_, routes))| (Place::named(name.clone()), routes.clone()))
                .collect(),
        }
    }
}

/// The control socket an include file was written for (its `# socket` line), if any.
pub fn file_socket(text: &str) -> Option<&str> {
    text.lines().find_map(|l| l.strip_prefix("# socket "))
}

/// The text of an include file holding `routes` (each with what it carries), written for the
/// BIRD of `socket`.
pub fn file_text(protocol: &str, socket: &Path, routes: &BTreeMap<IpNet, RouteOptions>) -> String {
    let mut text = format!(
        "# Written by anycastd for BIRD's protocol static {protocol}: the routes BIRD runs\n\
         # there, with anycastd's changes. Do not edit; anycastd rewrites it.\n\
         # socket {}\n",
        socket.display()
    );
    for (route, options) in routes {
        text.push_str(&format!(
            "route {route} blackhole{};\n",
            options.filter_block()
        ));
    }
    text
}

/// An include file's text without the routes of `out`: its other lines as they are.
pub fn file_without(text: &str, out: &BTreeSet<IpNet>) -> String {
    let mut kept = String::new();
    for line in text.lines() {
        let route = line
            .trim()
            .strip_prefix("route ")
            .and_then(|l| l.split_whitespace().next()?.parse::<IpNet>().ok());
        if route.is_some_and(|r| out.contains(&r)) {
            continue;
        }
        kept.push_str(line);
        kept.push('\n');
    }
    kept
}

/// The routes of an include file's text (its `route P ...;` lines).
pub fn file_routes(text: &str) -> BTreeSet<IpNet> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("route "))
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

/// Write `text` to `path` atomically: a temporary file beside it, fsynced, renamed over it,
/// and the directory fsynced.
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::create_dir_all(dir)?;
    {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
    }
    // BIRD runs as its own user: it must be able to read the file.
    std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

impl Bird {
    /// The BIRD of backend `id` (its instance is the control socket).
    pub fn new(id: &BackendId, settings: &Settings) -> Bird {
        Bird {
            id: id.clone(),
            socket: PathBuf::from(&id.instance),
            settings: settings.clone(),
        }
    }

    /// Its control socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    async fn state_in(session: &mut Session) -> Result<(BirdState, Vec<Protocol>), BirdError> {
        let protocols = parse_protocols(&session.command("show protocols").await?);
        let mut state = BirdState::default();
        for p in protocols.iter().filter(|p| p.proto == "Static") {
            let reply = session
                .command(&format!("show route protocol {} all", p.name))
                .await?;
            for (net, options) in attrs::parse_route_options(&reply) {
                state.options.insert((p.name.clone(), net), options);
            }
            state
                .statics
                .insert(p.name.clone(), (p.table.clone(), parse_routes(&reply)));
        }
        Ok((state, protocols))
    }

    /// Write the include files of the protocols `changes` touch and ask BIRD to load them:
    /// each file is what BIRD runs, less every withdrawal wanted (`withdrawing`: of this
    /// batch or waiting for a retry; taking a route out cannot make a file BIRD refuses),
    /// plus this batch's announcements. A change whose family is not its protocol's channel
    /// fails before anything is written; when BIRD refuses the configuration, the files are
    /// put back without this batch's announcements, so that one bad announcement cannot
    /// fail anyone's next `configure`, while the withdrawals stay in them for the next
    /// `configure` that goes through, or BIRD's next start.
    async fn configure(
        &self,
        installed: &BirdState,
        changes: &[Change],
        withdrawing: &[PrefixKey],
    ) -> Result<(), BirdError> {
        // Per protocol: what BIRD runs less the withdrawals wanted (the file put back after
        // a refusal), and this batch's changes to it, in order.
        let mut kept: BTreeMap<&str, BTreeMap<IpNet, RouteOptions>> = BTreeMap::new();
        let mut edits: BTreeMap<&str, Vec<&Change>> = BTreeMap::new();
        for change in changes {
            let Some(protocol) = change.place.name() else {
                return Err(self.missing(&change.place));
            };
            if !kept.contains_key(protocol) {
                let Some(mut now) = installed.routes_of(protocol) else {
                    return Err(self.missing(&change.place));
                };
                let out = in_protocol(withdrawing, protocol);
                now.retain(|net, _| !out.contains(net));
                kept.insert(protocol, now);
            }
            edits.entry(protocol).or_default().push(change);
        }
        within(&self.socket, self.settings.timeout, async {
            let (mut session, _) = Session::open(&self.socket).await?;
            for protocol in kept.keys() {
                let reply = session
                    .command(&format!("show protocols all {protocol}"))
                    .await?;
                let channel = channel_of(&reply);
                if let Some(change) = changes.iter().find(|c| {
                    c.announce
                        && c.place.name() == Some(*protocol)
                        && channel.is_some_and(|v6| v6 != c.prefix.addr().is_ipv6())
                }) {
                    return Err(BirdError::Family {
                        protocol: (*protocol).to_owned(),
                        prefix: change.prefix.to_string(),
                    });
                }
            }
            // The files to load: what is kept, with this batch's changes. A prepend repeats
            // the local AS of the BGP protocols the route goes to (`show protocols all`,
            // asked only when a change prepends).
            let mut bgp: Option<Vec<attrs::BgpProtocol>> = None;
            let mut files: BTreeMap<&str, BTreeMap<IpNet, RouteOptions>> = BTreeMap::new();
            for (protocol, base) in &kept {
                let edits = edits.get(protocol).map(Vec::as_slice).unwrap_or_default();
                let local_as = if edits
                    .iter()
                    .any(|c| c.announce && c.attributes.as_path_prepend > 0)
                {
                    let bgp = match &mut bgp {
                        Some(bgp) => bgp,
                        none => none.insert(attrs::parse_bgp_protocols(
                            &session.command("show protocols all").await?,
                        )),
                    };
                    let table = installed
                        .statics
                        .get(*protocol)
                        .map(|(table, _)| table.as_str())
                        .unwrap_or_default();
                    let asn =
                        attrs::local_as_for(bgp, table).map_err(|reason| BirdError::LocalAs {
                            socket: self.socket.display().to_string(),
                            protocol: (*protocol).to_owned(),
                            reason,
                        })?;
                    Some(asn)
                } else {
                    None
                };
                let mut routes = base.clone();
                for change in edits {
                    if change.announce {
                        routes.insert(
                            change.prefix,
                            RouteOptions::of(&change.attributes, local_as),
                        );
                    } else {
                        routes.remove(&change.prefix);
                    }
                }
                files.insert(*protocol, routes);
            }
            for (protocol, routes) in &files {
                self.write_file(protocol, routes)?;
            }
            let result =
                Self::load(&mut session, &self.socket, &files, self.settings.timeout).await;
            if result.is_err() {
                // Put back what BIRD runs less every withdrawal wanted (as an idle pass
                // writes it): no announcement of this run can fail anyone's next
                // configure, and whoever gets a configure through (the operator, after
                // fixing what BIRD refused) or starts BIRD withdraws them, also with
                // anycastd stopped.
                for (protocol, routes) in &kept {
                    let _ = self.write_file(protocol, routes);
                }
            }
            result
        })
        .await
    }

    fn write_file(
        &self,
        protocol: &str,
        routes: &BTreeMap<IpNet, RouteOptions>,
    ) -> Result<(), BirdError> {
        let path = include_file(&self.settings.include_dir, protocol);
        write_atomically(&path, &file_text(protocol, &self.socket, routes)).map_err(|e| {
            BirdError::File {
                path: path.display().to_string(),
                reason: crate::io_text::io_reason(&e),
            }
        })
    }

    /// `configure`, and after `0004`/`0005` wait until BIRD shows the routes of `files`
    /// (with what they carry).
    async fn load(
        session: &mut Session,
        socket: &Path,
        files: &BTreeMap<&str, BTreeMap<IpNet, RouteOptions>>,
        timeout: Duration,
    ) -> Result<(), BirdError> {
        let reply = session.command("configure").await?;
        match reply.code() {
            3..=5 => {
                // BIRD 3 answers 0004 while the old configuration winds down; 0005 queues
                // ours behind one in progress; even after BIRD 2's 0003 a removed route may
                // still show for a moment. Wait until the routes show as written.
                let deadline = tokio::time::Instant::now() + SETTLE.min(timeout / 2);
                loop {
                    let (state, _) = Self::state_in(session).await?;
                    let done = files
                        .iter()
                        .all(|(p, routes)| state.routes_of(p).as_ref() == Some(routes));
                    if done || tokio::time::Instant::now() >= deadline {
                        return Ok(());
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            code => Err(BirdError::Refused {
                socket: socket.display().to_string(),
                command: "configure".into(),
                code,
                message: reply.message().to_owned(),
            }),
        }
    }

    fn missing(&self, place: &Place) -> BirdError {
        BirdError::Refused {
            socket: self.socket.display().to_string(),
            command: "configure".into(),
            code: 0,
            message: self.missing_table(place).to_string(),
        }
    }
}

impl Backend for Bird {
    type Installed = BirdState;
    type Error = BirdError;

    fn id(&self) -> &BackendId {
        &self.id
    }

    async fn read(&self) -> Result<BirdState, BirdError> {
        within(&self.socket, self.settings.timeout, async {
            let (mut session, _) = Session::open(&self.socket).await?;
            Ok(Self::state_in(&mut session).await?.0)
        })
        .await
    }

    fn batches(&self, _: &BirdState, changes: &[Change]) -> Vec<std::ops::Range<usize>> {
        // One `configure` per run of changes to one protocol: it carries any number of
        // changes, and a protocol BIRD refuses fails only its own.
        let mut batches = Vec::new();
        let mut start = 0;
        for i in 1..=changes.len() {
            if i == changes.len() || changes[i].place != changes[start].place {
                batches.push(start..i);
                start = i;
            }
        }
        batches
    }

    async fn apply(
        &self,
        installed: &BirdState,
        changes: &[Change],
        withdrawing: &[PrefixKey],
    ) -> Result<(), BirdError> {
        self.configure(installed, changes, withdrawing).await
    }

    async fn inspect(&self, prefixes: &[PrefixKey]) -> Result<Vec<Shown>, BirdError> {
        within(&self.socket, self.settings.timeout, async {
            let (mut session, _) = Session::open(&self.socket).await?;
            let (state, protocols) = Self::state_in(&mut session).await?;
            // Per established BGP protocol and table: what it exports.
            let tables: BTreeSet<&str> = prefixes
                .iter()
                .filter_map(|(p, _)| state.statics.get(p.name()?))
                .map(|(table, _)| table.as_str())
                .collect();
            let mut exported: Vec<BTreeSet<IpNet>> = Vec::new();
            for bgp in protocols
                .iter()
                .filter(|p| p.proto == "BGP" && p.info.starts_with("Established"))
            {
                for table in &tables {
                    match session
                        .command(&format!("show route export {} table {table}", bgp.name))
                        .await
                    {
                        Ok(reply) => exported.push(parse_routes(&reply)),
                        // No channel of this BGP protocol for that table.
                        Err(BirdError::Refused { .. }) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            // What the best route of each prefix BIRD has in its table carries (before any
            // export filter, and before a BGP session prepends its own AS).
            let mut advertised = Vec::with_capacity(prefixes.len());
            for (protocol, prefix) in prefixes {
                let table = protocol
                    .name()
                    .and_then(|p| state.statics.get(p))
                    .filter(|_| state.contains(protocol, prefix));
                let Some((table, _)) = table else {
                    advertised.push(None);
                    continue;
                };
                let reply = match session
                    .command(&format!("show route {prefix} table {table} primary all"))
                    .await
                {
                    Ok(reply) => reply,
                    // Not a prefix of that table's family (9001): nothing to show.
                    Err(BirdError::Refused { .. }) => {
                        advertised.push(None);
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                advertised.push(parse_routes(&reply).contains(prefix).then(|| {
                    attrs::parse_route_options(&reply)
                        .get(prefix)
                        .map(RouteOptions::attributes)
                        .unwrap_or_default()
                }));
            }
            Ok(prefixes
                .iter()
                .zip(advertised)
                .map(|((protocol, prefix), advertised)| {
                    let configured = state.contains(protocol, prefix);
                    Shown {
                        advertised,
                        installed: configured.then(|| state.attributes(protocol, prefix)),
                        configured,
                        valid: configured,
                        established_peers: exported.iter().filter(|e| e.contains(prefix)).count(),
                    }
                })
                .collect())
        })
        .await
    }

    fn missing_table(&self, place: &Place) -> BirdError {
        BirdError::NoProtocol {
            socket: self.socket.display().to_string(),
            protocol: place.name().unwrap_or("(none)").to_owned(),
            include: include_pattern(&self.settings.include_dir, place.name().unwrap_or("(none)")),
        }
    }

    fn not_applied(&self, announce: bool) -> BirdError {
        BirdError::NotApplied {
            socket: self.socket.display().to_string(),
            include_dir: self.settings.include_dir.display().to_string(),
            announce,
        }
    }

    fn runtime_file(&self) -> Result<Option<super::RuntimeFile>, RuntimeFileUnknown> {
        Ok(Some(super::RuntimeFile {
            path: self.socket.clone(),
            origin: "the prefix's socket",
            hint: "the socket is the one BIRD listens on (bird -s)".to_owned(),
        }))
    }

    fn kept_beside(&self) -> Option<&dyn KeptBeside<BirdState, BirdError>> {
        Some(self)
    }

    fn reconfigurations(&self) -> Option<&dyn Reconfigurations> {
        Some(self)
    }
}

/// BIRD's include files, kept beside it: BIRD loads them at its next `configure` or start.
impl KeptBeside<BirdState, BirdError> for Bird {
    fn tidy<'a>(
        &'a self,
        installed: &'a BirdState,
        wanted: &'a [(PrefixKey, bool)],
    ) -> BoxFuture<'a, ()> {
        Box::pin(self.tidy_files(installed, wanted))
    }

    fn offline<'a>(&'a self, wanted: &'a [(PrefixKey, bool)]) -> BoxFuture<'a, ()> {
        Box::pin(self.files_offline(wanted))
    }

    fn known_while_down(&self, error: &BirdError, key: &PrefixKey) -> Option<String> {
        self.file_holds(error, key)
    }
}

/// The time of BIRD's last reconfiguration (`show status`).
impl Reconfigurations for Bird {
    fn mark(&self) -> BoxFuture<'_, Option<String>> {
        Box::pin(self.last_reconfigured())
    }
}

impl Bird {
    /// An include file that differs from what BIRD has in its protocol (edited by hand, or
    /// gone with the runtime directory at a restart of anycastd) is rewritten to what BIRD
    /// has: nothing changes in BIRD, and its next `configure` or start loads what it runs.
    async fn tidy_files(&self, installed: &BirdState, wanted: &[(PrefixKey, bool)]) {
        let protocols: BTreeSet<&str> = wanted.iter().filter_map(|((t, _), _)| t.name()).collect();
        for protocol in protocols {
            let Some(has) = installed.routes_of(protocol) else {
                continue;
            };
            // What BIRD has (with what each route carries), less the withdrawals it has not
            // taken yet (a refused configure): the file withdraws them at the next
            // configure, whoever runs it, or start.
            let withdrawn =
                in_protocol(wanted.iter().filter(|(_, a)| !a).map(|(k, _)| k), protocol);
            let mut routes = has.clone();
            routes.retain(|net, _| !withdrawn.contains(net));
            let path = include_file(&self.settings.include_dir, protocol);
            let text = file_text(protocol, &self.socket, &routes);
            let now = std::fs::read_to_string(&path).ok();
            if now.as_deref() == Some(text.as_str()) || now.is_none() && routes.is_empty() {
                continue;
            }
            let pending = has.len() - routes.len();
            match write_atomically(&path, &text) {
                Ok(()) => tracing::warn!(
                    file = %path.display(),
                    "The include file {} {}; rewritten to the {} route(s) BIRD has in protocol {protocol}{}.",
                    path.display(),
                    if now.is_some() { "differed from what BIRD runs (edited by hand?)" } else { "was missing" },
                    has.len(),
                    if pending > 0 { format!(", less {pending} withdrawal(s) BIRD has not taken yet") } else { String::new() }
                ),
                Err(e) => tracing::warn!(
                    file = %path.display(),
                    "Cannot rewrite the include file {}: {}.",
                    path.display(),
                    crate::io_text::io_reason(&e)
                ),
            }
        }
    }

    /// BIRD cannot be read (stopped, restarting): the withdrawals wanted now are taken out of
    /// the include files that exist, so that a BIRD that starts loads no route health
    /// withdrew meanwhile. Nothing is added (an announcement waits until BIRD answers and can
    /// say whether the route fits its protocol: a wrong-family route in a file would keep
    /// BIRD from starting at all), no file is created, and a running BIRD is not asked to
    /// load anything.
    async fn files_offline(&self, wanted: &[(PrefixKey, bool)]) {
        let mut by_protocol: BTreeMap<&str, Vec<(IpNet, bool)>> = BTreeMap::new();
        for ((protocol, prefix), announce) in wanted {
            if let Some(protocol) = protocol.name() {
                by_protocol
                    .entry(protocol)
                    .or_default()
                    .push((*prefix, *announce));
            }
        }
        for (protocol, wanted) in by_protocol {
            let path = include_file(&self.settings.include_dir, protocol);
            let Ok(now) = std::fs::read_to_string(&path) else {
                continue;
            };
            // A file another BIRD's writer owns (a reload moved the protocol) is not ours.
            if file_socket(&now).is_some_and(|s| Path::new(s) != self.socket) {
                continue;
            }
            let out: BTreeSet<IpNet> = wanted
                .iter()
                .filter(|(_, announce)| !announce)
                .map(|(prefix, _)| *prefix)
                .collect();
            if file_routes(&now).is_disjoint(&out) {
                continue;
            }
            // The other routes' lines as they are (with what each carries).
            if let Err(e) = write_atomically(&path, &file_without(&now, &out)) {
                tracing::warn!(
                    "{} (BIRD is unreachable; the file is to say what it loads when it returns)",
                    BirdError::File {
                        path: path.display().to_string(),
                        reason: crate::io_text::io_reason(&e),
                    }
                );
            }
        }
    }

    /// BIRD is not running (no socket, or nothing listens on it): it loads its include file
    /// when it starts, so say whether that file leaves the route out. Not proof that nothing
    /// announces it: another BIRD may run at another socket (a mistyped one in the config).
    fn file_holds(&self, error: &BirdError, key: &PrefixKey) -> Option<String> {
        let (Some(protocol), prefix) = (key.0.name(), key.1) else {
            return None;
        };
        if !matches!(error, BirdError::NotRunning { .. }) {
            return None;
        }
        let path = include_file(&self.settings.include_dir, protocol);
        let known = match std::fs::read_to_string(&path) {
            Err(_) => format!(
                "not applied; there is no include file {}, so a BIRD that starts loads no route \
                 of anycastd's into protocol {protocol}",
                path.display()
            ),
            Ok(text) => match file_socket(&text) {
                Some(other) if Path::new(other) != self.socket => format!(
                    "not applied; the include file {} is written for the BIRD at {other}",
                    path.display()
                ),
                _ if file_routes(&text).contains(&prefix) => format!(
                    "not applied; the include file {} still holds it",
                    path.display()
                ),
                _ => format!(
                    "not applied; the include file {} leaves it out, so a BIRD that starts \
                     does not announce it",
                    path.display()
                ),
            },
        };
        Some(known)
    }

    async fn last_reconfigured(&self) -> Option<String> {
        // A look every second while something is set aside: never long.
        let limit = self.settings.timeout.min(Duration::from_secs(2));
        let status = within(&self.socket, limit, async {
            let (mut session, _) = Session::open(&self.socket).await?;
            session.command("show status").await
        })
        .await
        .ok()?;
        last_reconfiguration(&status)
    }
}

/// The prefixes of `keys` in `protocol`.
fn in_protocol<'a>(
    keys: impl IntoIterator<Item = &'a PrefixKey>,
    protocol: &str,
) -> BTreeSet<IpNet> {
    keys.into_iter()
        .filter(|(table, _)| table.name() == Some(protocol))
        .map(|(_, prefix)| *prefix)
        .collect()
}

/// The time of BIRD's last reconfiguration in a `show status` reply (BIRD 2 and 3:
/// "Last reconfiguration on 2026-11-28 00:07:30.569", a continuation of the 1011 line).
fn last_reconfiguration(status: &Reply) -> Option<String> {
    status
        .lines
        .iter()
        .find_map(|(_, text)| text.trim().strip_prefix("Last reconfiguration on "))
        .map(str::to_owned)
}

/// The include line's pattern for protocol `protocol`: a wildcard in the directory's last
/// component, so that BIRD starts when the directory does not exist (BIRD 2.0.12 fails on a
/// missing directory before a wildcard, and accepts a wildcard that matches nothing).
pub fn include_pattern(dir: &Path, protocol: &str) -> String {
    let dir = dir.display().to_string();
    let mut chars = dir.chars();
    match chars.next_back() {
        Some(last) => format!("{}[{last}]/bird-{protocol}.conf", chars.as_str()),
        None => format!("bird-{protocol}.conf"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use control::Parser;

    fn reply(lines: &[&str]) -> Reply {
        let mut parser = Parser::default();
        for line in lines {
            parser.line(line).unwrap();
        }
        parser.finish()
    }

    #[test]
    fn protocols_of_bird_2() {
        // Recorded from BIRD 2.0.12 (`show protocols`, the socket's own lines).
        let r = reply(&[
            "2002-Name       Proto      Table      State  Since         Info",
            "1002-device1    Device     ---        up     21:13:41.587  ",
            " anycastd4  Static     master4    up     21:13:41.587  ",
            " peer_v4    BGP        ---        up     21:14:52.128  Established   ",
            " one        BGP        ---        down   2026-11-26 21:14:52  Error: Invalid next hop",
            "0000 ",
        ]);
        let p = parse_protocols(&r);
        assert_eq!(p.len(), 4);
        assert_eq!(
            (p[1].name.as_str(), p[1].proto.as_str(), p[1].table.as_str()),
            ("anycastd4", "Static", "master4")
        );
        assert_eq!(p[2].info, "Established");
        assert_eq!(p[3].state, "down");
        assert_eq!(p[3].info, "Error: Invalid next hop");
    }

    #[test]
    fn the_last_reconfiguration_of_show_status() {
        // Recorded from BIRD 2.0.12 (`show status`, the socket's own lines).
        let r = reply(&[
            "1000-BIRD 2.0.12",
            "1011-Router ID is 203.0.113.181",
            " Hostname is vm",
            " Current server time is 2026-11-28 00:07:32.015",
            " Last reboot on 2026-11-28 00:07:25.950",
            " Last reconfiguration on 2026-11-28 00:07:30.569",
            "0013 Daemon is up and running",
        ]);
        assert_eq!(
            last_reconfiguration(&r).as_deref(),
            Some("2026-11-28 00:07:30.569")
        );
        assert_eq!(
            last_reconfiguration(&reply(&["0013 Daemon is up and running"])),
            None
        );
    }

    #[test]
    fn routes_of_a_protocol() {
        let r = reply(&[
            "1007-Table master4:",
            " 192.0.2.1/32         blackhole [anycastd4 21:13:41.587] * (200)",
            "                      blackhole [other 21:13:41.587] (200)",
            " 192.0.2.7/32         blackhole [anycastd4 21:13:41.587] * (200)",
            "0000 ",
        ]);
        let nets: Vec<String> = parse_routes(&r).iter().map(|n| n.to_string()).collect();
        assert_eq!(nets, ["192.0.2.1/32", "192.0.2.7/32"]);
        assert!(parse_routes(&reply(&["0000 "])).is_empty());
    }

    /// A BIRD played from recorded replies: `answer(request, configured)` gives the reply
    /// lines of a request; `configured` counts the `configure` requests so far.
    fn fake_bird(
        dir: &Path,
        greeting: Option<&'static str>,
        answer: impl Fn(&str, usize) -> Vec<String> + Send + Sync + 'static,
    ) -> (PathBuf, tokio::task::JoinHandle<()>) {
        let socket = dir.join("bird.ctl");
        let listener = tokio::net::UnixListener::bind(&socket).unwrap();
        let answer = std::sync::Arc::new(answer);
        let configured = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let task = tokio::spawn(async move {
            use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (answer, configured) = (answer.clone(), configured.clone());
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let Some(greeting) = greeting else {
                        // Accepts, never answers.
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        return;
                    };
                    let _ = write.write_all(format!("{greeting}\n").as_bytes()).await;
                    let mut lines = tokio::io::BufReader::new(read).lines();
                    while let Ok(Some(request)) = lines.next_line().await {
                        if request == "configure" {
                            configured.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        }
                        let n = configured.load(std::sync::atomic::Ordering::SeqCst);
                        for line in answer(&request, n) {
                            let _ = write.write_all(format!("{line}\n").as_bytes()).await;
                        }
                    }
                });
            }
        });
        (socket, task)
    }

    /// A BIRD with a time limit long enough for a loaded machine.
    fn bird_at(socket: &Path, include_dir: &Path) -> Bird {
        bird_within(socket, include_dir, Duration::from_secs(5))
    }

    fn bird_within(socket: &Path, include_dir: &Path, timeout: Duration) -> Bird {
        Bird::new(
            &BackendId::bird(socket),
            &Settings {
                include_dir: include_dir.to_owned(),
                timeout,
                reconcile_interval: Duration::from_secs(30),
            },
        )
    }

    /// `show protocols` with the static protocol anycastd4.
    fn protocols() -> Vec<String> {
        [
            "2002-Name       Proto      Table      State  Since         Info",
            "1002-anycastd4  Static     master4    up     21:13:41.587  ",
            "0000 ",
        ]
        .map(str::to_owned)
        .to_vec()
    }

    /// `show protocols all anycastd4`, recorded from BIRD 2.0.12 (shortened).
    fn protocol_all() -> Vec<String> {
        [
            "2002-Name       Proto      Table      State  Since         Info",
            "1002-anycastd4  Static     master4    up     21:14:52.127  ",
            "1006-  Channel ipv4",
            "     State:          UP",
            "     Table:          master4",
            " ",
            "0000 ",
        ]
        .map(str::to_owned)
        .to_vec()
    }

    fn announce(prefix: &str) -> Change {
        Change {
            attributes: Default::default(),
            place: Place::named("anycastd4"),
            prefix: prefix.parse().unwrap(),
            announce: true,
        }
    }

    #[tokio::test]
    async fn bird_3_answers_in_progress_and_the_apply_waits_until_the_route_shows() {
        let dir = tempfile::tempdir().unwrap();
        // BIRD 3.2.1: `configure` answers 0004; the routes show a moment (two reads) later.
        let reads = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = reads.clone();
        let (socket, _server) = fake_bird(
            dir.path(),
            Some("0001 BIRD 3.2.1 ready."),
            move |request, configured| match request {
                "show protocols" => protocols(),
                "show protocols all anycastd4" => protocol_all(),
                "show route protocol anycastd4 all" => {
                    let n = seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if configured > 0 && n >= 3 {
                        vec![
                            "1007-Table master4:".into(),
                            " 192.0.2.1/32         blackhole [anycastd4 21:13:41.587] * (200)"
                                .into(),
                            "0000 ".into(),
                        ]
                    } else {
                        vec!["0000 ".into()]
                    }
                }
                "configure" => vec![
                    "0002-Reading configuration from /etc/bird/bird.conf".into(),
                    "0004 Reconfiguration in progress".into(),
                ],
                other => vec![format!("9001 unexpected {other}")],
            },
        );
        let bird = bird_at(&socket, dir.path());
        let installed = bird.read().await.unwrap();
        assert!(installed.has_table(&Place::named("anycastd4")));
        assert!(!installed.has_table(&Place::named("anycastd6")));
        bird.apply(&installed, &[announce("192.0.2.1/32")], &[])
            .await
            .unwrap();
        // The apply returned once BIRD showed the route, not at the 0004.
        assert!(reads.load(std::sync::atomic::Ordering::SeqCst) >= 4);
        let after = bird.read().await.unwrap();
        assert!(after.contains(&Place::named("anycastd4"), &"192.0.2.1/32".parse().unwrap()));
        let text = std::fs::read_to_string(include_file(dir.path(), "anycastd4")).unwrap();
        assert!(text.ends_with("route 192.0.2.1/32 blackhole;\n"), "{text}");
    }

    #[tokio::test]
    async fn a_config_error_an_access_denied_and_a_silent_socket_are_errors_with_birds_words() {
        let dir = tempfile::tempdir().unwrap();
        let (socket, _server) = fake_bird(
            dir.path(),
            Some("0001 BIRD 2.0.12 ready."),
            |request, _| {
                match request {
                "show protocols" => protocols(),
                "show protocols all anycastd4" => protocol_all(),
                "show route protocol anycastd4 all" => vec!["0000 ".into()],
                "configure" => vec![
                    "0002-Reading configuration from /etc/bird/bird.conf".into(),
                    "8002 /run/anycastd/bird-anycastd4.conf:1:7 syntax error, unexpected CF_SYM_UNDEFINED".into(),
                ],
                _ => vec!["9001 syntax error".into()],
            }
            },
        );
        let bird = bird_at(&socket, dir.path());
        let installed = bird.read().await.unwrap();
        let error = bird
            .apply(&installed, &[announce("192.0.2.1/32")], &[])
            .await
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("BIRD at {}: configure: 8002 /run/anycastd/bird-anycastd4.conf:1:7 syntax error, unexpected CF_SYM_UNDEFINED", socket.display())
        );

        // The refused file was put back as it was, so the next `configure` (anyone's) is not
        // refused for it.
        let text = std::fs::read_to_string(include_file(dir.path(), "anycastd4")).unwrap();
        assert_eq!(text, file_text("anycastd4", &socket, &BTreeMap::new()));
        // A prefix of the other family than the protocol's channel fails before anything is
        // written or loaded.
        std::fs::remove_file(include_file(dir.path(), "anycastd4")).unwrap();
        let error = bird
            .apply(&installed, &[announce("2001:db8::1/128")], &[])
            .await
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "2001:db8::1/128 cannot go into BIRD protocol anycastd4: its channel is of the other family (give it a protocol of its own family)"
        );
        assert!(!include_file(dir.path(), "anycastd4").exists());

        // A restricted socket (`birdc -r`, or `cli ... { restrict; }`) answers 8007.
        let dir2 = tempfile::tempdir().unwrap();
        let (socket2, _server2) =
            fake_bird(dir2.path(), Some("0001 BIRD 2.0.12 ready."), |_, _| {
                vec!["8007 Access denied".into()]
            });
        let error = bird_at(&socket2, dir2.path()).read().await.unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("BIRD at {}: show protocols: 8007 Access denied (the control socket is restricted; anycastd needs a full one)", socket2.display())
        );

        // A socket that accepts and never answers: the time limit.
        let dir3 = tempfile::tempdir().unwrap();
        let (socket3, _server3) = fake_bird(dir3.path(), None, |_, _| Vec::new());
        let error = bird_within(&socket3, dir3.path(), Duration::from_millis(500))
            .read()
            .await
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("BIRD at {} did not answer within 500 ms", socket3.display())
        );

        // Nothing listening.
        let error = bird_at(&dir3.path().join("none.ctl"), dir3.path())
            .read()
            .await
            .unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("BIRD is not running (control socket "),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_queued_configuration_is_accepted_and_other_codes_are_not() {
        for (code, ok) in [
            ("0003 Reconfigured", true),
            (
                "0005 Reconfiguration already in progress, queueing new config",
                true,
            ),
            ("0006 Reconfiguration ignored, shutting down", false),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let (socket, _server) = fake_bird(
                dir.path(),
                Some("0001 BIRD 2.0.12 ready."),
                move |request, _| match request {
                    "show protocols" => protocols(),
                    "show protocols all anycastd4" => protocol_all(),
                    "show route protocol anycastd4 all" => vec!["0000 ".into()],
                    "configure" => vec![
                        "0002-Reading configuration from /etc/bird/bird.conf".into(),
                        code.into(),
                    ],
                    _ => vec!["9001 syntax error".into()],
                },
            );
            let bird = bird_at(&socket, dir.path());
            let installed = bird.read().await.unwrap();
            let result = bird
                .apply(&installed, &[announce("192.0.2.1/32")], &[])
                .await;
            assert_eq!(result.is_ok(), ok, "{code}: {result:?}");
        }
    }

    #[tokio::test]
    async fn a_withdrawal_while_bird_is_not_running_is_not_applied_and_says_what_the_file_holds() {
        use crate::routing::writer::{self, Decision, Notice, Outcome};
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("bird.ctl");
        // The file BIRD loaded before it stopped: two routes, one de-preferred.
        let deprefer = RouteOptions {
            path: vec![65538],
            med: Some(1000),
            ..RouteOptions::default()
        };
        let routes: BTreeMap<IpNet, RouteOptions> = [
            ("192.0.2.1/32".parse().unwrap(), RouteOptions::default()),
            ("192.0.2.2/32".parse().unwrap(), deprefer),
        ]
        .into();
        let file = include_file(dir.path(), "anycastd4");
        std::fs::write(&file, file_text("anycastd4", &socket, &routes)).unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let handle = writer::spawn(bird_at(&socket, dir.path()), Duration::from_secs(3600), tx);
        let key: PrefixKey = (Place::named("anycastd4"), "192.0.2.1/32".parse().unwrap());
        handle.set(vec![(
            key.clone(),
            Decision {
                attributes: Default::default(),
                service: "dns".into(),
                announce: false,
                decision_seq: 7,
            },
        )]);
        let report = loop {
            match tokio::time::timeout(Duration::from_secs(20), rx.recv()).await {
                Ok(Some(Notice::Outcome(report))) => break report,
                Ok(Some(_)) => continue,
                other => panic!("no outcome: {other:?}"),
            }
        };
        // Not "already so": BIRD was not read. What is known follows the error.
        assert_eq!(
            report.outcome,
            Outcome::Failed(format!(
                "cannot read BIRD: BIRD is not running (control socket {}: no such file); not \
                 applied; the include file {} leaves it out, so a BIRD that starts does not \
                 announce it",
                socket.display(),
                file.display()
            ))
        );
        // The file was rewritten without it, and the withdrawal is not verified (a stop
        // lists it).
        // The other route's line is kept as it was, with what it carries.
        let text = std::fs::read_to_string(&file).unwrap();
        assert_eq!(file_routes(&text).len(), 1);
        assert!(
            text.ends_with(
                "\nroute 192.0.2.2/32 blackhole { bgp_path.prepend(65538); bgp_med = 1000; };\n"
            ),
            "{text}"
        );
        let mut watch = handle.status();
        let status = tokio::time::timeout(
            Duration::from_secs(20),
            watch.wait_for(|s| s.read_error.is_some()),
        )
        .await
        .unwrap()
        .unwrap()
        .clone();
        assert_eq!(
            status.pending.iter().map(|p| &p.0).collect::<Vec<_>>(),
            [&key]
        );
    }

    #[tokio::test]
    async fn a_prepend_repeats_the_local_as_of_the_bgp_protocols_and_fails_without_one() {
        use crate::bgp::{Attributes, GRACEFUL_SHUTDOWN};
        for (bgp, local_as) in [(true, Some(65538)), (false, None)] {
            let dir = tempfile::tempdir().unwrap();
            let (socket, _server) = fake_bird(
                dir.path(),
                Some("0001 BIRD 2.0.12 ready."),
                move |request, _| match request {
                    "show protocols" => protocols(),
                    "show protocols all anycastd4" => protocol_all(),
                    "show protocols all" => {
                        let mut lines = protocol_all();
                        lines.pop();
                        if bgp {
                            lines.extend(
                                [
                                    "1002-peer_v4    BGP        ---        up     18:09:10.770  Established   ",
                                    "1006-  BGP state:          Established",
                                    "     Local AS:         65538",
                                    "   Channel ipv4",
                                    "     Table:          master4",
                                ]
                                .map(str::to_owned),
                            );
                        }
                        lines.push("0000 ".to_owned());
                        lines
                    }
                    "show route protocol anycastd4 all" => vec!["0000 ".into()],
                    "configure" => vec!["0003 Reconfigured".into()],
                    other => vec![format!("9001 unexpected {other}")],
                },
            );
            let bird = bird_at(&socket, dir.path());
            let installed = bird.read().await.unwrap();
            let mut change = announce("192.0.2.1/32");
            change.attributes = Attributes {
                as_path_prepend: 2,
                ..Attributes::plain().with(GRACEFUL_SHUTDOWN)
            };
            let result = bird.apply(&installed, &[change.clone()], &[]).await;
            let file = include_file(dir.path(), "anycastd4");
            match local_as {
                Some(_) => {
                    result.unwrap();
                    let text = std::fs::read_to_string(&file).unwrap();
                    assert!(
                        text.ends_with("\nroute 192.0.2.1/32 blackhole { bgp_path.prepend(65538); bgp_path.prepend(65538); bgp_community.add((65535,0)); };\n"),
                        "{text}"
                    );
                }
                None => {
                    assert_eq!(
                        result.unwrap_err().to_string(),
                        format!("BIRD at {}: cannot prepend the local AS to routes of protocol anycastd4: BIRD has no BGP protocol to take the local AS from", socket.display())
                    );
                    assert!(!file.exists(), "nothing written");
                    // Without a prepend the local AS is not needed.
                    change.attributes.as_path_prepend = 0;
                    bird.apply(&installed, &[change.clone()], &[])
                        .await
                        .unwrap();
                }
            }
        }
    }

    #[tokio::test]
    async fn an_idle_pass_writes_the_routes_bird_runs_with_what_they_carry_and_then_leaves_the_file(
    ) {
        let dir = tempfile::tempdir().unwrap();
        let bird = bird_at(Path::new("/run/bird/bird.ctl"), dir.path());
        let (a, b): (IpNet, IpNet) = (
            "192.0.2.1/32".parse().unwrap(),
            "192.0.2.2/32".parse().unwrap(),
        );
        let deprefer = RouteOptions {
            path: vec![65538, 65538],
            med: Some(1000),
            communities: vec![crate::bgp::GRACEFUL_SHUTDOWN],
            ..RouteOptions::default()
        };
        let mut state = BirdState::default();
        state
            .statics
            .insert("anycastd4".into(), ("master4".into(), [a, b].into()));
        state
            .options
            .insert(("anycastd4".into(), b), deprefer.clone());
        let wanted = [((Place::named("anycastd4"), a), true)];
        bird.tidy_files(&state, &wanted).await;
        let file = include_file(dir.path(), "anycastd4");
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            text.ends_with("route 192.0.2.1/32 blackhole;\nroute 192.0.2.2/32 blackhole { bgp_path.prepend(65538); bgp_path.prepend(65538); bgp_med = 1000; bgp_community.add((65535,0)); };\n"),
            "{text}"
        );
        // The same state gives the same text: the next pass leaves the file (that BIRD
        // reads such a file back as this state is tests/bird.rs's).
        let modified = std::fs::metadata(&file).unwrap().modified().unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        bird.tidy_files(&state, &wanted).await;
        assert_eq!(
            std::fs::metadata(&file).unwrap().modified().unwrap(),
            modified
        );
        assert_eq!(
            state.attributes(&Place::named("anycastd4"), &b),
            deprefer.attributes()
        );
        assert_eq!(
            state.snapshot().attributes,
            [((Place::named("anycastd4"), b), deprefer.attributes())].into()
        );
    }

    #[test]
    fn one_batch_per_run_of_changes_to_one_protocol() {
        let bird = bird_at(Path::new("/run/bird/bird.ctl"), Path::new("/run/anycastd"));
        let change = |protocol: &str, prefix: &str, announce: bool| Change {
            attributes: Default::default(),
            place: Place::named(protocol),
            prefix: prefix.parse().unwrap(),
            announce,
        };
        let changes = [
            change("a4", "192.0.2.1/32", false),
            change("a4", "192.0.2.2/32", false),
            change("b4", "192.0.2.3/32", false),
            change("a4", "192.0.2.4/32", true),
        ];
        assert_eq!(
            bird.batches(&BirdState::default(), &changes),
            vec![0..2, 2..3, 3..4]
        );
        assert!(bird.batches(&BirdState::default(), &[]).is_empty());
    }

    #[test]
    fn the_include_file() {
        let drain = RouteOptions::of(
            &crate::bgp::Attributes::plain().with(crate::bgp::GRACEFUL_SHUTDOWN),
            None,
        );
        let routes: BTreeMap<IpNet, RouteOptions> = [
            ("203.0.113.53/32".parse().unwrap(), drain),
            ("203.0.113.5/32".parse().unwrap(), RouteOptions::default()),
        ]
        .into();
        let text = file_text("anycastd4", Path::new("/run/bird/bird.ctl"), &routes);
        let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            lines,
            [
                "route 203.0.113.5/32 blackhole;",
                "route 203.0.113.53/32 blackhole { bgp_community.add((65535,0)); };"
            ]
        );
        assert_eq!(
            file_routes(&text),
            routes.keys().copied().collect::<BTreeSet<_>>()
        );
        assert_eq!(
            file_without(&text, &["203.0.113.53/32".parse().unwrap()].into()),
            file_text(
                "anycastd4",
                Path::new("/run/bird/bird.ctl"),
                &[("203.0.113.5/32".parse().unwrap(), RouteOptions::default())].into()
            )
        );
        assert_eq!(
            include_pattern(Path::new("/run/anycastd"), "anycastd4"),
            "/run/anycast[d]/bird-anycastd4.conf"
        );
    }
}
