//! `checks.exec`: a command run by the daemon. Exit 0 passes; any other exit fails with its
//! code and the first line of its stderr (or stdout); a command that cannot start fails with
//! the reason.
//!
//! How it runs, so that a check can never harm the daemon:
//! - no shell, a minimal environment (`PATH`, `LANG`, `ANYCASTD_SERVICE`, `ANYCASTD_CHECK`,
//!   then the check's `env`), stdin from /dev/null, the working directory `/`, optionally as
//!   another user (uid and primary gid; supplementary groups dropped);
//! - in a process group of its own. Past the timeout the whole group gets SIGTERM, then
//!   SIGKILL after [`GRACE`] (as keepalived does), and the poll fails. A poll abandoned midway
//!   (a reload) kills the group at once;
//! - its output is read as it comes (a chatty command never blocks on a full pipe), and at
//!   most [`OUTPUT_LIMIT`] bytes of each stream are kept;
//! - the command is always waited for: no zombie. It inherits only its three standard
//!   streams: descriptors the daemon opens are close-on-exec, and those it inherited from
//!   whoever started it are made so before the first exec check runs
//!   ([`close_inherited_on_exec`]). A process the
//!   command leaves running in the background after it exited is not killed (as with
//!   keepalived's MISC_CHECK); it is reparented to init, and its output is not waited for.

use super::{BoxFuture, Gate, Kind, Kinds, Observation, Probe};
use crate::config::{Check, KindItem, Node};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Bytes of each output stream kept (the rest is read and dropped).
pub const OUTPUT_LIMIT: usize = 64 * 1024;
/// Between SIGTERM and SIGKILL of a timed-out command's process group.
pub const GRACE: Duration = Duration::from_secs(1);
/// After the command exited, how long its output may still take to arrive.
const OUTPUT_LINGER: Duration = Duration::from_millis(100);
/// The `PATH` of a command.
pub const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// `checks.exec`: the command and how it runs (also what a hook runs).
#[derive(Debug, Clone, PartialEq)]
pub struct ExecCheck {
    /// Absolute path of the program (no shell).
    pub command: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Variables added to its minimal environment, in file order.
    pub env: Vec<(String, String)>,
    /// The user it runs as (when the daemon runs as root); `None`: the daemon's.
    pub user: Option<String>,
}

/// The exec check kind: a command run by the daemon; exit 0 passes. A plain item is the
/// command.
#[derive(Debug, Clone, PartialEq)]
pub struct Exec(pub ExecCheck);

/// The kind's table as it is written, for `anycastd schema` (described, never built).
mod schema {
    #![allow(dead_code)]
    use std::collections::BTreeMap;
    crate::config::schema::check_table!(Exec {
        command: String,
        args: Option<Vec<String>>,
        env: Option<BTreeMap<String, String>>,
        user: Option<String>,
    });
}

impl Kind for Exec {
    const NAME: &'static str = "exec";
    const LABEL: &'static str = "Exec";
    const RUNS_PROGRAMS: bool = true;
    type Schema = schema::Exec;

    /// `command` (absolute), `args`, `env`, `user`.
    fn parse(item: &mut KindItem<'_, '_, '_>) -> Option<(Exec, String)> {
        let required = item.required("command");
        let command = required.and_then(|(node, p)| {
            let c = item.string(node, &p)?;
            if c.starts_with('/') && !c.ends_with('/') {
                Some(c)
            } else {
                item.problem(
                    node,
                    &p,
                    format!("{c:?} must be an absolute path (no shell: write \"/bin/sh\", \"-c\", ... in args for one)"),
                );
                None
            }
        });
        let args = match item.take("args") {
            Some(n) => item.strings(n, &item.key_path("args")),
            None => Some(Vec::new()),
        };
        let env = match item.take("env") {
            Some(n) => environment(item, n, &item.key_path("env")),
            None => Some(Vec::new()),
        };
        let user = match item.take("user") {
            Some(n) => {
                let p = item.key_path("user");
                item.string(n, &p)
                    .and_then(|u| match nix::unistd::User::from_name(&u) {
                        Ok(Some(_)) => Some(Some(u)),
                        Ok(None) => {
                            item.problem(n, &p, format!("no user {u:?} on this host"));
                            None
                        }
                        Err(e) => {
                            item.problem(n, &p, format!("cannot look up {u:?}: {e}"));
                            None
                        }
                    })
            }
            None => Some(None),
        };
        let command = command?;
        let derived = command.rsplit('/').next().unwrap_or(&command).to_owned();
        Some((
            Exec(ExecCheck {
                command,
                args: args?,
                env: env?,
                user: user?,
            }),
            derived,
        ))
    }

    /// The command and its arguments (quoted as a shell would need them), environment and
    /// user.
    fn identity(&self) -> String {
        let e = &self.0;
        let mut s = std::iter::once(&e.command)
            .chain(&e.args)
            .map(|a| quote_word(a))
            .collect::<Vec<_>>()
            .join(" ");
        for (k, v) in &e.env {
            s.push_str(&format!(" env {k}={}", quote_word(v)));
        }
        if let Some(user) = &e.user {
            s.push_str(&format!(" user {user}"));
        }
        s
    }

    fn probe(&self, service: &str, check: &Check, _: &Kinds) -> Box<dyn Probe> {
        Box::new(ExecProbe::new(service, &check.name, &self.0, check.timeout))
    }
}

/// `env`: a table of variable name to string.
fn environment<'a>(
    item: &mut KindItem<'_, 'a, '_>,
    node: &'a Node,
    path: &str,
) -> Option<Vec<(String, String)>> {
    let entries = item.entries(node, path)?;
    let mut out = Vec::new();
    let mut ok = true;
    for (key, value) in entries {
        let p = format!("{path}.{}", key.name);
        let valid = key
            .name
            .chars()
            .enumerate()
            .all(|(i, c)| c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()))
            && !key.name.is_empty();
        if !valid {
            item.key_problem(
                key,
                &p,
                "variable names are letters, digits and _, not starting with a digit",
            );
            ok = false;
            continue;
        }
        match item.string(value, &p) {
            Some(v) if !v.contains('\0') => out.push((key.name.clone(), v)),
            Some(_) => {
                item.problem(value, &p, "must not contain a NUL byte");
                ok = false;
            }
            None => ok = false,
        }
    }
    ok.then_some(out)
}

/// A word as a shell would need it quoted to read it back as one word.
fn quote_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// One exec check.
pub struct ExecProbe {
    target: String,
    gate: Arc<Gate>,
    timeout: Duration,
    command: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    /// The user to run as: its name, and its uid and gid or why it cannot be used.
    user: Option<(String, UserIds)>,
}

/// A user's uid and primary gid, or why they cannot be used (no such user).
type UserIds = Result<(u32, u32), UserError>;

/// Why a check's `user` cannot be used.
#[derive(Debug, thiserror::Error)]
enum UserError {
    /// No such user on this host (any more).
    #[error("no user {0:?}")]
    Missing(String),
    /// The user database could not be read.
    #[error("cannot look up user {name:?}: {source}")]
    Lookup { name: String, source: nix::Error },
}

/// Mark every descriptor above 2 close-on-exec: the daemon's own are already, but one it
/// inherited (from a shell, a supervisor) would otherwise reach every command. Done once per
/// process, before the first exec probe exists.
pub fn close_inherited_on_exec() {
    static DONE: std::sync::Once = std::sync::Once::new();
    DONE.call_once(|| {
        let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
            return;
        };
        let fds: Vec<i32> = entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .filter(|fd| *fd > 2)
            .collect();
        for fd in fds {
            use nix::fcntl::{fcntl, FcntlArg, FdFlag};
            if let Ok(bits) = fcntl(fd, FcntlArg::F_GETFD) {
                let flags = FdFlag::from_bits_truncate(bits) | FdFlag::FD_CLOEXEC;
                let _ = fcntl(fd, FcntlArg::F_SETFD(flags));
            }
        }
    });
}

impl ExecProbe {
    /// The probe of check `check` of service `service`.
    pub fn new(service: &str, check: &str, config: &ExecCheck, timeout: Duration) -> ExecProbe {
        close_inherited_on_exec();
        let mut env = vec![
            ("PATH".to_owned(), PATH.to_owned()),
            ("LANG".to_owned(), "C.UTF-8".to_owned()),
            ("ANYCASTD_SERVICE".to_owned(), service.to_owned()),
            ("ANYCASTD_CHECK".to_owned(), check.to_owned()),
        ];
        env.extend(config.env.iter().cloned());
        let user = config.user.as_ref().map(|name| {
            let ids = match nix::unistd::User::from_name(name) {
                Ok(Some(u)) => Ok((u.uid.as_raw(), u.gid.as_raw())),
                Ok(None) => Err(UserError::Missing(name.clone())),
                Err(source) => Err(UserError::Lookup {
                    name: name.clone(),
                    source,
                }),
            };
            (name.clone(), ids)
        });
        ExecProbe {
            target: format!("exec:{service}/{check}"),
            gate: Arc::new(Gate::new(1)),
            timeout,
            command: config.command.clone(),
            args: config.args.clone(),
            env,
            user,
        }
    }

    async fn run(&self) -> Observation {
        let mut command = tokio::process::Command::new(&self.command);
        command
            .args(&self.args)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        match &self.user {
            Some((_, Ok((uid, gid)))) => {
                command.uid(*uid).gid(*gid);
            }
            Some((_, Err(e))) => return Observation::Fail(e.to_string()),
            None => {}
        }
        let mut child = match command.spawn() {
            Ok(c) => c,
            Err(e) => {
                let user = self.user.as_ref().map(|(name, _)| name.as_str());
                return Observation::Fail(spawn_error_text(&self.command, user, &e));
            }
        };
        let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) else {
            return Observation::Fail(format!(
                "{} exited before it could be watched",
                self.command
            ));
        };
        // From here on, leaving early (the poll dropped) kills the whole group.
        let mut group = Group(Some(Pid::from_raw(pid)));
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let mut output =
            tokio::spawn(async move { tokio::join!(read_bounded(stdout), read_bounded(stderr)) });
        let waited = tokio::time::timeout(self.timeout, child.wait()).await;
        let status = match waited {
            Ok(Ok(status)) => status,
            Ok(Err(e)) => {
                group.kill(Signal::SIGKILL);
                let _ = child.wait().await;
                output.abort();
                return Observation::Fail(format!("cannot wait for {}: {e}", self.command));
            }
            Err(_) => {
                group.kill(Signal::SIGTERM);
                if tokio::time::timeout(GRACE, child.wait()).await.is_err() {
                    group.kill(Signal::SIGKILL);
                    let _ = child.wait().await;
                } else {
                    // The leader went; anything left of its group goes too.
                    group.kill(Signal::SIGKILL);
                }
                group.0 = None;
                output.abort();
                return Observation::Fail(format!(
                    "timed out after {} ms (process group killed)",
                    self.timeout.as_millis()
                ));
            }
        };
        // Exited and reaped: a background process it left is not ours to kill.
        group.0 = None;
        let (out, err) = match tokio::time::timeout(OUTPUT_LINGER, &mut output).await {
            Ok(Ok(both)) => both,
            _ => {
                output.abort();
                (Vec::new(), Vec::new())
            }
        };
        if status.success() {
            return Observation::Pass;
        }
        let line = first_line(&err).or_else(|| first_line(&out));
        let how = match (
            status.code(),
            std::os::unix::process::ExitStatusExt::signal(&status),
        ) {
            (Some(code), _) => format!("exit {code}"),
            (None, Some(signal)) => match Signal::try_from(signal) {
                Ok(s) => format!("killed by {s}"),
                Err(_) => format!("killed by signal {signal}"),
            },
            (None, None) => "failed".to_owned(),
        };
        Observation::Fail(match line {
            Some(line) => format!("{how}: {line}"),
            None => how,
        })
    }
}

impl Probe for ExecProbe {
    fn target(&self) -> &str {
        &self.target
    }

    fn gate(&self) -> Arc<Gate> {
        self.gate.clone()
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn poll(&mut self) -> BoxFuture<'_, Observation> {
        Box::pin(async move {
            let observation = self.run().await;
            // The command ran (whatever it said): the "target" answered.
            self.gate.answered();
            observation
        })
    }
}

/// A running command's process group, killed when dropped unless cleared.
struct Group(Option<Pid>);

impl Group {
    fn kill(&self, signal: Signal) {
        if let Some(pgid) = self.0 {
            let _ = killpg(pgid, signal);
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.kill(Signal::SIGKILL);
    }
}

/// Read a stream to its end, keeping the first [`OUTPUT_LIMIT`] bytes.
async fn read_bounded<R: AsyncRead + Unpin>(stream: Option<R>) -> Vec<u8> {
    let mut kept = Vec::new();
    let Some(mut stream) = stream else {
        return kept;
    };
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return kept,
            Ok(n) => {
                let room = OUTPUT_LIMIT.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}

/// The first non-empty line of some output, trimmed and cut to 200 characters.
fn first_line(output: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(output);
    let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    let mut line: String = line.chars().filter(|c| !c.is_control()).take(200).collect();
    if text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(|l| l.chars().count())
        > Some(200)
    {
        line.push_str("...");
    }
    Some(line)
}

/// Why `command` did not start, in words; `user`: the user it was to run as. Switching to it
/// (setgid(2), setuid(2) in the child, before the exec) without CAP_SETGID and CAP_SETUID
/// fails the spawn with EPERM, which would otherwise read as a problem of the command.
fn spawn_error_text(command: &str, user: Option<&str>, e: &std::io::Error) -> String {
    match user {
        Some(user) if e.raw_os_error() == Some(nix::errno::Errno::EPERM as i32) => format!(
            "cannot run {command} as user {user}: {} (switching user needs CAP_SETUID and \
             CAP_SETGID)",
            io_text(e)
        ),
        _ => format!("cannot run {command}: {}", io_text(e)),
    }
}

/// An I/O error without Rust's "(os error N)".
fn io_text(e: &std::io::Error) -> String {
    super::os_error_text(&e.to_string()).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spawn_refused_with_eperm_for_a_user_names_the_user_switch() {
        let eperm = std::io::Error::from_raw_os_error(nix::errno::Errno::EPERM as i32);
        assert_eq!(
            spawn_error_text("/bin/sh", Some("nobody"), &eperm),
            "cannot run /bin/sh as user nobody: Operation not permitted (switching user needs \
             CAP_SETUID and CAP_SETGID)"
        );
        // Without a user, EPERM is the exec's own; other errors keep their words.
        assert_eq!(
            spawn_error_text("/bin/sh", None, &eperm),
            "cannot run /bin/sh: Operation not permitted"
        );
        let enoent = std::io::Error::from_raw_os_error(nix::errno::Errno::ENOENT as i32);
        assert_eq!(
            spawn_error_text("/x", Some("nobody"), &enoent),
            "cannot run /x: No such file or directory"
        );
    }

    #[test]
    fn the_first_line_of_output_is_the_reason() {
        assert_eq!(
            first_line(b"\n  \nfirst\nsecond\n"),
            Some("first".to_owned())
        );
        assert_eq!(first_line(b""), None);
        let long = "x".repeat(300);
        assert_eq!(
            first_line(long.as_bytes()),
            Some(format!("{}...", "x".repeat(200)))
        );
    }
}
