//! The HTTP endpoint on `[metrics] listen`, served by hyper: `GET /metrics` (Prometheus),
//! `GET /status` (the JSON of `status --json`), `GET /healthz` (the process answers) and
//! `GET /readyz` (start-up reconciliation done and every routing backend readable now).
//! `HEAD` is answered like `GET` without the body; any other path is 404, any other method
//! 405 with `Allow`. Read-only. One request per connection, each bounded by
//! [`REQUEST_TIMEOUT`].

use crate::control::Context;
use hyper::{header, Method, Response, StatusCode};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::net::TcpListener;

/// How long one connection may take, from accept to the end of the answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a scrape waits for the services' states and the routing daemons (below
/// [`REQUEST_TIMEOUT`]): a routing daemon that is slow to answer leaves the gauges read from
/// it out of that scrape (`anycastd_scrape_routing_complete` 0), never the whole answer.
pub const ROUTING_READ_BUDGET: Duration = Duration::from_secs(3);

/// The paths served.
pub const PATHS: [&str; 4] = ["/metrics", "/status", "/healthz", "/readyz"];

type Body = http_body_util::Full<hyper::body::Bytes>;

/// What the endpoint answers from: the daemon's context, once the start-up reconciliation
/// is done (before that, `/status` and `/readyz` answer 503).
#[derive(Default)]
pub struct Site {
    context: OnceLock<Arc<Context>>,
}

impl Site {
    /// The start-up reconciliation is done: answer from `context` from now on.
    pub fn ready(&self, context: Arc<Context>) {
        let _ = self.context.set(context);
    }
}

/// Bind `listen` (at start, so that an address in use is fatal before anything happens).
pub async fn bind(listen: &str) -> Result<TcpListener, BindError> {
    TcpListener::bind(listen).await.map_err(|error| BindError {
        listen: listen.to_owned(),
        error,
    })
}

/// The metrics address could not be listened on (a fatal start-up error, exit 70).
#[derive(Debug, thiserror::Error)]
#[error("metrics: cannot listen on {listen}: {error}")]
pub struct BindError {
    /// The address.
    pub listen: String,
    /// Why.
    pub error: std::io::Error,
}

/// Serve until the task is aborted.
pub fn serve(listener: TcpListener, site: Arc<Site>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let site = site.clone();
            tokio::spawn(async move {
                let connection = hyper::server::conn::http1::Builder::new()
                    .keep_alive(false)
                    .serve_connection(
                        hyper_util::rt::TokioIo::new(stream),
                        hyper::service::service_fn(move |request| {
                            let site = site.clone();
                            async move {
                                Ok::<_, std::convert::Infallible>(answer(&request, &site).await)
                            }
                        }),
                    );
                let _ = tokio::time::timeout(REQUEST_TIMEOUT, connection).await;
            });
        }
    })
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<Body> {
    // Said explicitly, so that a HEAD answer (its body dropped) still tells the length.
    let length = header::HeaderValue::from(body.len());
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    headers.insert(header::CONTENT_LENGTH, length);
    response
}

const TEXT: &str = "text/plain; charset=utf-8";

/// The answer to one request.
pub async fn answer<B>(request: &hyper::Request<B>, site: &Site) -> Response<Body> {
    let path = request.uri().path();
    if !PATHS.contains(&path) {
        return reply(
            StatusCode::NOT_FOUND,
            TEXT,
            format!("not found: try {}\n", PATHS.join(", ")),
        );
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = reply(
            StatusCode::METHOD_NOT_ALLOWED,
            TEXT,
            "method not allowed: GET or HEAD\n".into(),
        );
        response
            .headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let mut response = match path {
        "/metrics" => {
            let mut text = crate::observe::metrics::render();
            if let Some(context) = site.context.get() {
                let read = tokio::time::timeout(
                    ROUTING_READ_BUDGET,
                    crate::control::server::status_of(context, None),
                )
                .await;
                text.push_str(&format!(
                    "# HELP anycastd_scrape_routing_complete 1 when this scrape read the services' states and their routing daemons within {} s; 0 when it gave up, and the gauges read from them are missing from it (every other metric is here).\n# TYPE anycastd_scrape_routing_complete gauge\nanycastd_scrape_routing_complete {}\n",
                    ROUTING_READ_BUDGET.as_secs(),
                    u8::from(read.is_ok())
                ));
                if let Ok(services) = read {
                    text.push_str(&status_gauges(&services));
                }
            }
            reply(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                text,
            )
        }
        "/healthz" => reply(StatusCode::OK, TEXT, "ok\n".into()),
        _ => match site.context.get() {
            None => reply(
                StatusCode::SERVICE_UNAVAILABLE,
                TEXT,
                "starting: the start-up reconciliation is not done\n".into(),
            ),
            Some(context) if path == "/status" => {
                let services = crate::control::server::status_of(context, None).await;
                let notes = crate::control::server::notes(context);
                let (line, view) = crate::control::server::fleet_guard(context);
                let body = serde_json::json!({"daemon_running": true, "services": services, "notes": notes, "fleet_guard": line, "fleet_guard_state": view});
                reply(StatusCode::OK, "application/json", format!("{body}\n"))
            }
            Some(context) => {
                let problems = crate::control::server::unreachable(context).await;
                if problems.is_empty() {
                    reply(StatusCode::OK, TEXT, "ready\n".into())
                } else {
                    reply(
                        StatusCode::SERVICE_UNAVAILABLE,
                        TEXT,
                        format!("not ready: {}\n", problems.join("; ")),
                    )
                }
            }
        },
    };
    if request.method() == Method::HEAD {
        *response.body_mut() = Body::default();
    }
    response
}

/// A per-prefix gauge: name, help, value.
type PrefixGauge = (
    &'static str,
    &'static str,
    fn(&crate::observe::status::PrefixStatus) -> bool,
);

/// The gauges read from the routing daemons at each scrape, as `status` computes them: per
/// prefix whether it is wanted, configured and advertised; per backend whether it could be
/// read; per service its damping penalty and suppression.
pub fn status_gauges(services: &[crate::observe::status::ServiceStatus]) -> String {
    use std::fmt::Write as _;
    let escape = |v: &str| {
        v.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    };
    let mut out = String::new();
    let mut reachable: std::collections::BTreeMap<(String, String), bool> = Default::default();
    let prefix_gauges: [PrefixGauge; 3] = [
        (
            "anycastd_prefix_wanted_announced",
            "1 while the daemon wants the prefix announced.",
            |p| p.desired_announced == Some(true),
        ),
        (
            "anycastd_prefix_configured",
            "1 while the routing daemon has the prefix in its configuration.",
            |p| p.configured,
        ),
        (
            "anycastd_prefix_advertised",
            "1 while the routing daemon advertises the prefix to at least one established peer.",
            |p| p.advertised,
        ),
    ];
    for (name, help, value) in prefix_gauges {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for s in services {
            for p in s.prefixes.iter().filter(|p| !p.unreadable) {
                // A daemon that knew one kind alone wrote none: the first.
                let backend = if p.backend.is_empty() {
                    crate::routing::KINDS[0].name()
                } else {
                    &p.backend
                };
                let _ = writeln!(
                    out,
                    "{name}{{service=\"{}\",prefix=\"{}\",table=\"{}\",backend=\"{}\",endpoint=\"{}\"}} {}",
                    escape(&s.name),
                    escape(&p.prefix),
                    escape(p.place().unwrap_or("")),
                    escape(backend),
                    escape(&p.instance),
                    u8::from(value(p))
                );
            }
        }
    }
    for s in services {
        for p in &s.prefixes {
            let backend = if p.backend.is_empty() {
                crate::routing::KINDS[0].name()
            } else {
                &p.backend
            };
            let ok = reachable
                .entry((backend.to_owned(), p.instance.clone()))
                .or_insert(true);
            *ok &= !p.unreadable;
        }
    }
    let _ = writeln!(
        out,
        "# HELP anycastd_routing_reachable 1 when the routing daemon could be read at this scrape.\n# TYPE anycastd_routing_reachable gauge"
    );
    for ((backend, instance), ok) in &reachable {
        let _ = writeln!(
            out,
            "anycastd_routing_reachable{{backend=\"{}\",endpoint=\"{}\"}} {}",
            escape(backend),
            escape(instance),
            u8::from(*ok)
        );
    }
    let _ = writeln!(
        out,
        "# HELP anycastd_service_damping_penalty The service's flap damping penalty, decayed to now (0 without damping).\n# TYPE anycastd_service_damping_penalty gauge"
    );
    for s in services {
        let penalty = s.damping.as_ref().map_or(0, |d| d.penalty);
        let _ = writeln!(
            out,
            "anycastd_service_damping_penalty{{service=\"{}\"}} {penalty}",
            escape(&s.name)
        );
    }
    level_gauges(&mut out, services, &escape);
    let _ = writeln!(
        out,
        "# HELP anycastd_service_suppressed 1 while flap damping holds the service withdrawn.\n# TYPE anycastd_service_suppressed gauge"
    );
    for s in services {
        let _ = writeln!(
            out,
            "anycastd_service_suppressed{{service=\"{}\"}} {}",
            escape(&s.name),
            u8::from(s.suppressed)
        );
    }
    out
}

/// The levels a prefix can be wanted at, one series each (a state set, as
/// `anycastd_service_state`).
const LEVELS: [&str; 4] = ["normal", "de-preferred", "graceful-shutdown", "withdrawn"];

/// Per prefix the level the daemon wants it at (1 for the current one, 0 for the others) and
/// whether its routing daemon has other attributes than that level's; per service the end of
/// a drain's grace in progress (0: none). Only from a running daemon that says its level.
fn level_gauges(
    out: &mut String,
    services: &[crate::observe::status::ServiceStatus],
    escape: &dyn Fn(&str) -> String,
) {
    use std::fmt::Write as _;
    let labels = |s: &crate::observe::status::ServiceStatus,
                  p: &crate::observe::status::PrefixStatus| {
        let backend = if p.backend.is_empty() {
            crate::routing::KINDS[0].name()
        } else {
            &p.backend
        };
        format!(
            "service=\"{}\",prefix=\"{}\",table=\"{}\",backend=\"{}\",endpoint=\"{}\"",
            escape(&s.name),
            escape(&p.prefix),
            escape(p.place().unwrap_or("")),
            escape(backend),
            escape(&p.instance),
        )
    };
    let graded: Vec<_> = services
        .iter()
        .filter_map(|s| Some((s, s.level.as_ref()?)))
        .collect();
    let _ = writeln!(
        out,
        "# HELP anycastd_prefix_level 1 for the level the daemon wants the prefix announced at (normal, de-preferred, graceful-shutdown, withdrawn), else 0.\n# TYPE anycastd_prefix_level gauge"
    );
    for (s, level) in &graded {
        for p in &s.prefixes {
            for name in LEVELS {
                let _ = writeln!(
                    out,
                    "anycastd_prefix_level{{{},level=\"{name}\"}} {}",
                    labels(s, p),
                    u8::from(level.name == name)
                );
            }
        }
    }
    let _ = writeln!(
        out,
        "# HELP anycastd_prefix_attributes_differ 1 while the routing daemon has the prefix with other attributes (AS-path prepend, MED, communities) than the wanted level's.\n# TYPE anycastd_prefix_attributes_differ gauge"
    );
    for (s, _) in &graded {
        for p in s.prefixes.iter().filter(|p| !p.unreadable) {
            let _ = writeln!(
                out,
                "anycastd_prefix_attributes_differ{{{}}} {}",
                labels(s, p),
                u8::from(p.attributes_differ)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP anycastd_service_grace_end_timestamp_seconds Unix time the drain grace in progress ends (the service announced with GRACEFUL_SHUTDOWN until then), 0 when none runs.\n# TYPE anycastd_service_grace_end_timestamp_seconds gauge"
    );
    for (s, level) in &graded {
        let _ = writeln!(
            out,
            "anycastd_service_grace_end_timestamp_seconds{{service=\"{}\"}} {}",
            escape(&s.name),
            level.grace_end_ms.map_or(0.0, |ms| ms as f64 / 1000.0)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, path: &str) -> hyper::Request<()> {
        hyper::Request::builder()
            .method(method)
            .uri(path)
            .body(())
            .unwrap()
    }

    #[tokio::test]
    async fn a_served_scrape_is_the_rendered_registry_and_the_connection_closes() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        crate::observe::metrics::count(
            "anycastd_drift_repairs_total",
            &[("service", "served")],
            2.0,
        );
        let listener = bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = serve(listener, Arc::default());
        for (request, status) in [
            ("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 200"),
            ("PUT /metrics HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 405"),
            ("GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 404"),
            ("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 200"),
            ("HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 200"),
        ] {
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            stream.write_all(request.as_bytes()).await.unwrap();
            let mut text = String::new();
            // Read to the end: the server closes after one answer.
            stream.read_to_string(&mut text).await.unwrap();
            assert!(text.starts_with(status), "{text}");
            if request.contains("/healthz") {
                // "ok\n" for GET; for HEAD the same length and no body.
                assert!(text.contains("content-length: 3\r\n"), "{text}");
                let body = text.split_once("\r\n\r\n").map(|(_, b)| b);
                let expected = if request.starts_with("HEAD") {
                    ""
                } else {
                    "ok\n"
                };
                assert_eq!(body, Some(expected), "{text}");
            }
            if request.starts_with("GET /metrics") {
                assert!(
                    text.contains("anycastd_drift_repairs_total{service=\"served\"} 2"),
                    "{text}"
                );
            }
        }
        server.abort();
    }

    #[tokio::test]
    async fn routes_methods_and_a_site_not_ready_yet() {
        let site = Site::default();
        let status = |r: Response<Body>| r.status().as_u16();
        assert_eq!(
            status(answer(&request("GET", "/metrics"), &site).await),
            200
        );
        assert_eq!(
            status(answer(&request("HEAD", "/healthz"), &site).await),
            200
        );
        assert_eq!(status(answer(&request("GET", "/"), &site).await), 404);
        assert_eq!(
            status(answer(&request("GET", "/metrics/x"), &site).await),
            404
        );
        let post = answer(&request("POST", "/status"), &site).await;
        assert_eq!(post.status(), 405);
        assert_eq!(post.headers()[header::ALLOW], "GET, HEAD");
        // Before the start-up reconciliation: not ready, no status.
        assert_eq!(status(answer(&request("GET", "/readyz"), &site).await), 503);
        assert_eq!(status(answer(&request("GET", "/status"), &site).await), 503);
    }
}
