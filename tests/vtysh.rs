//! vtysh process handling: a call that outlives its timeout is killed with its whole process
//! group, and its error output is kept on one line.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use anycastd::routing::frr::control::{Vtysh, VtyshError};
use std::path::Path;
use std::time::Duration;

fn script(dir: &Path, body: &str) -> std::path::PathBuf {
    let path = dir.join("vtysh");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    path
}

fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.split_whitespace().nth(2) != Some("Z"),
        Err(_) => false,
    }
}

#[tokio::test]
async fn a_hanging_vtysh_is_killed_with_everything_it_started() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("child.pid");
    let path = script(
        dir.path(),
        &format!("sleep 300 &\necho $! > {}\nwait", pidfile.display()),
    );
    let vtysh = Vtysh {
        path,
        args: vec![],
        timeout: Duration::from_millis(300),
    };
    let result = vtysh.run(&["show running-config bgpd".into()]).await;
    assert!(
        matches!(result, Err(VtyshError::Timeout { .. })),
        "{result:?}"
    );
    let child: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while alive(child) {
        assert!(
            std::time::Instant::now() < deadline,
            "the grandchild {child} survived the timeout"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_failing_vtysh_reports_its_exit_code_and_output_on_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = script(
        dir.path(),
        "echo '% Unknown command: network 10.0.0.0/33'\necho 'line two' >&2\nexit 1",
    );
    let vtysh = Vtysh {
        path: path.clone(),
        args: vec![],
        timeout: Duration::from_secs(5),
    };
    let err = vtysh.run(&["configure terminal".into()]).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "vtysh {}: exit 1: % Unknown command: network 10.0.0.0/33 line two",
            path.display()
        )
    );
}

#[tokio::test]
async fn a_missing_vtysh_binary_is_an_error_not_a_crash() {
    let vtysh = Vtysh {
        path: "/nonexistent/vtysh".into(),
        args: vec![],
        timeout: Duration::from_secs(1),
    };
    let err = vtysh.run(&["show version".into()]).await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with("vtysh /nonexistent/vtysh: cannot run:"),
        "{err}"
    );
}

#[tokio::test]
async fn each_line_is_its_own_argument_after_the_configured_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let path = script(dir.path(), "for a in \"$@\"; do echo \"[$a]\"; done");
    let vtysh = Vtysh {
        path,
        args: vec!["--vty_socket".into(), "/x y".into()],
        timeout: Duration::from_secs(5),
    };
    let out = vtysh
        .run(&["configure terminal".into(), "network 10.0.0.0/8".into()])
        .await
        .unwrap();
    assert_eq!(
        out,
        "[--vty_socket]\n[/x y]\n[-c]\n[configure terminal]\n[-c]\n[network 10.0.0.0/8]\n"
    );
}
