//! Who may do what through the control socket (SO_PEERCRED): a member of `[control] group`
//! reads (status, history) but cannot act (drain, reload, stop); anyone else is refused.
//! Runs the client as uid `nobody` with chosen gids; needs root.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use nix::sys::signal::Signal;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;
use support::daemon::{one_service_config, Daemon, OneService};

const NOBODY: u32 = 65534;

fn as_user(config: &std::path::Path, gid: u32, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_anycastd"))
        .args(args)
        .arg("-c")
        .arg(config)
        .uid(NOBODY)
        .gid(gid)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_read_group_member_reads_but_cannot_act_and_others_are_refused() {
    if !nix::unistd::Uid::effective().is_root() {
        support::skip::skip("needs root to run a client as another user");
        return;
    }
    let Ok(Some(group)) = nix::unistd::Group::from_name("adm") else {
        support::skip::skip("no group adm on this machine");
        return;
    };
    let gid = group.gid.as_raw();
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = one_service_config(
        dir.path(),
        r#"[{ name = "dns", url = "http://127.0.0.1:9" }]"#,
        OneService {
            control: "group = \"adm\"\n",
            ..OneService::default()
        },
    );
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut daemon = Daemon::start(&config, &dir.path().join("log"));
    daemon.wait_log("Starting service");
    let socket_mode = std::fs::metadata(dir.path().join("ctl.sock"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(socket_mode, 0o666);

    // A member of the read group.
    assert_eq!(as_user(&config, gid, &["status"]).0, 0);
    assert_eq!(as_user(&config, gid, &["history", "dns"]).0, 0);
    for action in [
        &["drain", "dns", "--reason", "x"][..],
        &["undrain", "dns"],
        &["reload"],
        &["stop"],
    ] {
        let (code, err) = as_user(&config, gid, action);
        assert_eq!(code, 77, "{action:?}: {err}");
        assert!(err.contains("permission denied"), "{action:?}: {err}");
    }
    // Anyone else.
    let (code, err) = as_user(&config, NOBODY, &["status"]);
    assert_eq!(code, 77);
    assert!(
        err.contains("permission denied: not root, not the daemon's user, not in [control] group"),
        "{err}"
    );

    assert!(daemon.running(), "nothing stopped the daemon");
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait(Duration::from_secs(30)), 0);

    // Without a control group the socket is 0600: the kernel refuses others, with the same
    // exit code.
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("group = \"adm\"\n", "");
    std::fs::write(&config, text).unwrap();
    let mut daemon = Daemon::start(&config, &dir.path().join("log2"));
    daemon.wait_log("Starting service");
    let (code, err) = as_user(&config, NOBODY, &["status"]);
    assert_eq!(code, 77, "{err}");
    assert!(
        err.contains("permission denied on the control socket"),
        "{err}"
    );
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait(Duration::from_secs(30)), 0);
}
