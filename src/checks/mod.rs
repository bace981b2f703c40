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
//! Adding a kind: a module here with a type implementing [`Probe`], a variant of
//! [`crate::config::CheckKind`] with its keys (parsed in `config/`), and one arm in
//! [`probe`].

pub mod cabourotte;
pub mod dns;
pub mod dns_wire;
pub mod exec;
pub mod http;
pub mod netns;
pub mod scheduler;
pub mod scripted;
pub mod tcp;

pub use anycastd_fsm::Observation;
use std::future::Future;
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
pub type Factory = Arc<dyn Fn(&str, &crate::config::Check) -> Box<dyn Probe> + Send + Sync>;

impl Kinds {
    /// The factory of the daemon: [`probe`] with these shared parts.
    pub fn factory(self) -> Factory {
        Arc::new(move |service, check| probe(service, check, &self))
    }
}

/// The probe of check `check` of service `service`: the one place that maps a kind to its
/// module.
pub fn probe(service: &str, check: &crate::config::Check, kinds: &Kinds) -> Box<dyn Probe> {
    match &check.vrf {
        Some(vrf) => {
            let (service, check_, kinds_) = (service.to_owned(), check.clone(), kinds.clone());
            let make: netns::Make = Box::new(move || kind_probe(&service, &check_, &kinds_));
            Box::new(netns::InNetns::new(make, vrf, &kinds.namespaces))
        }
        None => kind_probe(service, check, kinds),
    }
}

/// The probe of a check's kind (in the daemon's own namespace).
fn kind_probe(service: &str, check: &crate::config::Check, kinds: &Kinds) -> Box<dyn Probe> {
    use crate::config::CheckKind;
    let vrf = check.vrf.as_deref();
    match &check.kind {
        CheckKind::Cabourotte { url, max_age } => Box::new(cabourotte::CabourotteCheck::new(
            &kinds.cabourotte,
            url,
            &check.name,
            check.timeout,
            *max_age,
        )),
        CheckKind::Exec(e) => {
            Box::new(exec::ExecProbe::new(service, &check.name, e, check.timeout))
        }
        CheckKind::Http(h) => Box::new(http::HttpProbe::new(&kinds.http, h, check.timeout, vrf)),
        CheckKind::Tcp { address } => Box::new(tcp::TcpProbe::new(
            service,
            &check.name,
            address,
            check.timeout,
        )),
        CheckKind::Dns(d) => Box::new(dns::DnsProbe::new(&kinds.dns, d, check.timeout)),
    }
}

/// An OS error's text without Rust's `(os error N)` suffix: `Connection refused`.
pub fn os_error_text(text: &str) -> &str {
    match text.find(" (os error ") {
        Some(i) if text.ends_with(')') => &text[..i],
        _ => text,
    }
}
