//! `reload` and SIGHUP: load the file, reject what cannot change live, and apply the rest
//! service by service (DESIGN §8).

use super::*;

/// Keys whose change needs a restart, with their names.
pub(super) fn restart_required(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut keys = Vec::new();
    if old.journal != new.journal {
        keys.push("[journal]");
    }
    if old.control != new.control {
        keys.push("[control]");
    }
    if old.frrouting != new.frrouting {
        keys.push("[frrouting]");
    }
    if old.bird != new.bird {
        keys.push("[bird]");
    }
    if old.gobgp != new.gobgp {
        keys.push("[gobgp]");
    }
    if old.hooks != new.hooks {
        keys.push("[hooks]");
    }
    if old.metrics_listen != new.metrics_listen {
        keys.push("[metrics]");
    }
    if old.netns_dir != new.netns_dir {
        keys.push("[checks]");
    }
    keys
}

impl Running {
    /// Reload the config file (DESIGN §8 identity rules). An invalid config, or one that
    /// changes keys that cannot change live, is rejected, journaled as rejected, and nothing
    /// is applied. `uid` is the caller's over the control socket (`None`: SIGHUP). Long
    /// because a reload is a sequence that must not be reordered: validate, journal the
    /// reload record, start new writers, then remove, reconfigure and add services.
    pub(super) async fn reload(
        &mut self,
        drivers: &mut Drivers,
        uid: Option<u32>,
    ) -> Result<String, (u8, String)> {
        let new = match crate::config::load(&self.path) {
            Ok(config) => config,
            Err(e) => {
                let code = match e {
                    crate::config::LoadError::Unreadable { .. } => exit::NOINPUT,
                    crate::config::LoadError::Invalid { .. } => exit::DATAERR,
                };
                for line in e.lines() {
                    tracing::error!(error = %line, "reload rejected");
                }
                self.journal_rejection(uid, e.lines()).await;
                return Err((
                    code,
                    format!(
                        "reload rejected, the running configuration is kept:\n{}",
                        e.lines().join("\n")
                    ),
                ));
            }
        };
        let fixed = restart_required(&self.config, &new);
        if !fixed.is_empty() {
            let reason = format!("{} changed; restart required", fixed.join(", "));
            tracing::error!(error = %reason, "reload rejected");
            self.journal_rejection(uid, vec![reason.clone()]).await;
            return Err((
                exit::DATAERR,
                format!("reload rejected: {reason} (the running configuration is kept)"),
            ));
        }
        // As at start: a check this process lacks the capabilities for would fail.
        for line in crate::privileges::missing_here(&new) {
            tracing::warn!("{line}");
        }
        let old_names: Vec<&str> = self
            .config
            .services
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        let added: Vec<&crate::config::Service> = new
            .services
            .iter()
            .filter(|s| !old_names.contains(&s.name.as_str()))
            .collect();
        let removed: Vec<String> = self
            .config
            .services
            .iter()
            .filter(|s| !new.services.iter().any(|n| n.name == s.name))
            .map(|s| s.name.clone())
            .collect();
        let changed: Vec<&crate::config::Service> = new
            .services
            .iter()
            .filter(|s| {
                self.config
                    .services
                    .iter()
                    .any(|o| o.name == s.name && o != *s)
            })
            .collect();
        let record = wire::Reloaded {
            services: service_params(&new),
            config_hash: new.hash.clone(),
            added: added.iter().map(|s| s.name.clone()).collect(),
            removed: removed.clone(),
            changed: changed.iter().map(|s| s.name.clone()).collect(),
        };
        // A changed service's new damping goes into its driver's `Reconfigured` record; an
        // added one's is journaled here, with the reload that starts it.
        let mut events = vec![wire::Event::Reloaded(record)];
        events.extend(service_damping(&new).into_iter().filter(|e| {
            matches!(e, wire::Event::ServiceDamping(d) if added.iter().any(|a| a.name == d.service))
        }));
        let at = now_ms();
        // Prefix changes are decisions of the reload record, the first of the batch.
        let others = events.len().saturating_sub(1) as u64;
        let seq = match self.shared.journal.append_durable(at, events).await {
            Ok(seq) => seq.saturating_sub(others),
            Err(e) => {
                tracing::error!(error = %e, "cannot journal the reload; applying it anyway");
                0
            }
        };
        // New backends get a writer before any driver needs it.
        {
            let mut writers = self
                .shared
                .writers
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            for id in new.prefixes_by_backend().into_keys() {
                writers.entry(id.clone()).or_insert_with(|| {
                    routing::spawn_writer(&new.routing(), &id, self.reports.clone())
                });
            }
        }
        for name in &removed {
            if let Some(driver) = drivers.remove(name) {
                let (tx, rx) = oneshot::channel();
                if driver
                    .commands
                    .send(driver::Command::Remove(tx))
                    .await
                    .is_ok()
                {
                    let _ = rx.await;
                }
            }
        }
        for service in &changed {
            if let Some(driver) = drivers.get(&service.name) {
                let (tx, rx) = oneshot::channel();
                let command = driver::Command::Reconfigure {
                    service: Box::new((*service).clone()),
                    decision_seq: seq,
                    reply: tx,
                };
                if driver.commands.send(command).await.is_ok() {
                    let _ = rx.await;
                }
            }
        }
        for service in &added {
            self.shared
                .views
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(
                    service.name.clone(),
                    ServiceView {
                        name: service.name.clone(),
                        suppressed: false,
                        state: wire::State::Starting,
                        since_ms: at,
                        cause: "added by a reload".into(),
                    },
                );
            let handle = driver::spawn(
                Start {
                    service: (*service).clone(),
                    initial: anycastd_fsm::State::Starting,
                    at_ms: at,
                    restored_damping: None,
                    since: (at, "added by a reload".into()),
                    decided_seq: 0,
                },
                self.shared.clone(),
            );
            drivers.add(handle);
        }
        let mut summary = format!(
            "reloaded: {} added, {} removed, {} changed, {} unchanged (config {})",
            added.len(),
            removed.len(),
            changed.len(),
            new.services.len() - added.len() - changed.len(),
            new.hash
        );
        for service in &changed {
            if let Some(old) = self.config.services.iter().find(|o| o.name == service.name) {
                summary.push_str(&format!(
                    "; {}: {}",
                    service.name,
                    changes(old, service).join(", ")
                ));
            }
        }
        tracing::info!(
            added = %added.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", "),
            removed = %removed.join(", "),
            changed = %changed.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", "),
            "{summary}"
        );
        *self.shared_config.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(new.clone());
        self.config = new;
        Ok(summary)
    }

    pub(super) async fn journal_rejection(&self, uid: Option<u32>, errors: Vec<String>) {
        let record = wire::Event::ReloadRejected(wire::ReloadRejected { uid, errors });
        if let Err(e) = self
            .shared
            .journal
            .append_durable(now_ms(), vec![record])
            .await
        {
            tracing::error!(error = %e, "cannot journal the rejected reload");
        }
    }
}

/// What a reload changed in a service, in words (`rise 1 -> 2`, `check web: interval 2s ->
/// 1s, now a shadow check`, `check x added`, `prefix 203.0.113.9/32 removed`): the journaled
/// parameters' differences, and the settings not journaled with them.
pub(super) fn changes(old: &crate::config::Service, new: &crate::config::Service) -> Vec<String> {
    use crate::service::driver::wire_params;
    let mut out = crate::audit::text::params_changes(&wire_params(old), &wire_params(new));
    let secs = |d: Option<std::time::Duration>| {
        d.map(|d| format!("{}s", d.as_secs_f64()))
            .unwrap_or_else(|| "off".into())
    };
    if old.fast_interval != new.fast_interval {
        out.push(format!(
            "fast_interval {} -> {}",
            secs(old.fast_interval),
            secs(new.fast_interval)
        ));
    }
    if old.damping != new.damping {
        out.push(match (&old.damping, &new.damping) {
            (Some(_), Some(_)) => "flap damping changed".into(),
            (None, Some(_)) => "flap damping on".into(),
            _ => "flap damping off".into(),
        });
    }
    if out.is_empty() {
        out.push("settings of a check".into());
    }
    out
}
