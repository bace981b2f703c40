//! The HTTP and DNS check kinds against real servers on 127.0.0.1: nginx (HTTP, HTTPS with a
//! test CA) and dnsmasq (UDP and TCP). Every expected reason is built from what the server was
//! given to serve.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use anycastd::checks::{self, Kinds, Observation};
use anycastd::config::Check;
use support::servers::{Dnsmasq, Nginx};

fn checks_of(checks: &str) -> Vec<Check> {
    let text = format!(
        "[services.dns]\nprefixes.frrouting = [\"203.0.113.53/32\"]\n[services.dns.checks]\n{checks}\n"
    );
    match anycastd::config::parse(&text, &anycastd::checks::REGISTRY) {
        Ok(config) => config.services[0].checks.clone(),
        Err(problems) => panic!("{text}\n{problems:?}"),
    }
}

async fn poll_one(checks: &str) -> Observation {
    let check = &checks_of(checks)[0];
    let kinds = Kinds::new().unwrap();
    checks::probe("dns", check, &kinds).poll().await
}

fn fail_text(o: Observation) -> String {
    match o {
        Observation::Fail(reason) => reason,
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[tokio::test]
async fn http_status_body_and_redirects_against_nginx() {
    let Some(nginx) = Nginx::start() else { return };
    let base = format!("http://127.0.0.1:{}", nginx.port);
    nginx.put("health", b"ok\n");
    let http = |extra: &str| format!("http = [{{ url = \"{base}/health\"{extra} }}]");
    assert_eq!(poll_one(&http("")).await, Observation::Pass);
    assert_eq!(poll_one(&http(", body = \"ok\"")).await, Observation::Pass);
    assert_eq!(
        poll_one(&http(", body_regex = \"(?m)^ok$\"")).await,
        Observation::Pass
    );
    assert_eq!(
        poll_one(&http(", method = \"HEAD\"")).await,
        Observation::Pass
    );
    assert_eq!(
        fail_text(poll_one(&http(", body = \"healthy\"")).await),
        "body does not contain \"healthy\""
    );
    assert_eq!(
        fail_text(poll_one(&http(", body_regex = \"^fine\"")).await),
        "body does not match /^fine/"
    );
    // The service turns unhealthy, then back.
    nginx.down(true);
    assert_eq!(
        fail_text(poll_one(&http("")).await),
        "HTTP 503 Service Unavailable (expected 200-299)"
    );
    assert_eq!(
        poll_one(&http(", status = [200, \"500-503\"]")).await,
        Observation::Pass
    );
    nginx.down(false);
    assert_eq!(poll_one(&http("")).await, Observation::Pass);
    // A file gone is a 404; a redirect is not followed.
    assert_eq!(
        fail_text(poll_one(&format!("http = [\"{base}/missing\"]")).await),
        "HTTP 404 Not Found (expected 200-299)"
    );
    assert_eq!(
        fail_text(poll_one(&format!("http = [\"{base}/redirect\"]")).await),
        "HTTP 301 Moved Permanently (expected 200-299)"
    );
    // A Host header picks nginx's other server, which answers 204.
    let special = format!(
        "http = [{{ url = \"{base}/\", status = 204, headers = {{ Host = \"special.example\" }} }}]"
    );
    assert_eq!(poll_one(&special).await, Observation::Pass);
    let plain = format!("http = [{{ url = \"{base}/health\", status = 204 }}]");
    assert_eq!(
        fail_text(poll_one(&plain).await),
        "HTTP 200 OK (expected 204)"
    );
}

#[tokio::test]
async fn http_reads_a_bounded_body() {
    let Some(nginx) = Nginx::start() else { return };
    let limit = checks::http::BODY_LIMIT;
    // "needle" once just inside the limit, once just past it.
    let mut body = vec![b'x'; limit - 6];
    body.extend_from_slice(b"needle");
    body.extend_from_slice(&vec![b'y'; 1 << 20]);
    body.extend_from_slice(b"haystack-end");
    nginx.put("big", &body);
    let url = format!("http://127.0.0.1:{}/big", nginx.port);
    assert_eq!(
        poll_one(&format!(
            "http = [{{ url = \"{url}\", body = \"needle\" }}]"
        ))
        .await,
        Observation::Pass
    );
    assert_eq!(
        fail_text(
            poll_one(&format!(
                "http = [{{ url = \"{url}\", body = \"haystack-end\" }}]"
            ))
            .await
        ),
        "body does not contain \"haystack-end\""
    );
}

#[tokio::test]
async fn https_with_a_test_ca_server_name_and_insecure() {
    let Some(nginx) = Nginx::start() else { return };
    nginx.put("health", b"ok");
    let url = format!("https://127.0.0.1:{}/health", nginx.tls_port);
    let ca = nginx.pki.ca.display().to_string();
    assert_eq!(
        poll_one(&format!(
            "http = [{{ url = \"{url}\", ca = {ca:?}, body = \"ok\" }}]"
        ))
        .await,
        Observation::Pass
    );
    assert_eq!(
        poll_one(&format!(
            "http = [{{ url = \"{url}\", ca = {ca:?}, server_name = \"dns.example\" }}]"
        ))
        .await,
        Observation::Pass
    );
    let reason = fail_text(
        poll_one(&format!(
            "http = [{{ url = \"{url}\", ca = {ca:?}, server_name = \"other.example\" }}]"
        ))
        .await,
    );
    assert!(
        reason.starts_with(
            "TLS: invalid peer certificate: certificate not valid for name \"other.example\""
        ),
        "{reason}"
    );
    // The system's roots do not know the test CA.
    let reason = fail_text(poll_one(&format!("http = [\"{url}\"]")).await);
    assert!(
        reason.starts_with("TLS: ") && reason.contains("UnknownIssuer"),
        "{reason}"
    );
    assert_eq!(
        poll_one(&format!("http = [{{ url = \"{url}\", insecure = true }}]")).await,
        Observation::Pass
    );
    // A certificate that expired yesterday, from the trusted CA.
    let expired = format!("https://127.0.0.1:{}/health", nginx.expired_port);
    let reason =
        fail_text(poll_one(&format!("http = [{{ url = \"{expired}\", ca = {ca:?} }}]")).await);
    assert_eq!(reason, "TLS: invalid peer certificate: Expired");
}

#[tokio::test]
async fn http_to_a_closed_port_cannot_connect() {
    let port = support::servers::free_port();
    let reason = fail_text(poll_one(&format!("http = [\"http://127.0.0.1:{port}/\"]")).await);
    // As docs/operating.md shows it: the OS's words, without Rust's "(os error 111)".
    assert_eq!(reason, "cannot connect: Connection refused");
}

#[tokio::test]
async fn dns_answers_over_udp_and_tcp_against_dnsmasq() {
    let Some(dns) = Dnsmasq::start() else { return };
    let server = format!("127.0.0.1:{}", dns.port);
    let q = |extra: &str| format!("dns = [{{ server = \"{server}\"{extra} }}]");
    // The seed's resolver check, over both transports.
    for protocol in ["udp", "tcp"] {
        let check = q(&format!(
            ", query = \"check.local\", type = \"AAAA\", expect = [\"2001:db8::15:600d\"], protocol = \"{protocol}\""
        ));
        assert_eq!(poll_one(&check).await, Observation::Pass, "{protocol}");
    }
    assert_eq!(
        poll_one(&q(
            ", query = \"both.local\", expect = [\"192.0.2.2\", \"192.0.2.1\"]"
        ))
        .await,
        Observation::Pass
    );
    // A wrong answer names what was missing and what came.
    assert_eq!(
        fail_text(
            poll_one(&q(
                ", query = \"check.local\", type = \"AAAA\", expect = [\"2001:db8::1\"]"
            ))
            .await
        ),
        "check.local AAAA: 2001:db8::1 not in the answer (2001:db8::15:600d)"
    );
    // A name with no record of the type: NOERROR and no answer.
    assert_eq!(
        fail_text(poll_one(&q(", query = \"check.local\", type = \"A\"")).await),
        "check.local A: no answer"
    );
    // NXDOMAIN fails, unless it is what is expected.
    assert_eq!(
        fail_text(poll_one(&q(", query = \"missing.local\", type = \"AAAA\"")).await),
        "missing.local AAAA: NXDOMAIN (expected NOERROR)"
    );
    assert_eq!(
        poll_one(&q(", query = \"missing.local\", rcode = \"NXDOMAIN\"")).await,
        Observation::Pass
    );
}

#[tokio::test]
async fn dns_refusal_silence_and_a_closed_port() {
    let Some(dns) = Dnsmasq::start() else { return };
    let server = format!("127.0.0.1:{}", dns.port);
    // A name no local record or upstream covers: dnsmasq refuses it.
    assert_eq!(
        fail_text(
            poll_one(&format!(
                "dns = [{{ server = \"{server}\", query = \"example.org\" }}]"
            ))
            .await
        ),
        "example.org A: REFUSED (expected NOERROR)"
    );
    // fail.test goes to an upstream that does not exist: dnsmasq keeps the query, and the
    // check's time runs out.
    assert_eq!(
        fail_text(
            poll_one(&format!(
                "dns = [{{ server = \"{server}\", query = \"fail.test\", timeout = \"500ms\" }}]"
            ))
            .await
        ),
        format!("no answer from {server} within 500 ms")
    );
    // A server that reads queries but never answers.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap();
    assert_eq!(
        fail_text(
            poll_one(&format!(
                "dns = [{{ server = \"{silent_addr}\", query = \"check.local\", timeout = \"300ms\" }}]"
            ))
            .await
        ),
        format!("no answer from {silent_addr} within 300 ms")
    );
    drop(silent);
    // Nothing there at all: the port is closed.
    assert_eq!(
        fail_text(
            poll_one(&format!(
                "dns = [{{ server = \"{silent_addr}\", query = \"check.local\", timeout = \"1s\" }}]"
            ))
            .await
        ),
        format!("{silent_addr}: connection refused")
    );
}
