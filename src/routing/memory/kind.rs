//! The memory backend's words and constructors ([`Kind`]): the defaults (a place is a
//! `vrf`), its instances named `memory:NAME`.

use super::Memory;
use crate::routing::kind::{Open, OpenWith, Opener};
use crate::routing::{BackendId, BackendKind, Kind};
use std::time::Duration;

/// How often the writer of a memory backend reads it afresh.
const RECONCILE_INTERVAL: Duration = Duration::from_secs(30);

/// In this process, for tests; not reachable from a config file.
pub struct MemoryKind;

/// The handle on the memory backend's kind, as [`crate::routing::KINDS`] lists it.
pub const KIND: BackendKind = BackendKind::of(&MemoryKind);

impl BackendId {
    /// The memory backend called `name`.
    pub fn memory(name: &str) -> BackendId {
        BackendId {
            kind: KIND,
            instance: name.to_owned(),
        }
    }
}

impl Open for Memory {
    fn open(_: &crate::routing::Settings, id: &BackendId) -> Memory {
        Memory::named(&id.instance)
    }
}

impl Kind for MemoryKind {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn label(&self) -> &'static str {
        "the memory backend"
    }

    fn instance_noun(&self) -> &'static str {
        "memory backend"
    }

    fn reconcile_interval(&self, _: &crate::routing::Settings) -> Duration {
        RECONCILE_INTERVAL
    }

    fn opener(&self) -> &'static dyn Opener {
        &OpenWith::<Memory>::NEW
    }
}
