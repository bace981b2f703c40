//! The arguments several subcommands share (the config file, the socket, how long to wait),
//! their parsers, and the environment variables the command line reads.

use super::Error;
use crate::config;
use std::path::PathBuf;

/// The value of an environment variable the command line reads, if it has one: an empty value
/// is no value, as if unset (the no-color.org convention for `NO_COLOR`, and what a unit's
/// `Environment=NAME=` or a shell's `NAME=` mean). Clap's own `env` took an empty value as a
/// missing one and refused to start.
pub fn env_value(name: &str) -> Option<std::ffi::OsString> {
    std::env::var_os(name).filter(|value| !value.is_empty())
}

/// A setting from environment variable `name`, parsed by `parse`; an invalid value is a
/// usage error naming the variable (clap's message for an option's value named the option,
/// which the operator had not given).
pub fn env_setting<T>(
    name: &str,
    parse: impl Fn(&str) -> Option<T>,
    possible: &[&str],
) -> Result<Option<T>, Error> {
    let Some(value) = env_value(name) else {
        return Ok(None);
    };
    let text = value.to_string_lossy();
    match parse(&text) {
        Some(parsed) => Ok(Some(parsed)),
        None => Err(Error::Environment(format!(
            "invalid value '{}' for environment variable {name} [possible values: {}]",
            text.escape_debug(),
            possible.join(", ")
        ))),
    }
}

/// The config file option.
#[derive(Debug, clap::Args)]
pub struct ConfigArg {
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
    pub fn path(&self) -> PathBuf {
        self.config
            .clone()
            .or_else(|| env_value("CONFIG").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(config::DEFAULT_PATH))
    }
}

/// Where a client command finds the daemon.
#[derive(Debug, clap::Args)]
pub struct ClientArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// The daemon's control socket [env: ANYCASTD_SOCKET] [default: [control] socket of the
    /// config file, read even when the file does not validate, else
    /// /run/anycastd/anycastd.sock]
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
}

impl ClientArgs {
    /// The client these arguments name.
    pub fn client(&self) -> super::Client {
        let socket = self
            .socket
            .clone()
            .or_else(|| env_value("ANYCASTD_SOCKET").map(PathBuf::from));
        super::Client::new(&self.config.path(), socket)
    }
}

/// How long `drain`/`undrain` wait for the routing daemon to show the change.
#[derive(Debug, clap::Args)]
pub struct WaitArgs {
    /// Wait at most this long for the routing daemon (FRR's running config, BIRD, GoBGP's
    /// RIB) to show the change (exit 70 when it does not)
    #[arg(long, value_name = "DURATION", value_parser = parse_for, default_value = "10s")]
    wait: std::time::Duration,
    /// Answer once the decision is journaled and handed to the routing daemon's writer, without waiting
    #[arg(long, conflicts_with = "wait")]
    no_wait: bool,
}

impl WaitArgs {
    /// The wait for the request (`None`: do not wait).
    pub fn wait_ms(&self) -> Option<u64> {
        (!self.no_wait).then(|| request_ms(self.wait))
    }
}

/// The `--since`/`--until` window of `history`, `replay` and `report`.
#[derive(Debug, clap::Args)]
pub struct WindowArgs {
    /// Window start: RFC 3339, or a duration ago (90, 90s, 30m, 2h, 1d, 1w)
    #[arg(long)]
    since: Option<String>,
    /// Window end: RFC 3339 or a duration ago
    #[arg(long)]
    until: Option<String>,
}

impl WindowArgs {
    /// The window as times (a usage error when malformed or in the wrong order).
    pub fn window(&self) -> Result<(Option<i64>, Option<i64>), Error> {
        window(&self.since, &self.until)
    }
}

/// `--since`/`--until` as times (a usage error when malformed or in the wrong order).
pub fn window(
    since: &Option<String>,
    until: &Option<String>,
) -> Result<(Option<i64>, Option<i64>), Error> {
    let now = crate::journal_handle::now_ms();
    let parse = |t: &Option<String>, flag: &str| {
        t.as_deref()
            .map(|t| {
                crate::audit::history::parse_time(t, now)
                    .map_err(|e| Error::Usage(format!("--{flag}: {e}")))
            })
            .transpose()
    };
    let (since_ms, until_ms) = match (parse(since, "since"), parse(until, "until")) {
        (Ok(s), Ok(u)) => (s, u),
        (Err(e), _) | (_, Err(e)) => return Err(e),
    };
    if let (Some(s), Some(u)) = (since_ms, until_ms) {
        if s > u {
            return Err(Error::Usage("--since is after --until".into()));
        }
    }
    Ok((since_ms, until_ms))
}

/// A drain's reason: the socket's rule ([`crate::control::protocol::check_reason`]). Its
/// own parser, not a function's, so that the error shows the value escaped: clap's would
/// print a refused newline or escape sequence as it is.
#[derive(Clone)]
pub struct ReasonParser;

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
        crate::control::protocol::check_reason(text)
            .map(|()| text.to_owned())
            .map_err(refuse)
    }
}

/// A duration as the socket's milliseconds: at least 1 (a `--for 0.0001` is 1 ms, not the 0
/// the daemon refuses as it refuses `--for 0`).
pub fn request_ms(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// `--for`: a duration such as `90s`, `30m`, `2h`, `1d` (or seconds).
pub fn parse_for(text: &str) -> Result<std::time::Duration, String> {
    config::parse_duration_text(text)
}

/// A `--grace` for a request, in ms (0 stays 0: no grace).
pub fn grace_ms(grace: std::time::Duration) -> u64 {
    u64::try_from(grace.as_millis()).unwrap_or(u64::MAX)
}

/// `--grace`: a duration as `--for`, or 0 (none), at most the longest `drain_grace`. A
/// negative one (`-5s`, taken as a value, not as a flag) says what is accepted.
pub fn parse_grace(text: &str) -> Result<std::time::Duration, String> {
    if matches!(text.trim(), "0" | "0s" | "0ms") {
        return Ok(std::time::Duration::ZERO);
    }
    let grace = config::parse_duration_text(text).map_err(|e| {
        e.replace(
            "must be greater than 0",
            "must be 0 (withdraw at once) or a positive duration",
        )
    })?;
    if grace > config::MAX_DRAIN_GRACE {
        return Err(format!(
            "at most {} s (a grace keeps a draining route announced; drain --for keeps a service drained longer)",
            config::MAX_DRAIN_GRACE.as_secs()
        ));
    }
    Ok(grace)
}
