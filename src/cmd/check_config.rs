//! `anycastd check-config`: validate only, print every error or a one-line summary.

use super::args::ConfigArg;
use super::Error;
use crate::config;
use crate::exit;
use std::path::Path;

/// `anycastd check-config`'s arguments.
#[derive(Debug, clap::Args)]
pub struct CheckConfigArgs {
    #[command(flatten)]
    config: ConfigArg,
}

impl CheckConfigArgs {
    /// Run it.
    pub fn run(self) -> Result<u8, Error> {
        check_config(&self.config.path())
    }
}

/// Exit 0 with `config ok: ...` (and a `warning:` line per check this process lacks the
/// capabilities for, and per routing daemon whose restarts cannot be noticed at once), 65 with
/// every error, 66 when the file cannot be read.
pub fn check_config(path: &Path) -> Result<u8, Error> {
    match config::load(path, &crate::checks::REGISTRY) {
        Ok(config) => {
            let prefixes: usize = config.services.iter().map(|s| s.prefixes.len()).sum();
            let checks: usize = config.services.iter().map(|s| s.checks.len()).sum();
            println!(
                "config ok: {} service(s), {prefixes} prefix(es), {checks} check(s)",
                config.services.len()
            );
            for line in crate::privileges::missing_here(&config) {
                eprintln!("warning: {line}");
            }
            let ids = config.prefixes_by_backend();
            for line in crate::routing::restart_detection_off(&config.routing(), ids.keys()) {
                eprintln!("warning: {line}");
            }
            Ok(exit::OK)
        }
        Err(e) => Err(Error::config(&e)),
    }
}
