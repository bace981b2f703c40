//! `anycastd check-config`: validate only, print every error or a one-line summary.

use crate::config::{self, LoadError};
use crate::exit;
use std::path::Path;

/// Exit 0 with `config ok: ...` (and a `warning:` line per check this process lacks the
/// capabilities for, and per routing daemon whose restarts cannot be noticed at once), 65 with
/// every error, 66 when the file cannot be read.
pub fn check_config(path: &Path) -> u8 {
    match config::load(path) {
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
            exit::OK
        }
        Err(e) => {
            for line in e.lines() {
                eprintln!("{line}");
            }
            match e {
                LoadError::Unreadable { .. } => exit::NOINPUT,
                LoadError::Invalid { .. } => exit::DATAERR,
            }
        }
    }
}
