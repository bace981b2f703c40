//! Validation of `[services.NAME]`: rise and fall, prefixes (per backend), checks (per
//! kind), flap damping, and the rules across services (a prefix belongs to one service).

use super::tree::{Node, Value};
use super::validate::{join, Table, Validator};

/// The longest `drain_grace`: a grace holds a drain, a stop or a removal this long.
pub const MAX_DRAIN_GRACE: Duration = Duration::from_secs(3600);

use super::kind::{Item, KindItem};
use super::routing::{loader_of, loaders, BackendLoader, Report, RouteAt};
use super::*;

impl Validator {
    pub(super) fn services(&mut self, node: &Node) -> Option<Vec<Service>> {
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
        self.routing_rules(&services);
        ok.then(|| services.into_iter().map(|(_, s)| s).collect())
    }

    /// The rules of each routing kind across the prefixes of every service
    /// ([`BackendLoader::check_routes`]).
    fn routing_rules(&mut self, services: &[(usize, Service)]) {
        let mut routes = Vec::new();
        for (span, service) in services {
            for (index, route) in service.prefixes.iter().enumerate() {
                let (path, offset) =
                    self.prefix_item(&service.name, index, *span, &prefix_key(route));
                routes.push(RouteAt {
                    service: &service.name,
                    route,
                    path,
                    offset,
                });
            }
        }
        for loader in loaders() {
            loader.check_routes(
                &routes,
                &mut Report {
                    validator: &mut *self,
                },
            );
        }
    }

    /// The key path and offset of service `service`'s `index`-th prefix (the service's
    /// `prefixes.KEY` at `span` if it is not known).
    fn prefix_item(&self, service: &str, index: usize, span: usize, key: &str) -> (String, usize) {
        self.prefix_items
            .get(&(format!("services.{service}.prefixes"), index))
            .cloned()
            .unwrap_or_else(|| (format!("services.{service}.prefixes.{key}"), span))
    }

    pub(super) fn duplicate_prefixes(&mut self, services: &[(usize, Service)]) {
        let mut owner: HashMap<&Prefix, &str> = HashMap::new();
        for (span, service) in services {
            for (index, prefix) in service.prefixes.iter().enumerate() {
                let (key_path, at) =
                    self.prefix_item(&service.name, index, *span, &prefix_key(prefix));
                let shown = match loader_of(&prefix.backend) {
                    Some(loader) => loader.prefix_text(prefix),
                    None => prefix.text(),
                };
                match owner.get(prefix) {
                    Some(other) if *other != service.name => {
                        let other = other.to_string();
                        self.problem(
                            at,
                            key_path,
                            format!("prefix {shown} is also in service \"{other}\""),
                        );
                    }
                    Some(_) => {
                        self.problem(at, key_path, format!("prefix {shown} is listed twice"));
                    }
                    None => {
                        owner.insert(prefix, &service.name);
                    }
                }
            }
        }
    }

    pub(super) fn service(&mut self, name: &str, node: &Node, path: &str) -> Option<Service> {
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
        let fast_interval = match self.take(&mut table, "fast_interval") {
            Some(n) => self.duration(n, &join(path, "fast_interval")).map(Some),
            None => Some(None),
        };
        let fleet = match self.take(&mut table, "fleet") {
            Some(n) => {
                self.fleet_keys.push((n.span.start, join(path, "fleet")));
                self.fleet_rule(n, &join(path, "fleet")).map(Some)
            }
            None => Some(None),
        };
        let require_node = self.take(&mut table, "require");
        let require = match require_node {
            Some(n) => self.require(n, &join(path, "require")),
            None => Some(0),
        };
        let on_unhealthy_node = self.take(&mut table, "on_unhealthy");
        let on_unhealthy = match on_unhealthy_node {
            Some(n) => self.on_unhealthy(n, &join(path, "on_unhealthy")),
            None => Some(anycastd_fsm::OnUnhealthy::Withdraw),
        };
        let deprefer = match self.take(&mut table, "deprefer") {
            Some(n) => self.deprefer(n, &join(path, "deprefer")).map(Some),
            None => Some(None),
        };
        let drain_grace = match self.take(&mut table, "drain_grace") {
            Some(n) => self.grace(n, &join(path, "drain_grace")),
            None => Some(Duration::ZERO),
        };
        self.finish(table);
        let (on_unhealthy, deprefer) = (on_unhealthy?, deprefer?);
        if let (anycastd_fsm::OnUnhealthy::Deprefer, None, Some(n)) =
            (on_unhealthy, &deprefer, on_unhealthy_node)
        {
            // No default attributes: what makes a route lose depends on the peers' policy
            // (MED is compared only between routes from one AS; prepending only where the
            // path lengths tie), so the operator says it.
            self.problem(
                n.span.start,
                join(path, "on_unhealthy"),
                "\"deprefer\" needs a deprefer table saying how (e.g. deprefer = { as_path_prepend = 3 })",
            );
            return None;
        }
        let (checks, require) = (checks?, require?);
        let gating = checks.iter().filter(|c| !c.shadow).count();
        if let Some(n) = require_node.filter(|_| require as usize > gating) {
            self.problem(
                n.span.start,
                join(path, "require"),
                format!("asks for {require} passing check(s), but the service has {gating} (shadow checks aside)"),
            );
            return None;
        }
        Some(Service {
            name: name.to_owned(),
            rise: rise?,
            fall: fall?,
            prefixes: prefixes?,
            checks,
            damping: damping?,
            require,
            fast_interval: fast_interval?,
            on_unhealthy,
            deprefer,
            drain_grace: drain_grace?,
            fleet: fleet?,
        })
    }

    /// `on_unhealthy`: `"withdraw"` or `"deprefer"`.
    fn on_unhealthy(&mut self, node: &Node, path: &str) -> Option<anycastd_fsm::OnUnhealthy> {
        match &node.value {
            Value::String(s) if s == "withdraw" => Some(anycastd_fsm::OnUnhealthy::Withdraw),
            Value::String(s) if s == "deprefer" => Some(anycastd_fsm::OnUnhealthy::Deprefer),
            _ => {
                self.problem(
                    node.span.start,
                    path,
                    "must be \"withdraw\" or \"deprefer\"",
                );
                None
            }
        }
    }

    /// `drain_grace`: a duration, or 0 (no grace), at most [`MAX_DRAIN_GRACE`].
    fn grace(&mut self, node: &Node, path: &str) -> Option<Duration> {
        let zero = match &node.value {
            Value::Integer(0) => true,
            Value::Float(f) => *f == 0.0,
            Value::String(s) => matches!(s.trim(), "0" | "0s" | "0ms"),
            _ => false,
        };
        if zero {
            return Some(Duration::ZERO);
        }
        let grace = match super::duration::parse_duration(&node.value) {
            Ok(grace) => grace,
            Err(message) => {
                let message = message.replace(
                    "must be greater than 0",
                    "must be 0 (no grace) or a positive duration",
                );
                self.problem(node.span.start, path, message);
                return None;
            }
        };
        if grace > MAX_DRAIN_GRACE {
            self.problem(
                node.span.start,
                path,
                format!(
                    "at most {} s (a grace keeps a drained route announced; keep a service drained longer with anycastd drain --for)",
                    MAX_DRAIN_GRACE.as_secs()
                ),
            );
            return None;
        }
        Some(grace)
    }

    /// `deprefer`: what a de-preferred announcement carries; every key optional, at least
    /// one set.
    fn deprefer(&mut self, node: &Node, path: &str) -> Option<crate::bgp::Attributes> {
        let mut table = self.table(node, path)?;
        let before = self.problems.len();
        let mut ok = true;
        let as_path_prepend = match self.take(&mut table, "as_path_prepend") {
            Some(n) => match &n.value {
                Value::Integer(i) if (1..=10).contains(i) => *i as u8,
                _ => {
                    self.problem(
                        n.span.start,
                        join(path, "as_path_prepend"),
                        "must be an integer from 1 to 10 (times the local AS is prepended)",
                    );
                    ok = false;
                    0
                }
            },
            None => 0,
        };
        let med = match self.take(&mut table, "med") {
            Some(n) => match &n.value {
                Value::Integer(i) if u32::try_from(*i).is_ok() => Some(*i as u32),
                _ => {
                    self.problem(
                        n.span.start,
                        join(path, "med"),
                        "must be an integer from 0 to 4294967295 (the MULTI_EXIT_DISC)",
                    );
                    ok = false;
                    None
                }
            },
            None => None,
        };
        let communities =
            self.community_list::<crate::bgp::Community>(&mut table, path, "communities", &mut ok);
        let large_communities = self.community_list::<crate::bgp::LargeCommunity>(
            &mut table,
            path,
            "large_communities",
            &mut ok,
        );
        self.finish(table);
        if !ok || self.problems.len() > before {
            return None;
        }
        if as_path_prepend == 0
            && med.is_none()
            && communities.is_empty()
            && large_communities.is_empty()
        {
            self.problem(
                node.span.start,
                path,
                "set at least one of as_path_prepend, med, communities, large_communities",
            );
            return None;
        }
        Some(
            crate::bgp::Attributes {
                as_path_prepend,
                med,
                communities,
                large_communities,
            }
            .normalized(),
        )
    }

    /// A list of communities (`T`: RFC 1997 or RFC 8092) under `key`. A community listed
    /// twice is an error (the one at the second place names the first): a route carries a
    /// community once, so the second is a slip, often for another value that was meant.
    fn community_list<T>(
        &mut self,
        table: &mut Table<'_>,
        path: &str,
        key: &str,
        ok: &mut bool,
    ) -> Vec<T>
    where
        T: std::str::FromStr<Err = crate::bgp::CommunityError> + PartialEq + std::fmt::Display,
    {
        let Some(n) = self.take(table, key) else {
            return Vec::new();
        };
        let key_path = join(path, key);
        let Value::Array(items) = &n.value else {
            self.problem(
                n.span.start,
                key_path,
                format!("must be an array of strings, not {}", n.value.kind()),
            );
            *ok = false;
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let item_path = format!("{key_path}[{i}]");
            match &item.value {
                Value::String(s) => match s.parse::<T>() {
                    Ok(c) => match out.iter().position(|(_, seen)| *seen == c) {
                        Some(first) => {
                            self.problem(
                                item.span.start,
                                item_path,
                                format!("{c} is listed twice (also {key}[{first}])"),
                            );
                            *ok = false;
                        }
                        None => out.push((i, c)),
                    },
                    Err(e) => {
                        self.problem(item.span.start, item_path, e.to_string());
                        *ok = false;
                    }
                },
                other => {
                    self.problem(
                        item.span.start,
                        item_path,
                        format!("must be a string, not {}", other.kind()),
                    );
                    *ok = false;
                }
            }
        }
        out.into_iter().map(|(_, c)| c).collect()
    }

    /// `require`: `"all"` (0), `"any"` (1) or a number of checks.
    fn require(&mut self, node: &Node, path: &str) -> Option<u32> {
        match &node.value {
            Value::String(s) if s == "all" => Some(0),
            Value::String(s) if s == "any" => Some(1),
            Value::Integer(_) => self.positive_u32(node, path),
            _ => {
                self.problem(
                    node.span.start,
                    path,
                    "must be \"all\", \"any\" or a number of checks",
                );
                None
            }
        }
    }

    pub(super) fn damping(&mut self, node: &Node, path: &str) -> Option<anycastd_fsm::Damping> {
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
    /// (filling the one required field) or a table. Each item comes with its type's key.
    pub(super) fn items<'a>(
        &mut self,
        node: &'a Node,
        path: &str,
        kind: &str,
        known: &[&'static str],
    ) -> Option<Vec<(&'static str, String, &'a Node)>> {
        let mut table = self.table(node, path)?;
        let mut items = Vec::new();
        let mut ok = true;
        for (i, (key, value)) in table.entries.iter().enumerate() {
            let key_path = join(path, &key.name);
            let Some(&type_key) = known.iter().find(|k| **k == key.name) else {
                self.problem(
                    key.span.start,
                    &key_path,
                    format!(
                        "unknown {kind} type \"{}\" (known: {})",
                        key.name,
                        known.join(", ")
                    ),
                );
                table.used[i] = true;
                ok = false;
                continue;
            };
            table.used[i] = true;
            match &value.value {
                Value::Array(list) => {
                    for (j, item) in list.iter().enumerate() {
                        items.push((type_key, format!("{key_path}[{j}]"), item));
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
        let _ = ok;
        // Known items are validated even when others are not: every problem at once (the
        // problems recorded make the config invalid anyway).
        Some(items)
    }

    pub(super) fn prefixes(&mut self, node: &Node, path: &str) -> Option<Vec<Prefix>> {
        let before = self.problems.len();
        let loaders = loaders();
        let keys: Vec<&'static str> = loaders.iter().map(|l| l.key()).collect();
        let items = self.items(node, path, "prefix", &keys)?;
        if items.is_empty() && self.problems.len() == before {
            self.problem(
                node.span.start,
                path,
                "a service needs at least one prefix (it could never announce anything)",
            );
            return None;
        }
        let mut prefixes = Vec::new();
        let mut ok = true;
        for (type_key, item_path, item) in items {
            let Some(loader) = loaders.iter().copied().find(|l| l.key() == type_key) else {
                continue;
            };
            match self.prefix(loader, item, &item_path) {
                Some(p) => {
                    self.prefix_items.insert(
                        (path.to_owned(), prefixes.len()),
                        (item_path.clone(), item.span.start),
                    );
                    prefixes.push(p);
                }
                None => ok = false,
            }
        }
        ok.then_some(prefixes)
    }

    /// One prefix of the routing kind `loader`: `prefix`, then the kind's own keys
    /// ([`BackendLoader::prefix`]).
    fn prefix(&mut self, loader: &dyn BackendLoader, node: &Node, path: &str) -> Option<Prefix> {
        let (prefix_node, place) = match &node.value {
            Value::Table(_) => {
                let mut table = self.table(node, path)?;
                let prefix = self.take(&mut table, "prefix");
                let place = loader.prefix(&mut KindItem {
                    validator: self,
                    item: Item::Table(node, &mut table),
                    path,
                });
                self.finish(table);
                let Some(prefix) = prefix else {
                    self.problem(
                        node.span.start,
                        join(path, "prefix"),
                        "missing required key",
                    );
                    return None;
                };
                (prefix, place?)
            }
            _ => (
                node,
                loader.prefix(&mut KindItem {
                    validator: self,
                    item: Item::Plain(node),
                    path,
                })?,
            ),
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
        let (backend, place) = place;
        Some(Prefix {
            place: place.unwrap_or_else(|| loader.default_place(&prefix)),
            prefix,
            backend,
        })
    }

    /// A check's VRF name; the empty string means the default VRF (as in the original).
    pub(super) fn vrf(&mut self, node: &Node, path: &str) -> Option<Option<String>> {
        let name = self.string(node, path)?;
        if name.is_empty() {
            return Some(None);
        }
        if !super::routing::valid_vrf_name(&name) {
            self.problem(
                node.span.start,
                path,
                format!(
                    "VRF name {name:?} must be 1-36 characters of A-Z a-z 0-9 _ . - (it names a network namespace)"
                ),
            );
            return None;
        }
        Some(Some(name))
    }
}

/// The key of a prefix's kind under `prefixes` (its kind's name for a kind no config file
/// reaches).
fn prefix_key(route: &Prefix) -> String {
    match loader_of(&route.backend) {
        Some(loader) => loader.key().to_owned(),
        None => route.backend.kind.name().to_owned(),
    }
}
