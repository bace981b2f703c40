//! BIRD's control socket, spoken directly (no birdc).
//!
//! Facts relied on (BIRD 2.0.12, measured; BIRD 3.x from its source, `nest/cli.c` and
//! `sysdep/unix/main.c`): on connect the server sends `0001 BIRD <version> ready.`. A request
//! is one line. Every reply line starts with a four-digit code followed by `-` (more lines
//! follow) or a space (the last line); a continuation line may instead start with a single
//! space, keeping the previous code. Codes: 0xxx success, 1xxx table entries, 2xxx headings,
//! 8xxx run-time errors, 9xxx parse errors; a line starting with `+` is a spontaneous
//! printout, not part of the reply.

use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// Longest reply read (a route listing of 100,000 prefixes is ~8 MB); more fails the call.
pub const MAX_REPLY_BYTES: usize = 32 * 1024 * 1024;

/// Why talking to BIRD failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BirdError {
    /// Nothing listens on the socket.
    #[error("BIRD is not running (control socket {socket}: {reason})")]
    NotRunning {
        /// The socket.
        socket: String,
        /// Why the connection failed.
        reason: String,
    },
    /// The socket exists but may not be opened.
    #[error("BIRD control socket {socket}: permission denied")]
    PermissionDenied {
        /// The socket.
        socket: String,
    },
    /// No complete reply within the time limit.
    #[error("BIRD at {socket} did not answer within {} ms", timeout.as_millis())]
    Timeout {
        /// The socket.
        socket: String,
        /// The limit.
        timeout: Duration,
    },
    /// BIRD answered with an error code (8xxx, 9xxx) or an unexpected one.
    #[error("BIRD at {socket}: {command}: {code} {message}")]
    Refused {
        /// The socket.
        socket: String,
        /// The request, e.g. `configure`.
        command: String,
        /// The reply code.
        code: u16,
        /// BIRD's text (for 8002, `file:line:col message`).
        message: String,
    },
    /// The reply did not follow the protocol, or the connection broke.
    #[error("BIRD at {socket}: {reason}")]
    Protocol {
        /// The socket.
        socket: String,
        /// What was wrong.
        reason: String,
    },
    /// A prefix of the other family than its static protocol's channel.
    #[error("{prefix} cannot go into BIRD protocol {protocol}: its channel is of the other family (give it a protocol of its own family)")]
    Family {
        /// The protocol.
        protocol: String,
        /// The prefix.
        prefix: String,
    },
    /// A route to announce with a prepend, and no one local AS to prepend.
    #[error(
        "BIRD at {socket}: cannot prepend the local AS to routes of protocol {protocol}: {reason}"
    )]
    LocalAs {
        /// The socket.
        socket: String,
        /// The static protocol.
        protocol: String,
        /// Why, in words.
        reason: String,
    },
    /// The include file could not be written.
    #[error("cannot write {path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// A prefix's static protocol is not in BIRD (anycastd never creates one).
    #[error("no static protocol {protocol} in BIRD at {socket} (declare protocol static {protocol} with the line include \"{include}\"); anycastd does not create one")]
    NoProtocol {
        /// The socket.
        socket: String,
        /// The protocol.
        protocol: String,
        /// The include line's pattern for it.
        include: String,
    },
    /// BIRD took a configuration that does not show the change.
    #[error("BIRD at {socket} accepted the configuration but {}", if *announce {
        format!("does not show the route (is its static protocol disabled, or does it include another file than {include_dir}?)")
    } else {
        format!("still shows the route (does its static protocol include another file than {include_dir}, or the route twice?)")
    })]
    NotApplied {
        /// The socket.
        socket: String,
        /// Where the include files are.
        include_dir: String,
        /// An announcement (missing) or a withdrawal (still there).
        announce: bool,
    },
}

impl BirdError {
    /// An error code reply to `command`, with `8007 Access denied` in words.
    fn refused(socket: &Path, command: &str, code: u16, message: String) -> BirdError {
        let message = if code == 8007 {
            format!("{message} (the control socket is restricted; anycastd needs a full one)")
        } else {
            message
        };
        BirdError::Refused {
            socket: socket.display().to_string(),
            command: command.to_owned(),
            code,
            message,
        }
    }
}

/// One reply: its lines (code, text) in order; the last one's code is the reply's.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reply {
    /// Every line with its code (a continuation line carries the code before it).
    pub lines: Vec<(u16, String)>,
}

impl Reply {
    /// The code of the last line.
    pub fn code(&self) -> u16 {
        self.lines.last().map_or(0, |(code, _)| *code)
    }

    /// The text of the last line.
    pub fn message(&self) -> &str {
        self.lines.last().map_or("", |(_, text)| text.as_str())
    }

    /// The texts of the lines with `code`.
    pub fn with_code(&self, code: u16) -> impl Iterator<Item = &str> {
        self.lines
            .iter()
            .filter(move |(c, _)| *c == code)
            .map(|(_, text)| text.as_str())
    }

    /// Whether the reply is an error (8xxx run-time, 9xxx parse).
    pub fn is_error(&self) -> bool {
        self.code() >= 8000
    }
}

/// Collects the lines of one reply.
#[derive(Debug, Default)]
pub struct Parser {
    reply: Reply,
}

impl Parser {
    /// Take one line (without its newline). Returns `Ok(true)` when it ended the reply.
    pub fn line(&mut self, line: &str) -> Result<bool, String> {
        if line.starts_with('+') {
            // A spontaneous printout (log lines of `echo`): not part of any reply.
            return Ok(false);
        }
        if let Some(text) = line.strip_prefix(' ') {
            let code = self
                .reply
                .lines
                .last()
                .map(|(code, _)| *code)
                .ok_or_else(|| format!("a continuation line opens the reply: {line:?}"))?;
            self.reply.lines.push((code, text.to_owned()));
            return Ok(false);
        }
        let bytes = line.as_bytes();
        if bytes.len() < 5 || !bytes[..4].iter().all(u8::is_ascii_digit) {
            return Err(format!("not a reply line: {line:?}"));
        }
        let code: u16 = line[..4]
            .parse()
            .map_err(|_| format!("not a reply line: {line:?}"))?;
        let last = match bytes[4] {
            b' ' => true,
            b'-' => false,
            _ => return Err(format!("not a reply line: {line:?}")),
        };
        self.reply.lines.push((code, line[5..].to_owned()));
        Ok(last)
    }

    /// The reply collected.
    pub fn finish(self) -> Reply {
        self.reply
    }
}

/// One connection to a control socket.
pub struct Session {
    socket: PathBuf,
    stream: BufReader<UnixStream>,
    read: usize,
}

impl Session {
    /// Connect and read the greeting (`0001 BIRD <version> ready.`).
    pub async fn open(socket: &Path) -> Result<(Session, String), BirdError> {
        let stream = match UnixStream::connect(socket).await {
            Ok(stream) => stream,
            Err(e) => {
                let shown = socket.display().to_string();
                return Err(match e.kind() {
                    std::io::ErrorKind::PermissionDenied => {
                        BirdError::PermissionDenied { socket: shown }
                    }
                    _ => BirdError::NotRunning {
                        socket: shown,
                        reason: crate::io_text::io_reason(&e),
                    },
                });
            }
        };
        let mut session = Session {
            socket: socket.to_owned(),
            stream: BufReader::new(stream),
            read: 0,
        };
        let greeting = session.reply().await?;
        if greeting.code() != 1 {
            return Err(session.protocol(format!(
                "expected the greeting 0001, got {} {}",
                greeting.code(),
                greeting.message()
            )));
        }
        Ok((session, greeting.message().to_owned()))
    }

    fn protocol(&self, reason: String) -> BirdError {
        BirdError::Protocol {
            socket: self.socket.display().to_string(),
            reason,
        }
    }

    async fn reply(&mut self) -> Result<Reply, BirdError> {
        let mut parser = Parser::default();
        let mut line = String::new();
        loop {
            line.clear();
            let n = self.stream.read_line(&mut line).await.map_err(|e| {
                self.protocol(format!("reading: {}", crate::io_text::io_reason(&e)))
            })?;
            if n == 0 {
                return Err(self.protocol("the connection was closed mid-reply".into()));
            }
            self.read += n;
            if self.read > MAX_REPLY_BYTES {
                return Err(self.protocol(format!("a reply longer than {MAX_REPLY_BYTES} bytes")));
            }
            let text = line.trim_end_matches(['\n', '\r']);
            match parser.line(text) {
                Ok(true) => return Ok(parser.finish()),
                Ok(false) => {}
                Err(reason) => return Err(self.protocol(reason)),
            }
        }
    }

    /// Send one request and read its reply; an error code is an error.
    pub async fn command(&mut self, command: &str) -> Result<Reply, BirdError> {
        self.read = 0;
        let mut bytes = command.as_bytes().to_vec();
        bytes.push(b'\n');
        self.stream
            .get_mut()
            .write_all(&bytes)
            .await
            .map_err(|e| self.protocol(format!("writing: {}", crate::io_text::io_reason(&e))))?;
        let reply = self.reply().await?;
        if reply.is_error() {
            return Err(BirdError::refused(
                &self.socket,
                command,
                reply.code(),
                reply.message().to_owned(),
            ));
        }
        Ok(reply)
    }
}

/// `run` (one conversation) within `timeout`, or the timeout error of `socket`; counted in
/// the metrics.
pub async fn within<T>(
    socket: &Path,
    timeout: Duration,
    run: impl std::future::Future<Output = Result<T, BirdError>>,
) -> Result<T, BirdError> {
    let started = std::time::Instant::now();
    let result = match tokio::time::timeout(timeout, run).await {
        Ok(result) => result,
        Err(_) => Err(BirdError::Timeout {
            socket: socket.display().to_string(),
            timeout,
        }),
    };
    conversation(
        &socket.display().to_string(),
        started.elapsed(),
        result.is_ok(),
    );
    result
}

/// BIRD's metric families, shown once a BIRD writer started.
pub const METRIC_FAMILIES: crate::observe::metrics::Families = &[
    (
        "anycastd_bird_conversations_total",
        "counter",
        "Conversations with BIRD's control socket (a read, a configure, a status view).",
    ),
    (
        "anycastd_bird_errors_total",
        "counter",
        "Conversations with BIRD that failed (not running, refused, an error code, timeout).",
    ),
    (
        "anycastd_bird_duration_seconds",
        "summary",
        "Time spent in conversations with BIRD (_sum) and conversations timed (_count).",
    ),
];

/// The counters of a BIRD control socket, at 0 (at its writer's start).
pub fn zero_counters(socket: &str) {
    for name in [
        "anycastd_bird_conversations_total",
        "anycastd_bird_errors_total",
        "anycastd_bird_duration_seconds_sum",
        "anycastd_bird_duration_seconds_count",
    ] {
        crate::observe::metrics::count(name, &[("socket", socket)], 0.0);
    }
}

/// One conversation with the BIRD at `socket`, in the metrics.
fn conversation(socket: &str, took: Duration, ok: bool) {
    use crate::observe::metrics::count;
    count(
        "anycastd_bird_conversations_total",
        &[("socket", socket)],
        1.0,
    );
    count(
        "anycastd_bird_duration_seconds_sum",
        &[("socket", socket)],
        took.as_secs_f64(),
    );
    count(
        "anycastd_bird_duration_seconds_count",
        &[("socket", socket)],
        1.0,
    );
    if !ok {
        count("anycastd_bird_errors_total", &[("socket", socket)], 1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(lines: &[&str]) -> Result<Reply, String> {
        let mut parser = Parser::default();
        for (i, line) in lines.iter().enumerate() {
            if parser.line(line)? {
                assert_eq!(i, lines.len() - 1, "the reply ended early");
                return Ok(parser.finish());
            }
        }
        Err("no last line".into())
    }

    #[test]
    fn a_listing_with_continuation_lines() {
        // `show protocols`, recorded from BIRD 2.0.12.
        let reply = parse(&[
            "2002-Name       Proto      Table      State  Since         Info",
            "1002-device1    Device     ---        up     21:13:41.587  ",
            " anycastd4  Static     master4    up     21:13:41.587  ",
            "0000 ",
        ])
        .unwrap();
        assert_eq!(reply.code(), 0);
        assert_eq!(reply.with_code(1002).count(), 2);
        assert_eq!(
            reply.with_code(1002).nth(1),
            Some("anycastd4  Static     master4    up     21:13:41.587  ")
        );
    }

    #[test]
    fn printouts_are_skipped_and_garbage_is_an_error() {
        let reply = parse(&["+0000 a log line", "0003 Reconfigured"]).unwrap();
        assert_eq!(reply.lines, vec![(3, "Reconfigured".to_owned())]);
        assert!(parse(&["hello"]).is_err());
        assert!(parse(&[" opens with a continuation"]).is_err());
        assert!(parse(&["0003xReconfigured"]).is_err());
    }

    #[test]
    fn error_codes() {
        let reply = parse(&[
            "0002-Reading configuration from /etc/bird.conf",
            "8002 /etc/bird.conf:3:35 syntax error",
        ])
        .unwrap();
        assert!(reply.is_error());
        assert_eq!(reply.message(), "/etc/bird.conf:3:35 syntax error");
        let denied = BirdError::refused(
            Path::new("/run/bird/ro.ctl"),
            "configure",
            8007,
            "Access denied".into(),
        );
        assert_eq!(
            denied.to_string(),
            "BIRD at /run/bird/ro.ctl: configure: 8007 Access denied (the control socket is restricted; anycastd needs a full one)"
        );
    }
}
