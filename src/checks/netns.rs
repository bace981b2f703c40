//! Checks in a VRF (`vrf = "123"` on a check): run inside the VRF's network namespace.
//!
//! Supported: netns-backed VRFs, as FRR's zebra runs them with `-n` (a VRF is a network
//! namespace named after it, in `[checks] netns_dir`, by default `/run/netns`). Linux VRF
//! devices (l3mdev) are not: a check whose VRF has no namespace fails and says so.
//!
//! Namespaces are per thread, so each VRF gets one thread that enters its namespace and
//! runs a single-threaded runtime there; a check of that VRF is polled on it ([`InNetns`]).
//! Everything the poll creates is then in the VRF: its sockets (TCP, UDP, the HTTP client's
//! connections, name lookups on the runtime's blocking threads, which the thread starts)
//! and its processes (an exec check's command is forked from that thread).

use super::{BoxFuture, Gate, Observation, Probe};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Where the namespaces of netns-backed VRFs are (iproute2's and FRR's).
pub const DEFAULT_NETNS_DIR: &str = "/run/netns";

/// The runtimes of the VRFs in use, one per namespace, started on first use.
#[derive(Clone, Default)]
pub struct Namespaces {
    dir: PathBuf,
    runtimes: Arc<Mutex<HashMap<String, Result<tokio::runtime::Handle, String>>>>,
}

impl Namespaces {
    /// The VRFs whose namespaces are in `dir`.
    pub fn new(dir: &Path) -> Namespaces {
        Namespaces {
            dir: dir.to_path_buf(),
            runtimes: Arc::default(),
        }
    }

    /// The runtime inside VRF `vrf`'s namespace, or why there is none (asked again, it tries
    /// again: the namespace may appear later).
    pub fn runtime(&self, vrf: &str) -> Result<tokio::runtime::Handle, String> {
        let mut runtimes = self.runtimes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(Ok(handle)) = runtimes.get(vrf) {
            return Ok(handle.clone());
        }
        let started = start(vrf, &self.dir.join(vrf));
        runtimes.insert(vrf.to_owned(), started.clone());
        started
    }
}

/// A thread in the namespace at `path`, running a runtime until the process ends.
fn start(vrf: &str, path: &Path) -> Result<tokio::runtime::Handle, String> {
    let file = std::fs::File::open(path).map_err(|e| {
        format!(
            "VRF {vrf}: no network namespace at {} ({}; only netns-backed VRFs are supported)",
            path.display(),
            crate::config::io_reason(&e)
        )
    })?;
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::Builder::new()
        .name(format!("vrf-{vrf}"))
        .spawn(move || {
            if let Err(e) = nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET) {
                let _ = tx.send(Err(format!("cannot enter the namespace: {e}")));
                return;
            }
            drop(file);
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    let _ = tx.send(Err(format!("cannot start a runtime: {e}")));
                    return;
                }
            };
            let _ = tx.send(Ok(runtime.handle().clone()));
            runtime.block_on(std::future::pending::<()>());
        });
    if let Err(e) = thread {
        return Err(format!("VRF {vrf}: cannot start a thread: {e}"));
    }
    match rx.recv() {
        Ok(Ok(handle)) => Ok(handle),
        Ok(Err(e)) => Err(format!("VRF {vrf} ({}): {e}", path.display())),
        Err(_) => Err(format!("VRF {vrf}: its thread ended")),
    }
}

/// A probe polled inside a VRF's namespace.
pub struct InNetns {
    target: String,
    gate: Arc<Gate>,
    timeout: Duration,
    runtime: Result<tokio::runtime::Handle, String>,
    vrf: String,
    namespaces: Namespaces,
    /// The probe; away while a poll of it runs on the VRF's runtime.
    inner: Option<Box<dyn Probe>>,
}

impl InNetns {
    /// `inner`, polled in `vrf`'s namespace.
    pub fn new(inner: Box<dyn Probe>, vrf: &str, namespaces: &Namespaces) -> InNetns {
        InNetns {
            target: format!("{}@vrf:{vrf}", inner.target()),
            gate: inner.gate(),
            timeout: inner.timeout(),
            runtime: namespaces.runtime(vrf),
            vrf: vrf.to_owned(),
            namespaces: namespaces.clone(),
            inner: Some(inner),
        }
    }

    async fn run(&mut self) -> Observation {
        if self.runtime.is_err() {
            // The namespace may have appeared since (FRR started after the daemon).
            self.runtime = self.namespaces.runtime(&self.vrf);
        }
        let runtime = match &self.runtime {
            Ok(r) => r.clone(),
            Err(e) => return Observation::Fail(e.clone()),
        };
        let Some(mut probe) = self.inner.take() else {
            return Observation::Fail("the check was lost with its VRF's runtime".into());
        };
        let task = runtime.spawn(async move {
            let observation = probe.poll().await;
            (probe, observation)
        });
        // Dropping this poll (a reload) ends the task too, and with it the check's work (an
        // exec check's process group is killed).
        let mut task = AbortOnDrop(task);
        match (&mut task.0).await {
            Ok((probe, observation)) => {
                self.inner = Some(probe);
                observation
            }
            Err(e) => Observation::Fail(format!("the check's task in its VRF failed: {e}")),
        }
    }
}

struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Probe for InNetns {
    fn target(&self) -> &str {
        &self.target
    }

    fn gate(&self) -> Arc<Gate> {
        self.gate.clone()
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn poll(&mut self) -> BoxFuture<'_, Observation> {
        Box::pin(self.run())
    }
}
