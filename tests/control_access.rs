//! Who may do what through the control socket (SO_PEERCRED): a member of `[control] group`
//! reads (status, history) but cannot act (drain, reload, stop); anyone else is refused.
//! Runs the client as uid `nobody` with chosen gids; needs root. And what the socket takes:
//! nothing the command line refuses, every rejection answered with an error line (a seeded
//! property test over request lines sent straight to the socket).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;
use support::rng::Rng;

use anycastd::control::protocol::parse_answer;
use anycastd::control::Response;
use nix::sys::signal::Signal;
use serde_json::{json, Value};
use std::io::{Read, Write};
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

/// The longest duration any option takes, in ms (1,000,000,000 s, inclusive).
const LONGEST_MS: u64 = 1_000_000_000_000;

/// Whether a duration field's value is one the command line can send.
fn duration_ok(value: &Value) -> bool {
    match value {
        Value::Null => true,
        v => v.as_u64().is_some_and(|ms| (1..=LONGEST_MS).contains(&ms)),
    }
}

/// Whether a count field's value is in `range` (`null`: not given).
fn count_ok(value: &Value, range: std::ops::RangeInclusive<u64>) -> bool {
    match value {
        Value::Null => true,
        v => v.as_u64().is_some_and(|n| range.contains(&n)),
    }
}

/// Whether a time field's value is a time the command line can give.
fn time_ok(value: &Value) -> bool {
    match value {
        Value::Null => true,
        v => v
            .as_i64()
            .is_some_and(|ms| chrono::DateTime::from_timestamp_millis(ms).is_some()),
    }
}

/// A random request object, and whether the command line could have sent it (`false`: it
/// breaks one of its rules, so the daemon must refuse it). The pools hold the edges of each
/// rule, values of the wrong type, and the issue's `for_ms` of u64::MAX.
fn random_request(rng: &mut Rng) -> (Value, bool) {
    let durations = [
        json!(null),
        json!(0),
        json!(1),
        json!(50),
        json!(LONGEST_MS - 1),
        json!(LONGEST_MS),
        json!(LONGEST_MS + 1),
        json!(u64::MAX),
        json!(-1),
        json!(1.5),
        json!("10s"),
    ];
    // Waits that pass are short: the fake FRR never shows an announcement.
    let waits = [
        json!(null),
        json!(0),
        json!(20),
        json!(LONGEST_MS + 1),
        json!(u64::MAX),
        json!(-5),
        json!("x"),
    ];
    let counts = [
        json!(null),
        json!(0),
        json!(1),
        json!(5),
        json!(1000),
        json!(1001),
        json!(u64::from(u32::MAX) + 1),
        json!(-1),
    ];
    let times = [
        json!(null),
        json!(0),
        json!(-1),
        json!(1_800_000_000_000_i64),
        json!(1_700_000_000_000_i64),
        json!(i64::MAX),
        json!(i64::MIN),
        json!("yesterday"),
    ];
    let services = [
        json!("dns"),
        json!("nope"),
        json!(null),
        json!(""),
        json!(5),
    ];
    let reasons = [
        json!("maintenance"),
        json!(""),
        json!("   "),
        json!("\u{0}"),
        json!("two\nlines"),
        json!("é".repeat(300)),
        json!(null),
        json!(7),
    ];
    let mut ok = true;
    let mut object = serde_json::Map::new();
    let version = if rng.chance(95) {
        json!(1)
    } else {
        rng.pick(&[json!(2), json!(0), json!("1"), json!(null)])
    };
    ok &= version == json!(1);
    object.insert("version".into(), version);
    let command = rng.pick(&[
        "status", "history", "drain", "undrain", "replay", "report", "reload", "reboot",
    ]);
    object.insert("command".into(), json!(command));
    let set =
        |object: &mut serde_json::Map<String, Value>, rng: &mut Rng, key: &str, pool: &[Value]| {
            let value = rng.pick(pool);
            if !value.is_null() || rng.chance(50) {
                object.insert(key.into(), value.clone());
            }
            value
        };
    match command {
        "status" => {
            let service = set(&mut object, rng, "service", &services);
            ok &= service.is_null() || service.is_string();
        }
        "history" => {
            let service = set(&mut object, rng, "service", &services);
            let limit = set(&mut object, rng, "limit", &counts);
            let tail = set(&mut object, rng, "tail", &counts);
            let since = set(&mut object, rng, "since_ms", &times);
            let until = set(&mut object, rng, "until_ms", &times);
            ok &= service.is_null() || service.is_string();
            ok &= count_ok(&limit, 1..=u64::MAX) && count_ok(&tail, 1..=u64::MAX);
            ok &= limit.is_null() || tail.is_null();
            ok &= time_ok(&since) && time_ok(&until);
            if let (Some(s), Some(u)) = (since.as_i64(), until.as_i64()) {
                ok &= s <= u;
            }
        }
        "drain" => {
            let service = set(&mut object, rng, "service", &services);
            let reason = rng.pick(&reasons);
            if !reason.is_null() || rng.chance(50) {
                object.insert("reason".into(), reason.clone());
            }
            let for_ms = set(&mut object, rng, "for_ms", &durations);
            let wait_ms = set(&mut object, rng, "wait_ms", &waits);
            ok &= service.is_null() || service.is_string();
            ok &= reason
                .as_str()
                .is_some_and(|r| !r.trim().is_empty() && !r.chars().any(char::is_control));
            ok &= duration_ok(&for_ms) && duration_ok(&wait_ms);
        }
        "undrain" => {
            let service = set(&mut object, rng, "service", &services);
            let wait_ms = set(&mut object, rng, "wait_ms", &waits);
            ok &= service.is_null() || service.is_string();
            ok &= duration_ok(&wait_ms);
        }
        "replay" => {
            let service = rng.pick(&services);
            if !service.is_null() {
                object.insert("service".into(), service.clone());
            }
            let since = set(&mut object, rng, "since_ms", &times);
            let until = set(&mut object, rng, "until_ms", &times);
            let mut what_if = serde_json::Map::new();
            let rise = set(&mut what_if, rng, "rise", &counts);
            let fall = set(&mut what_if, rng, "fall", &counts);
            if rng.chance(30) {
                let (penalty, suppress, reuse) =
                    (rng.pick(&counts), rng.pick(&counts), rng.pick(&counts));
                let half_life = rng.pick(&durations);
                let max_suppress = rng.pick(&durations);
                ok &= [&penalty, &suppress, &reuse]
                    .iter()
                    .all(|v| v.as_u64().is_some_and(|n| (1..=1_000_000).contains(&n)));
                ok &= reuse.as_u64() < suppress.as_u64();
                ok &= [&half_life, &max_suppress]
                    .iter()
                    .all(|v| !v.is_null() && duration_ok(v));
                what_if.insert(
                    "damping".into(),
                    json!({"penalty": penalty, "suppress": suppress, "reuse": reuse,
                           "half_life_ms": half_life, "max_suppress_ms": max_suppress}),
                );
            }
            object.insert("what_if".into(), Value::Object(what_if));
            ok &= service.is_string();
            ok &= time_ok(&since) && time_ok(&until);
            if let (Some(s), Some(u)) = (since.as_i64(), until.as_i64()) {
                ok &= s <= u;
            }
            ok &= count_ok(&rise, 1..=1000) && count_ok(&fall, 1..=1000);
        }
        "report" => {
            let since = set(&mut object, rng, "since_ms", &times);
            let until = set(&mut object, rng, "until_ms", &times);
            ok &= time_ok(&since) && time_ok(&until);
            if let (Some(s), Some(u)) = (since.as_i64(), until.as_i64()) {
                ok &= s <= u;
            }
        }
        "reload" => {}
        _ => ok = false,
    }
    (Value::Object(object), ok)
}

/// Send `line` (bytes, as given) and read every answer line until the daemon hangs up.
fn exchange(socket: &std::path::Path, line: &[u8]) -> Vec<String> {
    let mut stream = std::os::unix::net::UnixStream::connect(socket).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let _ = stream.write_all(line);
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .unwrap_or_else(|e| panic!("{e}: after {}", String::from_utf8_lossy(line)));
    answer.lines().map(str::to_owned).collect()
}

#[test]
fn the_socket_refuses_what_the_command_line_refuses_with_an_error_line_and_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let config = one_service_config(
        dir.path(),
        r#"[{ name = "dns", url = "http://127.0.0.1:9" }]"#,
        OneService::default(),
    );
    let mut daemon = Daemon::start(&config, &dir.path().join("log"));
    daemon.wait_log("Starting service");
    let socket = dir.path().join("ctl.sock");
    let error_of = |answers: &[String]| -> Option<(u8, String)> {
        match parse_answer(answers.first()?) {
            Ok(Response::Error { code, message }) => Some((code, message)),
            _ => None,
        }
    };

    // The operator's two findings: a drain for u64::MAX ms, refused in the CLI's words (it
    // said "drain ends by itself at 9223372036854775807"), and a line of invalid UTF-8.
    let answers = exchange(
        &socket,
        b"{\"version\":1,\"command\":\"drain\",\"service\":\"dns\",\"reason\":\"x\",\"for_ms\":18446744073709551615,\"wait_ms\":null}\n",
    );
    assert_eq!(
        error_of(&answers),
        Some((
            2,
            "invalid request: for_ms 18446744073709551615: too long: at most 1000000000 seconds (about 31 years)"
                .to_owned()
        )),
        "{answers:?}"
    );
    let answers = exchange(&socket, b"{\"version\":1,\"command\":\"st\xffatus\"}\n");
    let (code, message) = error_of(&answers).unwrap_or_else(|| panic!("{answers:?}"));
    assert_eq!(code, 2);
    assert!(
        message.starts_with("malformed request: not UTF-8"),
        "{message}"
    );
    let cli = Command::new(env!("CARGO_BIN_EXE_anycastd"))
        .args(["drain", "dns", "--reason", "x", "--for", "999999d", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&cli.stderr)
            .contains("too long: at most 1000000000 seconds (about 31 years)"),
        "the same words as the command line"
    );

    // Random requests: every one answered with lines that parse, every one breaking a rule
    // of the command line refused with a usage error.
    let mut rng = Rng(0x5eed_2027);
    let (mut refused, mut taken) = (0, 0);
    for round in 0..400 {
        let (request, ok) = random_request(&mut rng);
        let mut line = serde_json::to_vec(&request).unwrap();
        let mut ok = ok;
        match rng.below(20) {
            // Mangled: a byte that is not UTF-8, cut short, no newline.
            0 => {
                let at = rng.below(line.len() as u64) as usize;
                line.insert(at, 0xC3);
                line.insert(at + 1, b'(');
                ok = false;
            }
            1 => {
                line.truncate(rng.below(line.len() as u64) as usize);
                ok = false;
            }
            2 => {
                let answers = exchange(&socket, &line);
                assert_eq!(
                    error_of(&answers).map(|(code, _)| code),
                    Some(2),
                    "round {round}: no newline: {answers:?}"
                );
                continue;
            }
            _ => {}
        }
        line.push(b'\n');
        let answers = exchange(&socket, &line);
        assert!(
            !answers.is_empty(),
            "round {round}: no answer to {}",
            String::from_utf8_lossy(&line)
        );
        for answer in &answers {
            assert!(
                parse_answer(answer).is_ok(),
                "round {round}: unreadable answer {answer:?}"
            );
        }
        if ok {
            taken += 1;
        } else {
            refused += 1;
            assert_eq!(
                error_of(&answers).map(|(code, _)| code),
                Some(2),
                "round {round}: {} was taken: {answers:?}",
                String::from_utf8_lossy(&line)
            );
        }
    }
    assert!(
        refused > 50 && taken > 50,
        "{refused} refused, {taken} taken"
    );

    // Whatever was taken, the daemon runs and no drain ends later than a drain may last.
    assert!(daemon.running(), "the daemon survived every request");
    let out = Command::new(env!("CARGO_BIN_EXE_anycastd"))
        .args(["status", "--json", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    let now = anycastd::journal_handle::now_ms();
    if let Some(expires) = status["services"][0]["drain"]["expires_at_ms"].as_i64() {
        assert!(expires <= now + LONGEST_MS as i64, "{status}");
    }
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait(Duration::from_secs(30)), 0);
}
