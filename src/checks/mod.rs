//! Health checks: the seam every check kind fits ([`Probe`]), the kind-neutral [`scheduler`]
//! that polls them on a shared grid, and one module per kind: [`cabourotte`] (results read
//! from Cabourotte's HTTP API), the built-in [`exec`], [`http`], [`tcp`] and [`dns`] (with its
//! codec, [`dns_wire`]), and [`scripted`] (observations given by a test).
//!
//! A kind turns its validated config into a [`Probe`]: a *target* (checks of one target share
//! one scheduler task and its [`Gate`], so a thousand Cabourotte checks of one server reuse
//! a few connections, while an exec or TCP check has a target of its own), a timeout, and a
//! poll that yields an [`Observation`]: pass, fail with a reason, or pending. A poll never
//! decides anything about the service and never retries: a failure is an observation like
//! any other, and the next poll is at the next grid point.
//!
//! A kind is one file here: a type holding a check's settings of that kind implements
//! [`Kind`] (its keys read with `config/`'s walker, its identity, label and schema, and the
//! probe it builds), and one line of `KINDS` registers it. `config/` knows no kind: the
//! daemon hands it [`REGISTRY`] (see `config::kind` for why the dependency points this way).

pub mod cabourotte;
pub mod dns;
pub mod dns_wire;
pub mod exec;
pub mod http;
pub mod netns;
pub mod scheduler;
pub mod scripted;
pub mod tcp;

use crate::config::{Check, KindItem, KindLoader, KindSettings};
pub use anycastd_fsm::Observation;
use std::any::Any;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// A future a probe returns (boxed: probes of every kind share one scheduler).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One check of some kind, ready to be polled.
pub trait Probe: Send + 'static {
    /// Where its polls go (`http://127.0.0.1:9013` for Cabourotte): checks of equal targets
    /// share one scheduler and its [`Gate`].
    fn target(&self) -> &str;
    /// The limit on polls in flight to its target, shared by every probe of that target.
    fn gate(&self) -> Arc<Gate>;
    /// How long one poll may take.
    fn timeout(&self) -> Duration;
    /// Poll once. A probe may learn from a poll (Cabourotte's API generation), hence `&mut`.
    fn poll(&mut self) -> BoxFuture<'_, Observation>;
}

/// One check observation delivered to a service's driver.
#[derive(Debug)]
pub struct Polled {
    /// The check's index in its service.
    pub check: usize,
    /// How long the poll took.
    pub took: Duration,
    /// What it saw.
    pub observation: Observation,
    /// When its poll was due (ms since the epoch): the result's time.
    pub at_ms: i64,
}

/// A poll waits for a slot while its target keeps answering, up to this many timeouts;
/// without an answer from the target for a whole timeout, the wait fails at once.
pub const SLOT_WAIT_TIMEOUTS: u32 = 10;

/// The polls in flight to one target, and when it last answered.
#[derive(Debug)]
pub struct Gate {
    max_in_flight: usize,
    slots: Semaphore,
    /// When a poll of it last got an answer (ns since [`epoch`]; 0: never).
    answered_ns: AtomicU64,
}

/// Origin of [`Gate`]'s answer times.
fn epoch() -> tokio::time::Instant {
    static EPOCH: std::sync::OnceLock<tokio::time::Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(tokio::time::Instant::now)
}

impl Gate {
    /// A gate letting `max_in_flight` polls through at a time.
    pub fn new(max_in_flight: usize) -> Gate {
        Gate {
            max_in_flight,
            slots: Semaphore::new(max_in_flight),
            answered_ns: AtomicU64::new(0),
        }
    }

    /// The most polls in flight at a time.
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }

    /// The slots, for a probe polled outside a scheduler (the scheduler itself never starts
    /// more than [`Gate::max_in_flight`] polls of a target).
    pub fn slots(&self) -> &Semaphore {
        &self.slots
    }

    /// The target answered (anything: a pass, a failure it reported, an HTTP error).
    pub fn answered(&self) {
        let ns = u64::try_from(epoch().elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.answered_ns.store(ns.max(1), Ordering::Relaxed);
    }

    /// Whether the target answered within the last `within`.
    pub fn answered_within(&self, within: Duration) -> bool {
        let at = self.answered_ns.load(Ordering::Relaxed);
        at != 0 && epoch().elapsed().saturating_sub(Duration::from_nanos(at)) < within
    }
}

/// What the probes of every kind share: the HTTP clients and the gates of shared targets.
#[derive(Clone)]
pub struct Kinds {
    /// Cabourotte's HTTP side.
    pub cabourotte: cabourotte::Http,
    /// The HTTP checks' clients and gates.
    pub http: http::Shared,
    /// The DNS checks' gates.
    pub dns: dns::Shared,
    /// The runtimes inside the VRFs checks run in.
    pub namespaces: netns::Namespaces,
}

impl Kinds {
    /// The shared parts, built once per daemon.
    pub fn new() -> Result<Kinds, reqwest::Error> {
        Ok(Kinds {
            cabourotte: cabourotte::http_client()?,
            http: http::Shared::default(),
            dns: dns::Shared::default(),
            namespaces: netns::Namespaces::new(std::path::Path::new(netns::DEFAULT_NETNS_DIR)),
        })
    }
}

/// Makes the probe of a configured check of a service (the daemon's is [`Kinds::factory`]; a
/// test's may answer from [`scripted`] checks).
pub type Factory = Arc<dyn Fn(&str, &Check) -> Box<dyn Probe> + Send + Sync>;

impl Kinds {
    /// The factory of the daemon: [`probe`] with these shared parts.
    pub fn factory(self) -> Factory {
        Arc::new(move |service, check| probe(service, check, &self))
    }
}

/// A check kind: the type of a check's settings of that kind, in the kind's own file. It
/// reads its keys, names its identity and label, declares its schema and builds its probe;
/// one line of `KINDS` registers it.
pub trait Kind: fmt::Debug + PartialEq + Send + Sync + Sized + 'static {
    /// The key under `checks.` (`tcp`), also journaled.
    const NAME: &'static str;
    /// Its name in log lines (`TCP health check "ntp" failed.`).
    const LABEL: &'static str;
    /// Whether a table item must have `name` (for Cabourotte, the check's name there).
    const NAME_REQUIRED: bool = false;
    /// Whether its checks run programs (a config with any must be safe from other users).
    const RUNS_PROGRAMS: bool = false;
    /// A table item as it is written: the keys every check has and the kind's own
    /// (declared with `config::schema::check_table!`), for `anycastd schema`.
    type Schema: schemars::JsonSchema;

    /// Read the kind's own keys from `item` (a plain item fills its one required key): the
    /// settings, and the name derived from the target (for a check without `name`). Problems
    /// are reported through `item`, and then `None`.
    fn parse(item: &mut KindItem<'_, '_, '_>) -> Option<(Self, String)>;

    /// Everything that says what is checked (see [`KindSettings::identity`]).
    fn identity(&self) -> String;

    /// The age past which a stored result fails as stale (kinds reading stored results).
    fn max_age(&self) -> Option<Duration> {
        None
    }

    /// The probe of `check` (whose settings are `self`) of service `service`.
    fn probe(&self, service: &str, check: &Check, shared: &Kinds) -> Box<dyn Probe>;
}

impl<K: Kind> KindSettings for K {
    fn name(&self) -> &'static str {
        K::NAME
    }
    fn label(&self) -> &'static str {
        K::LABEL
    }
    fn identity(&self) -> String {
        Kind::identity(self)
    }
    fn max_age(&self) -> Option<Duration> {
        Kind::max_age(self)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn same(&self, other: &dyn KindSettings) -> bool {
        other.as_any().downcast_ref::<K>() == Some(self)
    }
}

/// A registered kind: what the loader needs of it, and its probe.
pub trait Registered: KindLoader {
    /// The probe of `check`, if its settings are of this kind.
    fn probe(&self, service: &str, check: &Check, shared: &Kinds) -> Option<Box<dyn Probe>>;
}

/// The registration of kind `K`.
struct Entry<K>(PhantomData<fn() -> K>);

impl<K: Kind> KindLoader for Entry<K> {
    fn name(&self) -> &'static str {
        K::NAME
    }
    fn name_required(&self) -> bool {
        K::NAME_REQUIRED
    }
    fn runs_programs(&self) -> bool {
        K::RUNS_PROGRAMS
    }
    fn parse(&self, item: &mut KindItem<'_, '_, '_>) -> Option<(Arc<dyn KindSettings>, String)> {
        let (settings, derived) = K::parse(item)?;
        Some((Arc::new(settings), derived))
    }
    fn schema(&self, generator: &mut schemars::gen::SchemaGenerator) -> schemars::schema::Schema {
        generator.subschema_for::<Option<Vec<crate::config::schema::Item<K::Schema>>>>()
    }
}

impl<K: Kind> Registered for Entry<K> {
    fn probe(&self, service: &str, check: &Check, shared: &Kinds) -> Option<Box<dyn Probe>> {
        let settings = check.settings::<K>()?;
        Some(settings.probe(service, check, shared))
    }
}

/// Every check kind, one line each, in the order the schema and the error messages list
/// them.
const KINDS: &[&dyn Registered] = &[
    &Entry::<cabourotte::Cabourotte>(PhantomData),
    &Entry::<exec::Exec>(PhantomData),
    &Entry::<http::Http>(PhantomData),
    &Entry::<tcp::Tcp>(PhantomData),
    &Entry::<dns::Dns>(PhantomData),
];

/// The check kinds, as the config loader asks for them ([`REGISTRY`]).
pub struct Registry;

/// The registry of every check kind: what the daemon gives `config::load`.
pub static REGISTRY: Registry = Registry;

impl crate::config::Registry for Registry {
    fn kinds(&self) -> Vec<&dyn KindLoader> {
        KINDS.iter().map(|k| *k as &dyn KindLoader).collect()
    }
}

/// The probe of check `check` of service `service`: in its VRF's namespace if it has one.
pub fn probe(service: &str, check: &Check, kinds: &Kinds) -> Box<dyn Probe> {
    match &check.vrf {
        Some(vrf) => {
            let (service, check_, kinds_) = (service.to_owned(), check.clone(), kinds.clone());
            let make: netns::Make = Box::new(move || kind_probe(&service, &check_, &kinds_));
            Box::new(netns::InNetns::new(make, vrf, &kinds.namespaces))
        }
        None => kind_probe(service, check, kinds),
    }
}

/// The probe of a check's kind (in the daemon's own namespace), built by its kind.
fn kind_probe(service: &str, check: &Check, kinds: &Kinds) -> Box<dyn Probe> {
    KINDS
        .iter()
        .find_map(|k| k.probe(service, check, kinds))
        .unwrap_or_else(|| Box::new(Unregistered(check.kind.name())))
}

/// The probe of a check whose kind is not in [`KINDS`] (settings made outside the loader):
/// every poll fails, saying so.
struct Unregistered(&'static str);

impl Probe for Unregistered {
    fn target(&self) -> &str {
        self.0
    }
    fn gate(&self) -> Arc<Gate> {
        Arc::new(Gate::new(1))
    }
    fn timeout(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn poll(&mut self) -> BoxFuture<'_, Observation> {
        let kind = self.0;
        Box::pin(async move { Observation::Fail(format!("no check kind {kind:?} is registered")) })
    }
}

/// An OS error's text without Rust's `(os error N)` suffix: `Connection refused`.
pub fn os_error_text(text: &str) -> &str {
    match text.find(" (os error ") {
        Some(i) if text.ends_with(')') => &text[..i],
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Settings of a kind that is not in [`KINDS`].
    #[derive(Debug, PartialEq)]
    struct Unknown;

    mod schema {
        #![allow(dead_code)]
        crate::config::schema::check_table!(Unknown {});
    }

    impl Kind for Unknown {
        const NAME: &'static str = "unknown";
        const LABEL: &'static str = "Unknown";
        type Schema = schema::Unknown;

        fn parse(_: &mut KindItem<'_, '_, '_>) -> Option<(Unknown, String)> {
            Some((Unknown, "unknown".into()))
        }

        fn identity(&self) -> String {
            String::new()
        }

        fn probe(&self, _: &str, _: &Check, _: &Kinds) -> Box<dyn Probe> {
            Box::new(Unregistered("never built: not registered"))
        }
    }

    #[test]
    fn a_check_of_an_unregistered_kind_fails_every_poll_saying_so() {
        let check = Check {
            name: "x".into(),
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            pending_timeout: Duration::from_secs(3),
            shadow: false,
            hard: false,
            vrf: None,
            kind: Arc::new(Unknown),
        };
        let kinds = Kinds::new().unwrap();
        let mut probe = probe("s", &check, &kinds);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert_eq!(
            runtime.block_on(probe.poll()),
            Observation::Fail("no check kind \"unknown\" is registered".into())
        );
    }

    #[test]
    fn settings_are_equal_only_to_settings_of_the_same_kind_and_values() {
        let a: Arc<dyn KindSettings> = Arc::new(tcp::Tcp {
            address: "127.0.0.1:1".into(),
        });
        let b: Arc<dyn KindSettings> = Arc::new(tcp::Tcp {
            address: "127.0.0.1:1".into(),
        });
        let c: Arc<dyn KindSettings> = Arc::new(tcp::Tcp {
            address: "127.0.0.1:2".into(),
        });
        assert!(*a == *b);
        assert!(*a != *c);
        assert!(*a != *(Arc::new(Unknown) as Arc<dyn KindSettings>));
    }
}
