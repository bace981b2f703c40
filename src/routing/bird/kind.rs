//! BIRD's words and constructors ([`Kind`]): a prefix's place is a static protocol
//! (`BIRD protocol anycastd4`), an instance is a control socket, named in words when it is
//! not [`DEFAULT_SOCKET`] (the same protocol at two sockets must never read the same).

use super::{Bird, Settings, DEFAULT_SOCKET};
use crate::routing::kind::{Open, OpenWith, Opener};
use crate::routing::{BackendId, BackendKind, Kind};
use std::time::Duration;

/// BIRD 2 or 3, through its control socket.
pub struct BirdKind;

/// The handle on BIRD's kind, as [`crate::routing::KINDS`] lists it.
pub const KIND: BackendKind = BackendKind::of(&BirdKind);

impl BackendId {
    /// The BIRD reached through the control socket `socket`.
    pub fn bird(socket: impl AsRef<std::path::Path>) -> BackendId {
        BackendId {
            kind: KIND,
            instance: socket.as_ref().display().to_string(),
        }
    }
}

impl Open for Bird {
    fn open(settings: &crate::routing::Settings, id: &BackendId) -> Bird {
        Bird::new(id, &settings.of::<Settings>(KIND))
    }
}

impl Kind for BirdKind {
    fn name(&self) -> &'static str {
        "bird"
    }

    fn label(&self) -> &'static str {
        "BIRD"
    }

    fn instance_noun(&self) -> &'static str {
        "socket"
    }

    fn place_noun(&self) -> &'static str {
        "protocol"
    }

    fn instance_text(&self, instance: &str) -> String {
        format!("BIRD at {instance}")
    }

    fn place_text(&self, prefix: &str, place: Option<&str>) -> String {
        match place {
            Some(protocol) => format!("{prefix} (BIRD protocol {protocol})"),
            None => prefix.to_owned(),
        }
    }

    fn place_text_at(&self, prefix: &str, place: Option<&str>, instance: &str) -> String {
        match place {
            Some(protocol) if instance != DEFAULT_SOCKET => {
                format!("{prefix} (BIRD protocol {protocol} at {instance})")
            }
            _ => self.place_text(prefix, place),
        }
    }

    fn place_text_with_instance(
        &self,
        prefix: &str,
        place: Option<&str>,
        instance: &str,
    ) -> String {
        match place {
            Some(protocol) => format!("{prefix} (BIRD protocol {protocol} at {instance})"),
            None => format!(
                "{} through {instance}",
                self.place_text_at(prefix, place, instance)
            ),
        }
    }

    fn prefix_with_backend(
        &self,
        label: &str,
        prefix: &str,
        place: Option<&str>,
        instance: &str,
    ) -> String {
        match place {
            Some(protocol) if instance != DEFAULT_SOCKET => {
                format!("{prefix} ({label} at {instance}, protocol {protocol})")
            }
            Some(protocol) => format!("{prefix} ({label}, protocol {protocol})"),
            None => format!("{prefix} ({label})"),
        }
    }

    fn place_of(
        &self,
        label: &str,
        place: Option<&str>,
        instance: &str,
        instance_differs: bool,
    ) -> String {
        match place {
            Some(protocol) if instance_differs || instance != DEFAULT_SOCKET => {
                format!("BIRD protocol {protocol} at {instance}")
            }
            Some(protocol) => format!("BIRD protocol {protocol}"),
            None => {
                let mut text = label.to_owned();
                if instance_differs {
                    text.push_str(&format!(" through {instance}"));
                }
                text
            }
        }
    }

    fn no_peer_text(&self) -> &'static str {
        "no established BGP protocol exports it"
    }

    fn left_announced_hint(&self) -> Option<&'static str> {
        // The include files already leave out every withdrawal wanted: what is left needs
        // only a configure that goes through (or BIRD's next start).
        Some("For BIRD, anycastd's include files already leave them out: fix what BIRD refused and run `birdc configure`; a BIRD that is not running does not announce them when it starts.")
    }

    fn reconcile_interval(&self, settings: &crate::routing::Settings) -> Duration {
        settings.of::<Settings>(KIND).reconcile_interval
    }

    fn config(&self) -> Option<&'static dyn crate::config::BackendLoader> {
        Some(&super::config::Loader)
    }

    fn opener(&self) -> &'static dyn Opener {
        &OpenWith::<Bird>::NEW
    }

    fn metric_families(&self) -> &'static [(&'static str, &'static str, &'static str)] {
        super::control::METRIC_FAMILIES
    }

    fn zero_counters(&self, instance: &str) {
        super::control::zero_counters(instance);
    }
}
