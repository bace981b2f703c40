//! Prometheus metrics: a small process-wide registry rendered in the text exposition format
//! (version 0.0.4), served by [`crate::observe::endpoint`] when `[metrics] listen` is set.
//!
//! Names follow Prometheus conventions: `anycastd_` prefix, base units (seconds), `_total`
//! for counters. Service, check and routing daemon instance names are labels (service names are restricted to
//! `[A-Za-z0-9_.-]`; other label values are escaped).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

type Labels = Vec<(&'static str, String)>;

#[derive(Default)]
struct Registry {
    /// (name, labels) -> value
    counters: BTreeMap<(&'static str, Labels), f64>,
    gauges: BTreeMap<(&'static str, Labels), f64>,
    /// The counters of every check, updated without this lock: (service, check, kind,
    /// shadow) -> cells.
    checks: BTreeMap<(String, String, &'static str, bool), Arc<CheckCells>>,
    /// The metric families of the routing backends whose writers started, by the order of
    /// their kinds ([`describe`]).
    backend_families: BTreeMap<usize, Families>,
}

/// Metric families: name, type and help text of each.
pub type Families = &'static [(&'static str, &'static str, &'static str)];

/// Where [`METRICS`] places the backends' families.
const BACKEND_FAMILIES: &str = "";

/// One check's counters (a check result is counted without the registry's lock).
#[derive(Debug, Default)]
struct CheckCells {
    /// Results: pass, fail, pending.
    results: [AtomicU64; 3],
    duration_ns: AtomicU64,
    count: AtomicU64,
}

/// Help texts and types of every metric, in exposition order.
const METRICS: &[(&str, &str, &str)] = &[
    (
        "anycastd_service_state",
        "gauge",
        "1 for the service's current state (starting, healthy, unhealthy, draining), else 0.",
    ),
    (
        "anycastd_service_last_transition_timestamp_seconds",
        "gauge",
        "Unix time of the service's last state change.",
    ),
    (
        "anycastd_service_transitions_total",
        "counter",
        "State changes of the service, by from and to state.",
    ),
    (
        "anycastd_check_results_total",
        "counter",
        "Check results, by result (pass, fail, pending).",
    ),
    (
        "anycastd_check_duration_seconds",
        "summary",
        "Time spent in check requests (_sum) and requests timed (_count).",
    ),
    // Here: the families of the routing backends whose writers started ([`describe`]).
    (BACKEND_FAMILIES, "", ""),
    (
        "anycastd_journal_appends_total",
        "counter",
        "Journal append requests.",
    ),
    (
        "anycastd_journal_flushes_total",
        "counter",
        "Journal group commits that flushed to disk (one fsync covers every durable append waiting).",
    ),
    (
        "anycastd_journal_errors_total",
        "counter",
        "Journal appends or flushes that failed.",
    ),
    (
        "anycastd_drift_repairs_total",
        "counter",
        "Prefixes found in the wrong state in the routing daemon and repaired.",
    ),
    (
        "anycastd_routing_restarts_total",
        "counter",
        "Restarts of a routing daemon noticed by its writer (a new control socket or API event stream).",
    ),
    (
        "anycastd_routing_restart_detection",
        "gauge",
        "1 while a writer knows its routing daemon's control socket and notices a restart within a second, 0 while it cannot (then the periodic pass repairs a restart).",
    ),
    ("anycastd_drains_total", "counter", "Operator drains."),
    (
        "anycastd_fleet_sites",
        "gauge",
        "Sites of a guarded service in etcd by state (starting, announcing, de-preferred, held, withdrawn, drained), as this site last read them.",
    ),
    (
        "anycastd_fleet_guard_held",
        "gauge",
        "1 while the fleet guard holds the service's withdrawal (it stays announced although unhealthy), else 0.",
    ),
    (
        "anycastd_fleet_guard_blind",
        "gauge",
        "1 while the fleet guard cannot reach etcd, else 0.",
    ),
    (
        "anycastd_routing_last_reconcile_timestamp_seconds",
        "gauge",
        "Unix time a writer last read its routing daemon and found it converged or converged it.",
    ),
    (
        "anycastd_build_info",
        "gauge",
        "Always 1; the version of this anycastd in a label.",
    ),
];

fn registry() -> &'static Mutex<Registry> {
    static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();
    REGISTRY.get_or_init(Mutex::default)
}

fn with<R>(f: impl FnOnce(&mut Registry) -> R) -> R {
    f(&mut registry().lock().unwrap_or_else(|p| p.into_inner()))
}

/// The counters of one check, resolved once (a check result must not take the lock); the
/// same cells for the same service and check (a reload keeps them).
#[derive(Clone, Debug)]
pub struct CheckMeters(Arc<CheckCells>);

impl CheckMeters {
    /// The counters of check `check` (of kind `kind`, a shadow check or not) of `service`.
    pub fn new(service: &str, check: &str, kind: &'static str, shadow: bool) -> CheckMeters {
        with(|r| {
            CheckMeters(
                r.checks
                    .entry((service.to_owned(), check.to_owned(), kind, shadow))
                    .or_default()
                    .clone(),
            )
        })
    }

    /// Count a result (0 pass, 1 fail, 2 pending) that took `took`.
    pub fn record(&self, result: usize, took: Duration) {
        if let Some(counter) = self.0.results.get(result) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        self.0.duration_ns.fetch_add(
            u64::try_from(took.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        self.0.count.fetch_add(1, Ordering::Relaxed);
    }
}

/// The samples of the per-check metric `name`, in label order.
fn check_samples(r: &Registry, name: &str) -> Vec<(Labels, f64)> {
    let labels = |service: &str, check: &str, kind: &str, shadow: bool| -> Labels {
        vec![
            ("service", service.to_owned()),
            ("check", check.to_owned()),
            ("kind", kind.to_owned()),
            ("shadow", shadow.to_string()),
        ]
    };
    let mut samples = Vec::new();
    for ((service, check, kind, shadow), cells) in &r.checks {
        let shadow = *shadow;
        let load = |cell: &AtomicU64| cell.load(Ordering::Relaxed) as f64;
        match name {
            "anycastd_check_results_total" => {
                // Label order: fail < pass < pending.
                for (result, i) in [("fail", 1), ("pass", 0), ("pending", 2)] {
                    let mut l = labels(service, check, kind, shadow);
                    l.push(("result", result.to_owned()));
                    samples.push((l, load(&cells.results[i])));
                }
            }
            "anycastd_check_duration_seconds_sum" => {
                samples.push((
                    labels(service, check, kind, shadow),
                    load(&cells.duration_ns) * 1e-9,
                ));
            }
            "anycastd_check_duration_seconds_count" => {
                samples.push((labels(service, check, kind, shadow), load(&cells.count)));
            }
            _ => return samples,
        }
    }
    samples
}

/// Add `by` to a counter.
pub fn count(name: &'static str, labels: &[(&'static str, &str)], by: f64) {
    let labels: Labels = labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
    with(|r| *r.counters.entry((name, labels)).or_default() += by);
}

/// Set a gauge.
pub fn set(name: &'static str, labels: &[(&'static str, &str)], value: f64) {
    let labels: Labels = labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
    with(|r| r.gauges.insert((name, labels), value));
}

/// Record a service's current state (one-hot over the four states) and the time it began.
pub fn service_state(service: &str, state: &str, since_ms: i64) {
    for s in ["starting", "healthy", "unhealthy", "draining"] {
        set(
            "anycastd_service_state",
            &[("service", service), ("state", s)],
            if s == state { 1.0 } else { 0.0 },
        );
    }
    set(
        "anycastd_service_last_transition_timestamp_seconds",
        &[("service", service)],
        since_ms as f64 / 1000.0,
    );
}

/// Counters that alerting rules take `increase()` of exist from the start, at 0: those of a
/// service (at its driver's start) ...
pub fn service_counters(service: &str) {
    for name in ["anycastd_drift_repairs_total", "anycastd_drains_total"] {
        count(name, &[("service", service)], 0.0);
    }
    // The flaps alerts count: both directions exist from the start.
    for (from, to) in [("healthy", "unhealthy"), ("unhealthy", "healthy")] {
        count(
            "anycastd_service_transitions_total",
            &[("service", service), ("from", from), ("to", to)],
            0.0,
        );
    }
}

/// Show the metric families of a routing backend kind (at its writer's start), among those
/// of the other kinds by `order`.
pub fn describe(order: usize, families: Families) {
    if !families.is_empty() {
        with(|r| r.backend_families.insert(order, families));
    }
}

/// ... of a routing backend (at its writer's start) ...
pub fn backend_counters(kind: &str, instance: &str) {
    count(
        "anycastd_routing_restarts_total",
        &[("backend", kind), ("endpoint", instance)],
        0.0,
    );
}

/// ... the build (at the daemon's start) ...
pub fn build_info() {
    set(
        "anycastd_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1.0,
    );
}

/// ... and of the journal (at the daemon's start).
pub fn journal_counters() {
    for name in [
        "anycastd_journal_appends_total",
        "anycastd_journal_errors_total",
    ] {
        count(name, &[], 0.0);
    }
    // Set from the committer's own count at each append.
    set("anycastd_journal_flushes_total", &[], 0.0);
}

/// Drop the series of a check a reload removed or changed (its kind or shadow flag).
pub fn forget_check(service: &str, check: &str, kind: &'static str, shadow: bool) {
    with(|r| {
        r.checks
            .remove(&(service.to_owned(), check.to_owned(), kind, shadow))
    });
}

/// Forget a removed service's gauges.
pub fn forget_service(service: &str) {
    with(|r| {
        r.gauges
            .retain(|(_, labels), _| !labels.iter().any(|(k, v)| *k == "service" && v == service))
    });
}

/// Forget gauge `name` of one service (every other label), e.g. its fleet gauges once a
/// reload removed its fleet rule.
pub fn forget_service_gauge(name: &str, service: &str) {
    with(|r| {
        r.gauges.retain(|(gauge, labels), _| {
            *gauge != name || !labels.iter().any(|(k, v)| *k == "service" && v == service)
        })
    });
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// The samples of one sample name (`name`, or a summary's `name_sum`/`name_count`).
fn samples(r: &Registry, name: &str) -> Vec<(Labels, f64)> {
    let mut samples: Vec<(Labels, f64)> = r
        .counters
        .iter()
        .chain(r.gauges.iter())
        .filter(|((n, _), _)| *n == name)
        .map(|((_, l), v)| (l.clone(), *v))
        .collect();
    samples.extend(check_samples(r, name));
    samples
}

/// The whole registry in the text exposition format. A `summary` family is a `_sum` and a
/// `_count` sample per label set, without quantiles.
pub fn render() -> String {
    with(|r| {
        let mut out = String::new();
        let families = METRICS.iter().flat_map(|family| {
            if family.0 == BACKEND_FAMILIES {
                r.backend_families.values().flat_map(|f| f.iter()).collect()
            } else {
                vec![family]
            }
        });
        let families: Vec<_> = families.collect();
        for (name, kind, help) in families {
            let lines: Vec<(String, Vec<(Labels, f64)>)> = if *kind == "summary" {
                ["_sum", "_count"]
                    .iter()
                    .map(|suffix| {
                        let sample = format!("{name}{suffix}");
                        let values = samples(r, &sample);
                        (sample, values)
                    })
                    .collect()
            } else {
                vec![((*name).to_owned(), samples(r, name))]
            };
            if lines.iter().all(|(_, values)| values.is_empty()) {
                continue;
            }
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (sample, values) in lines {
                for (labels, value) in values {
                    let labels: Vec<String> = labels
                        .iter()
                        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                        .collect();
                    if labels.is_empty() {
                        let _ = writeln!(out, "{sample} {}", number(value));
                    } else {
                        let _ = writeln!(out, "{sample}{{{}}} {}", labels.join(","), number(value));
                    }
                }
            }
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped_and_integers_printed_plainly() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(number(3.0), "3");
        assert_eq!(number(0.25), "0.25");
    }
}
