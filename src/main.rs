//! The `anycastd` command line. Subcommands are thin: each one's arguments and work are in
//! its file under `src/cmd/`; `main` parses, sets up logging and dispatches. Every failure ends
//! with a documented exit code (docs/operating.md), mapped in one place
//! ([`anycastd::exit::Failure::code`]).

#![forbid(unsafe_code)]
#![warn(clippy::too_many_lines)]

use anycastd::cmd::args::{env_setting, env_value};
use anycastd::cmd::{self, Error};
use anycastd::exit::Failure;
use anycastd::logging;
use clap::builder::TypedValueParser as _;
use clap::{CommandFactory as _, Parser, Subcommand};
use std::io::IsTerminal;
use std::process::ExitCode;

/// Announce anycast service prefixes through FRRouting, BIRD or GoBGP while their health checks pass.
#[derive(Debug, Parser)]
#[command(name = "anycastd", version, arg_required_else_help = true)]
struct Cli {
    /// Log format: human, json or logfmt [env: LOG_FORMAT] [default: human on a terminal,
    /// json otherwise]
    #[arg(long, global = true, value_enum, ignore_case = true)]
    log_format: Option<logging::Format>,
    /// Log level: debug, info, warning (or warn), error [env: LOG_LEVEL] [default: info]
    #[arg(
        long,
        global = true,
        ignore_case = true,
        value_parser = clap::builder::PossibleValuesParser::new(LOG_LEVELS)
            .map(|level| logging::parse_level(&level).unwrap_or(tracing::Level::INFO))
    )]
    log_level: Option<tracing::Level>,
    /// No colours in human logs [env: NO_COLOR, any value but an empty one]
    #[arg(long, global = true)]
    no_color: bool,
    #[command(subcommand)]
    command: Command,
}

/// The values `--log-level` and `LOG_LEVEL` take (any case).
const LOG_LEVELS: [&str; 5] = ["debug", "info", "warning", "warn", "error"];

/// How the command logs: options first, then `LOG_FORMAT`, `LOG_LEVEL` and `NO_COLOR`, then
/// the defaults (README, "Command line").
struct LogSettings {
    format: Option<logging::Format>,
    level: tracing::Level,
    no_color: bool,
}

impl LogSettings {
    fn resolve(cli: &Cli) -> Result<LogSettings, Error> {
        use clap::ValueEnum as _;
        let format = match cli.log_format {
            Some(format) => Some(format),
            None => env_setting(
                "LOG_FORMAT",
                |text| logging::Format::from_str(text, true).ok(),
                &["human", "json", "logfmt"],
            )?,
        };
        let level = match cli.log_level {
            Some(level) => level,
            None => env_setting("LOG_LEVEL", |t| logging::parse_level(t).ok(), &LOG_LEVELS)?
                .unwrap_or(tracing::Level::INFO),
        };
        // no-color.org: any value but an empty one turns colours off, whatever it says.
        let no_color = cli.no_color || env_value("NO_COLOR").is_some();
        Ok(LogSettings {
            format,
            level,
            no_color,
        })
    }

    /// Start logging: JSON when stdout is no terminal, unless told.
    fn init(&self) {
        let stdout_is_tty = std::io::stdout().is_terminal();
        let format = self.format.unwrap_or(if stdout_is_tty {
            logging::Format::Human
        } else {
            logging::Format::Json
        });
        logging::init(format, self.level, stdout_is_tty && !self.no_color);
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon: announce each service's prefixes while its checks pass (all of them, or as many as `require` asks)
    Run(cmd::run::RunArgs),
    /// Show the journal: one line per event, oldest first
    History(cmd::history::HistoryArgs),
    /// Show each service's state, checks, and its prefixes as wanted and as in its routing daemon
    Status(cmd::status::StatusArgs),
    /// Drain services: withdraw their prefixes whatever the checks say (after announcing them
    /// with GRACEFUL_SHUTDOWN for a drain grace, when one is set), until undrained
    #[command(group(clap::ArgGroup::new("target").required(true).args(["service", "all"])))]
    Drain(cmd::drain::DrainArgs),
    /// End an operator drain: back to healthy at once if the checks kept passing
    #[command(group(clap::ArgGroup::new("target").required(true).args(["service", "all"])))]
    Undrain(cmd::drain::UndrainArgs),
    /// Per-service figures over a window: share of time announced, withdrawals by health,
    /// mean time to repair, longest outage, time drained, damping suppressions (the recorded
    /// run of `replay`, for every service)
    Report(cmd::report::ReportArgs),
    /// Re-run a service's journal through the state machine: the timeline, a summary, a
    /// check that the re-run reproduces what was recorded, and what other settings would
    /// have done (--rise, --fall, --with-shadow, --damping-*)
    Replay(cmd::replay::ReplayArgs),
    /// Reload the running daemon's configuration file and report the result (exit 65 and
    /// every error when the new config is rejected; the running one is kept)
    Reload(cmd::reload::ReloadArgs),
    /// Validate the configuration only: print every error, or a one-line summary
    CheckConfig(cmd::check_config::CheckConfigArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completions(cmd::docs::CompletionsArgs),
    /// Print the manual page (roff): every subcommand, option, config key, file and exit code
    Man,
    /// Print a JSON Schema of the config file (for an editor's TOML support)
    Schema,
    /// Stop the running daemon (withdrawing everything, unless --keep-announced)
    Stop(cmd::stop::StopArgs),
    /// Every site's state of each guarded service, read from etcd (the fleet guard)
    Fleet(cmd::fleet::FleetArgs),
}

impl Command {
    /// Run the subcommand: its exit status, or its error.
    fn run(self) -> Result<u8, Failure> {
        Ok(match self {
            Command::Run(args) => args.run()?,
            Command::History(args) => args.run()?,
            Command::Status(args) => args.run()?,
            Command::Drain(args) => args.run()?,
            Command::Undrain(args) => args.run()?,
            Command::Report(args) => args.run()?,
            Command::Replay(args) => args.run()?,
            Command::Reload(args) => args.run()?,
            Command::CheckConfig(args) => args.run()?,
            Command::Completions(args) => args.run(Cli::command())?,
            Command::Man => cmd::docs::man(Cli::command())?,
            Command::Schema => cmd::docs::schema()?,
            Command::Stop(args) => args.run()?,
            Command::Fleet(args) => args.run()?,
        })
    }
}

/// Parse the command line, set up logging, run the subcommand; a failure is said and
/// becomes its exit code.
/// A command whose reader went away (`anycastd status | head -3`) ends as a program killed by
/// SIGPIPE would: exit 141, nothing on stderr, instead of a panic (Rust ignores SIGPIPE, so a
/// write to the closed pipe fails and `println!` panics).
fn quiet_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

fn main() -> ExitCode {
    quiet_on_broken_pipe();
    let cli = Cli::parse();
    let result = LogSettings::resolve(&cli).map_err(Failure::from).and_then(|log| {
        // `run` starts again with the malloc setting before anything else happens.
        let reexec_error = matches!(cli.command, Command::Run(_))
            .then(cmd::run::reexec_with_malloc_setting)
            .flatten();
        log.init();
        if let Some(e) = reexec_error {
            tracing::warn!(error = %e, "cannot restart with {}=65536; running with glibc's malloc defaults", cmd::run::MMAP_THRESHOLD_ENV);
        }
        cli.command.run()
    });
    ExitCode::from(result.unwrap_or_else(|failure| {
        failure.print();
        failure.code()
    }))
}
