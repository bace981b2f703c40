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

/// Where the namespaces of netns-backed VRFs are (iproute2's and FRR's): the default of
/// `[checks] netns_dir`.
pub use crate::config::DEFAULT_NETNS_DIR;

/// The runtimes of the VRFs in use, one per namespace, started on first use.
#[derive(Clone, Default)]
pub struct Namespaces {
    dir: PathBuf,
    runtimes: Arc<Mutex<HashMap<String, Runtime>>>,
}

/// One VRF's runtime, and which namespace it is in.
struct Runtime {
    handle: tokio::runtime::Handle,
    /// The namespace file's device and inode when the thread entered it.
    namespace: (u64, u64),
    /// Dropped to end the thread (its namespace went or was replaced).
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// The device and inode of the namespace file at `path` (through symbolic links).
fn identify(path: &Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path)?;
    Ok((meta.dev(), meta.ino()))
}

impl Namespaces {
    /// The VRFs whose namespaces are in `dir`.
    pub fn new(dir: &Path) -> Namespaces {
        Namespaces {
            dir: dir.to_path_buf(),
            runtimes: Arc::default(),
        }
    }

    /// The runtime inside VRF `vrf`'s namespace, or why there is none. Asked at every poll:
    /// the namespace file is looked at each time, so a namespace that appears is used, one
    /// that goes fails the checks, and one replaced (a VRF deleted and created again, a
    /// symbolic link pointed elsewhere) gets a new runtime inside it.
    pub fn runtime(&self, vrf: &str) -> Result<tokio::runtime::Handle, NetnsError> {
        let path = self.dir.join(vrf);
        let mut runtimes = self.runtimes.lock().unwrap_or_else(|p| p.into_inner());
        let namespace = match identify(&path) {
            Ok(id) => id,
            Err(e) => {
                runtimes.remove(vrf);
                return Err(missing(vrf, &path, e));
            }
        };
        if let Some(r) = runtimes.get(vrf).filter(|r| r.namespace == namespace) {
            return Ok(r.handle.clone());
        }
        let runtime = start(vrf, &path)?;
        let handle = runtime.handle.clone();
        runtimes.insert(vrf.to_owned(), runtime);
        Ok(handle)
    }
}

/// Why a VRF's checks cannot run in its namespace.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// No namespace file (or an unreadable one).
    #[error("VRF {vrf}: no network namespace at {} ({}; only netns-backed VRFs are supported)", .path.display(), crate::config::io_reason(.source))]
    Missing {
        /// The VRF.
        vrf: String,
        /// Where its namespace was looked for.
        path: PathBuf,
        /// Why it could not be opened.
        source: std::io::Error,
    },
    /// The thread entering it could not be started.
    #[error("VRF {vrf}: cannot start a thread: {source}")]
    Thread {
        /// The VRF.
        vrf: String,
        /// Why.
        source: std::io::Error,
    },
    /// The thread could not enter it or start its runtime.
    #[error("VRF {vrf} ({}): {reason}", .path.display())]
    Inside {
        /// The VRF.
        vrf: String,
        /// Its namespace.
        path: PathBuf,
        /// What failed inside the thread.
        reason: InsideError,
    },
    /// The thread ended before it answered.
    #[error("VRF {vrf}: its thread ended")]
    Ended {
        /// The VRF.
        vrf: String,
    },
}

/// What failed in the thread of a VRF.
#[derive(Debug, thiserror::Error)]
pub enum InsideError {
    /// `setns` failed.
    #[error("cannot enter the namespace: {0}")]
    Enter(nix::Error),
    /// The runtime could not be built.
    #[error("cannot start a runtime: {0}")]
    Runtime(std::io::Error),
}

fn missing(vrf: &str, path: &Path, source: std::io::Error) -> NetnsError {
    NetnsError::Missing {
        vrf: vrf.to_owned(),
        path: path.to_path_buf(),
        source,
    }
}

/// A thread in the namespace at `path`, running a runtime until told to stop.
fn start(vrf: &str, path: &Path) -> Result<Runtime, NetnsError> {
    let file = std::fs::File::open(path).map_err(|e| missing(vrf, path, e))?;
    let namespace = {
        use std::os::unix::fs::MetadataExt;
        let meta = file.metadata().map_err(|e| missing(vrf, path, e))?;
        (meta.dev(), meta.ino())
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::Builder::new()
        .name(format!("vrf-{vrf}"))
        .spawn(move || {
            if let Err(e) = nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET) {
                let _ = tx.send(Err(InsideError::Enter(e)));
                return;
            }
            drop(file);
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    let _ = tx.send(Err(InsideError::Runtime(e)));
                    return;
                }
            };
            let _ = tx.send(Ok(runtime.handle().clone()));
            // Until the namespace is gone or replaced (the sender dropped); the checks still
            // running in it end with the runtime.
            let _ = runtime.block_on(stopped);
        });
    if let Err(source) = thread {
        return Err(NetnsError::Thread {
            vrf: vrf.to_owned(),
            source,
        });
    }
    match rx.recv() {
        Ok(Ok(handle)) => Ok(Runtime {
            handle,
            namespace,
            _stop: stop,
        }),
        Ok(Err(reason)) => Err(NetnsError::Inside {
            vrf: vrf.to_owned(),
            path: path.to_path_buf(),
            reason,
        }),
        Err(_) => Err(NetnsError::Ended {
            vrf: vrf.to_owned(),
        }),
    }
}

/// Makes the probe a VRF's runtime polls (again, when a runtime ended with it inside).
pub type Make = Box<dyn Fn() -> Box<dyn Probe> + Send>;

/// A probe polled inside a VRF's namespace.
pub struct InNetns {
    target: String,
    gate: Arc<Gate>,
    timeout: Duration,
    vrf: String,
    namespaces: Namespaces,
    make: Make,
    /// The probe; away while a poll of it runs on the VRF's runtime.
    inner: Option<Box<dyn Probe>>,
}

impl InNetns {
    /// The probe `make` builds, polled in `vrf`'s namespace.
    pub fn new(make: Make, vrf: &str, namespaces: &Namespaces) -> InNetns {
        let inner = make();
        InNetns {
            target: format!("{}@vrf:{vrf}", inner.target()),
            gate: inner.gate(),
            timeout: inner.timeout(),
            vrf: vrf.to_owned(),
            namespaces: namespaces.clone(),
            make,
            inner: Some(inner),
        }
    }

    async fn run(&mut self) -> Observation {
        // Looked up at every poll: the namespace may have appeared, gone or been replaced.
        let runtime = match self.namespaces.runtime(&self.vrf) {
            Ok(r) => r,
            Err(e) => return Observation::Fail(e.to_string()),
        };
        // A poll that ended with its runtime (the namespace replaced) took the probe along.
        let mut probe = self.inner.take().unwrap_or_else(|| (self.make)());
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
