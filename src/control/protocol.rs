//! The control socket's protocol (version 1): one request line from the client, typed
//! ([`Request`]), and answer lines from the daemon, typed ([`Response`]), each a JSON object
//! with the protocol `version`. The one module that encodes and decodes both sides.

use crate::audit::history::Query;
use crate::observe::status::ServiceStatus;
use anycastd_journal::{wire, Record};
use serde::{Deserialize, Serialize};

/// Protocol version spoken.
pub const PROTOCOL_VERSION: u32 = 1;
/// Largest request line accepted.
pub const MAX_REQUEST_BYTES: u64 = 64 * 1024;

/// A request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Request {
    /// Service states and prefix status.
    Status {
        /// Only this service.
        #[serde(default)]
        service: Option<String>,
    },
    /// Journal records.
    History {
        /// Which records.
        #[serde(flatten)]
        query: Query,
        /// Keep streaming new records.
        #[serde(default)]
        follow: bool,
    },
    /// Drain services: withdraw whatever the checks say.
    Drain {
        /// The service (`None`: every service).
        service: Option<String>,
        /// Why (journaled, shown in status and history).
        reason: String,
        /// End the drain by itself after this long.
        for_ms: Option<u64>,
        /// Announce with GRACEFUL_SHUTDOWN this long before withdrawing, instead of the
        /// service's `drain_grace` (0: withdraw at once, also ending a grace in progress).
        #[serde(default)]
        grace_ms: Option<u64>,
        /// Answer once the routing daemon shows the withdrawal, waiting at most this long (`None`: answer
        /// once it is journaled and handed to the writers).
        #[serde(default)]
        wait_ms: Option<u64>,
        /// Drain even if it takes a guarded service's fleet below its minimum (or etcd cannot
        /// be read to tell); without it such a drain is refused (exit 75).
        #[serde(default)]
        force: bool,
    },
    /// End operator drains.
    Undrain {
        /// The service (`None`: every service).
        service: Option<String>,
        /// As for `Drain`.
        #[serde(default)]
        wait_ms: Option<u64>,
    },
    /// Reload the configuration file; answered with the result.
    Reload,
    /// Re-run a service's journal (postmortem replay, what-if).
    Replay {
        /// The service.
        service: String,
        /// Window start (ms).
        since_ms: Option<i64>,
        /// Window end (ms).
        until_ms: Option<i64>,
        /// Other parameters.
        #[serde(default)]
        what_if: crate::audit::replay::WhatIf,
    },
    /// Per-service figures over a window (`report`).
    Report {
        /// Window start (ms).
        since_ms: Option<i64>,
        /// Window end (ms).
        until_ms: Option<i64>,
    },
    /// Stop the daemon.
    Stop {
        /// Exit without withdrawing (planned restart).
        #[serde(default)]
        keep_announced: bool,
        /// Announce with GRACEFUL_SHUTDOWN this long before withdrawing, instead of each
        /// service's `drain_grace` (0: withdraw at once).
        #[serde(default)]
        grace_ms: Option<u64>,
    },
}

/// A request with its protocol version.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Envelope {
    /// Must be [`PROTOCOL_VERSION`].
    pub version: u32,
    /// The request.
    #[serde(flatten)]
    pub request: Request,
}

/// Parse a request line and check its values as the command line checks its options
/// ([`Request::validate`]): the socket takes nothing the command line refuses.
pub fn parse_request(line: &str) -> Result<Request, String> {
    let envelope: Envelope =
        serde_json::from_str(line.trim()).map_err(|e| format!("malformed request: {e}"))?;
    if envelope.version != PROTOCOL_VERSION {
        return Err(format!(
            "protocol version {} not supported (this daemon speaks {PROTOCOL_VERSION})",
            envelope.version
        ));
    }
    envelope
        .request
        .validate()
        .map_err(|e| format!("invalid request: {e}"))?;
    Ok(envelope.request)
}

/// The rule of a drain's reason, on the command line (`--reason`) and on the socket: some
/// text, and no control character, as `history`, `status` and the logs print it as it is
/// (a newline would split an event over two lines, an escape sequence reach a terminal).
pub fn check_reason(reason: &str) -> Result<(), String> {
    if reason.trim().is_empty() {
        Err("must not be empty: say why (it is journaled and shown by status)".into())
    } else if let Some(c) = reason.chars().find(|c| c.is_control()) {
        Err(format!(
            "must not contain control characters (it has {:?}): one line of text, as history \
             and status print it",
            c
        ))
    } else {
        Ok(())
    }
}

/// A request the command line could not have sent, in the command line's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidRequest {
    /// A drain's reason breaks [`check_reason`]'s rule.
    #[error("reason: {0}")]
    Reason(String),
    /// A duration field breaks the rule of every duration.
    #[error("{field} {ms}: {why}")]
    Duration {
        /// The field.
        field: &'static str,
        /// Its value (ms).
        ms: u64,
        /// The rule broken.
        why: String,
    },
    /// A count outside its option's range.
    #[error("{field}: {value} is not in {}", range_text(*.low, *.high))]
    OutOfRange {
        /// The field.
        field: &'static str,
        /// Its value.
        value: u64,
        /// The range's ends (`None`: unbounded).
        low: u64,
        /// The range's end, if any.
        high: Option<u64>,
    },
    /// `limit` and `tail` together.
    #[error("limit cannot be used with tail")]
    LimitWithTail,
    /// A window end that is no time.
    #[error("{field} {ms}: not a time")]
    NotATime {
        /// The field.
        field: &'static str,
        /// Its value.
        ms: i64,
    },
    /// The window's ends in the wrong order.
    #[error("since_ms is after until_ms")]
    SinceAfterUntil,
    /// A what-if's damping reuse not below its suppress.
    #[error("damping reuse must be less than damping suppress")]
    ReuseNotBelowSuppress,
}

/// A range in clap's words: `1..` or `1..=1000`.
fn range_text(low: u64, high: Option<u64>) -> String {
    match high {
        Some(high) => format!("{low}..={high}"),
        None => format!("{low}.."),
    }
}

/// A duration field in milliseconds: the rule of every duration ([`crate::config::duration_of_seconds`]).
fn duration_ms(field: &'static str, ms: Option<u64>) -> Result<(), InvalidRequest> {
    match ms {
        // Exact for every value up to the limit (1e12 ms is below 2^53).
        Some(ms) => crate::config::duration_of_seconds(ms as f64 / 1000.0)
            .map(|_| ())
            .map_err(|why| InvalidRequest::Duration { field, ms, why }),
        None => Ok(()),
    }
}

/// A grace (`grace_ms`): 0 (none) or a duration up to the longest `drain_grace`, as
/// `--grace` takes it.
fn grace(ms: Option<u64>) -> Result<(), InvalidRequest> {
    match ms {
        Some(ms) if ms > crate::config::MAX_DRAIN_GRACE.as_millis() as u64 => {
            Err(InvalidRequest::Duration {
                field: "grace_ms",
                ms,
                why: format!("at most {} s", crate::config::MAX_DRAIN_GRACE.as_secs()),
            })
        }
        _ => Ok(()),
    }
}

/// A count in `range`, in clap's words for the option it stands for.
fn in_range(
    field: &'static str,
    value: Option<u32>,
    range: std::ops::RangeInclusive<u32>,
) -> Result<(), InvalidRequest> {
    match value {
        Some(v) if !range.contains(&v) => Err(InvalidRequest::OutOfRange {
            field,
            value: v.into(),
            low: (*range.start()).into(),
            high: Some((*range.end()).into()),
        }),
        _ => Ok(()),
    }
}

/// A window's ends: times (as `--since`/`--until` give), not after one another.
fn window(since_ms: Option<i64>, until_ms: Option<i64>) -> Result<(), InvalidRequest> {
    for (field, ms) in [("since_ms", since_ms), ("until_ms", until_ms)] {
        if let Some(ms) = ms {
            if chrono::DateTime::from_timestamp_millis(ms).is_none() {
                return Err(InvalidRequest::NotATime { field, ms });
            }
        }
    }
    match (since_ms, until_ms) {
        (Some(since), Some(until)) if since > until => Err(InvalidRequest::SinceAfterUntil),
        _ => Ok(()),
    }
}

impl Request {
    /// Whether its values are ones the command line could have sent: the same rules, in the
    /// same words (a drain's reason and duration, `--wait`, history's `--limit`/`--tail`,
    /// replay's `--rise`/`--fall`/`--damping-*`, the order of `--since` and `--until`).
    pub fn validate(&self) -> Result<(), InvalidRequest> {
        match self {
            Request::Stop { grace_ms, .. } => grace(*grace_ms),
            Request::Status { .. } | Request::Reload => Ok(()),
            Request::History { query, .. } => {
                for (field, value) in [("limit", query.limit), ("tail", query.tail)] {
                    if value == Some(0) {
                        return Err(InvalidRequest::OutOfRange {
                            field,
                            value: 0,
                            low: 1,
                            high: None,
                        });
                    }
                }
                if query.limit.is_some() && query.tail.is_some() {
                    return Err(InvalidRequest::LimitWithTail);
                }
                window(query.since_ms, query.until_ms)
            }
            Request::Drain {
                reason,
                for_ms,
                wait_ms,
                grace_ms,
                ..
            } => {
                check_reason(reason).map_err(InvalidRequest::Reason)?;
                duration_ms("for_ms", *for_ms)?;
                // 0 is a grace (none): only the upper bound applies.
                grace(*grace_ms)?;
                duration_ms("wait_ms", *wait_ms)
            }
            Request::Undrain { wait_ms, .. } => duration_ms("wait_ms", *wait_ms),
            Request::Replay {
                since_ms,
                until_ms,
                what_if,
                ..
            } => {
                window(*since_ms, *until_ms)?;
                in_range("rise", what_if.rise, 1..=1000)?;
                in_range("fall", what_if.fall, 1..=1000)?;
                if let Some(d) = &what_if.damping {
                    in_range("damping penalty", Some(d.penalty), 1..=1_000_000)?;
                    in_range("damping suppress", Some(d.suppress), 1..=1_000_000)?;
                    in_range("damping reuse", Some(d.reuse), 1..=1_000_000)?;
                    if d.reuse >= d.suppress {
                        return Err(InvalidRequest::ReuseNotBelowSuppress);
                    }
                    duration_ms("damping half_life_ms", Some(d.half_life_ms))?;
                    duration_ms("damping max_suppress_ms", Some(d.max_suppress_ms))?;
                }
                Ok(())
            }
            Request::Report { since_ms, until_ms } => window(*since_ms, *until_ms),
        }
    }
}

/// The request line for `request` (with its newline).
pub fn request_line(request: &Request) -> Result<Vec<u8>, serde_json::Error> {
    let mut bytes = serde_json::to_vec(&Envelope {
        version: PROTOCOL_VERSION,
        request: request.clone(),
    })?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// One journal record as `history --json` prints it and the socket sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalLine {
    /// Global sequence number.
    pub seq: u64,
    /// RFC 3339.
    pub time: String,
    /// Milliseconds since the epoch.
    pub at_ms: i64,
    /// The format version it was written in.
    pub version: u8,
    /// The service, `None` for the daemon's own records.
    pub service: Option<String>,
    /// Its kind (`transition`, `apply`, ...).
    pub kind: String,
    /// What happened, in words.
    pub text: String,
    /// The record itself.
    pub record: wire::Event,
}

impl JournalLine {
    /// The line of `record`.
    pub fn of(record: &Record) -> JournalLine {
        JournalLine {
            seq: record.seq,
            time: crate::audit::text::format_time(record.at_ms),
            at_ms: record.at_ms,
            version: record.version,
            service: record.event.service().map(str::to_owned),
            kind: crate::audit::text::kind(&record.event).to_owned(),
            text: crate::audit::text::event_text(&record.event),
            record: record.event.clone(),
        }
    }

    /// The record it carries.
    pub fn record(self) -> Record {
        Record {
            version: self.version,
            seq: self.seq,
            at_ms: self.at_ms,
            event: self.record,
        }
    }
}

/// What a drain or undrain did to one service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainResult {
    /// The service.
    pub service: String,
    /// What happened, in words.
    pub note: String,
    /// Its state after it (`healthy`, `draining (operator uid 0: ...)`, ...).
    pub state: String,
    /// Prefixes whose announcement or withdrawal it asked of the routing daemons.
    pub prefixes: usize,
    /// `Some(true)`: the daemons show every change; `Some(false)`: not all within the wait;
    /// `None`: not waited for, or nothing to change.
    pub verified: Option<bool>,
    /// The changes not shown within the wait, each with its daemon's last error.
    pub unverified: Vec<String>,
}

/// A prefix a stop could not verify withdrawn, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeftPrefix {
    /// The prefix and the routing daemon it is in.
    pub prefix: wire::PrefixRef,
    /// The routing daemon's last error for it, or why it was not verified.
    pub error: String,
}

/// An answer line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Response {
    /// One journal record (`history`).
    Record {
        /// The record.
        record: Box<JournalLine>,
    },
    /// The stored records of a `--follow` are all sent; new ones follow as they come.
    CaughtUp {
        /// Records of an unknown format version skipped.
        skipped_unknown: u64,
    },
    /// The last line of a `history` without `--follow`.
    End {
        /// Records of an unknown format version skipped.
        skipped_unknown: u64,
    },
    /// `status`.
    Status {
        /// Every service asked for.
        services: Vec<ServiceStatus>,
        /// What the daemon cannot do now, one line each (restart detection off).
        #[serde(default)]
        notes: Vec<String>,
        /// The fleet guard, one line: on (site, etcd, reachable or blind since when and
        /// why) or off.
        #[serde(default)]
        fleet_guard: Option<String>,
        /// The fleet guard as fields: on, site, endpoints, connecting, connected or blind,
        /// since when, and why.
        #[serde(default)]
        fleet_guard_state: Option<crate::fleet::guard::GuardView>,
    },
    /// `drain` and `undrain`.
    Done {
        /// Per service.
        results: Vec<DrainResult>,
    },
    /// `replay`.
    Replay {
        /// The report.
        report: Box<crate::audit::replay::Report>,
    },
    /// `report`.
    Report {
        /// The report.
        report: Box<crate::audit::report::Report>,
    },
    /// `reload` applied.
    Reloaded {
        /// What changed.
        message: String,
    },
    /// `stop`: the daemon has stopped (its process exits next).
    Stopped {
        /// Its exit code.
        code: u8,
        /// What happened.
        message: String,
        /// Its pid.
        pid: u32,
        /// The prefixes it could not verify withdrawn (exit 70), each with why; empty from a
        /// daemon that predates the list.
        #[serde(default)]
        left: Vec<LeftPrefix>,
    },
    /// The request failed.
    Error {
        /// The exit code for the client.
        code: u8,
        /// Why.
        message: String,
    },
}

/// An answer with its protocol version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    /// [`PROTOCOL_VERSION`].
    pub version: u32,
    /// The answer.
    #[serde(flatten)]
    pub response: Response,
}

/// The line of `response` (with its newline).
pub fn answer_line(response: Response) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(&Answer {
        version: PROTOCOL_VERSION,
        response,
    })
    .unwrap_or_else(|e| {
        // Not reachable with these types; say so rather than send nothing.
        format!(
            "{{\"version\":{PROTOCOL_VERSION},\"type\":\"error\",\"code\":70,\"message\":\"cannot encode the answer: {e}\"}}"
        )
        .into_bytes()
    });
    bytes.push(b'\n');
    bytes
}

/// Parse an answer line.
pub fn parse_answer(line: &str) -> Result<Response, super::ClientError> {
    let answer: Answer = serde_json::from_str(line.trim()).map_err(|e| {
        super::ClientError::Other(format!("unreadable answer from the daemon: {e}"))
    })?;
    Ok(answer.response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_and_versions_are_checked() {
        assert_eq!(
            parse_request("{\"version\":1,\"command\":\"status\"}\n"),
            Ok(Request::Status { service: None })
        );
        assert_eq!(
            parse_request(
                "{\"version\":1,\"command\":\"history\",\"service\":\"dns\",\"limit\":5}"
            ),
            Ok(Request::History {
                query: Query {
                    service: Some("dns".into()),
                    limit: Some(5),
                    ..Query::default()
                },
                follow: false
            })
        );
        assert!(parse_request("{\"version\":2,\"command\":\"status\"}")
            .unwrap_err()
            .contains("version 2"));
        assert!(parse_request("garbage")
            .unwrap_err()
            .starts_with("malformed request"));
        assert!(parse_request("{\"version\":1,\"command\":\"reboot\"}").is_err());
    }

    #[test]
    fn a_request_the_command_line_would_refuse_is_refused_in_its_words() {
        let request = |fields: &str| parse_request(&format!("{{\"version\":1,{fields}}}"));
        let drain = |for_ms: &str| {
            request(&format!(
                "\"command\":\"drain\",\"service\":\"dns\",\"reason\":\"x\",\"for_ms\":{for_ms}"
            ))
        };
        assert_eq!(
            drain("18446744073709551615"),
            Err("invalid request: for_ms 18446744073709551615: too long: at most 1000000000 seconds (about 31 years)".into())
        );
        assert_eq!(
            drain("0"),
            Err("invalid request: for_ms 0: must be greater than 0".into())
        );
        // At most 1,000,000,000 s, that included, as the error says.
        assert!(drain("1000000000000").is_ok());
        assert!(drain("1000000000001").is_err());
        assert!(drain("null").is_ok());
        assert_eq!(
            request("\"command\":\"drain\",\"service\":null,\"reason\":\" \",\"for_ms\":null"),
            Err("invalid request: reason: must not be empty: say why (it is journaled and shown by status)".into())
        );
        for (reason, shown) in [
            ("a\\nb", "'\\n'"),
            ("bell\\u0007", "'\\u{7}'"),
            ("\\u009b", "'\\u{9b}'"),
        ] {
            assert_eq!(
                request(&format!(
                    "\"command\":\"drain\",\"service\":null,\"reason\":\"{reason}\",\"for_ms\":null"
                )),
                Err(format!(
                    "invalid request: reason: must not contain control characters (it has \
                     {shown}): one line of text, as history and status print it"
                )),
                "{reason}"
            );
        }
        assert!(request("\"command\":\"drain\",\"service\":null,\"reason\":\"kernel upgrade, ticket #42 – ünïcode\",\"for_ms\":null").is_ok());
        assert_eq!(
            request("\"command\":\"undrain\",\"service\":\"dns\",\"wait_ms\":0"),
            Err("invalid request: wait_ms 0: must be greater than 0".into())
        );
        for (fields, error) in [
            ("\"limit\":0", "limit: 0 is not in 1.."),
            ("\"tail\":0", "tail: 0 is not in 1.."),
            ("\"limit\":1,\"tail\":1", "limit cannot be used with tail"),
            (
                "\"since_ms\":2,\"until_ms\":1",
                "since_ms is after until_ms",
            ),
            (
                "\"since_ms\":9223372036854775807",
                "since_ms 9223372036854775807: not a time",
            ),
        ] {
            assert_eq!(
                request(&format!("\"command\":\"history\",{fields}")),
                Err(format!("invalid request: {error}")),
                "{fields}"
            );
        }
        let replay = |what_if: &str| {
            request(&format!(
                "\"command\":\"replay\",\"service\":\"dns\",\"since_ms\":null,\"until_ms\":null,\"what_if\":{what_if}"
            ))
        };
        assert_eq!(
            replay("{\"rise\":0,\"fall\":null}"),
            Err("invalid request: rise: 0 is not in 1..=1000".into())
        );
        assert_eq!(
            replay("{\"rise\":null,\"fall\":1001}"),
            Err("invalid request: fall: 1001 is not in 1..=1000".into())
        );
        let damping = |reuse: u32, half_life_ms: u64| {
            replay(&format!(
                "{{\"rise\":null,\"fall\":null,\"damping\":{{\"penalty\":1000,\"suppress\":2000,\"reuse\":{reuse},\"half_life_ms\":{half_life_ms},\"max_suppress_ms\":60000}}}}"
            ))
        };
        assert!(damping(750, 60_000).is_ok());
        assert_eq!(
            damping(2000, 60_000),
            Err("invalid request: damping reuse must be less than damping suppress".into())
        );
        assert_eq!(
            damping(750, 0),
            Err("invalid request: damping half_life_ms 0: must be greater than 0".into())
        );
        assert_eq!(
            request("\"command\":\"report\",\"since_ms\":5,\"until_ms\":4"),
            Err("invalid request: since_ms is after until_ms".into())
        );
    }

    #[test]
    fn a_stop_answer_without_the_left_list_reads_as_none_left() {
        // An older daemon's answer has no `left`.
        assert_eq!(
            parse_answer(
                "{\"version\":1,\"type\":\"stopped\",\"code\":70,\"message\":\"m\",\"pid\":7}"
            ),
            Ok(Response::Stopped {
                code: 70,
                message: "m".into(),
                pid: 7,
                left: vec![]
            })
        );
    }

    #[test]
    fn answers_keep_their_line_format() {
        let line = answer_line(Response::Error {
            code: 2,
            message: "x".into(),
        });
        assert_eq!(
            String::from_utf8(line.clone()).unwrap_or_default(),
            "{\"version\":1,\"type\":\"error\",\"code\":2,\"message\":\"x\"}\n"
        );
        assert_eq!(
            parse_answer(&String::from_utf8_lossy(&line)),
            Ok(Response::Error {
                code: 2,
                message: "x".into()
            })
        );
        assert!(parse_answer("{\"version\":1,\"type\":\"nonsense\"}").is_err());
    }
}
