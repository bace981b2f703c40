//! BIRD 2 (and 3) as a [`Backend`]: `route P blackhole;` lines in a file per static protocol
//! that anycastd owns and the operator's `protocol static` includes, loaded with `configure`
//! over the control socket ([`control`]), read back with `show route protocol NAME`, and shown
//! with `show route export BGP table T` for every established BGP protocol.
//!
//! The backend's instance is the control socket; a prefix's "table" (the VRF of an FRR
//! prefix) is the name of the static protocol it goes into. The file of protocol `P` is
//! `DIR/bird-P.conf` (`[bird] include_dir`, default `/run/anycastd`). It is written whole:
//! what BIRD has in `P` now (read just before), with the batch's changes; to a temporary file,
//! fsynced, renamed over the old one, and the directory fsynced. BIRD's static protocol then
//! adds and removes only the routes that changed, and the BGP export filter text never
//! changes, so a change does not re-feed any session.
//!
//! Why the file is under `/run`: BIRD reads it whenever it starts or reconfigures. Under
//! `/run` (a tmpfs) it is gone after a reboot, and the include pattern the README gives
//! (`include "/run/anycastd*/bird-P.conf";`, a wildcard in the directory part) lets BIRD
//! start without it; the shipped unit's `RuntimeDirectory=` removes it when the daemon
//! stops or dies. So BIRD never announces from a file no running anycastd stands behind,
//! and the start-up reconciliation applies to what BIRD has as it does to FRR's running
//! config.
//!
//! Reply codes: `configure` is accepted on `0003 Reconfigured`, `0004 Reconfiguration in
//! progress` (the normal answer of BIRD 3) and `0005 ... queueing new config`; after 0004 or
//! 0005 the apply waits (at most [`SETTLE`]) until BIRD shows the routes the file holds. Any
//! other code is a failure with BIRD's text (`8002 file:line:col message` names a config
//! error, `8007 Access denied` a restricted socket).

pub mod control;

use super::{Backend, BackendId, Change, Installed, PrefixKey, Shown, Snapshot};
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
/// After `0004`/`0005`, how long an apply waits for BIRD to show the new routes.
pub const SETTLE: Duration = Duration::from_secs(2);

/// How every BIRD is reached (`[bird]`).
#[derive(Debug, Clone)]
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
}

impl Installed for BirdState {
    fn has_table(&self, vrf: &Option<String>) -> bool {
        vrf.as_ref().is_some_and(|p| self.statics.contains_key(p))
    }

    fn contains(&self, vrf: &Option<String>, prefix: &IpNet) -> bool {
        vrf.as_ref()
            .and_then(|p| self.statics.get(p))
            .is_some_and(|(_, routes)| routes.contains(prefix))
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            tables: self
                .statics
                .iter()
                .map(|(name, (_, routes))| (Some(name.clone()), routes.clone()))
                .collect(),
        }
    }
}

/// The text of an include file holding `routes`.
pub fn file_text(protocol: &str, routes: &BTreeSet<IpNet>) -> String {
    let mut text = format!(
        "# Written by anycastd for BIRD's protocol static {protocol}: the prefixes whose\n\
         # services are healthy. Do not edit; anycastd rewrites it.\n"
    );
    for route in routes {
        text.push_str(&format!("route {route} blackhole;\n"));
    }
    text
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
            let routes = parse_routes(
                &session
                    .command(&format!("show route protocol {}", p.name))
                    .await?,
            );
            state
                .statics
                .insert(p.name.clone(), (p.table.clone(), routes));
        }
        Ok((state, protocols))
    }

    /// Write the include files of the protocols `changes` touch and ask BIRD to load them.
    async fn configure(&self, installed: &BirdState, changes: &[Change]) -> Result<(), BirdError> {
        let mut files: BTreeMap<&str, BTreeSet<IpNet>> = BTreeMap::new();
        for change in changes {
            let Some(protocol) = change.vrf.as_deref() else {
                return Err(self.missing(&None));
            };
            let routes = match files.get_mut(protocol) {
                Some(routes) => routes,
                None => {
                    let Some((_, now)) = installed.statics.get(protocol) else {
                        return Err(self.missing(&change.vrf));
                    };
                    files.entry(protocol).or_insert_with(|| now.clone())
                }
            };
            if change.announce {
                routes.insert(change.prefix);
            } else {
                routes.remove(&change.prefix);
            }
        }
        for (protocol, routes) in &files {
            let path = include_file(&self.settings.include_dir, protocol);
            write_atomically(&path, &file_text(protocol, routes)).map_err(|e| BirdError::File {
                path: path.display().to_string(),
                reason: crate::config::io_reason(&e),
            })?;
        }
        within(&self.socket, self.settings.timeout, async {
            let (mut session, _) = Session::open(&self.socket).await?;
            let reply = session.command("configure").await?;
            match reply.code() {
                3 => Ok(()),
                4 | 5 => {
                    // BIRD 3 answers 0004 while the old configuration winds down; 0005 queues
                    // ours behind one in progress. Wait until the routes show.
                    let deadline = tokio::time::Instant::now() + SETTLE;
                    loop {
                        let (state, _) = Self::state_in(&mut session).await?;
                        let done = files.iter().all(|(p, routes)| {
                            state.statics.get(*p).is_some_and(|(_, now)| now == routes)
                        });
                        if done || tokio::time::Instant::now() >= deadline {
                            return Ok(());
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
                code => Err(BirdError::Refused {
                    socket: self.socket.display().to_string(),
                    command: "configure".into(),
                    code,
                    message: reply.message().to_owned(),
                }),
            }
        })
        .await
    }

    fn missing(&self, vrf: &Option<String>) -> BirdError {
        BirdError::Refused {
            socket: self.socket.display().to_string(),
            command: "configure".into(),
            code: 0,
            message: self.missing_table(vrf),
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
        // One `configure` carries any number of changes.
        if changes.is_empty() {
            Vec::new()
        } else {
            std::iter::once(0..changes.len()).collect()
        }
    }

    async fn apply(&self, installed: &BirdState, changes: &[Change]) -> Result<(), BirdError> {
        self.configure(installed, changes).await
    }

    async fn inspect(&self, prefixes: &[PrefixKey]) -> Result<Vec<Shown>, BirdError> {
        within(&self.socket, self.settings.timeout, async {
            let (mut session, _) = Session::open(&self.socket).await?;
            let (state, protocols) = Self::state_in(&mut session).await?;
            // Per established BGP protocol and table: what it exports.
            let tables: BTreeSet<&str> = prefixes
                .iter()
                .filter_map(|(p, _)| state.statics.get(p.as_deref()?))
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
            Ok(prefixes
                .iter()
                .map(|(protocol, prefix)| {
                    let configured = state.contains(protocol, prefix);
                    Shown {
                        configured,
                        valid: configured,
                        established_peers: exported.iter().filter(|e| e.contains(prefix)).count(),
                    }
                })
                .collect())
        })
        .await
    }

    fn missing_table(&self, vrf: &Option<String>) -> String {
        let protocol = vrf.as_deref().unwrap_or("(none)");
        format!(
            "no static protocol {protocol} in BIRD at {} (declare protocol static {protocol} \
             with the line include \"{}\"); anycastd does not create one",
            self.socket.display(),
            include_pattern(&self.settings.include_dir, protocol)
        )
    }

    fn unreadable(&self, error: &BirdError) -> String {
        format!("cannot read BIRD: {error}")
    }

    /// An include file that differs from what BIRD has in its protocol (edited by hand, or
    /// gone with the runtime directory at a restart of anycastd) is rewritten to what BIRD
    /// has: nothing changes in BIRD, and its next `configure` or start loads what it runs.
    async fn tidy(&self, installed: &BirdState, tables: &[Option<String>]) {
        let protocols: BTreeSet<&str> = tables.iter().filter_map(|t| t.as_deref()).collect();
        for protocol in protocols {
            let Some((_, routes)) = installed.statics.get(protocol) else {
                continue;
            };
            let path = include_file(&self.settings.include_dir, protocol);
            let text = file_text(protocol, routes);
            let now = std::fs::read_to_string(&path).ok();
            if now.as_deref() == Some(text.as_str()) || now.is_none() && routes.is_empty() {
                continue;
            }
            match write_atomically(&path, &text) {
                Ok(()) => tracing::warn!(
                    file = %path.display(),
                    "The include file {} {}; rewritten to the {} route(s) BIRD has in protocol {protocol}.",
                    path.display(),
                    if now.is_some() { "differed from what BIRD runs (edited by hand?)" } else { "was missing" },
                    routes.len()
                ),
                Err(e) => tracing::warn!(
                    file = %path.display(),
                    "Cannot rewrite the include file {}: {}.",
                    path.display(),
                    crate::config::io_reason(&e)
                ),
            }
        }
    }

    fn runtime_file(&self) -> Option<PathBuf> {
        Some(self.socket.clone())
    }

    fn daemon_name(&self) -> &'static str {
        "BIRD"
    }

    fn not_applied(&self) -> String {
        format!(
            "BIRD at {} accepted the configuration but does not show the route (is its static \
             protocol disabled, or does it include another file than {}?)",
            self.socket.display(),
            self.settings.include_dir.display()
        )
    }
}

/// The include line's pattern for protocol `protocol`: a wildcard in the directory's last
/// component, so that BIRD starts when the directory does not exist (BIRD 2.0.12 fails on a
/// missing directory before a wildcard, and accepts a wildcard that matches nothing).
pub fn include_pattern(dir: &Path, protocol: &str) -> String {
    format!("{}*/bird-{protocol}.conf", dir.display())
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

    #[test]
    fn the_include_file() {
        let routes: BTreeSet<IpNet> = [
            "203.0.113.53/32".parse().unwrap(),
            "203.0.113.5/32".parse().unwrap(),
        ]
        .into();
        let text = file_text("anycastd4", &routes);
        let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            lines,
            [
                "route 203.0.113.5/32 blackhole;",
                "route 203.0.113.53/32 blackhole;"
            ]
        );
        assert_eq!(
            include_pattern(Path::new("/run/anycastd"), "anycastd4"),
            "/run/anycastd*/bird-anycastd4.conf"
        );
    }
}
