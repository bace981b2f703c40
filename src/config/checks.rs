//! Validation of `[services.NAME] checks`: the keys every kind has (`name`, `interval`,
//! `timeout`, `pending_timeout`), then one parser per kind ([`CHECK_KINDS`]).
//!
//! Every kind also has `shadow` (polled, journaled and shown, never part of the verdict).
//!
//! An item is a table, or a string filling the kind's one required key (Cabourotte: the
//! check's name; exec: the command; HTTP: the URL; TCP: the address; DNS: the name asked
//! for). A check without `name` is named after its target (`ntpdate`, `127.0.0.1:53`, ...).

use super::tree::{Node, Value};
use super::validate::{join, Table, Validator};
use super::*;
use crate::checks::dns_wire::{self, RecordType};
use std::net::{IpAddr, SocketAddr};

/// The keys under `checks`: one per check kind.
pub(super) const CHECK_KINDS: &[&str] = &["cabourotte", "exec", "http", "tcp", "dns"];

/// The default DNS server of a `checks.dns`.
pub const DEFAULT_DNS_SERVER: &str = "127.0.0.1:53";

/// What a kind parser returns: the kind, and the name derived from its target (used when the
/// check has no `name`).
type Parsed = Option<(CheckKind, String)>;

impl Validator {
    pub(super) fn checks(&mut self, node: &Node, path: &str) -> Option<Vec<Check>> {
        let items = self.items(node, path, "check", CHECK_KINDS)?;
        let mut checks: Vec<Check> = Vec::new();
        let mut ok = true;
        for (type_key, item_path, item) in items {
            if type_key == "exec" && self.exec_line.is_none() {
                self.exec_line = Some((self.lines.line(item.span.start), item_path.clone()));
            }
            match self.check(type_key, item, &item_path) {
                Some(c) => {
                    if checks.iter().any(|o| o.name == c.name) {
                        self.problem(
                            item.span.start,
                            &item_path,
                            format!(
                                "check \"{}\" appears twice in this service (names must be unique; a check without `name` is named after its target)",
                                c.name
                            ),
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

    /// One check of kind `type_key`: the keys every kind has (`name`, `interval`, `timeout`,
    /// `pending_timeout`), then the kind's own ([`Validator::check_kind`]).
    pub(super) fn check(&mut self, type_key: &str, node: &Node, path: &str) -> Option<Check> {
        let mut name = None;
        let mut interval = Some(DEFAULT_INTERVAL);
        let mut timeout = None;
        let mut pending_timeout = None;
        let mut shadow = Some(false);
        let mut vrf = Some(None);
        let kind = match &node.value {
            Value::String(_) => self.check_kind(type_key, Item::Plain(node), path),
            Value::Table(_) => {
                let mut table = self.table(node, path)?;
                match self.take(&mut table, "name") {
                    Some(n) => name = Some(self.string(n, &join(path, "name"))),
                    None if type_key == "cabourotte" => {
                        self.problem(node.span.start, join(path, "name"), "missing required key");
                        name = Some(None);
                    }
                    None => {}
                }
                let kind = self.check_kind(type_key, Item::Table(node, &mut table), path);
                if let Some(n) = self.take(&mut table, "interval") {
                    interval = self.duration(n, &join(path, "interval"));
                }
                if let Some(n) = self.take(&mut table, "timeout") {
                    timeout = Some(self.duration(n, &join(path, "timeout")));
                }
                if let Some(n) = self.take(&mut table, "pending_timeout") {
                    pending_timeout = Some(self.duration(n, &join(path, "pending_timeout")));
                }
                if let Some(n) = self.take(&mut table, "shadow") {
                    shadow = self.boolean(n, &join(path, "shadow"));
                }
                if let Some(n) = self.take(&mut table, "vrf") {
                    vrf = self.vrf(n, &join(path, "vrf"));
                }
                self.finish(table);
                kind
            }
            other => {
                self.problem(
                    node.span.start,
                    path,
                    format!("must be a string or a table, not {}", other.kind()),
                );
                return None;
            }
        };
        let (kind, derived) = kind?;
        let name = match name {
            Some(n) => n?,
            None => derived,
        };
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
        Some(Check {
            name,
            interval,
            timeout,
            pending_timeout,
            shadow: shadow?,
            vrf: vrf?,
            kind,
        })
    }

    /// The settings of a check of kind `type_key`, from its own keys.
    fn check_kind(&mut self, type_key: &str, mut item: Item<'_, '_>, path: &str) -> Parsed {
        match type_key {
            "cabourotte" => self.cabourotte(item, path),
            "exec" => self.exec(item, path),
            "http" => self.http(item, path),
            "tcp" => {
                let (node, p) = self.required(&mut item, "address", path)?;
                let address = self.address(node, &p)?;
                Some((
                    CheckKind::Tcp {
                        address: address.clone(),
                    },
                    address,
                ))
            }
            "dns" => self.dns(item, path),
            other => {
                self.problem(0, path, format!("unknown check type \"{other}\""));
                None
            }
        }
    }

    /// `checks.cabourotte`: `url` of the Cabourotte, `max_age` of its results; a plain item
    /// is the check's name there.
    fn cabourotte(&mut self, mut item: Item<'_, '_>, path: &str) -> Parsed {
        let plain = match item {
            Item::Plain(node) => Some(self.string(node, &join(path, "name"))?),
            Item::Table(..) => None,
        };
        let url = match item.take(self, "url") {
            Some(n) => self.url(n, &join(path, "url")),
            None => Some(DEFAULT_CABOUROTTE_URL.to_owned()),
        };
        let max_age = match item.take(self, "max_age") {
            Some(n) => Some(self.duration(n, &join(path, "max_age"))?),
            None => None,
        };
        Some((
            CheckKind::Cabourotte { url: url?, max_age },
            plain.unwrap_or_default(),
        ))
    }

    /// `checks.exec`: `command` (absolute), `args`, `env`, `user`.
    fn exec(&mut self, mut item: Item<'_, '_>, path: &str) -> Parsed {
        let required = self.required(&mut item, "command", path);
        let command = required.and_then(|(node, p)| {
            let c = self.string(node, &p)?;
            if c.starts_with('/') && !c.ends_with('/') {
                Some(c)
            } else {
                self.problem(
                    node.span.start,
                    &p,
                    format!("{c:?} must be an absolute path (no shell: write \"/bin/sh\", \"-c\", ... in args for one)"),
                );
                None
            }
        });
        let args = match item.take(self, "args") {
            Some(n) => self.strings(n, &join(path, "args")),
            None => Some(Vec::new()),
        };
        let env = match item.take(self, "env") {
            Some(n) => self.env(n, &join(path, "env")),
            None => Some(Vec::new()),
        };
        let user = match item.take(self, "user") {
            Some(n) => {
                let p = join(path, "user");
                self.string(n, &p)
                    .and_then(|u| match nix::unistd::User::from_name(&u) {
                        Ok(Some(_)) => Some(Some(u)),
                        Ok(None) => {
                            self.problem(n.span.start, &p, format!("no user {u:?} on this host"));
                            None
                        }
                        Err(e) => {
                            self.problem(n.span.start, &p, format!("cannot look up {u:?}: {e}"));
                            None
                        }
                    })
            }
            None => Some(None),
        };
        let command = command?;
        let derived = command.rsplit('/').next().unwrap_or(&command).to_owned();
        Some((
            CheckKind::Exec(ExecCheck {
                command,
                args: args?,
                env: env?,
                user: user?,
            }),
            derived,
        ))
    }

    /// `checks.http`: `url`, `method`, `status`, `body` or `body_regex`, `headers`, and the TLS
    /// keys `ca`, `insecure`, `server_name`.
    fn http(&mut self, mut item: Item<'_, '_>, path: &str) -> Parsed {
        let url = self
            .required(&mut item, "url", path)
            .and_then(|(node, p)| self.http_url(node, &p));
        let method = match item.take(self, "method") {
            Some(n) => {
                let p = join(path, "method");
                match self.string(n, &p).as_deref() {
                    Some("GET") => Some(HttpMethod::Get),
                    Some("HEAD") => Some(HttpMethod::Head),
                    Some(other) => {
                        self.problem(n.span.start, &p, format!("{other:?} is not GET or HEAD"));
                        None
                    }
                    None => None,
                }
            }
            None => Some(HttpMethod::Get),
        };
        let status = match item.take(self, "status") {
            Some(n) => self.status(n, &join(path, "status")),
            None => Some(vec![(200, 299)]),
        };
        let body_node = item.take(self, "body");
        let body = body_node.map(|n| self.string(n, &join(path, "body")));
        let regex_node = item.take(self, "body_regex");
        let body_regex = match regex_node {
            Some(n) => {
                let p = join(path, "body_regex");
                Some(
                    self.string(n, &p)
                        .and_then(|r| match regex::Regex::new(&r) {
                            Ok(_) => Some(r),
                            Err(e) => {
                                let e = e.to_string();
                                let e =
                                    e.lines().last().unwrap_or("").trim_start_matches("error: ");
                                self.problem(
                                    n.span.start,
                                    &p,
                                    format!("not a regular expression: {e}"),
                                );
                                None
                            }
                        }),
                )
            }
            None => None,
        };
        if let (Some(_), Some(n)) = (body_node, regex_node) {
            self.problem(
                n.span.start,
                join(path, "body_regex"),
                "give `body` or `body_regex`, not both",
            );
        }
        if let (Some(HttpMethod::Head), Some(n)) = (method, body_node.or(regex_node)) {
            self.problem(n.span.start, path, "a HEAD request has no body to match");
        }
        let headers = match item.take(self, "headers") {
            Some(n) => self.headers(n, &join(path, "headers")),
            None => Some(Vec::new()),
        };
        let ca = match item.take(self, "ca") {
            Some(n) => {
                let p = join(path, "ca");
                self.string(n, &p).and_then(|f| {
                    let read = std::fs::read(&f)
                        .map_err(|e| io_reason(&e))
                        .and_then(|pem| match reqwest::Certificate::from_pem_bundle(&pem) {
                            Ok(certs) if !certs.is_empty() => Ok(()),
                            _ => Err("no PEM certificate in it".to_owned()),
                        });
                    match read {
                        Ok(()) => Some(Some(PathBuf::from(f))),
                        Err(e) => {
                            self.problem(n.span.start, &p, format!("cannot use {f:?}: {e}"));
                            None
                        }
                    }
                })
            }
            None => Some(None),
        };
        let insecure = match item.take(self, "insecure") {
            Some(n) => self.boolean(n, &join(path, "insecure")),
            None => Some(false),
        };
        let server_name = match item.take(self, "server_name") {
            Some(n) => {
                let p = join(path, "server_name");
                self.string(n, &p)
                    .and_then(|s| match dns_wire::check_name(&s) {
                        Ok(()) if !s.is_empty() && s != "." => Some(Some(s)),
                        Ok(()) => {
                            self.problem(n.span.start, &p, "must not be empty");
                            None
                        }
                        Err(e) => {
                            self.problem(n.span.start, &p, format!("{s:?}: {e}"));
                            None
                        }
                    })
            }
            None => Some(None),
        };
        let url = url?;
        let https = url.starts_with("https:");
        if !https {
            let tls = ["ca", "insecure", "server_name"];
            for key in tls {
                if let Some(n) = item.peek(key) {
                    self.problem(
                        n.span.start,
                        join(path, key),
                        "applies to https:// URLs only",
                    );
                }
            }
        }
        let derived = reqwest::Url::parse(&url)
            .ok()
            .and_then(|u| {
                let host = u.host_str()?.to_owned();
                Some(match u.port() {
                    Some(port) => format!("{host}:{port}"),
                    None => host,
                })
            })
            .unwrap_or_else(|| url.clone());
        Some((
            CheckKind::Http(HttpCheck {
                url,
                method: method?,
                status: status?,
                body: body.map_or(Some(None), |v| v.map(Some))?,
                body_regex: body_regex.map_or(Some(None), |v| v.map(Some))?,
                headers: headers?,
                ca: ca?,
                insecure: insecure?,
                server_name: server_name?,
            }),
            derived,
        ))
    }

    /// `checks.dns`: `name` is the check's; the query is `query`, `type`, `server`,
    /// `protocol`; the answer must have `rcode` and every address of `expect`.
    fn dns(&mut self, mut item: Item<'_, '_>, path: &str) -> Parsed {
        let required = self.required(&mut item, "query", path);
        let query = required.and_then(|(node, p)| {
            let q = self.string(node, &p)?;
            match dns_wire::check_name(&q) {
                Ok(()) => Some(q),
                Err(e) => {
                    self.problem(node.span.start, &p, format!("{q:?}: {e}"));
                    None
                }
            }
        });
        let type_node = item.take(self, "type");
        let rtype = match type_node {
            Some(n) => {
                let p = join(path, "type");
                self.string(n, &p).and_then(|t| match RecordType::from_name(&t) {
                    Some(r) => Some(r),
                    None => {
                        self.problem(
                            n.span.start,
                            &p,
                            format!("unknown record type {t:?} (known: A, AAAA, CNAME, MX, NS, PTR, SOA, SRV, TXT, CAA)"),
                        );
                        None
                    }
                })
            }
            None => Some(RecordType::A),
        };
        let server = match item.take(self, "server") {
            Some(n) => {
                let p = join(path, "server");
                self.string(n, &p).and_then(|s| match socket_addr(&s, 53) {
                    Some(a) => Some(a),
                    None => {
                        self.problem(
                            n.span.start,
                            &p,
                            format!("{s:?} is not an IP address with an optional port, like \"127.0.0.1:53\" or \"[::1]:53\""),
                        );
                        None
                    }
                })
            }
            None => socket_addr(DEFAULT_DNS_SERVER, 53),
        };
        let tcp = match item.take(self, "protocol") {
            Some(n) => {
                let p = join(path, "protocol");
                match self.string(n, &p).as_deref() {
                    Some("udp") => Some(false),
                    Some("tcp") => Some(true),
                    Some(other) => {
                        self.problem(n.span.start, &p, format!("{other:?} is not udp or tcp"));
                        None
                    }
                    None => None,
                }
            }
            None => Some(false),
        };
        let rcode = match item.take(self, "rcode") {
            Some(n) => {
                let p = join(path, "rcode");
                self.string(n, &p).and_then(|r| match dns_wire::rcode_from_name(&r) {
                    Some(c) => Some(c),
                    None => {
                        self.problem(
                            n.span.start,
                            &p,
                            format!("{r:?} is not one of NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED"),
                        );
                        None
                    }
                })
            }
            None => Some(0),
        };
        let expect_node = item.take(self, "expect");
        let expect = match expect_node {
            Some(n) => self.addresses(n, &join(path, "expect")),
            None => Some(Vec::new()),
        };
        let (query, rtype, expect, rcode) = (query?, rtype?, expect?, rcode?);
        if let Some(n) = expect_node {
            let p = join(path, "expect");
            let family_ok = |a: &IpAddr| match rtype {
                RecordType::A => a.is_ipv4(),
                RecordType::Aaaa => a.is_ipv6(),
                _ => false,
            };
            if !matches!(rtype, RecordType::A | RecordType::Aaaa) {
                self.problem(n.span.start, &p, "applies to type A or AAAA only");
                return None;
            }
            if let Some(a) = expect.iter().find(|a| !family_ok(a)) {
                self.problem(
                    n.span.start,
                    &p,
                    format!("{a} cannot be in the answer to {} queries", rtype.name()),
                );
                return None;
            }
            if rcode != 0 && !expect.is_empty() {
                self.problem(
                    n.span.start,
                    &p,
                    "an answer with rcode other than NOERROR has no addresses",
                );
                return None;
            }
        }
        let derived = format!("{query} {}", rtype.name());
        Some((
            CheckKind::Dns(DnsCheck {
                server: server?,
                name: query,
                rtype,
                tcp: tcp?,
                expect,
                rcode,
            }),
            derived,
        ))
    }

    /// The kind's one required key: the plain item itself, or the key in the table.
    fn required<'a>(
        &mut self,
        item: &mut Item<'a, '_>,
        key: &str,
        path: &str,
    ) -> Option<(&'a Node, String)> {
        match item {
            Item::Plain(node) => Some((node, path.to_owned())),
            Item::Table(node, table) => match self.take(table, key) {
                Some(n) => Some((n, join(path, key))),
                None => {
                    self.problem(node.span.start, join(path, key), "missing required key");
                    None
                }
            },
        }
    }

    pub(super) fn url(&mut self, node: &Node, path: &str) -> Option<String> {
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

    /// An HTTP check's URL: http or https with a host; a query is allowed.
    fn http_url(&mut self, node: &Node, path: &str) -> Option<String> {
        let url = self.string(node, path)?;
        match reqwest::Url::parse(&url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Some(url),
            _ => {
                self.problem(
                    node.span.start,
                    path,
                    format!("{url:?} is not an http(s) URL like \"http://127.0.0.1/health\""),
                );
                None
            }
        }
    }

    /// `host:port` (a name, an IPv4 address or a bracketed IPv6 address).
    fn address(&mut self, node: &Node, path: &str) -> Option<String> {
        let a = self.string(node, path)?;
        let ok = match a.rsplit_once(':') {
            Some((host, port)) => {
                let port_ok = port.parse::<u16>().is_ok_and(|p| p != 0);
                let host_ok = if let Some(inner) = host.strip_prefix('[') {
                    inner
                        .strip_suffix(']')
                        .is_some_and(|h| h.parse::<std::net::Ipv6Addr>().is_ok())
                } else {
                    !host.is_empty() && !host.contains(':') && dns_wire::check_name(host).is_ok()
                };
                port_ok && host_ok
            }
            None => false,
        };
        if !ok {
            self.problem(
                node.span.start,
                path,
                format!("{a:?} is not host:port, like \"127.0.0.1:123\" or \"[::1]:53\""),
            );
            return None;
        }
        Some(a)
    }

    /// A string or an array of strings.
    pub(super) fn strings(&mut self, node: &Node, path: &str) -> Option<Vec<String>> {
        match &node.value {
            Value::Array(items) => {
                let mut out = Vec::new();
                let mut ok = true;
                for (i, n) in items.iter().enumerate() {
                    match self.string(n, &format!("{path}[{i}]")) {
                        Some(s) => out.push(s),
                        None => ok = false,
                    }
                }
                ok.then_some(out)
            }
            other => {
                self.problem(
                    node.span.start,
                    path,
                    format!("must be an array of strings, not {}", other.kind()),
                );
                None
            }
        }
    }

    /// `env`: a table of variable name to string.
    fn env(&mut self, node: &Node, path: &str) -> Option<Vec<(String, String)>> {
        let table = self.table(node, path)?;
        let mut out = Vec::new();
        let mut ok = true;
        for (key, value) in table.entries {
            let p = join(path, &key.name);
            let valid =
                key.name.chars().enumerate().all(|(i, c)| {
                    c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())
                }) && !key.name.is_empty();
            if !valid {
                self.problem(
                    key.span.start,
                    &p,
                    "variable names are letters, digits and _, not starting with a digit",
                );
                ok = false;
                continue;
            }
            match self.string(value, &p) {
                Some(v) if !v.contains('\0') => out.push((key.name.clone(), v)),
                Some(_) => {
                    self.problem(value.span.start, &p, "must not contain a NUL byte");
                    ok = false;
                }
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// `headers`: a table of header name to value.
    fn headers(&mut self, node: &Node, path: &str) -> Option<Vec<(String, String)>> {
        let table = self.table(node, path)?;
        let mut out = Vec::new();
        let mut ok = true;
        for (key, value) in table.entries {
            let p = join(path, &key.name);
            if reqwest::header::HeaderName::from_bytes(key.name.as_bytes()).is_err() {
                self.problem(key.span.start, &p, "not a valid HTTP header name");
                ok = false;
                continue;
            }
            match self.string(value, &p) {
                Some(v) if reqwest::header::HeaderValue::from_str(&v).is_ok() => {
                    out.push((key.name.clone(), v))
                }
                Some(_) => {
                    self.problem(value.span.start, &p, "not a valid HTTP header value");
                    ok = false;
                }
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// `status`: a code, a range `"200-399"`, or an array of those.
    fn status(&mut self, node: &Node, path: &str) -> Option<Vec<(u16, u16)>> {
        let one = |v: &mut Validator, n: &Node, path: &str| -> Option<(u16, u16)> {
            let code = |x: i64| u16::try_from(x).ok().filter(|c| (100..=599).contains(c));
            let parsed = match &n.value {
                Value::Integer(i) => code(*i).map(|c| (c, c)),
                Value::String(s) => match s.split_once('-') {
                    Some((a, b)) => match (a.trim().parse(), b.trim().parse()) {
                        (Ok(a), Ok(b)) => code(a).zip(code(b)).filter(|(a, b)| a <= b),
                        _ => None,
                    },
                    None => s.trim().parse().ok().and_then(code).map(|c| (c, c)),
                },
                _ => None,
            };
            if parsed.is_none() {
                v.problem(
                    n.span.start,
                    path,
                    "must be a status code (100-599), a range like \"200-299\", or an array of those",
                );
            }
            parsed
        };
        match &node.value {
            Value::Array(items) if !items.is_empty() => {
                let all: Vec<_> = items
                    .iter()
                    .enumerate()
                    .map(|(i, n)| one(self, n, &format!("{path}[{i}]")))
                    .collect();
                all.into_iter().collect()
            }
            _ => one(self, node, path).map(|r| vec![r]),
        }
    }

    /// An array of IP addresses.
    fn addresses(&mut self, node: &Node, path: &str) -> Option<Vec<IpAddr>> {
        let list = self.strings(node, path)?;
        let mut out = Vec::new();
        for a in list {
            match a.parse::<IpAddr>() {
                Ok(ip) => out.push(ip),
                Err(_) => {
                    self.problem(node.span.start, path, format!("{a:?} is not an IP address"));
                    return None;
                }
            }
        }
        Some(out)
    }

    fn boolean(&mut self, node: &Node, path: &str) -> Option<bool> {
        match &node.value {
            Value::Boolean(b) => Some(*b),
            other => {
                self.problem(
                    node.span.start,
                    path,
                    format!("must be true or false, not {}", other.kind()),
                );
                None
            }
        }
    }
}

/// An IP address with an optional port (`127.0.0.1`, `127.0.0.1:5353`, `::1`, `[::1]:53`).
fn socket_addr(text: &str, default_port: u16) -> Option<SocketAddr> {
    if let Ok(a) = text.parse::<SocketAddr>() {
        return Some(a);
    }
    text.parse::<IpAddr>()
        .ok()
        .map(|ip| SocketAddr::new(ip, default_port))
}

/// A check item being read: a plain string, or a table whose keys are taken one by one.
enum Item<'a, 't> {
    Plain(&'a Node),
    Table(&'a Node, &'t mut Table<'a>),
}

impl<'a> Item<'a, '_> {
    /// Take an optional key (a plain item has none).
    fn take(&mut self, v: &Validator, key: &str) -> Option<&'a Node> {
        match self {
            Item::Plain(_) => None,
            Item::Table(_, table) => v.take(table, key),
        }
    }

    /// A key's node, without taking it.
    fn peek(&self, key: &str) -> Option<&'a Node> {
        match self {
            Item::Plain(_) => None,
            Item::Table(_, table) => table
                .entries
                .iter()
                .find(|(k, _)| k.name == key)
                .map(|(_, n)| n),
        }
    }
}
