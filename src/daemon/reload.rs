//! `reload` and SIGHUP: load the file, reject what cannot change live, and apply the rest
//! service by service (docs/ARCHITECTURE.md, "Reload").

use super::*;
use crate::control::ReloadError;

/// Keys whose change needs a restart, with their names.
pub(super) fn restart_required(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut keys = Vec::new();
    if old.journal != new.journal {
        keys.push("[journal]");
    }
    if old.control != new.control {
        keys.push("[control]");
    }
    keys.extend(old.routing_sections_changed(new));
    if old.hooks != new.hooks {
        keys.push("[hooks]");
    }
    if old.metrics_listen != new.metrics_listen {
        keys.push("[metrics]");
    }
    if old.netns_dir != new.netns_dir {
        keys.push("[checks]");
    }
    // The guard's task holds its etcd client, lease and site name from the start.
    if old.fleet != new.fleet {
        keys.push("[fleet]");
    }
    keys
}

/// What a reload changes: the services added, removed (by name) and changed.
struct Changes<'a> {
    added: Vec<&'a crate::config::Service>,
    removed: Vec<String>,
    changed: Vec<&'a crate::config::Service>,
}

impl<'a> Changes<'a> {
    fn between(old: &Config, new: &'a Config) -> Changes<'a> {
        let old_names: Vec<&str> = old.services.iter().map(|s| s.name.as_str()).collect();
        let added = new
            .services
            .iter()
            .filter(|s| !old_names.contains(&s.name.as_str()))
            .collect();
        let removed = old
            .services
            .iter()
            .filter(|s| !new.services.iter().any(|n| n.name == s.name))
            .map(|s| s.name.clone())
            .collect();
        let changed = new
            .services
            .iter()
            .filter(|s| old.services.iter().any(|o| o.name == s.name && o != *s))
            .collect();
        Changes {
            added,
            removed,
            changed,
        }
    }
}

impl Running {
    /// Reload the config file (docs/ARCHITECTURE.md, "Reload"). An invalid config, or one
    /// that changes keys that cannot change live, is rejected, journaled as rejected, and
    /// nothing is applied. `uid` is the caller's over the control socket (`None`: SIGHUP).
    /// The steps must not be reordered: validate, journal the reload record, start new
    /// writers, then remove, reconfigure and add services.
    pub(super) async fn reload(
        &mut self,
        drivers: &mut Drivers,
        uid: Option<u32>,
    ) -> Result<String, ReloadError> {
        let new = self.validate(uid).await?;
        // As at start: a check this process lacks the capabilities for would fail.
        for line in crate::privileges::missing_here(&new) {
            tracing::warn!("{line}");
        }
        let changes = Changes::between(&self.config, &new);
        let (seq, at) = self.journal_reload(&new, &changes).await;
        self.start_new_writers(&new);
        self.remove_services(drivers, &changes.removed).await;
        let done = reconfigure_services(drivers, &changes.changed, seq).await;
        self.add_services(drivers, &changes.added, at);
        let summary = self.summary(&new, &changes, &done);
        *self.shared_config.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(new.clone());
        self.config = new;
        Ok(summary)
    }

    /// The new config, or why it is rejected (logged and journaled).
    async fn validate(&self, uid: Option<u32>) -> Result<Config, ReloadError> {
        let new = match crate::config::load(&self.path, &crate::checks::REGISTRY) {
            Ok(config) => config,
            Err(e) => {
                for line in e.lines() {
                    tracing::error!(error = %line, "reload rejected");
                }
                self.journal_rejection(uid, e.lines()).await;
                return Err(ReloadError::Config {
                    lines: e.lines(),
                    unreadable: matches!(e, crate::config::LoadError::Unreadable { .. }),
                });
            }
        };
        let fixed = restart_required(&self.config, &new);
        if !fixed.is_empty() {
            let reason = format!("{} changed; restart required", fixed.join(", "));
            tracing::error!(error = %reason, "reload rejected");
            self.journal_rejection(uid, vec![reason.clone()]).await;
            return Err(ReloadError::RestartRequired(reason));
        }
        Ok(new)
    }

    /// Journal the reload record (and the damping of added services); returns the sequence
    /// number that decides the prefix changes (0 when it could not be journaled) and when.
    async fn journal_reload(&self, new: &Config, changes: &Changes<'_>) -> (u64, i64) {
        let record = wire::Reloaded {
            services: service_params(new),
            config_hash: new.hash.clone(),
            added: changes.added.iter().map(|s| s.name.clone()).collect(),
            removed: changes.removed.clone(),
            changed: changes.changed.iter().map(|s| s.name.clone()).collect(),
        };
        // A changed service's new damping goes into its driver's `Reconfigured` record; an
        // added one's is journaled here, with the reload that starts it.
        let mut events = vec![wire::Event::Reloaded(record)];
        events.extend(service_damping(new).into_iter().filter(|e| {
            matches!(e, wire::Event::ServiceDamping(d) if changes.added.iter().any(|a| a.name == d.service))
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
        (seq, at)
    }

    /// New backends get a writer before any driver needs it.
    fn start_new_writers(&self, new: &Config) {
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

    async fn remove_services(&self, drivers: &mut Drivers, removed: &[String]) {
        for name in removed {
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
    }

    fn add_services(&self, drivers: &mut Drivers, added: &[&crate::config::Service], at: i64) {
        for service in added {
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
                    grace_until_ms: None,
                    fleet_since: None,
                },
                self.shared.clone(),
            );
            drivers.add(handle);
        }
    }

    /// The reload's summary (logged, and the answer to `anycastd reload`): what changed in
    /// each changed service, and what that does to its announcements (`done`, by service).
    fn summary(
        &self,
        new: &Config,
        changes: &Changes<'_>,
        done: &BTreeMap<String, Vec<String>>,
    ) -> String {
        let Changes {
            added,
            removed,
            changed,
        } = changes;
        let mut summary = format!(
            "reloaded: {} added, {} removed, {} changed, {} unchanged (config {})",
            added.len(),
            removed.len(),
            changed.len(),
            new.services.len() - added.len() - changed.len(),
            new.hash
        );
        for service in changed {
            if let Some(old) = self.config.services.iter().find(|o| o.name == service.name) {
                summary.push_str(&format!(
                    "; {}: {}",
                    service.name,
                    changes_of(old, service).join(", ")
                ));
            }
            if let Some(done) = done.get(&service.name).filter(|d| !d.is_empty()) {
                summary.push_str(&format!("; so {} {}", service.name, done.join(" and ")));
            }
        }
        tracing::info!(
            added = %added.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", "),
            removed = %removed.join(", "),
            changed = %changed.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", "),
            "{summary}"
        );
        summary
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
pub(super) fn changes_of(
    old: &crate::config::Service,
    new: &crate::config::Service,
) -> Vec<String> {
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
    let on_unhealthy = |o: anycastd_fsm::OnUnhealthy| match o {
        anycastd_fsm::OnUnhealthy::Withdraw => "withdraw",
        anycastd_fsm::OnUnhealthy::Deprefer => "deprefer",
    };
    if old.on_unhealthy != new.on_unhealthy {
        out.push(format!(
            "on_unhealthy {} -> {}",
            on_unhealthy(old.on_unhealthy),
            on_unhealthy(new.on_unhealthy)
        ));
    }
    if old.deprefer != new.deprefer {
        let deprefer = |d: &Option<crate::bgp::Attributes>| {
            d.as_ref()
                .map_or_else(|| "none".to_owned(), |a| format!("({a})"))
        };
        out.push(format!(
            "deprefer {} -> {}",
            deprefer(&old.deprefer),
            deprefer(&new.deprefer)
        ));
    }
    if old.drain_grace != new.drain_grace {
        out.push(format!(
            "drain_grace {} -> {}",
            secs(Some(old.drain_grace)),
            secs(Some(new.drain_grace))
        ));
    }
    if old.fleet != new.fleet {
        let rule = |r: Option<crate::fleet::Rule>| match r {
            None => "none".to_owned(),
            Some(crate::fleet::Rule::MinAnnouncing(n)) => format!("min_announcing {n}"),
            Some(crate::fleet::Rule::MaxWithdrawnPercent(p)) => format!("max_withdrawn {p}%"),
        };
        out.push(format!(
            "fleet rule {} -> {}",
            rule(old.fleet),
            rule(new.fleet)
        ));
    }
    if out.is_empty() {
        out.push("settings of a check".into());
    }
    out
}

/// Hand each changed service's new definition to its driver (decided by record `seq`);
/// returns what each did to its announcements, in words.
async fn reconfigure_services(
    drivers: &Drivers,
    changed: &[&crate::config::Service],
    seq: u64,
) -> BTreeMap<String, Vec<String>> {
    let mut done = BTreeMap::new();
    for service in changed {
        if let Some(driver) = drivers.get(&service.name) {
            let (tx, rx) = oneshot::channel();
            let command = driver::Command::Reconfigure {
                service: Box::new((*service).clone()),
                decision_seq: seq,
                reply: tx,
            };
            if driver.commands.send(command).await.is_ok() {
                if let Ok(said) = rx.await {
                    done.insert(service.name.clone(), said);
                }
            }
        }
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first service of a config text.
    fn service(extra: &str) -> crate::config::Service {
        let text = format!(
            "[fleet]\netcd = [\"http://127.0.0.1:2379\"]\n[services.dns]\nprefixes.frrouting = [\"203.0.113.53\"]\nchecks.exec = [{{ name = \"x\", command = \"/bin/true\" }}]\n{extra}"
        );
        let path = std::env::temp_dir().join(format!(
            "anycastd-reload-test-{}-{}.toml",
            std::process::id(),
            extra.len()
        ));
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
        let config = crate::config::load(&path, &crate::checks::REGISTRY)
            .unwrap_or_else(|e| panic!("{e:?}"));
        let _ = std::fs::remove_file(&path);
        config.services[0].clone()
    }

    #[test]
    fn a_reload_of_the_graded_keys_and_the_fleet_rule_says_what_changed() {
        let old = service("");
        let new = service(
            "on_unhealthy = \"deprefer\"\ndeprefer = { as_path_prepend = 3, med = 1000 }\ndrain_grace = \"30s\"\nfleet = { min_announcing = 2 }\n",
        );
        assert_eq!(
            changes_of(&old, &new),
            vec![
                "on_unhealthy withdraw -> deprefer",
                "deprefer none -> (as-path +3, MED 1000)",
                "drain_grace 0s -> 30s",
                "fleet rule none -> min_announcing 2",
            ]
        );
    }
}
