//! What a kind of routing daemon says about itself, so that code outside its folder never
//! asks which daemon it is: its names, how it writes a prefix's place (a VRF, a static
//! protocol, nothing for a daemon without tables), its hints, and how to reach one of its
//! instances from the [`Settings`]. Each backend folder has one `static` value of a type
//! implementing [`Kind`]; [`super::KINDS`] lists them.
//!
//! The words have defaults (a place written as `vrf NAME`, an instance as `LABEL INSTANCE`);
//! a kind overrides those its operators know other words for.

use super::{writer, BackendError, BackendId, BoxFuture, PrefixKey, Settings, Shown, Snapshot};
use std::time::Duration;
use tokio::sync::mpsc;

/// A kind of routing daemon: its words and its constructors.
pub trait Kind: Send + Sync + 'static {
    /// Its name in the journal, the config and metrics labels (`frr`).
    fn name(&self) -> &'static str;

    /// Its name in messages (`FRR`).
    fn label(&self) -> &'static str;

    /// The daemon whose restarts and configuration loads are told, in words (`bgpd`).
    fn daemon(&self) -> &'static str {
        self.label()
    }

    /// What a read of it reads, in words, after "cannot read" (`FRR's running config`).
    fn read_source(&self) -> &'static str {
        self.label()
    }

    /// What its instance is, before it in words (`vtysh`: `vtysh /usr/bin/vtysh`).
    fn instance_noun(&self) -> &'static str;

    /// What a place within it is called, as a log field and in words (`vrf`).
    fn place_noun(&self) -> &'static str {
        "vrf"
    }

    /// A backend id in messages ([`BackendId`]'s display): `NAME:INSTANCE`.
    fn id_text(&self, instance: &str) -> String {
        format!("{}:{instance}", self.name())
    }

    /// An instance in words: `LABEL INSTANCE`.
    fn instance_text(&self, instance: &str) -> String {
        format!("{} {instance}", self.label())
    }

    /// A prefix in its place: `203.0.113.123/32 (vrf 123)`, the prefix alone in the default
    /// place.
    fn place_text(&self, prefix: &str, place: Option<&str>) -> String {
        match place {
            Some(place) => format!("{prefix} ({} {place})", self.place_noun()),
            None => prefix.to_owned(),
        }
    }

    /// A prefix in its place, with its instance when the place alone could mislead (as
    /// [`Kind::place_text`] by default).
    fn place_text_at(&self, prefix: &str, place: Option<&str>, instance: &str) -> String {
        let _ = instance;
        self.place_text(prefix, place)
    }

    /// A prefix in its place with its instance whatever it is: `203.0.113.1/32 through
    /// /usr/bin/vtysh`.
    fn place_text_with_instance(
        &self,
        prefix: &str,
        place: Option<&str>,
        instance: &str,
    ) -> String {
        format!(
            "{} through {instance}",
            self.place_text_at(prefix, place, instance)
        )
    }

    /// A prefix with its daemon, `label` naming it: `203.0.113.123/32 (FRR, vrf 123)`.
    fn prefix_with_backend(
        &self,
        label: &str,
        prefix: &str,
        place: Option<&str>,
        instance: &str,
    ) -> String {
        let _ = instance;
        match place {
            Some(place) => format!("{prefix} ({label}, {} {place})", self.place_noun()),
            None => format!("{prefix} ({label})"),
        }
    }

    /// A place for a move, `label` naming the daemon (`FRR vrf 123`), with its instance when
    /// `instance_differs` (the other place differs only in it).
    fn place_of(
        &self,
        label: &str,
        place: Option<&str>,
        instance: &str,
        instance_differs: bool,
    ) -> String {
        let mut text = label.to_owned();
        if let Some(place) = place {
            text.push_str(&format!(" {} {place}", self.place_noun()));
        }
        if instance_differs {
            text.push_str(&format!(" through {instance}"));
        }
        text
    }

    /// A prefix it has, valid, with no established peer to send it to, in words (`status`).
    fn no_peer_text(&self) -> &'static str {
        "no established peer"
    }

    /// A prefix it has that it does not advertise for want of a valid route, in words
    /// (`status`).
    fn no_valid_route_text(&self) -> &'static str {
        "no valid route"
    }

    /// What the operator can do about prefixes it may still announce after anycastd
    /// stopped without verifying their withdrawal (a sentence), if more than the rest says.
    fn left_announced_hint(&self) -> Option<&'static str> {
        None
    }

    /// How often its writers read it afresh and repair drift.
    fn reconcile_interval(&self, settings: &Settings) -> Duration;

    /// How a config file reaches it: its section and its prefix items
    /// (`routing/KIND/config.rs`); `None` for a kind that tests alone reach.
    fn config(&self) -> Option<&'static dyn crate::config::BackendLoader> {
        None
    }

    /// How one of its instances is built and reached: `&OpenWith::<ITS_BACKEND_TYPE>::NEW`.
    fn opener(&self) -> &'static dyn Opener;

    /// Its metric families (name, type, help), shown once one of its writers started.
    fn metric_families(&self) -> &'static [(&'static str, &'static str, &'static str)] {
        &[]
    }

    /// Set its counters of instance `id` to 0 at its writer's start.
    fn zero_counters(&self, instance: &str) {
        let _ = instance;
    }
}

/// What the rest of the daemon builds of a kind ([`Kind::opener`]): a writer, a read, an
/// inspection, of one instance from the [`Settings`]. Written once for every backend type
/// by [`OpenWith`].
pub trait Opener: Send + Sync {
    /// Start the writer of instance `id`, reading afresh every `interval`.
    fn spawn_writer(
        &self,
        settings: &Settings,
        id: &BackendId,
        interval: Duration,
        reports: mpsc::UnboundedSender<writer::Notice>,
    ) -> writer::WriterHandle;

    /// Read what instance `id` has installed.
    fn read<'a>(
        &self,
        settings: &'a Settings,
        id: &'a BackendId,
    ) -> BoxFuture<'a, Result<Snapshot, BackendError>>;

    /// Show what instance `id` installed and advertises of `prefixes`, in their order.
    fn inspect<'a>(
        &self,
        settings: &'a Settings,
        id: &'a BackendId,
        prefixes: &'a [PrefixKey],
    ) -> BoxFuture<'a, Result<Vec<Shown>, BackendError>>;

    /// Why a restart of instance `id` cannot be noticed at once (from the configuration and
    /// the files alone), if it cannot.
    fn restart_detection_off(&self, settings: &Settings, id: &BackendId) -> Option<String>;
}

/// The [`Opener`] of the backend type `B`.
pub struct OpenWith<B>(std::marker::PhantomData<fn() -> B>);

impl<B> OpenWith<B> {
    /// The value (a kind's `opener` returns `&OpenWith::<B>::NEW`).
    pub const NEW: OpenWith<B> = OpenWith(std::marker::PhantomData);
}

impl<B: Open> Opener for OpenWith<B> {
    fn spawn_writer(
        &self,
        settings: &Settings,
        id: &BackendId,
        interval: Duration,
        reports: mpsc::UnboundedSender<writer::Notice>,
    ) -> writer::WriterHandle {
        spawn_writer::<B>(settings, id, interval, reports)
    }

    fn read<'a>(
        &self,
        settings: &'a Settings,
        id: &'a BackendId,
    ) -> BoxFuture<'a, Result<Snapshot, BackendError>> {
        read::<B>(settings, id)
    }

    fn inspect<'a>(
        &self,
        settings: &'a Settings,
        id: &'a BackendId,
        prefixes: &'a [PrefixKey],
    ) -> BoxFuture<'a, Result<Vec<Shown>, BackendError>> {
        inspect::<B>(settings, id, prefixes)
    }

    fn restart_detection_off(&self, settings: &Settings, id: &BackendId) -> Option<String> {
        restart_detection_off::<B>(settings, id)
    }
}

/// The [`Kind`] entry points for a backend type `B` that [`Open`] builds: what a kind's
/// constructors do, written once.
pub fn spawn_writer<B: Open>(
    settings: &Settings,
    id: &BackendId,
    interval: Duration,
    reports: mpsc::UnboundedSender<writer::Notice>,
) -> writer::WriterHandle {
    writer::spawn(B::open(settings, id), interval, reports)
}

/// [`Kind::read`] for a backend type `B`.
pub fn read<'a, B: Open>(
    settings: &'a Settings,
    id: &'a BackendId,
) -> BoxFuture<'a, Result<Snapshot, BackendError>> {
    use super::Installed;
    Box::pin(async move {
        let backend = B::open(settings, id);
        match backend.read().await {
            Ok(installed) => Ok(installed.snapshot()),
            Err(e) => Err(e.into()),
        }
    })
}

/// [`Kind::inspect`] for a backend type `B`.
pub fn inspect<'a, B: Open>(
    settings: &'a Settings,
    id: &'a BackendId,
    prefixes: &'a [PrefixKey],
) -> BoxFuture<'a, Result<Vec<Shown>, BackendError>> {
    Box::pin(async move {
        let backend = B::open(settings, id);
        backend.inspect(prefixes).await.map_err(Into::into)
    })
}

/// [`Kind::restart_detection_off`] for a backend type `B`.
pub fn restart_detection_off<B: Open>(settings: &Settings, id: &BackendId) -> Option<String> {
    B::open(settings, id)
        .runtime_file()
        .err()
        .map(|e| e.to_string())
}

/// A backend built for one instance from the settings of its kind.
pub trait Open: super::Backend + Sized {
    /// The backend of instance `id`.
    fn open(settings: &Settings, id: &BackendId) -> Self;
}
