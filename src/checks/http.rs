//! `checks.http`: one HTTP(S) request per poll; the answer passes when its status is in
//! `status` (default 200-299) and its body contains `body` or matches `body_regex`.
//!
//! Redirects are not followed (a 301 is a status like any other), no proxy is used, and at
//! most [`BODY_LIMIT`] bytes of the body are read and matched. With `server_name`, the request
//! goes to the URL's address but TLS (SNI and the certificate) and the `Host` header use that
//! name. Clients are shared by every check of the same TLS settings (one keep-alive pool, one
//! root store), and checks of one origin share a [`Gate`] of [`MAX_IN_FLIGHT`] requests.

use super::{BoxFuture, Gate, Observation, Probe};
use crate::config::{HttpCheck, HttpMethod};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
    fn client(&self, key: &ClientKey) -> Result<reqwest::Client, String> {
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
            let pem =
                std::fs::read(ca).map_err(|e| format!("cannot read {}: {e}", ca.display()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| format!("cannot use {}: {e}", ca.display()))?;
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
        let client = builder
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
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
    url: Result<reqwest::Url, String>,
    method: HttpMethod,
    status: Vec<(u16, u16)>,
    body: Option<String>,
    body_regex: Option<regex::Regex>,
    headers: reqwest::header::HeaderMap,
    client: Result<reqwest::Client, String>,
}

impl HttpProbe {
    /// The probe of a configured HTTP check.
    pub fn new(
        shared: &Shared,
        config: &HttpCheck,
        timeout: Duration,
        vrf: Option<&str>,
    ) -> HttpProbe {
        let parsed = reqwest::Url::parse(&config.url).map_err(|e| format!("bad URL: {e}"));
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
                    .map_err(|_| "server_name needs an IP address as the URL's host".to_owned())?;
                let port = url.port_or_known_default().unwrap_or(443);
                url.set_host(Some(name))
                    .map_err(|e| format!("bad server_name: {e}"))?;
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
            (Err(e), _) | (_, Err(e)) => return Observation::Fail(e.clone()),
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
                format!(
                    "HTTP {status} {reason} (expected {})",
                    crate::config::ranges(&self.status)
                )
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
