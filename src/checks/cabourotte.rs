//! Cabourotte health checks: one HTTP GET per poll, turned into an [`Observation`].
//!
//! Owns the Cabourotte API knowledge (docs/ARCHITECTURE.md, "Checks"): the result route of
//! both API generations
//! (`/api/v1/result/NAME` since Cabourotte 2.0, `/result/NAME` before), the "result not found"
//! body that means *pending*, the result JSON, and the size and time limits of a response.
//! It must not decide anything about the service: a failure is just an observation; the
//! caller polls again at the next interval.

use super::{BoxFuture, Gate, Kind, Kinds, Probe, SLOT_WAIT_TIMEOUTS};
use crate::config::{Check, KindItem};
use anycastd_fsm::Observation;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Default Cabourotte base URL.
pub const DEFAULT_URL: &str = "http://127.0.0.1:9013";

/// `checks.cabourotte`: a result read from Cabourotte's HTTP API. The check's `name` is its
/// name there (required; a plain item is that name).
#[derive(Debug, Clone, PartialEq)]
pub struct Cabourotte {
    /// Base URL, without a trailing slash.
    pub url: String,
    /// Results older than this fail as stale.
    pub max_age: Option<Duration>,
}

/// The kind's table as it is written, for `anycastd schema` (described, never built).
mod schema {
    #![allow(dead_code)]
    use crate::config::schema::Duration;
    crate::config::schema::check_table!(Cabourotte {
        url: Option<String>,
        max_age: Option<Duration>,
    });
}

impl Kind for Cabourotte {
    const NAME: &'static str = "cabourotte";
    const LABEL: &'static str = "Cabourotte";
    const NAME_REQUIRED: bool = true;
    type Schema = schema::Cabourotte;

    /// `url` of the Cabourotte, `max_age` of its results; a plain item is the check's name
    /// there.
    fn parse(item: &mut KindItem<'_, '_, '_>) -> Option<(Cabourotte, String)> {
        let plain = match item.plain() {
            Some(node) => Some(item.string(node, &item.key_path("name"))?),
            None => None,
        };
        let url = match item.take("url") {
            Some(n) => item.base_url(n, &item.key_path("url")),
            None => Some(DEFAULT_URL.to_owned()),
        };
        let max_age = match item.take("max_age") {
            Some(n) => Some(item.duration(n, &item.key_path("max_age"))?),
            None => None,
        };
        Some((Cabourotte { url: url?, max_age }, plain.unwrap_or_default()))
    }

    fn identity(&self) -> String {
        self.url.clone()
    }

    fn max_age(&self) -> Option<Duration> {
        self.max_age
    }

    fn probe(&self, _: &str, check: &Check, shared: &Kinds) -> Box<dyn Probe> {
        Box::new(CabourotteCheck::new(
            &shared.cabourotte,
            &self.url,
            &check.name,
            check.timeout,
            self.max_age,
        ))
    }
}

/// Largest response body read; anything larger fails the check (a result is ~300 bytes).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Which result route the Cabourotte at a URL serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiGeneration {
    /// `/api/v1/result/NAME` (Cabourotte >= 2.0); tried first.
    V2,
    /// `/result/NAME` (Cabourotte 1.x).
    V1,
}

impl ApiGeneration {
    fn other(self) -> ApiGeneration {
        match self {
            ApiGeneration::V2 => ApiGeneration::V1,
            ApiGeneration::V1 => ApiGeneration::V2,
        }
    }
}

/// At most this many requests are in flight to one Cabourotte (scheme, host, port) at a time,
/// so the keep-alive pool holds at most this many connections to it and a thousand checks
/// falling due together reuse them instead of opening a connection each.
pub const MAX_CONNECTIONS_PER_SERVER: usize = 16;

/// The HTTP side shared by every Cabourotte check: one keep-alive pool (no proxy) and a
/// [`Gate`] of [`MAX_CONNECTIONS_PER_SERVER`] requests in flight per server.
#[derive(Clone)]
pub struct Http {
    client: reqwest::Client,
    gates: Arc<Mutex<HashMap<String, Arc<Gate>>>>,
}

impl Http {
    /// The gate of the server at `origin`.
    fn gate(&self, origin: &str) -> Arc<Gate> {
        let mut gates = self.gates.lock().unwrap_or_else(|p| p.into_inner());
        gates
            .entry(origin.to_owned())
            .or_insert_with(|| Arc::new(Gate::new(MAX_CONNECTIONS_PER_SERVER)))
            .clone()
    }
}

/// The one HTTP client shared by every check.
pub fn http_client() -> Result<Http, reqwest::Error> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(MAX_CONNECTIONS_PER_SERVER)
        .tcp_nodelay(true)
        .user_agent(concat!("anycastd/", env!("CARGO_PKG_VERSION")))
        .build()?;
    Ok(Http {
        client,
        gates: Arc::default(),
    })
}

/// One Cabourotte check and what it learned about its server.
#[derive(Debug, Clone)]
pub struct CabourotteCheck {
    base: String,
    name: String,
    timeout: Duration,
    max_age: Option<Duration>,
    api: ApiGeneration,
    /// The result URL of each generation (V2, V1), parsed once.
    urls: [Option<reqwest::Url>; 2],
    origin: String,
    client: reqwest::Client,
    gate: Arc<Gate>,
}

/// What one response means, before the API-generation fallback.
#[derive(Debug, PartialEq)]
pub enum Reading {
    /// An observation.
    Observed(Observation),
    /// A 404 that is not Cabourotte's "result not found": this route does not exist here.
    UnknownRoute,
}

impl CabourotteCheck {
    /// A check of `name` at base URL `base` (no trailing slash), polled through `http`.
    pub fn new(
        http: &Http,
        base: &str,
        name: &str,
        timeout: Duration,
        max_age: Option<Duration>,
    ) -> CabourotteCheck {
        let base = base.trim_end_matches('/').to_owned();
        let urls = [ApiGeneration::V2, ApiGeneration::V1]
            .map(|api| reqwest::Url::parse(&result_url(&base, name, api)).ok());
        let origin = match &urls[0] {
            Some(url) => url.origin().ascii_serialization(),
            None => base.clone(),
        };
        CabourotteCheck {
            gate: http.gate(&origin),
            base,
            name: name.to_owned(),
            timeout,
            max_age,
            api: ApiGeneration::V2,
            urls,
            origin,
            client: http.client.clone(),
        }
    }

    /// The request timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The server's origin (`scheme://host:port`): checks of one origin share its slots.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The API generation currently in use.
    pub fn api(&self) -> ApiGeneration {
        self.api
    }

    /// The result URL for an API generation, with the check name percent-encoded.
    pub fn result_url(&self, api: ApiGeneration) -> String {
        result_url(&self.base, &self.name, api)
    }

    /// Poll once. On a 404 for an unknown route, the other API generation is tried at once
    /// and remembered if it answers; so a server is re-probed only when it stops answering.
    pub async fn poll(&mut self) -> Observation {
        let client = self.client.clone();
        let client = &client;
        match self.fetch(client, self.api).await {
            Reading::Observed(observation) => observation,
            Reading::UnknownRoute => {
                let other = self.api.other();
                match self.fetch(client, other).await {
                    Reading::Observed(observation) => {
                        self.api = other;
                        observation
                    }
                    Reading::UnknownRoute => Observation::Fail(format!(
                        "HTTP 404: no Cabourotte result route at {} or {}",
                        self.result_url(ApiGeneration::V2),
                        self.result_url(ApiGeneration::V1)
                    )),
                }
            }
        }
    }

    async fn fetch(&self, client: &reqwest::Client, api: ApiGeneration) -> Reading {
        let url = match &self.urls[api as usize] {
            Some(url) => url.clone(),
            None => {
                return Reading::Observed(Observation::Fail(format!(
                    "invalid URL {}",
                    self.result_url(api)
                )))
            }
        };
        // Wait for a free connection slot, then the request has its whole timeout. A server
        // that answers slowly (a round of many checks queued on its slots) is waited for, up
        // to SLOT_WAIT_TIMEOUTS timeouts: queueing must not fail checks spuriously. A server
        // that has not answered for a whole timeout fails the waiting checks at once.
        let mut waited = 0;
        let _permit = loop {
            match tokio::time::timeout(self.timeout, self.gate.slots().acquire()).await {
                Ok(Ok(permit)) => break permit,
                Err(_)
                    if waited + 1 < SLOT_WAIT_TIMEOUTS
                        && self.gate.answered_within(self.timeout) =>
                {
                    waited += 1;
                }
                _ => {
                    return Reading::Observed(Observation::Fail(format!(
                        "no answer within {} ms ({MAX_CONNECTIONS_PER_SERVER} requests to {} already in flight)",
                        self.timeout.as_millis(),
                        self.origin
                    )))
                }
            }
        };
        let response = match client.get(url).timeout(self.timeout).send().await {
            Ok(response) => response,
            Err(e) => return Reading::Observed(Observation::Fail(self.describe(&e))),
        };
        self.gate.answered();
        let status = response.status();
        let body = match read_limited(response, MAX_BODY_BYTES).await {
            Ok(body) => body,
            Err(reason) => return Reading::Observed(Observation::Fail(reason.to_string())),
        };
        classify(status.as_u16(), &body, self.max_age, SystemTime::now())
    }

    fn describe(&self, e: &reqwest::Error) -> String {
        if e.is_timeout() {
            return format!("no answer within {} ms", self.timeout.as_millis());
        }
        if e.is_connect() {
            // reqwest's own text is generic; the source chain names the OS error.
            let mut source: Option<&dyn std::error::Error> = Some(e);
            let mut deepest = String::new();
            while let Some(s) = source {
                deepest = s.to_string();
                source = s.source();
            }
            return format!("cannot connect: {}", super::os_error_text(&deepest));
        }
        let mut text = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            text = format!("{text}: {s}");
            source = s.source();
        }
        text
    }
}

/// The result URL of check `name` at `base` for an API generation, the name percent-encoded.
fn result_url(base: &str, name: &str, api: ApiGeneration) -> String {
    let route: &[&str] = match api {
        ApiGeneration::V2 => &["api", "v1", "result"],
        ApiGeneration::V1 => &["result"],
    };
    match reqwest::Url::parse(base) {
        Ok(mut url) => {
            if let Ok(mut segments) = url.path_segments_mut() {
                segments.pop_if_empty().extend(route).push(name);
            }
            url.to_string()
        }
        Err(_) => format!("{base}/{}/{name}", route.join("/")),
    }
}

impl Probe for CabourotteCheck {
    fn target(&self) -> &str {
        &self.origin
    }

    fn gate(&self) -> Arc<Gate> {
        self.gate.clone()
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn poll(&mut self) -> BoxFuture<'_, Observation> {
        Box::pin(CabourotteCheck::poll(self))
    }
}

/// Why a response body was not read whole.
#[derive(Debug, thiserror::Error)]
enum BodyError {
    /// Its announced length is over the limit.
    #[error("response body of {length} bytes exceeds {limit}")]
    Announced { length: u64, limit: usize },
    /// It grew over the limit while read.
    #[error("response body exceeds {limit} bytes")]
    Exceeds { limit: usize },
    /// The timeout came first.
    #[error("response body not complete in time")]
    Late,
    /// The connection failed.
    #[error("reading the response: {0}")]
    Read(reqwest::Error),
}

async fn read_limited(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, BodyError> {
    if let Some(length) = response.content_length() {
        if length > limit as u64 {
            return Err(BodyError::Announced { length, limit });
        }
    }
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > limit {
                    return Err(BodyError::Exceeds { limit });
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) if e.is_timeout() => return Err(BodyError::Late),
            Err(e) => return Err(BodyError::Read(e)),
        }
    }
}

/// Turn a status and body into a reading (pure; the unit tests and the fuzzer drive it).
pub fn classify(status: u16, body: &[u8], max_age: Option<Duration>, now: SystemTime) -> Reading {
    match status {
        200 => Reading::Observed(parse_result(body, max_age, now)),
        404 => {
            // Cabourotte: {"messages":["result not found for healthcheck NAME"]}; an unknown
            // route is echo's {"message":"Not Found"}.
            let not_found = serde_json::from_slice::<serde_json::Value>(body)
                .ok()
                .and_then(|v| {
                    v.get("messages")?
                        .as_array()?
                        .iter()
                        .any(|m| m.as_str().is_some_and(|m| m.contains("result not found")))
                        .then_some(())
                })
                .is_some();
            if not_found {
                Reading::Observed(Observation::Pending)
            } else {
                Reading::UnknownRoute
            }
        }
        other => Reading::Observed(Observation::Fail(format!("HTTP {other}"))),
    }
}

/// The fields of a result that matter, read without building the rest: a poll allocates next
/// to nothing for a passing result. A field of an unexpected type reads as absent.
///
/// Read by a map visitor of its own rather than a derived `Deserialize`: a derived one fails
/// on a key given twice (a JSON reader takes the last, and so does this) and reads an array
/// as the struct's fields in order. The keys are a derived identifier.
#[derive(Default)]
struct ResultBody {
    success: Option<bool>,
    timestamp: Option<i64>,
    message: Option<String>,
}

/// A key of a result object, recognised without allocating.
#[derive(serde::Deserialize)]
#[serde(field_identifier)]
enum Field {
    #[serde(rename = "success")]
    Success,
    #[serde(rename = "healthcheck-timestamp")]
    Timestamp,
    #[serde(rename = "message")]
    Message,
    #[serde(other)]
    Other,
}

impl<'de> serde::Deserialize<'de> for ResultBody {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ResultBody, D::Error> {
        struct BodyVisitor;
        impl<'de> serde::de::Visitor<'de> for BodyVisitor {
            type Value = ResultBody;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a Cabourotte result object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<ResultBody, A::Error> {
                use serde_json::Value;
                // As in a generic JSON object, the last of duplicate keys wins.
                let mut body = ResultBody::default();
                while let Some(field) = map.next_key::<Field>()? {
                    match field {
                        Field::Success => body.success = map.next_value::<Value>()?.as_bool(),
                        Field::Timestamp => body.timestamp = map.next_value::<Value>()?.as_i64(),
                        Field::Message => {
                            body.message = match map.next_value::<Value>()? {
                                Value::String(s) => Some(s),
                                _ => None,
                            }
                        }
                        Field::Other => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                        }
                    }
                }
                Ok(body)
            }
        }
        d.deserialize_map(BodyVisitor)
    }
}

fn parse_result(body: &[u8], max_age: Option<Duration>, now: SystemTime) -> Observation {
    let value: ResultBody = match serde_json::from_slice(body) {
        Ok(v) => v,
        // Valid JSON that is not an object has no "success" either.
        Err(_) if serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok() => {
            ResultBody::default()
        }
        Err(e) => return Observation::Fail(format!("malformed result JSON: {e}")),
    };
    let Some(success) = value.success else {
        return Observation::Fail("malformed result: no boolean \"success\"".into());
    };
    if let Some(max_age) = max_age {
        let Some(stamp) = value.timestamp else {
            return Observation::Fail("malformed result: no \"healthcheck-timestamp\"".into());
        };
        let now_s = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let age = now_s.saturating_sub(stamp);
        if age > max_age.as_secs() as i64 {
            return Observation::Fail(format!(
                "stale result: {age} s old (max_age {} s)",
                max_age.as_secs()
            ));
        }
    }
    if success {
        Observation::Pass
    } else {
        // Cabourotte's own message is the reason ("check dns failed: " is said around it).
        let message = value.message.as_deref().unwrap_or("").trim();
        if message.is_empty() {
            Observation::Fail("Cabourotte reports a failure (no message)".into())
        } else {
            Observation::Fail(message.to_owned())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn a_success_result_passes() {
        let body = br#"{"name":"dns","summary":"s","success":true,"healthcheck-timestamp":100,"message":"ok","duration":3,"source":"configuration"}"#;
        assert_eq!(
            classify(200, body, None, at(0)),
            Reading::Observed(Observation::Pass)
        );
    }

    #[test]
    fn a_failed_result_carries_cabourotte_message() {
        let body = br#"{"success":false,"message":"dial tcp: refused"}"#;
        assert_eq!(
            classify(200, body, None, at(0)),
            Reading::Observed(Observation::Fail("dial tcp: refused".into()))
        );
    }

    #[test]
    fn result_not_found_is_pending_and_an_unknown_route_is_not() {
        let pending = br#"{"messages":["result not found for healthcheck dns"]}"#;
        assert_eq!(
            classify(404, pending, None, at(0)),
            Reading::Observed(Observation::Pending)
        );
        assert_eq!(
            classify(404, br#"{"message":"Not Found"}"#, None, at(0)),
            Reading::UnknownRoute
        );
        assert_eq!(classify(404, b"", None, at(0)), Reading::UnknownRoute);
    }

    #[test]
    fn a_result_older_than_max_age_fails_as_stale() {
        let body = br#"{"success":true,"healthcheck-timestamp":100}"#;
        let max_age = Some(Duration::from_secs(30));
        assert_eq!(
            classify(200, body, max_age, at(130)),
            Reading::Observed(Observation::Pass)
        );
        assert_eq!(
            classify(200, body, max_age, at(131)),
            Reading::Observed(Observation::Fail(
                "stale result: 31 s old (max_age 30 s)".into()
            ))
        );
    }

    #[test]
    fn malformed_json_and_missing_success_fail() {
        assert!(matches!(
            classify(200, b"{not json", None, at(0)),
            Reading::Observed(Observation::Fail(r)) if r.starts_with("malformed result JSON")
        ));
        assert_eq!(
            classify(200, br#"{"message":"x"}"#, None, at(0)),
            Reading::Observed(Observation::Fail(
                "malformed result: no boolean \"success\"".into()
            ))
        );
    }

    #[test]
    fn non_object_json_and_fields_of_other_types_read_as_absent() {
        let no_success = Reading::Observed(Observation::Fail(
            "malformed result: no boolean \"success\"".into(),
        ));
        for body in [&b"[true]"[..], b"null", b"\"x\"", br#"{"success":"true"}"#] {
            assert_eq!(classify(200, body, None, at(0)), no_success);
        }
        assert_eq!(
            classify(200, br#"{"success":false,"message":7}"#, None, at(0)),
            Reading::Observed(Observation::Fail(
                "Cabourotte reports a failure (no message)".into()
            ))
        );
        assert_eq!(
            classify(
                200,
                br#"{"success":false,"success":true,"x":{"y":[1]}}"#,
                None,
                at(0)
            ),
            Reading::Observed(Observation::Pass)
        );
        assert_eq!(
            classify(
                200,
                br#"{"success":true,"healthcheck-timestamp":"1"}"#,
                Some(Duration::from_secs(5)),
                at(0)
            ),
            Reading::Observed(Observation::Fail(
                "malformed result: no \"healthcheck-timestamp\"".into()
            ))
        );
    }

    #[test]
    fn server_errors_fail_with_the_status() {
        assert_eq!(
            classify(503, b"", None, at(0)),
            Reading::Observed(Observation::Fail("HTTP 503".into()))
        );
    }

    #[test]
    fn the_name_is_percent_encoded_and_a_base_path_is_kept() {
        let http = http_client().unwrap();
        let check = CabourotteCheck::new(
            &http,
            "http://127.0.0.1:9013/",
            "a b/c",
            Duration::from_secs(1),
            None,
        );
        assert_eq!(
            check.result_url(ApiGeneration::V2),
            "http://127.0.0.1:9013/api/v1/result/a%20b%2Fc"
        );
        assert_eq!(
            check.result_url(ApiGeneration::V1),
            "http://127.0.0.1:9013/result/a%20b%2Fc"
        );
        let check = CabourotteCheck::new(
            &http,
            "http://h:1/api/v1",
            "dns",
            Duration::from_secs(1),
            None,
        );
        assert_eq!(
            check.result_url(ApiGeneration::V1),
            "http://h:1/api/v1/result/dns"
        );
    }
}
