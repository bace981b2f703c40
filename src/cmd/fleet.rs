//! `anycastd fleet`: every site's state of each guarded service, read from etcd (not from the
//! daemon): it works from any host with the config's `[fleet]` table, or with `--etcd`.

use super::args::ConfigArg;
use super::Error;
use crate::exit;
use crate::fleet::{store, Published, Settings};
use std::collections::BTreeMap;

/// `anycastd fleet`'s arguments.
#[derive(Debug, clap::Args)]
pub struct FleetArgs {
    /// Only this service
    service: Option<String>,
    /// One JSON object per site and service: service, site, state, cause, since_ms
    #[arg(long)]
    json: bool,
    /// etcd client URL to read, instead of the config's [fleet] etcd (repeatable); the
    /// config's TLS files and user still apply when it has a [fleet] table
    #[arg(long = "etcd", value_name = "URL")]
    etcd: Vec<String>,
    /// Key prefix, instead of the config's [fleet] prefix (default /anycastd)
    #[arg(long, value_name = "PREFIX")]
    prefix: Option<String>,
    #[command(flatten)]
    config: ConfigArg,
}

impl FleetArgs {
    /// Run it.
    pub fn run(self) -> Result<u8, Error> {
        let settings = self.settings()?;
        let fleet = super::with_runtime(|runtime| {
            runtime.block_on(async {
                let mut client = store::connect(&settings)
                    .await
                    .map_err(|e| unreachable(&settings, e))?;
                store::fleet(&mut client, &settings.prefix)
                    .await
                    .map_err(|e| unreachable(&settings, e))
            })
        })?;
        let fleet: BTreeMap<String, BTreeMap<String, Published>> = match &self.service {
            Some(service) => {
                let known: Vec<String> = fleet.keys().cloned().collect();
                let fleet: BTreeMap<_, _> = fleet
                    .into_iter()
                    .filter(|(name, _)| name == service)
                    .collect();
                if fleet.is_empty() && !self.guarded_here(service) {
                    return Err(Error::Usage(format!(
                        "unknown service {service:?}: no site publishes it under {} in etcd, and the config guards no service of that name; services in etcd: {}",
                        settings.prefix,
                        if known.is_empty() { "none".to_owned() } else { known.join(", ") }
                    )));
                }
                fleet
            }
            None => fleet,
        };
        if self.json {
            for (service, sites) in &fleet {
                for (site, p) in sites {
                    println!(
                        "{}",
                        serde_json::json!({
                            "service": service,
                            "site": site,
                            "state": p.state.name(),
                            "cause": p.cause,
                            "since_ms": p.since_ms,
                        })
                    );
                }
            }
            return Ok(exit::OK);
        }
        print!("{}", text(&fleet));
        if fleet.is_empty() {
            eprintln!(
                "anycastd: no site publishes {} under {} in etcd",
                self.service.as_deref().unwrap_or("any service"),
                settings.prefix
            );
        }
        Ok(exit::OK)
    }

    /// Whether the config (if it loads) guards `service`.
    fn guarded_here(&self, service: &str) -> bool {
        crate::config::load(&self.config.path(), &crate::checks::REGISTRY).is_ok_and(|config| {
            config
                .services
                .iter()
                .any(|s| s.name == service && s.fleet.is_some())
        })
    }

    /// `[fleet]` of the config, with `--etcd` and `--prefix` over it; `--etcd` alone needs no
    /// config. `--etcd` URLs are held to the config's rule.
    fn settings(&self) -> Result<Settings, Error> {
        let path = self.config.path();
        let loaded = crate::config::load(&path, &crate::checks::REGISTRY);
        let from_config = match (&loaded, self.etcd.is_empty()) {
            (Ok(config), _) => config.fleet.clone(),
            (Err(e), true) => {
                return Err(Error::Config {
                    lines: e.lines(),
                    unreadable: matches!(e, crate::config::LoadError::Unreadable { .. }),
                })
            }
            (Err(_), false) => None,
        };
        let mut settings = match (from_config, self.etcd.is_empty()) {
            (Some(settings), _) => settings,
            (None, false) => Settings {
                endpoints: Vec::new(),
                site: String::new(),
                prefix: crate::fleet::DEFAULT_PREFIX.to_owned(),
                lease: crate::fleet::DEFAULT_LEASE,
                on_unreachable: crate::fleet::OnUnreachable::Hold,
                tls: None,
                user: None,
            },
            (None, true) => {
                return Err(Error::Usage(format!(
                    "{} has no [fleet] table: give etcd's URL with --etcd",
                    path.display()
                )))
            }
        };
        if let Some(problem) = self
            .etcd
            .iter()
            .find_map(|url| crate::config::endpoint_problem(url))
        {
            return Err(Error::Usage(format!("--etcd: {problem}")));
        }
        if !self.etcd.is_empty() {
            settings.endpoints = self.etcd.clone();
            if settings.tls.is_some() && settings.endpoints.iter().any(|e| e.starts_with("http://"))
            {
                return Err(Error::Usage(
                    "--etcd: the config's [fleet] gives TLS files but an endpoint is http://: use https:// endpoints".into(),
                ));
            }
        }
        if let Some(prefix) = &self.prefix {
            settings.prefix = prefix.trim_end_matches('/').to_owned();
        }
        Ok(settings)
    }
}

fn unreachable(settings: &Settings, e: store::StoreError) -> Error {
    Error::NoDaemon(format!(
        "etcd at {} cannot be read: {e}",
        settings.endpoints.join(", ")
    ))
}

/// The table: per service, each site's state, since when and why, and the count.
pub fn text(fleet: &BTreeMap<String, BTreeMap<String, Published>>) -> String {
    let mut out = String::new();
    for (service, sites) in fleet {
        let announcing = sites.values().filter(|p| p.state.announces()).count();
        out.push_str(&format!(
            "{service}: {announcing} of {} sites announce\n",
            sites.len()
        ));
        let width = sites.keys().map(String::len).max().unwrap_or(0).max(4);
        for (site, p) in sites {
            out.push_str(&format!(
                "  {site:<width$}  {:<10}  since {}  {}\n",
                p.state.name(),
                crate::audit::text::format_time(p.since_ms),
                p.cause
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::SiteState;

    #[test]
    fn the_table_counts_held_sites_as_announcing() {
        let record = |state| Published {
            state,
            cause: "check alive failed".into(),
            since_ms: 1_764_288_000_000,
        };
        let fleet = BTreeMap::from([(
            "dns".to_owned(),
            BTreeMap::from([
                ("ams1".to_owned(), record(SiteState::Held)),
                ("fra1".to_owned(), record(SiteState::Withdrawn)),
                ("lon1".to_owned(), record(SiteState::Announcing)),
            ]),
        )]);
        assert_eq!(
            text(&fleet),
            "dns: 2 of 3 sites announce\n  \
             ams1  held        since 2025-11-28T00:00:00.000Z  check alive failed\n  \
             fra1  withdrawn   since 2025-11-28T00:00:00.000Z  check alive failed\n  \
             lon1  announcing  since 2025-11-28T00:00:00.000Z  check alive failed\n"
        );
    }
}
