//! Validation of `[fleet]` (how this site reaches etcd) and of a service's
//! `fleet = { min_announcing = N }` or `fleet = { max_withdrawn = "P%" }` (README, "Fleet
//! guard").

use super::tree::{Node, Value};
use super::validate::{join, Validator};
use crate::fleet::{OnUnreachable, Rule, Settings, Tls};
use std::path::PathBuf;

/// This host's name (the kernel's, as `hostname` prints it), the default site.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| valid_site(h))
        .unwrap_or_else(|| "localhost".to_owned())
}

/// A site name: it is a path segment of the etcd keys.
fn valid_site(site: &str) -> bool {
    !site.is_empty()
        && site.len() <= 253
        && site
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// What is wrong with an etcd endpoint (`[fleet] etcd`, `anycastd fleet --etcd`), if anything:
/// it must be an `http://` or `https://` URL with a host.
pub fn endpoint_problem(url: &str) -> Option<String> {
    let ok = (url.starts_with("http://") || url.starts_with("https://"))
        && url
            .split_once("://")
            .is_some_and(|(_, rest)| !rest.is_empty());
    (!ok).then(|| format!("{url:?} is not a URL like \"https://10.0.0.1:2379\""))
}

/// Where key `name` of table `node` is (the table's start when it is not there).
fn key_at(node: &Node, name: &str) -> usize {
    match &node.value {
        Value::Table(entries) => entries
            .iter()
            .find(|(k, _)| k.name == name)
            .map(|(k, _)| k.span.start)
            .unwrap_or(node.span.start),
        _ => node.span.start,
    }
}

impl Validator {
    /// `[fleet]`.
    pub(super) fn fleet(&mut self, node: &Node) -> Option<Settings> {
        let mut table = self.table(node, "fleet")?;
        let endpoints = match self.take(&mut table, "etcd") {
            Some(n) => self.endpoints(n, "fleet.etcd"),
            None => {
                self.problem(node.span.start, "fleet.etcd", "missing required key");
                None
            }
        };
        let site = match self.take(&mut table, "site") {
            Some(n) => self.string(n, "fleet.site").and_then(|s| {
                if valid_site(&s) {
                    Some(s)
                } else {
                    self.problem(
                        n.span.start,
                        "fleet.site",
                        format!("{s:?}: a site name is 1-253 characters of A-Z a-z 0-9 _ . -"),
                    );
                    None
                }
            }),
            None => Some(hostname()),
        };
        let prefix = match self.take(&mut table, "prefix") {
            Some(n) => self.string(n, "fleet.prefix").and_then(|p| {
                if p.starts_with('/') && !p.ends_with('/') {
                    Some(p)
                } else {
                    self.problem(
                        n.span.start,
                        "fleet.prefix",
                        format!("{p:?} must start with / and not end with one"),
                    );
                    None
                }
            }),
            None => Some(crate::fleet::DEFAULT_PREFIX.to_owned()),
        };
        let lease = match self.take(&mut table, "lease") {
            Some(n) => self.duration(n, "fleet.lease").and_then(|d| {
                if d.as_secs() >= 2 && d.subsec_nanos() == 0 {
                    Some(d)
                } else {
                    self.problem(
                        n.span.start,
                        "fleet.lease",
                        "must be whole seconds, at least 2 (etcd's lease TTL is in seconds)",
                    );
                    None
                }
            }),
            None => Some(crate::fleet::DEFAULT_LEASE),
        };
        let on_unreachable = match self.take(&mut table, "on_unreachable") {
            Some(n) => match self.string(n, "fleet.on_unreachable").as_deref() {
                Some("hold") => Some(OnUnreachable::Hold),
                Some("local") => Some(OnUnreachable::Local),
                Some(other) => {
                    self.problem(
                        n.span.start,
                        "fleet.on_unreachable",
                        format!("{other:?}: must be \"hold\" or \"local\""),
                    );
                    None
                }
                None => None,
            },
            None => Some(OnUnreachable::Hold),
        };
        let mut file = |v: &mut Validator, key: &str| -> Option<Option<PathBuf>> {
            match v.take(&mut table, key) {
                Some(n) => match v.string(n, &format!("fleet.{key}")) {
                    Some(s) if !s.starts_with('/') => {
                        v.problem(
                            n.span.start,
                            format!("fleet.{key}"),
                            format!("{s:?} must be an absolute path"),
                        );
                        None
                    }
                    other => other.map(|s| {
                        let line = v.lines.line(n.span.start);
                        v.fleet_files
                            .push((line, format!("fleet.{key}"), PathBuf::from(&s)));
                        Some(PathBuf::from(s))
                    }),
                },
                None => Some(None),
            }
        };
        let ca = file(self, "ca");
        let cert = file(self, "cert");
        let key = file(self, "key");
        let password_file = file(self, "password_file");
        let user = match self.take(&mut table, "user") {
            Some(n) => self.string(n, "fleet.user").map(Some),
            None => Some(None),
        };
        self.finish(table);
        let (ca, cert, key, password_file, user) = (ca?, cert?, key?, password_file?, user?);
        if cert.is_some() != key.is_some() {
            let given = if cert.is_some() { "cert" } else { "key" };
            self.problem(
                key_at(node, given),
                format!("fleet.{given}"),
                "cert and key go together: give both or neither",
            );
            return None;
        }
        if user.is_some() != password_file.is_some() {
            let given = if user.is_some() {
                "user"
            } else {
                "password_file"
            };
            self.problem(
                key_at(node, given),
                format!("fleet.{given}"),
                "user and password_file go together: give both or neither",
            );
            return None;
        }
        let endpoints = endpoints?;
        let tls = (ca.is_some() || cert.is_some()).then_some(Tls { ca, cert, key });
        if tls.is_some() && endpoints.iter().any(|e| e.starts_with("http://")) {
            self.problem(
                key_at(node, "etcd"),
                "fleet.etcd",
                "TLS files are given but an endpoint is http://: use https:// endpoints",
            );
            return None;
        }
        Some(Settings {
            endpoints,
            site: site?,
            prefix: prefix?,
            lease: lease?,
            on_unreachable: on_unreachable?,
            tls,
            user: user.zip(password_file),
        })
    }

    fn endpoints(&mut self, node: &Node, path: &str) -> Option<Vec<String>> {
        let Value::Array(items) = &node.value else {
            self.problem(
                node.span.start,
                path,
                format!(
                    "must be a list of URLs like [\"https://10.0.0.1:2379\"], not {}",
                    node.value.kind()
                ),
            );
            return None;
        };
        if items.is_empty() {
            self.problem(node.span.start, path, "must list at least one endpoint");
            return None;
        }
        let mut endpoints = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let item_path = format!("{path}[{i}]");
            match self.string(item, &item_path) {
                Some(url) => match endpoint_problem(&url) {
                    None => endpoints.push(url),
                    Some(problem) => {
                        self.problem(item.span.start, item_path, problem);
                        ok = false;
                    }
                },
                None => ok = false,
            }
        }
        ok.then_some(endpoints)
    }

    /// A service's `fleet`: `{ min_announcing = N }` or `{ max_withdrawn = "P%" }`.
    pub(super) fn fleet_rule(&mut self, node: &Node, path: &str) -> Option<Rule> {
        let mut table = self.table(node, path)?;
        let min = self.take(&mut table, "min_announcing");
        let max = self.take(&mut table, "max_withdrawn");
        self.finish(table);
        match (min, max) {
            (Some(_), Some(n)) => {
                self.problem(
                    n.span.start,
                    join(path, "max_withdrawn"),
                    "give min_announcing or max_withdrawn, not both",
                );
                None
            }
            (Some(n), None) => self
                .positive_u32(n, &join(path, "min_announcing"))
                .map(Rule::MinAnnouncing),
            (None, Some(n)) => {
                let key = join(path, "max_withdrawn");
                let percent = match &n.value {
                    Value::String(s) => s
                        .strip_suffix('%')
                        .and_then(|p| p.trim().parse::<u32>().ok()),
                    _ => None,
                };
                match percent {
                    Some(p) if p <= 100 => Some(Rule::MaxWithdrawnPercent(p)),
                    Some(p) => {
                        self.problem(
                            n.span.start,
                            key,
                            format!("{p}% is above 100%: at most every site can be withdrawn"),
                        );
                        None
                    }
                    None => {
                        self.problem(n.span.start, key, "must be a percentage like \"25%\"");
                        None
                    }
                }
            }
            (None, None) => {
                self.problem(
                    node.span.start,
                    path,
                    "needs min_announcing = N or max_withdrawn = \"P%\"",
                );
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_site_defaults_to_the_hostname() {
        let text = "[fleet]\netcd = [\"http://127.0.0.1:2379\"]\n[services.dns]\nfleet = { min_announcing = 2 }\nprefixes.frrouting = [\"203.0.113.53\"]\nchecks.tcp = [\"127.0.0.1:53\"]\n";
        let config = crate::config::parse(text, &crate::checks::REGISTRY).unwrap();
        let fleet = config.fleet.unwrap();
        let kernel = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        assert_eq!(fleet.site, kernel.trim());
        assert_eq!(fleet.prefix, "/anycastd");
        assert_eq!(fleet.lease, std::time::Duration::from_secs(10));
        assert_eq!(fleet.on_unreachable, OnUnreachable::Hold);
        assert_eq!(config.services[0].fleet, Some(Rule::MinAnnouncing(2)));
    }
}
