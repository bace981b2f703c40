//! The exec and TCP check kinds against real processes and real sockets: what a poll
//! observes, and what it leaves behind (no process of its group, no zombie, no descriptor).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use anycastd::checks::{self, Kinds, Observation, Probe};
use anycastd::config::Check;
use std::path::Path;
use std::time::{Duration, Instant};

/// The checks of a one-service config whose `checks` table is `checks`.
fn checks_of(checks: &str) -> Vec<Check> {
    let text = format!(
        "[services.dns]\nprefixes.frrouting = [\"203.0.113.53/32\"]\n[services.dns.checks]\n{checks}\n"
    );
    match anycastd::config::parse(&text, &anycastd::checks::REGISTRY) {
        Ok(config) => config.services[0].checks.clone(),
        Err(problems) => panic!("{text}\n{problems:?}"),
    }
}

fn probe(check: &Check) -> Box<dyn Probe> {
    let kinds = Kinds::new().unwrap();
    checks::probe("dns", check, &kinds)
}

async fn poll_one(checks: &str) -> Observation {
    let check = &checks_of(checks)[0];
    probe(check).poll().await
}

fn fail_text(o: Observation) -> String {
    match o {
        Observation::Fail(reason) => reason,
        other => panic!("expected a failure, got {other:?}"),
    }
}

/// Process ids in process group `pgid` (from /proc).
fn group_members(pgid: i32) -> Vec<i32> {
    let mut members = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid pgrp ...: fields after the last ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.get(2).and_then(|f| f.parse::<i32>().ok()) == Some(pgid) {
            members.push(pid);
        }
    }
    members
}

/// Children of this process that are zombies.
fn my_zombies() -> Vec<i32> {
    let me = std::process::id() as i32;
    let mut zombies = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.first() == Some(&"Z") && fields.get(1).and_then(|f| f.parse().ok()) == Some(me) {
            zombies.push(pid);
        }
    }
    zombies
}

fn read_pid(path: &Path) -> i32 {
    std::fs::read_to_string(path)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn exit_zero_passes_and_any_other_exit_fails_with_the_first_line_of_stderr() {
    assert_eq!(poll_one(r#"exec = ["/bin/true"]"#).await, Observation::Pass);
    let reason = fail_text(
        poll_one(
            r#"exec = [{ command = "/bin/sh", args = ["-c", "echo out; echo; echo '  bad thing  ' >&2; echo more >&2; exit 3"] }]"#,
        )
        .await,
    );
    assert_eq!(reason, "exit 3: bad thing");
    // Without stderr, stdout's first line.
    let reason = fail_text(
        poll_one(
            r#"exec = [{ command = "/bin/sh", args = ["-c", "echo NTP not synced; exit 1"] }]"#,
        )
        .await,
    );
    assert_eq!(reason, "exit 1: NTP not synced");
    let reason = fail_text(poll_one(r#"exec = [{ command = "/bin/false" }]"#).await);
    assert_eq!(reason, "exit 1");
    let reason = fail_text(
        poll_one(r#"exec = [{ command = "/bin/sh", args = ["-c", "kill -SEGV $$"] }]"#).await,
    );
    assert_eq!(reason, "killed by SIGSEGV");
}

#[tokio::test]
async fn a_command_that_cannot_start_fails_and_says_why() {
    let reason = fail_text(poll_one(r#"exec = ["/nonexistent/check"]"#).await);
    assert_eq!(
        reason,
        "cannot run /nonexistent/check: No such file or directory"
    );
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("not-executable");
    std::fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
    let reason = fail_text(poll_one(&format!("exec = [{:?}]", script.display().to_string())).await);
    assert_eq!(
        reason,
        format!("cannot run {}: Permission denied", script.display())
    );
}

#[tokio::test]
async fn the_command_gets_a_minimal_environment_with_its_service_and_check() {
    std::env::set_var("ANYCASTD_TEST_LEAK", "1");
    let script = r#"test "$ANYCASTD_SERVICE" = dns || { echo "service $ANYCASTD_SERVICE" >&2; exit 1; }
test "$ANYCASTD_CHECK" = ntp-local || { echo "check $ANYCASTD_CHECK" >&2; exit 1; }
test "$EXTRA" = "a b" || { echo "extra $EXTRA" >&2; exit 1; }
test -z "$ANYCASTD_TEST_LEAK" || { echo leaked >&2; exit 1; }
test -z "$HOME" || { echo "home $HOME" >&2; exit 1; }
test "$PWD" = / || { echo "pwd $PWD" >&2; exit 1; }
case "$PATH" in */usr/bin*) ;; *) echo "path $PATH" >&2; exit 1;; esac
read -r line && { echo "stdin not empty" >&2; exit 1; }
exit 0"#;
    let checks = format!(
        "exec = [{{ name = \"ntp-local\", command = \"/bin/sh\", args = [\"-c\", {script:?}], env = {{ EXTRA = \"a b\" }} }}]"
    );
    assert_eq!(poll_one(&checks).await, Observation::Pass);
}

#[tokio::test]
async fn the_command_inherits_only_its_three_standard_descriptors() {
    // Descriptors this process holds open meanwhile must not reach it: its own (close-on-exec)
    // and one it inherited (as from a careless supervisor: not close-on-exec).
    use std::os::fd::AsRawFd;
    let inherited = std::fs::File::open("/proc/self/status").unwrap();
    nix::fcntl::fcntl(
        inherited.as_raw_fd(),
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
    )
    .unwrap();
    let _socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let reason = fail_text(
        poll_one(
            r#"exec = [{ command = "/bin/sh", args = ["-c", "ls /proc/self/fd | tr '\\n' ' ' >&2; exit 1"] }]"#,
        )
        .await,
    );
    // ls's own: the three streams and the directory it lists.
    assert_eq!(reason, "exit 1: 0 1 2 3");
}

#[tokio::test]
async fn a_timeout_kills_the_whole_process_group_and_leaves_no_zombie() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    // A shell that starts a background sleeper and ignores SIGTERM: SIGKILL must follow.
    let script = format!(
        "trap '' TERM; echo $$ > {}; sleep 60 & sleep 60; wait",
        pidfile.display()
    );
    let checks = format!(
        "exec = [{{ command = \"/bin/sh\", args = [\"-c\", {script:?}], timeout = \"300ms\" }}]"
    );
    let started = Instant::now();
    let reason = fail_text(poll_one(&checks).await);
    assert_eq!(reason, "timed out after 300 ms (process group killed)");
    // SIGTERM was ignored: the poll ended after the grace period, with SIGKILL.
    assert!(started.elapsed() >= Duration::from_millis(300) + checks::exec::GRACE);
    let pgid = read_pid(&pidfile);
    // The kernel may take a moment to tear down the killed sleepers.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !group_members(pgid).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(group_members(pgid), Vec::<i32>::new());
    assert_eq!(my_zombies(), Vec::<i32>::new());
}

#[tokio::test]
async fn output_floods_are_read_bounded_and_never_block_the_command() {
    // 20 MB on each stream, far past a pipe's buffer: the command must still exit.
    let reason = fail_text(
        poll_one(
            r#"exec = [{ command = "/bin/sh", args = ["-c", "head -c 20000000 /dev/zero | tr '\\0' x; head -c 20000000 /dev/zero | tr '\\0' y >&2; exit 4"], timeout = "20s" }]"#,
        )
        .await,
    );
    assert_eq!(reason, format!("exit 4: {}...", "y".repeat(200)));
}

#[tokio::test]
async fn many_slow_checks_at_once_leave_no_process_and_no_zombie() {
    let dir = tempfile::tempdir().unwrap();
    let mut items = Vec::new();
    for i in 0..24 {
        let pidfile = dir.path().join(format!("pid{i}"));
        let script = format!(
            "echo $$ > {}; for n in 1 2 3 4 5 6; do sleep 60 & done; wait",
            pidfile.display()
        );
        items.push(format!(
            "{{ name = \"slow{i}\", command = \"/bin/sh\", args = [\"-c\", {script:?}], timeout = \"400ms\" }}"
        ));
    }
    let checks = checks_of(&format!("exec = [{}]", items.join(", ")));
    let kinds = Kinds::new().unwrap();
    let mut probes: Vec<_> = checks
        .iter()
        .map(|c| checks::probe("dns", c, &kinds))
        .collect();
    let polls = probes.iter_mut().map(|p| p.poll());
    let results = futures_util::future::join_all(polls).await;
    for r in results {
        assert_eq!(
            fail_text(r),
            "timed out after 400 ms (process group killed)"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    let left = || -> Vec<i32> {
        (0..24)
            .flat_map(|i| group_members(read_pid(&dir.path().join(format!("pid{i}")))))
            .collect()
    };
    while !left().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(left(), Vec::<i32>::new());
    assert_eq!(my_zombies(), Vec::<i32>::new());
}

#[tokio::test]
async fn an_abandoned_poll_kills_its_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let script = format!("echo $$ > {}; sleep 60 & sleep 60", pidfile.display());
    let check = &checks_of(&format!(
        "exec = [{{ command = \"/bin/sh\", args = [\"-c\", {script:?}], timeout = \"30s\" }}]"
    ))[0];
    let mut probe = probe(check);
    // Dropped while running, as a reload drops the polls of replaced checks.
    let _ = tokio::time::timeout(Duration::from_millis(500), probe.poll()).await;
    drop(probe);
    let pgid = read_pid(&pidfile);
    let deadline = Instant::now() + Duration::from_secs(5);
    while (!group_members(pgid).is_empty() || !my_zombies().is_empty()) && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(group_members(pgid), Vec::<i32>::new());
    assert_eq!(my_zombies(), Vec::<i32>::new());
}

#[tokio::test]
async fn user_runs_the_command_as_that_user() {
    if !nix::unistd::geteuid().is_root() {
        support::skip::skip("needs root to run a command as another user");
        return;
    }
    let reason = fail_text(
        poll_one(
            r#"exec = [{ command = "/bin/sh", args = ["-c", "echo $(id -u):$(id -g):$(id -G) >&2; exit 1"], user = "nobody" }]"#,
        )
        .await,
    );
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    let (uid, gid) = (nobody.uid.as_raw(), nobody.gid.as_raw());
    assert_eq!(reason, format!("exit 1: {uid}:{gid}:{gid}"));
}

#[tokio::test]
async fn tcp_passes_when_the_connection_is_accepted_and_fails_when_refused() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    assert_eq!(
        poll_one(&format!("tcp = [\"127.0.0.1:{port}\"]")).await,
        Observation::Pass
    );
    assert_eq!(
        poll_one(&format!("tcp = [\"localhost:{port}\"]")).await,
        Observation::Pass
    );
    drop(listener);
    let reason = fail_text(poll_one(&format!("tcp = [\"127.0.0.1:{port}\"]")).await);
    assert_eq!(
        reason,
        format!("cannot connect to 127.0.0.1:{port}: connection refused")
    );
}

#[tokio::test]
async fn a_check_in_a_vrf_without_a_namespace_fails_and_says_which_vrfs_work() {
    let dir = tempfile::tempdir().unwrap();
    let check = &checks_of(r#"tcp = [{ address = "127.0.0.1:53", vrf = "blue" }]"#)[0];
    let mut kinds = Kinds::new().unwrap();
    kinds.namespaces = checks::netns::Namespaces::new(dir.path());
    let reason = fail_text(checks::probe("dns", check, &kinds).poll().await);
    assert_eq!(
        reason,
        format!(
            "VRF blue: no network namespace at {}/blue (no such file; only netns-backed VRFs are supported)",
            dir.path().display()
        )
    );
}

/// Network namespaces made by a test, deleted when dropped.
struct Namespaces(Vec<String>);

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in &self.0 {
            let _ = std::process::Command::new("ip")
                .args(["netns", "delete", ns])
                .status();
        }
    }
}

fn ip(args: &[&str]) {
    let status = std::process::Command::new("ip")
        .args(args)
        .status()
        .unwrap();
    assert!(status.success(), "ip {args:?}");
}

#[tokio::test]
async fn a_vrf_namespace_is_looked_up_at_every_poll() {
    if !nix::unistd::geteuid().is_root() {
        support::skip::skip("needs root to make network namespaces");
        return;
    }
    // Two namespaces, each with an address of its own on lo.
    let tag = std::process::id();
    let (a, b) = (format!("acdvrfa{tag}"), format!("acdvrfb{tag}"));
    let _made = Namespaces(vec![a.clone(), b.clone()]);
    for (ns, address) in [(&a, "10.77.0.1/32"), (&b, "10.88.0.1/32")] {
        ip(&["netns", "add", ns]);
        ip(&["-n", ns, "link", "set", "lo", "up"]);
        ip(&["-n", ns, "addr", "add", address, "dev", "lo"]);
    }
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("blue");
    let check = &checks_of(
        r#"exec = [{ command = "/bin/sh", args = ["-c", "ip -o addr show dev lo | grep -q 10.77.0.1 || { echo 'not in a' >&2; exit 1; }"], vrf = "blue" }]"#,
    )[0];
    let mut kinds = Kinds::new().unwrap();
    kinds.namespaces = checks::netns::Namespaces::new(dir.path());
    let mut probe = checks::probe("dns", check, &kinds);
    // No namespace yet: it fails and says so.
    assert!(fail_text(probe.poll().await).starts_with("VRF blue: no network namespace at "));
    // It appears: the next poll runs in it.
    std::os::unix::fs::symlink(format!("/run/netns/{a}"), &link).unwrap();
    assert_eq!(probe.poll().await, Observation::Pass);
    // Pointed at another namespace: the next poll runs there.
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink(format!("/run/netns/{b}"), &link).unwrap();
    assert_eq!(fail_text(probe.poll().await), "exit 1: not in a");
    // Gone: it fails again; back: it passes.
    std::fs::remove_file(&link).unwrap();
    assert!(fail_text(probe.poll().await).starts_with("VRF blue: no network namespace at "));
    std::os::unix::fs::symlink(format!("/run/netns/{a}"), &link).unwrap();
    assert_eq!(probe.poll().await, Observation::Pass);
}
