//! Cabourotte checks against the emulator on 127.0.0.1: both API generations and every
//! failure mode is observed with its reason.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use anycastd::checks::cabourotte::{http_client, ApiGeneration, CabourotteCheck, Http};
use anycastd_fsm::Observation;
use std::time::Duration;
use support::cabourotte::{Behaviour, Emulator, Generation};

fn check(client: &Http, emulator: &Emulator, name: &str) -> CabourotteCheck {
    CabourotteCheck::new(
        client,
        &emulator.url(),
        name,
        Duration::from_millis(500),
        None,
    )
}

fn fail_reason(o: Observation) -> String {
    match o {
        Observation::Fail(reason) => reason,
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[tokio::test]
async fn a_v2_server_is_asked_on_the_api_v1_route_only() {
    let emulator = Emulator::start(Generation::V2).await;
    emulator.set("dns", Behaviour::Pass);
    let client = http_client().unwrap();
    let mut dns = check(&client, &emulator, "dns");
    for _ in 0..3 {
        assert_eq!(dns.poll().await, Observation::Pass);
    }
    assert_eq!(dns.api(), ApiGeneration::V2);
    assert_eq!(emulator.requests("dns"), 3);
    assert_eq!(
        emulator.connections(),
        1,
        "one keep-alive connection for every poll"
    );
}

#[tokio::test]
async fn a_v1_server_is_detected_by_its_unknown_route_404_and_remembered() {
    let emulator = Emulator::start(Generation::V1).await;
    emulator.set("dns", Behaviour::Pass);
    let client = http_client().unwrap();
    let mut dns = check(&client, &emulator, "dns");
    assert_eq!(dns.poll().await, Observation::Pass);
    assert_eq!(dns.api(), ApiGeneration::V1);
    assert_eq!(dns.poll().await, Observation::Pass);
    assert_eq!(
        emulator.requests("dns"),
        3,
        "one probe of the v2 route, then v1 only"
    );
}

#[tokio::test]
async fn success_false_fails_with_cabourotte_message() {
    let emulator = Emulator::start(Generation::V2).await;
    emulator.set("dns", Behaviour::Fail("expected 2001:db8::15:600d".into()));
    let client = http_client().unwrap();
    assert_eq!(
        fail_reason(check(&client, &emulator, "dns").poll().await),
        "expected 2001:db8::15:600d"
    );
}

#[tokio::test]
async fn result_not_found_is_pending_on_both_generations() {
    for generation in [Generation::V1, Generation::V2] {
        let emulator = Emulator::start(generation).await;
        let client = http_client().unwrap();
        assert_eq!(
            check(&client, &emulator, "unknown").poll().await,
            Observation::Pending
        );
    }
}

#[tokio::test]
async fn a_server_error_fails_with_its_status() {
    let emulator = Emulator::start(Generation::V2).await;
    emulator.set("dns", Behaviour::Status(500));
    let client = http_client().unwrap();
    assert_eq!(
        fail_reason(check(&client, &emulator, "dns").poll().await),
        "HTTP 500"
    );
}

#[tokio::test]
async fn malformed_json_fails() {
    let emulator = Emulator::start(Generation::V2).await;
    emulator.set("dns", Behaviour::Malformed);
    let client = http_client().unwrap();
    let reason = fail_reason(check(&client, &emulator, "dns").poll().await);
    assert!(reason.starts_with("malformed result JSON"), "{reason}");
}

#[tokio::test]
async fn an_oversized_body_fails_without_being_read_whole() {
    let emulator = Emulator::start(Generation::V2).await;
    emulator.set("dns", Behaviour::Oversized(5 * 1024 * 1024));
    let client = http_client().unwrap();
    let reason = fail_reason(check(&client, &emulator, "dns").poll().await);
    assert!(reason.contains("exceeds 65536"), "{reason}");
}

#[tokio::test]
async fn a_hang_past_the_timeout_fails_as_no_answer() {
    let emulator = Emulator::start(Generation::V2).await;
    emulator.set("dns", Behaviour::Hang);
    let client = http_client().unwrap();
    let mut dns = CabourotteCheck::new(
        &client,
        &emulator.url(),
        "dns",
        Duration::from_millis(200),
        None,
    );
    assert_eq!(fail_reason(dns.poll().await), "no answer within 200 ms");
}

#[tokio::test]
async fn a_refused_connection_fails_with_the_os_reason() {
    // Bind then drop a listener: nothing listens on that port any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = http_client().unwrap();
    let mut dns = CabourotteCheck::new(
        &client,
        &format!("http://127.0.0.1:{port}"),
        "dns",
        Duration::from_millis(500),
        None,
    );
    let reason = fail_reason(dns.poll().await);
    assert_eq!(reason, "cannot connect: Connection refused");
}

#[tokio::test]
async fn a_stale_result_fails_when_max_age_is_set() {
    let emulator = Emulator::start(Generation::V2).await;
    emulator.set("dns", Behaviour::Stale(300));
    let client = http_client().unwrap();
    let mut dns = CabourotteCheck::new(
        &client,
        &emulator.url(),
        "dns",
        Duration::from_millis(500),
        Some(Duration::from_secs(60)),
    );
    let reason = fail_reason(dns.poll().await);
    assert!(reason.starts_with("stale result: 30"), "{reason}");
}

#[tokio::test]
async fn a_url_with_no_cabourotte_fails_naming_both_routes() {
    let emulator = Emulator::start(Generation::V2).await;
    let client = http_client().unwrap();
    let mut dns = CabourotteCheck::new(
        &client,
        &format!("{}/elsewhere/x", emulator.url()),
        "dns",
        Duration::from_millis(500),
        None,
    );
    let reason = fail_reason(dns.poll().await);
    assert!(
        reason.starts_with("HTTP 404: no Cabourotte result route at"),
        "{reason}"
    );
}

#[tokio::test]
async fn a_slowloris_answer_fails_within_the_timeout() {
    let emulator = Emulator::start(Generation::V2).await;
    emulator.set("dns", Behaviour::Slowloris);
    let client = http_client().unwrap();
    let mut dns = CabourotteCheck::new(
        &client,
        &emulator.url(),
        "dns",
        Duration::from_millis(500),
        None,
    );
    let started = std::time::Instant::now();
    let reason = fail_reason(dns.poll().await);
    assert!(
        reason.contains("not complete in time") || reason.contains("no answer within"),
        "{reason}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the request timeout bounds the body too"
    );
}

#[tokio::test]
async fn a_server_gets_at_most_the_pool_size_in_connections_and_keeps_them() {
    use anycastd::checks::cabourotte::MAX_CONNECTIONS_PER_SERVER;
    let emulator = Emulator::start(Generation::V2).await;
    let client = http_client().unwrap();
    let mut checks: Vec<CabourotteCheck> = (0..200)
        .map(|i| {
            let name = format!("c{i}");
            emulator.set(&name, Behaviour::Pass);
            check(&client, &emulator, &name)
        })
        .collect();
    let mut after_first_round = 0;
    for round in 0..2 {
        let tasks: Vec<_> = checks
            .drain(..)
            .map(|mut c| {
                tokio::spawn(async move {
                    let observation = c.poll().await;
                    (c, observation)
                })
            })
            .collect();
        for task in tasks {
            let (c, observation) = task.await.unwrap();
            assert_eq!(observation, Observation::Pass, "round {round}");
            checks.push(c);
        }
        assert!(
            emulator.connections() <= MAX_CONNECTIONS_PER_SERVER as u64,
            "round {round}: {} connections for 200 concurrent polls",
            emulator.connections()
        );
        if round == 0 {
            after_first_round = emulator.connections();
        }
    }
    assert_eq!(
        emulator.connections(),
        after_first_round,
        "the second round reuses the first round's connections"
    );
}

#[tokio::test]
async fn a_poll_waiting_for_a_connection_slot_past_its_timeout_fails_and_says_why() {
    use anycastd::checks::cabourotte::MAX_CONNECTIONS_PER_SERVER;
    let emulator = Emulator::start(Generation::V2).await;
    let client = http_client().unwrap();
    let hanging: Vec<_> = (0..MAX_CONNECTIONS_PER_SERVER)
        .map(|i| {
            let name = format!("hang{i}");
            emulator.set(&name, Behaviour::Hang);
            let mut c = CabourotteCheck::new(
                &client,
                &emulator.url(),
                &name,
                Duration::from_secs(2),
                None,
            );
            tokio::spawn(async move { c.poll().await })
        })
        .collect();
    // Every slot is taken by a request that will not be answered in time.
    tokio::time::sleep(Duration::from_millis(300)).await;
    emulator.set("dns", Behaviour::Pass);
    let mut dns = CabourotteCheck::new(
        &client,
        &emulator.url(),
        "dns",
        Duration::from_millis(200),
        None,
    );
    let reason = fail_reason(dns.poll().await);
    assert!(
        reason.contains("already in flight"),
        "unexpected reason: {reason}"
    );
    assert_eq!(emulator.requests("dns"), 0, "it never reached the server");
    for task in hanging {
        let _ = task.await;
    }
}
