//! The `anycastd` command line. Subcommands are thin: they parse arguments, load the config
//! and hand over to the library; every failure ends with a documented exit code (docs/operating.md).

#![forbid(unsafe_code)]

use anycastd::{cmd as cli, config, daemon, exit, logging};
use clap::builder::TypedValueParser as _;
use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use std::path::PathBuf;
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

/// The value of an environment variable the command line reads, if it has one: an empty value
/// is no value, as if unset (the no-color.org convention for `NO_COLOR`, and what a unit's
/// `Environment=NAME=` or a shell's `NAME=` mean). Clap's own `env` took an empty value as a
/// missing one and refused to start.
fn env_value(name: &str) -> Option<std::ffi::OsString> {
    std::env::var_os(name).filter(|value| !value.is_empty())
}

/// A setting from environment variable `name`, parsed by `parse`; an invalid value is a
/// usage error naming the variable (clap's message for an option's value named the option,
/// which the operator had not given).
fn env_setting<T>(
    name: &str,
    parse: impl Fn(&str) -> Option<T>,
    possible: &[&str],
) -> Result<Option<T>, String> {
    let Some(value) = env_value(name) else {
        return Ok(None);
    };
    let text = value.to_string_lossy();
    match parse(&text) {
        Some(parsed) => Ok(Some(parsed)),
        None => Err(format!(
            "invalid value '{}' for environment variable {name} [possible values: {}]",
            text.escape_debug(),
            possible.join(", ")
        )),
    }
}

/// How the command logs: options first, then `LOG_FORMAT`, `LOG_LEVEL` and `NO_COLOR`, then
/// the defaults (README, "Command line").
struct LogSettings {
    format: Option<logging::Format>,
    level: tracing::Level,
    no_color: bool,
}

impl LogSettings {
    fn resolve(cli: &Cli) -> Result<LogSettings, String> {
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
}

#[derive(Debug, clap::Args)]
struct ConfigArg {
    /// Configuration file [env: CONFIG] [default: /etc/anycastd/config.toml]
    #[arg(
        short = 'c',
        long = "config",
        visible_alias = "configuration",
        value_name = "CONFIG"
    )]
    config: Option<PathBuf>,
}

impl ConfigArg {
    /// The file: the option, else `CONFIG`, else the default path.
    fn path(&self) -> PathBuf {
        self.config
            .clone()
            .or_else(|| env_value("CONFIG").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(config::DEFAULT_PATH))
    }
}

/// Where a client command finds the daemon.
#[derive(Debug, clap::Args)]
struct ClientArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// The daemon's control socket [env: ANYCASTD_SOCKET] [default: [control] socket of the
    /// config file, read even when the file does not validate, else
    /// /run/anycastd/anycastd.sock]
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
}

impl ClientArgs {
    fn client(&self) -> cli::Client {
        let socket = self
            .socket
            .clone()
            .or_else(|| env_value("ANYCASTD_SOCKET").map(PathBuf::from));
        cli::Client::new(&self.config.path(), socket)
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon: announce each service's prefixes while its checks pass (all of them, or as many as `require` asks)
    Run {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Show the journal: one line per event, oldest first
    History {
        /// Only this service (and the daemon's own events)
        service: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
        /// Events at or after this time: RFC 3339, or a duration ago (90, 90s, 30m, 2h, 1d, 1w)
        #[arg(long)]
        since: Option<String>,
        /// Events before this time: RFC 3339, or a duration ago
        #[arg(long)]
        until: Option<String>,
        /// The oldest N events only
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..), conflicts_with = "tail")]
        limit: Option<u64>,
        /// The newest N events only
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        tail: Option<u64>,
        /// Every record on a line of its own (FRR outcomes are otherwise folded into the
        /// decision they complete)
        #[arg(long, short = 'v')]
        verbose: bool,
        /// One JSON object per record
        #[arg(long)]
        json: bool,
        /// Keep printing new events as they happen (needs the running daemon); with --until,
        /// until then
        #[arg(long)]
        follow: bool,
        /// Only events with a sequence number above N (resume a --follow)
        #[arg(long, value_name = "N")]
        after_seq: Option<u64>,
    },
    /// Show each service's state, checks, and its prefixes as wanted and as in FRR or BIRD
    Status {
        /// Only this service
        service: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
        /// JSON output
        #[arg(long)]
        json: bool,
        /// Monitoring-plugin output and exit code (0 OK, 1 WARNING when a wanted prefix is not
        /// advertised or a service announces nothing, 2 CRITICAL when FRR or BIRD differs
        /// from what the daemon wants, 3 UNKNOWN)
        #[arg(long, conflicts_with = "json")]
        check: bool,
    },
    /// Drain services: withdraw their prefixes whatever the checks say, until undrained
    #[command(group(clap::ArgGroup::new("target").required(true).args(["service", "all"])))]
    Drain {
        /// The service
        service: Option<String>,
        /// Every service
        #[arg(long)]
        all: bool,
        /// Why (journaled; shown by status and history)
        #[arg(long, value_parser = ReasonParser)]
        reason: String,
        /// End the drain by itself after this long (e.g. 30m, 2h, 90s, 90)
        #[arg(long = "for", value_name = "DURATION", value_parser = parse_for)]
        for_duration: Option<std::time::Duration>,
        #[command(flatten)]
        wait: WaitArgs,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// End an operator drain: back to healthy at once if the checks kept passing
    #[command(group(clap::ArgGroup::new("target").required(true).args(["service", "all"])))]
    Undrain {
        /// The service
        service: Option<String>,
        /// Every service
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        wait: WaitArgs,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Per-service figures over a window: share of time announced, withdrawals by health,
    /// mean time to repair, longest outage, time drained, damping suppressions (the recorded
    /// run of `replay`, for every service)
    Report {
        #[command(flatten)]
        client: ClientArgs,
        /// Window start: RFC 3339, or a duration ago (90, 90s, 30m, 2h, 1d, 1w)
        #[arg(long)]
        since: Option<String>,
        /// Window end: RFC 3339 or a duration ago
        #[arg(long)]
        until: Option<String>,
        /// JSON output
        #[arg(long, conflicts_with = "csv")]
        json: bool,
        /// CSV output (a header line, one line per service)
        #[arg(long)]
        csv: bool,
    },
    /// Re-run a service's journal through the state machine: the timeline, a summary, a
    /// check that the re-run reproduces what was recorded, and what other settings would
    /// have done (--rise, --fall, --with-shadow, --damping-*)
    Replay {
        /// The service
        service: String,
        #[command(flatten)]
        client: ClientArgs,
        /// Window start: RFC 3339, or a duration ago (90, 90s, 30m, 2h, 1d, 1w)
        #[arg(long)]
        since: Option<String>,
        /// Window end: RFC 3339 or a duration ago
        #[arg(long)]
        until: Option<String>,
        /// What-if: consecutive healthy verdicts to announce (1-1000)
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
        rise: Option<u32>,
        /// What-if: consecutive unhealthy verdicts to withdraw (1-1000)
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
        fall: Option<u32>,
        /// What-if: this shadow check gates like the others (repeatable): what would have
        /// happened had it decided
        #[arg(long, value_name = "CHECK")]
        with_shadow: Vec<String>,
        /// What-if: flap damping with this half-life (e.g. 5m); the other --damping-* options
        /// default to penalty 1000, suppress 2000, reuse 750, max-suppress 4 half-lives
        #[arg(long, value_name = "DURATION", value_parser = parse_for)]
        damping_half_life: Option<std::time::Duration>,
        /// What-if damping: penalty per health-caused withdrawal [default: 1000]
        #[arg(long, value_name = "N", requires = "damping_half_life", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        damping_penalty: Option<u32>,
        /// What-if damping: suppress above this penalty [default: 2000]
        #[arg(long, value_name = "N", requires = "damping_half_life", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        damping_suppress: Option<u32>,
        /// What-if damping: reuse below this penalty (less than --damping-suppress) [default: 750]
        #[arg(long, value_name = "N", requires = "damping_half_life", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        damping_reuse: Option<u32>,
        /// What-if damping: longest suppression [default: 4 half-lives]
        #[arg(long, value_name = "DURATION", requires = "damping_half_life", value_parser = parse_for)]
        damping_max_suppress: Option<std::time::Duration>,
        /// JSON output
        #[arg(long)]
        json: bool,
    },
    /// Reload the running daemon's configuration file and report the result (exit 65 and
    /// every error when the new config is rejected; the running one is kept)
    Reload {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Validate the configuration only: print every error, or a one-line summary
    CheckConfig {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff): every subcommand, option, config key, file and exit code
    Man,
    /// Print a JSON Schema of the config file (for an editor's TOML support)
    Schema,
    /// Stop the running daemon (withdrawing everything, unless --keep-announced)
    Stop {
        #[command(flatten)]
        client: ClientArgs,
        /// Exit without withdrawing, for a planned restart: the next start restores the
        /// services without a flap
        #[arg(long)]
        keep_announced: bool,
    },
}

/// How long `drain`/`undrain` wait for the routing daemon to show the change.
#[derive(Debug, clap::Args)]
struct WaitArgs {
    /// Wait at most this long for FRR's running config (or BIRD) to show the change (exit 70 when it
    /// does not)
    #[arg(long, value_name = "DURATION", value_parser = parse_for, default_value = "10s")]
    wait: std::time::Duration,
    /// Answer once the decision is journaled and handed to the routing daemon's writer, without waiting
    #[arg(long, conflicts_with = "wait")]
    no_wait: bool,
}

impl WaitArgs {
    fn wait_ms(&self) -> Option<u64> {
        (!self.no_wait).then(|| request_ms(self.wait))
    }
}

/// The glibc malloc setting the daemon runs with: allocations of 64 KiB and more are mapped,
/// and returned to the system when freed. By default glibc raises that threshold each time a
/// large mapped block is freed, after which the journal's large buffers come from the heap and
/// leave their pages in it: about 10 MiB more resident memory at 1,000 services, for no gain
/// in speed (BENCHMARKS.md).
const MMAP_THRESHOLD_ENV: &str = "MALLOC_MMAP_THRESHOLD_";

/// For `run`: start again (same process, `exec`) with [`MMAP_THRESHOLD_ENV`] set, unless the
/// environment already sets it or `GLIBC_TUNABLES` (the operator's choice is kept). Returns
/// the error if the exec failed (the daemon then runs with glibc's defaults).
fn reexec_with_malloc_setting() -> Option<std::io::Error> {
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

/// Parse the command line, set up logging, and hand each subcommand to its module under
/// `cmd/`. Long only because it has an arm per subcommand, each turning clap's arguments into
/// the module's call.
fn main() -> ExitCode {
    let cli = Cli::parse();
    let log = match LogSettings::resolve(&cli) {
        Ok(log) => log,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(exit::USAGE);
        }
    };
    let reexec_error = match cli.command {
        Command::Run { .. } => reexec_with_malloc_setting(),
        _ => None,
    };
    let stdout_is_tty = std::io::stdout().is_terminal();
    let format = log.format.unwrap_or(if stdout_is_tty {
        logging::Format::Human
    } else {
        logging::Format::Json
    });
    logging::init(format, log.level, stdout_is_tty && !log.no_color);
    if let Some(e) = reexec_error {
        tracing::warn!(error = %e, "cannot restart with {MMAP_THRESHOLD_ENV}=65536; running with glibc's malloc defaults");
    }
    let code = match cli.command {
        Command::Run { config } => run(config.path()),
        Command::History {
            service,
            client,
            since,
            until,
            limit,
            tail,
            verbose,
            json,
            follow,
            after_seq,
        } => {
            let (since_ms, until_ms) = match window(&since, &until) {
                Ok(window) => window,
                Err(code) => return ExitCode::from(code),
            };
            let query = anycastd::audit::history::Query {
                service,
                since_ms,
                until_ms,
                limit: limit.map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
                tail: tail.map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
                after_seq,
                verbose,
                bookkeeping: false,
            };
            with_runtime(|runtime| {
                runtime.block_on(cli::history::history(&client.client(), query, json, follow))
            })
        }
        Command::Status {
            service,
            client,
            json,
            check,
        } => with_runtime(|runtime| {
            runtime.block_on(cli::status::status(&client.client(), service, json, check))
        }),
        Command::Drain {
            service,
            all: _,
            reason,
            for_duration,
            wait,
            client,
        } => {
            let request = anycastd::control::Request::Drain {
                service,
                reason,
                for_ms: for_duration.map(request_ms),
                wait_ms: wait.wait_ms(),
            };
            with_runtime(|runtime| runtime.block_on(cli::drain::drain(&client.client(), request)))
        }
        Command::Undrain {
            service,
            all: _,
            wait,
            client,
        } => {
            let request = anycastd::control::Request::Undrain {
                service,
                wait_ms: wait.wait_ms(),
            };
            with_runtime(|runtime| runtime.block_on(cli::drain::drain(&client.client(), request)))
        }
        Command::Replay {
            service,
            client,
            since,
            until,
            rise,
            fall,
            with_shadow,
            damping_half_life,
            damping_penalty,
            damping_suppress,
            damping_reuse,
            damping_max_suppress,
            json,
        } => {
            let damping = match damping_what_if(
                damping_half_life,
                damping_penalty,
                damping_suppress,
                damping_reuse,
                damping_max_suppress,
            ) {
                Ok(damping) => damping,
                Err(code) => return ExitCode::from(code),
            };
            let (since_ms, until_ms) = match window(&since, &until) {
                Ok(window) => window,
                Err(code) => return ExitCode::from(code),
            };
            let request = anycastd::control::Request::Replay {
                service,
                since_ms,
                until_ms,
                what_if: anycastd::audit::replay::WhatIf {
                    rise,
                    fall,
                    damping,
                    with_shadow,
                },
            };
            with_runtime(|runtime| {
                runtime.block_on(cli::replay::replay(&client.client(), request, json))
            })
        }
        Command::Report {
            client,
            since,
            until,
            json,
            csv,
        } => {
            let (since_ms, until_ms) = match window(&since, &until) {
                Ok(window) => window,
                Err(code) => return ExitCode::from(code),
            };
            let format = if json {
                cli::report::Format::Json
            } else if csv {
                cli::report::Format::Csv
            } else {
                cli::report::Format::Text
            };
            with_runtime(|runtime| {
                runtime.block_on(cli::report::report(
                    &client.client(),
                    since_ms,
                    until_ms,
                    format,
                ))
            })
        }
        Command::Reload { client } => {
            with_runtime(|runtime| runtime.block_on(cli::reload::reload(&client.client())))
        }
        Command::CheckConfig { config } => cli::check_config::check_config(&config.path()),
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "anycastd", &mut std::io::stdout());
            exit::OK
        }
        Command::Schema => {
            println!("{}", anycastd::config::schema::json());
            exit::OK
        }
        Command::Man => {
            let command = <Cli as clap::CommandFactory>::command();
            match anycastd::manual::render(command, &mut std::io::stdout()) {
                Ok(()) => exit::OK,
                Err(e) => {
                    eprintln!("anycastd: {e}");
                    exit::SOFTWARE
                }
            }
        }
        Command::Stop {
            client,
            keep_announced,
        } => with_runtime(|runtime| {
            runtime.block_on(cli::stop::stop(&client.client(), keep_announced))
        }),
    };
    ExitCode::from(code)
}

/// The what-if's flap damping (`None` without `--damping-half-life`); exit 64 when reuse is
/// not below suppress.
fn damping_what_if(
    half_life: Option<std::time::Duration>,
    penalty: Option<u32>,
    suppress: Option<u32>,
    reuse: Option<u32>,
    max_suppress: Option<std::time::Duration>,
) -> Result<Option<anycastd_journal::wire::DampingParams>, u8> {
    let penalty = penalty.unwrap_or(1000);
    let suppress = suppress.unwrap_or(2000);
    let reuse = reuse.unwrap_or(750);
    let Some(half_life) = half_life else {
        return Ok(None);
    };
    if reuse >= suppress {
        eprintln!("anycastd: --damping-reuse must be less than --damping-suppress");
        return Err(exit::USAGE);
    }
    // Four half-lives by default, but no longer than any duration may be.
    let longest = std::time::Duration::from_secs(999_999_999);
    Ok(Some(anycastd_journal::wire::DampingParams {
        penalty,
        suppress,
        reuse,
        half_life_ms: request_ms(half_life),
        max_suppress_ms: request_ms(
            max_suppress.unwrap_or_else(|| half_life.saturating_mul(4).min(longest)),
        ),
    }))
}

/// `--since`/`--until` as times (exit 2 when malformed or in the wrong order).
fn window(
    since: &Option<String>,
    until: &Option<String>,
) -> Result<(Option<i64>, Option<i64>), u8> {
    let now = anycastd::journal_handle::now_ms();
    let parse = |t: &Option<String>, flag: &str| -> Result<Option<i64>, String> {
        t.as_deref()
            .map(|t| {
                anycastd::audit::history::parse_time(t, now).map_err(|e| format!("--{flag}: {e}"))
            })
            .transpose()
    };
    let (since_ms, until_ms) = match (parse(since, "since"), parse(until, "until")) {
        (Ok(s), Ok(u)) => (s, u),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("anycastd: {e}");
            return Err(exit::USAGE);
        }
    };
    if let (Some(s), Some(u)) = (since_ms, until_ms) {
        if s > u {
            eprintln!("anycastd: --since is after --until");
            return Err(exit::USAGE);
        }
    }
    Ok((since_ms, until_ms))
}

/// Run `f` with the client's runtime (one thread).
fn with_runtime(f: impl FnOnce(&tokio::runtime::Runtime) -> u8) -> u8 {
    match runtime() {
        Ok(runtime) => f(&runtime),
        Err(code) => code,
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, u8> {
    // One thread runs the checks, the drivers and the control socket: their work is short
    // and never blocks (journal reads go to the blocking pool, the journal's commits and the
    // FRR writers have threads of their own). On two cores this costs a third less CPU than
    // a work-stealing pool of two workers at 2,000 polls a second (BENCHMARKS.md).
    tokio::runtime::Builder::new_current_thread()
        // Deeply nested futures (driver -> writer -> vtysh) in blocking-pool threads too.
        .thread_stack_size(8 * 1024 * 1024)
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("anycastd: cannot start the async runtime: {e}");
            exit::SOFTWARE
        })
}

/// Load the config (exit 65/66 on errors) and run `f` with a runtime.
fn with_config(
    path: &std::path::Path,
    log: bool,
    f: impl FnOnce(&config::Config, &tokio::runtime::Runtime) -> u8,
) -> u8 {
    if log {
        let absolute = std::path::absolute(path).unwrap_or(path.to_path_buf());
        tracing::info!(config = %absolute.display(), "Reading configuration from {}.", absolute.display());
    }
    // Errors name the file as the operator gave it.
    let config = match config::load(path) {
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
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    f(&config, &runtime)
}

/// A drain's reason: the socket's rule ([`anycastd::control::protocol::check_reason`]). Its
/// own parser, not a function's, so that the error shows the value escaped: clap's would
/// print a refused newline or escape sequence as it is.
#[derive(Clone)]
struct ReasonParser;

impl clap::builder::TypedValueParser for ReasonParser {
    type Value = String;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<String, clap::Error> {
        let name = arg.map_or_else(|| "--reason".to_owned(), ToString::to_string);
        let refuse = |why: String| {
            clap::Error::raw(
                clap::error::ErrorKind::InvalidValue,
                format!("invalid value {value:?} for '{name}': {why}\n"),
            )
            .with_cmd(cmd)
        };
        let text = value
            .to_str()
            .ok_or_else(|| refuse("not UTF-8".to_owned()))?;
        anycastd::control::protocol::check_reason(text)
            .map(|()| text.to_owned())
            .map_err(refuse)
    }
}

/// A duration as the socket's milliseconds: at least 1 (a `--for 0.0001` is 1 ms, not the 0
/// the daemon refuses as it refuses `--for 0`).
fn request_ms(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// `--for`: a duration such as `90s`, `30m`, `2h`, `1d` (or seconds).
fn parse_for(text: &str) -> Result<std::time::Duration, String> {
    config::parse_duration_text(text)
}

fn run(path: PathBuf) -> u8 {
    let absolute = std::path::absolute(&path).unwrap_or(path.clone());
    // Before the runtime's threads start: they and the programs they run inherit it.
    if let Err(e) = anycastd::privileges::keep_from_children() {
        tracing::warn!("{e}");
    }
    with_config(&path, true, |config, runtime| {
        for line in anycastd::privileges::missing_here(config) {
            tracing::warn!("{line}");
        }
        runtime.block_on(daemon::run(config.clone(), &absolute))
    })
}
