//! The fleet guard against a real etcd (Debian's `etcd-server`, started by
//! `support::etcd` on 127.0.0.1 ports of its own) and, for the fleet, several real anycastd
//! daemons each with its own fake FRR, journal and control socket.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;
use support::etcd::Etcd;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fixture_etcd_drops_a_leased_key_when_its_lease_is_revoked() {
    let Some(etcd) = Etcd::start() else { return };
    let mut client = etcd_client::Client::connect([etcd.url()], None)
        .await
        .unwrap();
    let lease = client.lease_grant(5, None).await.unwrap().id();
    client
        .put(
            "/t/key",
            "v",
            Some(etcd_client::PutOptions::new().with_lease(lease)),
        )
        .await
        .unwrap();
    assert_eq!(etcd.get_prefix("/t/"), vec![("/t/key".into(), "v".into())]);
    client.lease_revoke(lease).await.unwrap();
    assert!(etcd.get_prefix("/t/").is_empty());
    // Stopped and continued, it answers again.
    etcd.signal(nix::sys::signal::Signal::SIGSTOP);
    assert!(!etcd.healthy());
    etcd.signal(nix::sys::signal::Signal::SIGCONT);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !etcd.healthy() {
        assert!(std::time::Instant::now() < deadline, "etcd did not recover");
        std::thread::sleep(Duration::from_millis(50));
    }
}
