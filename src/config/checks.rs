//! Validation of `[services.NAME] checks`: the keys every kind has (`name`, `interval`,
//! `timeout`, `pending_timeout`, `shadow`, `vrf`), then the kind's own, read by the kind
//! itself through [`KindLoader::parse`] (the kinds are those of the [`super::kind::Registry`]
//! given to [`super::parse`]).
//!
//! An item is a table, or a string filling the kind's one required key (Cabourotte: the
//! check's name; exec: the command; HTTP: the URL; TCP: the address; DNS: the name asked
//! for). A check without `name` is named after its target (`ntpdate`, `127.0.0.1:53`, ...).

use super::kind::{Item, KindItem, KindLoader};
use super::tree::{Node, Value};
use super::validate::{join, Validator};
use super::*;

impl Validator {
    pub(super) fn checks(&mut self, node: &Node, path: &str) -> Option<Vec<Check>> {
        let names: Vec<&str> = self.kinds.iter().map(|k| k.name()).collect();
        let items = self.items(node, path, "check", &names)?;
        let mut checks: Vec<Check> = Vec::new();
        let mut ok = true;
        for (type_key, item_path, item) in items {
            let Some(kind) = self.kinds.iter().copied().find(|k| k.name() == type_key) else {
                continue;
            };
            if kind.runs_programs() && self.exec_line.is_none() {
                self.exec_line = Some((self.lines.line(item.span.start), item_path.clone()));
            }
            match self.check(kind, item, &item_path) {
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

    /// One check of kind `kind`: the keys every kind has (`name`, `interval`, `timeout`,
    /// `pending_timeout`, `shadow`, `hard`, `vrf`), then the kind's own ([`KindLoader::parse`]).
    fn check(&mut self, kind: &dyn KindLoader, node: &Node, path: &str) -> Option<Check> {
        let mut name = None;
        let mut interval = Some(DEFAULT_INTERVAL);
        let mut timeout = None;
        let mut pending_timeout = None;
        let mut shadow = Some(false);
        let mut hard = Some(false);
        let mut vrf = Some(None);
        let kind = match &node.value {
            Value::String(_) => kind.parse(&mut KindItem {
                validator: self,
                item: Item::Plain(node),
                path,
            }),
            Value::Table(_) => {
                let mut table = self.table(node, path)?;
                match self.take(&mut table, "name") {
                    Some(n) => name = Some(self.string(n, &join(path, "name"))),
                    None if kind.name_required() => {
                        self.problem(node.span.start, join(path, "name"), "missing required key");
                        name = Some(None);
                    }
                    None => {}
                }
                let settings = kind.parse(&mut KindItem {
                    validator: self,
                    item: Item::Table(node, &mut table),
                    path,
                });
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
                if let Some(n) = self.take(&mut table, "hard") {
                    hard = self.boolean(n, &join(path, "hard"));
                }
                if let Some(n) = self.take(&mut table, "vrf") {
                    vrf = self.vrf(n, &join(path, "vrf"));
                }
                self.finish(table);
                settings
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
            hard: hard?,
            vrf: vrf?,
            kind,
        })
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

    pub(super) fn boolean(&mut self, node: &Node, path: &str) -> Option<bool> {
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
