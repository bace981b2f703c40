//! `anycastd run`: load the config and run the daemon ([`crate::daemon::run`]), in a process
//! started again with the malloc setting it runs best with.

use super::args::ConfigArg;
use super::Error;
use crate::config;
use crate::exit::Failure;
use std::path::Path;

/// `anycastd run`'s arguments.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    config: ConfigArg,
}

impl RunArgs {
    /// Run the daemon until it stops; its exit code (0, or 70 when a withdrawal was not
    /// verified).
    pub fn run(self) -> Result<u8, Failure> {
        let path = self.config.path();
        let absolute = std::path::absolute(&path).unwrap_or(path.clone());
        // Before the runtime's threads start: they and the programs they run inherit it.
        if let Err(e) = crate::privileges::keep_from_children() {
            tracing::warn!("{e}");
        }
        let (config, runtime) = with_config(&path)?;
        for line in crate::privileges::missing_here(&config) {
            tracing::warn!("{line}");
        }
        Ok(runtime.block_on(crate::daemon::run(config, &absolute))?)
    }
}

/// Load the config (logging which file) and start a runtime.
fn with_config(path: &Path) -> Result<(config::Config, tokio::runtime::Runtime), Error> {
    let absolute = std::path::absolute(path).unwrap_or(path.to_path_buf());
    tracing::info!(config = %absolute.display(), "Reading configuration from {}.", absolute.display());
    // Errors name the file as the operator gave it.
    let config = config::load(path, &crate::checks::REGISTRY).map_err(|e| Error::config(&e))?;
    Ok((config, super::runtime()?))
}

/// The glibc malloc setting the daemon runs with: allocations of 64 KiB and more are mapped,
/// and returned to the system when freed. By default glibc raises that threshold each time a
/// large mapped block is freed, after which the journal's large buffers come from the heap and
/// leave their pages in it: about 10 MiB more resident memory at 1,000 services, for no gain
/// in speed (BENCHMARKS.md).
pub const MMAP_THRESHOLD_ENV: &str = "MALLOC_MMAP_THRESHOLD_";

/// For `run`: start again (same process, `exec`) with [`MMAP_THRESHOLD_ENV`] set, unless the
/// environment already sets it or `GLIBC_TUNABLES` (the operator's choice is kept). Returns
/// the error if the exec failed (the daemon then runs with glibc's defaults).
pub fn reexec_with_malloc_setting() -> Option<std::io::Error> {
    if !cfg!(all(target_os = "linux", target_env = "gnu"))
        || std::env::var_os(MMAP_THRESHOLD_ENV).is_some()
        || std::env::var_os("GLIBC_TUNABLES").is_some()
    {
        return None;
    }
    use std::os::unix::process::CommandExt;
    let mut args = std::env::args_os();
    // The binary by its own path, so that the process keeps its name (`ps`, `pgrep`,
    // journald's _COMM); exec'ing /proc/self/exe would name it "exe".
    // The path it was started by when it names a file (a symlink keeps its own name), else
    // the binary itself.
    let arg0 = args.next();
    let binary = arg0
        .as_ref()
        .map(std::path::PathBuf::from)
        .filter(|p| p.components().count() > 1 && p.exists())
        .or_else(|| std::env::current_exe().ok().filter(|p| p.exists()))
        .unwrap_or_else(|| "/proc/self/exe".into());
    let mut command = std::process::Command::new(binary);
    if let Some(arg0) = arg0 {
        command.arg0(arg0);
    }
    // `exec` returns only on failure.
    Some(command.args(args).env(MMAP_THRESHOLD_ENV, "65536").exec())
}
