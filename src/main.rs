//! The `anycastd` command line. Subcommands are thin: they parse arguments, load the config
//! and hand over to the library; every failure ends with a documented exit code (README).

#![forbid(unsafe_code)]

use anycastd::{config, daemon, exit, logging};
use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

/// Announce anycast service prefixes through FRRouting while their health checks pass.
#[derive(Debug, Parser)]
#[command(name = "anycastd", version, arg_required_else_help = true)]
struct Cli {
    /// Log format: human, json or logfmt [default: human on a terminal, json otherwise]
    #[arg(
        long,
        global = true,
        value_enum,
        env = "LOG_FORMAT",
        ignore_case = true
    )]
    log_format: Option<logging::Format>,
    /// Log level: debug, info, warning (or warn), error
    #[arg(long, global = true, env = "LOG_LEVEL", default_value = "info", value_parser = logging::parse_level)]
    log_level: tracing::Level,
    /// No colours in human logs
    #[arg(long, global = true, env = "NO_COLOR")]
    no_color: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon: announce each service's prefixes while all its checks pass
    Run {
        /// Configuration file
        #[arg(short = 'c', long = "config", visible_alias = "configuration", env = "CONFIG", default_value = config::DEFAULT_PATH)]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let stdout_is_tty = std::io::stdout().is_terminal();
    let format = cli.log_format.unwrap_or(if stdout_is_tty {
        logging::Format::Human
    } else {
        logging::Format::Json
    });
    logging::init(format, cli.log_level, stdout_is_tty && !cli.no_color);
    match cli.command {
        Command::Run { config: path } => ExitCode::from(run(path)),
    }
}

fn run(path: PathBuf) -> u8 {
    let path = std::path::absolute(&path).unwrap_or(path);
    tracing::info!(config = %path.display(), "Reading configuration from {}.", path.display());
    let config = match config::load(&path) {
        Ok(config) => config,
        Err(e) => {
            for line in e.lines() {
                eprintln!("{line}");
            }
            return match e {
                config::LoadError::Unreadable { .. } => exit::NOINPUT,
                config::LoadError::Invalid { .. } => exit::DATAERR,
            };
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("anycastd: cannot start the async runtime: {e}");
            return exit::SOFTWARE;
        }
    };
    runtime.block_on(daemon::run(config, &path))
}
