//! `checks.http`: one HTTP(S) request per poll; the answer passes when its status is in
//! `status` (default 200-299) and its body contains `body` or matches `body_regex`.
//!
//! Redirects are not followed (a 301 is a status like any other), no proxy is used, and at
//! most [`BODY_LIMIT`] bytes of the body are read and matched. With `server_name`, the request
//! goes to the URL's address but TLS (SNI and the certificate) and the `Host` header use that
//! name. Clients are shared by every check of the same TLS settings (one keep-alive pool, one
//! root store), and checks of one origin share a [`Gate`] of [`MAX_IN_FLIGHT`] requests.

use super::{dns_wire, BoxFuture, Gate, Kind, Kinds, Observation, Probe};
use crate::config::{io_reason, Check, KindItem, Node, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// `checks.http`: the request and what its answer must be.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpCheck {
    /// `http://` or `https://` URL.
    pub url: String,
    /// `GET` or `HEAD`.
    pub method: HttpMethod,
    /// Status codes that pass, as inclusive ranges (default 200-299).
    pub status: Vec<(u16, u16)>,
    /// A substring the body must contain.
    pub body: Option<String>,
    /// A regular expression the body must match.
    pub body_regex: Option<String>,
    /// Request headers, in file order (`Host` included).
    pub headers: Vec<(String, String)>,
    /// A PEM file of CAs trusted instead of the system's.
    pub ca: Option<PathBuf>,
    /// Accept any certificate.
    pub insecure: bool,
    /// The TLS server name (SNI and certificate) when it differs from the URL's host.
    pub server_name: Option<String>,
}

/// An HTTP check's method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpMethod {
    /// `GET`.
    Get,
    /// `HEAD`.
    Head,
}

impl HttpMethod {
    /// The method as sent.
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Head => "HEAD",
        }
    }
}

/// The HTTP check kind: an HTTP(S) request whose answer must match. A plain item is the URL.
#[derive(Debug, Clone, PartialEq)]
pub struct Http(pub HttpCheck);

/// The kind's table as it is written, for `anycastd schema` (described, never built).
mod schema {
    #![allow(dead_code)]
    use crate::config::schema::check_table;
    use schemars::JsonSchema;
    use std::collections::BTreeMap;

    check_table!(Http {
        url: String,
        method: Option<HttpMethod>,
        status: Option<Status>,
        body: Option<String>,
        body_regex: Option<String>,
        headers: Option<BTreeMap<String, String>>,
        ca: Option<String>,
        insecure: Option<bool>,
        server_name: Option<String>,
    });

    #[derive(JsonSchema)]
    pub enum HttpMethod {
        #[serde(rename = "GET")]
        Get,
        #[serde(rename = "HEAD")]
        Head,
    }

    /// Statuses that pass: a code, a range "200-399", or an array of those.
    #[derive(JsonSchema)]
    #[serde(untagged)]
    pub enum Status {
        Code(#[schemars(range(min = 100, max = 599))] u16),
        Range(#[schemars(regex(pattern = r"^[1-5][0-9][0-9](-[1-5][0-9][0-9])?$"))] String),
        List(Vec<StatusItem>),
    }

    #[derive(JsonSchema)]
    #[serde(untagged)]
    pub enum StatusItem {
        Code(#[schemars(range(min = 100, max = 599))] u16),
        Range(#[schemars(regex(pattern = r"^[1-5][0-9][0-9](-[1-5][0-9][0-9])?$"))] String),
    }
}

impl Kind for Http {
    const NAME: &'static str = "http";
    const LABEL: &'static str = "HTTP";
    type Schema = schema::Http;

    /// `url`, `method`, `status`, `body` or `body_regex`, `headers`, and the TLS keys `ca`,
    /// `insecure`, `server_name`.
    fn parse(item: &mut KindItem<'_, '_, '_>) -> Option<(Http, String)> {
        let path = item.path().to_owned();
        let key = |k: &str| format!("{path}.{k}");
        let url = item
            .required("url")
            .and_then(|(node, p)| http_url(item, node, &p));
        let method = match item.take("method") {
            Some(n) => {
                let p = key("method");
                match item.string(n, &p).as_deref() {
                    Some("GET") => Some(HttpMethod::Get),
                    Some("HEAD") => Some(HttpMethod::Head),
                    Some(other) => {
                        item.problem(n, &p, format!("{other:?} is not GET or HEAD"));
                        None
                    }
                    None => None,
                }
            }
            None => Some(HttpMethod::Get),
        };
        let status = match item.take("status") {
            Some(n) => status(item, n, &key("status")),
            None => Some(vec![(200, 299)]),
        };
        let body_node = item.take("body");
        let body = body_node.map(|n| item.string(n, &key("body")));
        let regex_node = item.take("body_regex");
        let body_regex = regex_node.map(|n| regex(item, n, &key("body_regex")));
        if let (Some(_), Some(n)) = (body_node, regex_node) {
            item.problem(
                n,
                &key("body_regex"),
                "give `body` or `body_regex`, not both",
            );
        }
        if let (Some(HttpMethod::Head), Some(n)) = (method, body_node.or(regex_node)) {
            item.problem(n, &path, "a HEAD request has no body to match");
        }
        let headers = match item.take("headers") {
            Some(n) => headers(item, n, &key("headers")),
            None => Some(Vec::new()),
        };
        let ca = match item.take("ca") {
            Some(n) => ca_file(item, n, &key("ca")).map(Some),
            None => Some(None),
        };
        let insecure = match item.take("insecure") {
            Some(n) => item.boolean(n, &key("insecure")),
            None => Some(false),
        };
        let server_name = match item.take("server_name") {
            Some(n) => server_name(item, n, &key("server_name")).map(Some),
            None => Some(None),
        };
        let url = url?;
        let https = url.starts_with("https:");
        if !https {
            let tls = ["ca", "insecure", "server_name"];
            for k in tls {
                if let Some(n) = item.peek(k) {
                    item.problem(n, &key(k), "applies to https:// URLs only");
                }
            }
        }
        let derived = reqwest::Url::parse(&url)
            .ok()
            .and_then(|u| {
                let host = u.host_str()?.to_owned();
                Some(match u.port() {
                    Some(port) => format!("{host}:{port}"),
                    None => host,
                })
            })
            .unwrap_or_else(|| url.clone());
        Some((
            Http(HttpCheck {
                url,
                method: method?,
                status: status?,
                body: body.map_or(Some(None), |v| v.map(Some))?,
                body_regex: body_regex.map_or(Some(None), |v| v.map(Some))?,
                headers: headers?,
                ca: ca?,
                insecure: insecure?,
                server_name: server_name?,
            }),
            derived,
        ))
    }

    /// The request and what its answer must be.
    fn identity(&self) -> String {
        let h = &self.0;
        let mut s = format!(
            "{} {} status {}",
            h.method.as_str(),
            h.url,
            ranges(&h.status)
        );
        if let Some(b) = &h.body {
            s.push_str(&format!(" body {b:?}"));
        }
        if let Some(b) = &h.body_regex {
            s.push_str(&format!(" body_regex {b:?}"));
        }
        for (k, v) in &h.headers {
            s.push_str(&format!(" header {k}: {v:?}"));
        }
        if let Some(ca) = &h.ca {
            s.push_str(&format!(" ca {}", ca.display()));
        }
        if h.insecure {
            s.push_str(" insecure");
        }
        if let Some(n) = &h.server_name {
            s.push_str(&format!(" server_name {n}"));
        }
        s
    }

    fn probe(&self, _: &str, check: &Check, shared: &Kinds) -> Box<dyn Probe> {
        Box::new(HttpProbe::new(
            &shared.http,
            &self.0,
            check.timeout,
            check.vrf.as_deref(),
        ))
    }
}

/// `ca`: a file holding at least one PEM certificate.
fn ca_file(item: &mut KindItem<'_, '_, '_>, node: &Node, path: &str) -> Option<PathBuf> {
    let f = item.string(node, path)?;
    let read = std::fs::read(&f)
        .map_err(|e| io_reason(&e))
        .and_then(|pem| match reqwest::Certificate::from_pem_bundle(&pem) {
            Ok(certs) if !certs.is_empty() => Ok(()),
            _ => Err("no PEM certificate in it".to_owned()),
        });
    match read {
        Ok(()) => Some(PathBuf::from(f)),
        Err(e) => {
            item.problem(node, path, format!("cannot use {f:?}: {e}"));
            None
        }
    }
}

/// `server_name`: a DNS name.
fn server_name(item: &mut KindItem<'_, '_, '_>, node: &Node, path: &str) -> Option<String> {
    let s = item.string(node, path)?;
    match dns_wire::check_name(&s) {
        Ok(()) if !s.is_empty() && s != "." => Some(s),
        Ok(()) => {
            item.problem(node, path, "must not be empty");
            None
        }
        Err(e) => {
            item.problem(node, path, format!("{s:?}: {e}"));
            None
        }
    }
}

/// `body_regex`: a regular expression.
fn regex(item: &mut KindItem<'_, '_, '_>, node: &Node, path: &str) -> Option<String> {
    let r = item.string(node, path)?;
    match regex::Regex::new(&r) {
        Ok(_) => Some(r),
        Err(e) => {
            let e = e.to_string();
            let e = e.lines().last().unwrap_or("").trim_start_matches("error: ");
            item.problem(node, path, format!("not a regular expression: {e}"));
            None
        }
    }
}

/// An HTTP check's URL: http or https with a host; a query is allowed.
fn http_url(item: &mut KindItem<'_, '_, '_>, node: &Node, path: &str) -> Option<String> {
    let url = item.string(node, path)?;
    match reqwest::Url::parse(&url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Some(url),
        _ => {
            item.problem(
                node,
                path,
                format!("{url:?} is not an http(s) URL like \"http://127.0.0.1/health\""),
            );
            None
        }
    }
}

/// `headers`: a table of header name to value.
fn headers<'a>(
    item: &mut KindItem<'_, 'a, '_>,
    node: &'a Node,
    path: &str,
) -> Option<Vec<(String, String)>> {
    let entries = item.entries(node, path)?;
    let mut out = Vec::new();
    let mut ok = true;
    for (key, value) in entries {
        let p = format!("{path}.{}", key.name);
        if reqwest::header::HeaderName::from_bytes(key.name.as_bytes()).is_err() {
            item.key_problem(key, &p, "not a valid HTTP header name");
            ok = false;
            continue;
        }
        match item.string(value, &p) {
            Some(v) if reqwest::header::HeaderValue::from_str(&v).is_ok() => {
                out.push((key.name.clone(), v))
            }
            Some(_) => {
                item.problem(value, &p, "not a valid HTTP header value");
                ok = false;
            }
            None => ok = false,
        }
    }
    ok.then_some(out)
}

/// `status`: a code, a range `"200-399"`, or an array of those.
fn status(item: &mut KindItem<'_, '_, '_>, node: &Node, path: &str) -> Option<Vec<(u16, u16)>> {
    let one = |item: &mut KindItem<'_, '_, '_>, n: &Node, path: &str| -> Option<(u16, u16)> {
        let code = |x: i64| u16::try_from(x).ok().filter(|c| (100..=599).contains(c));
        let parsed = match &n.value {
            Value::Integer(i) => code(*i).map(|c| (c, c)),
            Value::String(s) => match s.split_once('-') {
                Some((a, b)) => match (a.trim().parse(), b.trim().parse()) {
                    (Ok(a), Ok(b)) => code(a).zip(code(b)).filter(|(a, b)| a <= b),
                    _ => None,
                },
                None => s.trim().parse().ok().and_then(code).map(|c| (c, c)),
            },
            _ => None,
        };
        if parsed.is_none() {
            item.problem(
                n,
                path,
                "must be a status code (100-599), a range like \"200-299\", or an array of those",
            );
        }
        parsed
    };
    match &node.value {
        Value::Array(items) if !items.is_empty() => {
            let all: Vec<_> = items
                .iter()
                .enumerate()
                .map(|(i, n)| one(item, n, &format!("{path}[{i}]")))
                .collect();
            all.into_iter().collect()
        }
        _ => one(item, node, path).map(|r| vec![r]),
    }
}

/// Status ranges as the config spells them: `200-299,301`.
pub fn ranges(status: &[(u16, u16)]) -> String {
    status
        .iter()
        .map(|(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Bytes of a body read and matched.
pub const BODY_LIMIT: usize = 64 * 1024;
/// Requests in flight to one origin at a time.
pub const MAX_IN_FLIGHT: usize = 16;

/// What decides which client a check uses.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ClientKey {
    ca: Option<std::path::PathBuf>,
    insecure: bool,
    /// `server_name` resolved to the URL's address.
    resolve: Option<(String, std::net::SocketAddr)>,
    /// The VRF its connections are made in (pooled connections must not cross VRFs).
    vrf: Option<String>,
}

/// The clients and gates every HTTP check shares.
#[derive(Clone, Default)]
pub struct Shared {
    clients: Arc<Mutex<HashMap<ClientKey, reqwest::Client>>>,
    gates: Arc<Mutex<HashMap<String, Arc<Gate>>>>,
}

impl Shared {
    fn client(&self, key: &ClientKey) -> Result<reqwest::Client, SetupError> {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = clients.get(key) {
            return Ok(c.clone());
        }
        let mut builder = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(MAX_IN_FLIGHT)
            .tcp_nodelay(true)
            .user_agent(concat!("anycastd/", env!("CARGO_PKG_VERSION")));
        if let Some(ca) = &key.ca {
            let pem = std::fs::read(ca).map_err(|source| SetupError::UnreadableCa {
                path: ca.clone(),
                source,
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|source| {
                SetupError::UnusableCa {
                    path: ca.clone(),
                    source,
                }
            })?;
            builder = builder.tls_built_in_root_certs(false);
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        if key.insecure {
            builder = builder.danger_accept_invalid_certs(true);
        }
        if let Some((name, addr)) = &key.resolve {
            builder = builder.resolve(name, *addr);
        }
        let client = builder.build().map_err(SetupError::Client)?;
        clients.insert(key.clone(), client.clone());
        Ok(client)
    }

    fn gate(&self, target: &str) -> Arc<Gate> {
        let mut gates = self.gates.lock().unwrap_or_else(|p| p.into_inner());
        gates
            .entry(target.to_owned())
            .or_insert_with(|| Arc::new(Gate::new(MAX_IN_FLIGHT)))
            .clone()
    }
}

/// One HTTP check.
pub struct HttpProbe {
    target: String,
    gate: Arc<Gate>,
    timeout: Duration,
    /// The request's URL (with `server_name` as its host), or why there is none.
    url: Result<reqwest::Url, SetupError>,
    method: HttpMethod,
    status: Vec<(u16, u16)>,
    body: Option<String>,
    body_regex: Option<regex::Regex>,
    headers: reqwest::header::HeaderMap,
    client: Result<reqwest::Client, SetupError>,
}

/// A URL's parse error (the `url` crate's, which reqwest uses).
type UrlError = <reqwest::Url as std::str::FromStr>::Err;

/// Why an HTTP check cannot send its request (each of its polls fails with this).
#[derive(Debug, thiserror::Error)]
enum SetupError {
    /// The URL does not parse.
    #[error("bad URL: {0}")]
    Url(UrlError),
    /// `server_name` with a URL whose host is a name.
    #[error("server_name needs an IP address as the URL's host")]
    HostNotAddress,
    /// `server_name` cannot be a URL's host.
    #[error("bad server_name: {0}")]
    ServerName(UrlError),
    /// `ca` cannot be read.
    #[error("cannot read {}: {source}", .path.display())]
    UnreadableCa {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// `ca` holds no usable certificate.
    #[error("cannot use {}: {source}", .path.display())]
    UnusableCa {
        path: std::path::PathBuf,
        source: reqwest::Error,
    },
    /// The client cannot be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(reqwest::Error),
}

impl HttpProbe {
    /// The probe of a configured HTTP check.
    pub fn new(
        shared: &Shared,
        config: &HttpCheck,
        timeout: Duration,
        vrf: Option<&str>,
    ) -> HttpProbe {
        let parsed = reqwest::Url::parse(&config.url).map_err(SetupError::Url);
        let origin = match &parsed {
            Ok(u) => u.origin().ascii_serialization(),
            Err(_) => config.url.clone(),
        };
        let target = format!("http:{origin}");
        let mut resolve = None;
        let url = parsed.and_then(|mut url| {
            if let Some(name) = &config.server_name {
                let host = url.host_str().unwrap_or_default();
                let ip: std::net::IpAddr = host
                    .trim_matches(|c| c == '[' || c == ']')
                    .parse()
                    .map_err(|_| SetupError::HostNotAddress)?;
                let port = url.port_or_known_default().unwrap_or(443);
                url.set_host(Some(name)).map_err(SetupError::ServerName)?;
                resolve = Some((name.clone(), std::net::SocketAddr::new(ip, port)));
            }
            Ok(url)
        });
        let key = ClientKey {
            ca: config.ca.clone(),
            insecure: config.insecure,
            resolve,
            vrf: vrf.map(str::to_owned),
        };
        let mut headers = reqwest::header::HeaderMap::new();
        for (name, value) in &config.headers {
            if let (Ok(n), Ok(v)) = (
                reqwest::header::HeaderName::from_bytes(name.as_bytes()),
                reqwest::header::HeaderValue::from_str(value),
            ) {
                headers.append(n, v);
            }
        }
        HttpProbe {
            gate: shared.gate(&target),
            target,
            timeout,
            url,
            method: config.method,
            status: config.status.clone(),
            body: config.body.clone(),
            body_regex: config
                .body_regex
                .as_deref()
                .and_then(|r| regex::Regex::new(r).ok()),
            headers,
            client: shared.client(&key),
        }
    }

    async fn run(&self) -> Observation {
        let (url, client) = match (&self.url, &self.client) {
            (Ok(u), Ok(c)) => (u.clone(), c),
            (Err(e), _) | (_, Err(e)) => return Observation::Fail(e.to_string()),
        };
        let method = match self.method {
            HttpMethod::Get => reqwest::Method::GET,
            HttpMethod::Head => reqwest::Method::HEAD,
        };
        let request = client
            .request(method, url)
            .headers(self.headers.clone())
            .timeout(self.timeout);
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => return Observation::Fail(describe(&e, self.timeout)),
        };
        self.gate.answered();
        let status = response.status().as_u16();
        if !self.status.iter().any(|(a, b)| (*a..=*b).contains(&status)) {
            let reason = response.status().canonical_reason().unwrap_or("");
            return Observation::Fail(
                format!("HTTP {status} {reason} (expected {})", ranges(&self.status))
                    .replace("  ", " "),
            );
        }
        if self.body.is_none() && self.body_regex.is_none() {
            return Observation::Pass;
        }
        let body = match read_prefix(response, BODY_LIMIT).await {
            Ok(b) => b,
            Err(e) => return Observation::Fail(describe(&e, self.timeout)),
        };
        let text = String::from_utf8_lossy(&body);
        if let Some(want) = &self.body {
            if !text.contains(want.as_str()) {
                return Observation::Fail(format!("body does not contain {want:?}"));
            }
        }
        if let Some(re) = &self.body_regex {
            if !re.is_match(&text) {
                return Observation::Fail(format!("body does not match /{}/", re.as_str()));
            }
        }
        Observation::Pass
    }
}

impl Probe for HttpProbe {
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
        Box::pin(self.run())
    }
}

/// The first `limit` bytes of a body (the rest is not read).
async fn read_prefix(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while body.len() < limit {
        match response.chunk().await? {
            Some(chunk) => {
                let room = limit - body.len();
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            None => break,
        }
    }
    Ok(body)
}

/// A request error as a reason: what went wrong at the deepest level (the OS error, the TLS
/// alert), prefixed `TLS:` for certificate and handshake failures.
pub fn describe(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!("no answer within {} ms", timeout.as_millis());
    }
    let mut source: Option<&dyn std::error::Error> = Some(e);
    let mut deepest = String::new();
    while let Some(s) = source {
        deepest = s.to_string();
        source = s.source();
    }
    let lower = deepest.to_lowercase();
    let tls = [
        "certificate",
        "handshake",
        "tls",
        "peer sent",
        "alert",
        "servername",
    ];
    if tls.iter().any(|w| lower.contains(w)) {
        format!("TLS: {deepest}")
    } else if e.is_connect() {
        format!("cannot connect: {}", super::os_error_text(&deepest))
    } else {
        deepest
    }
}
