//! The command line: usage errors, config errors and the journal lock end with the documented
//! exit codes and one clear line per problem, and nothing reaches FRR.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;
use support::daemon::{one_service_config, Daemon, OneService};

fn anycastd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_anycastd"))
        .args(args)
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn no_arguments_prints_help_and_exits_2() {
    let out = anycastd(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("Usage: anycastd"), "{}", stderr(&out));
}

#[test]
fn output_closed_early_ends_with_141_and_no_panic() {
    // The reading end is closed before the command writes its first line.
    let mut child = Command::new(env!("CARGO_BIN_EXE_anycastd"))
        .arg("schema")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(141), "{}", stderr(&out));
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
}

#[test]
fn an_unknown_subcommand_or_log_level_exits_2() {
    assert_eq!(anycastd(&["frobnicate"]).status.code(), Some(2));
    let out = anycastd(&["run", "--log-level", "verbose"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("[possible values: debug, info, warning, warn, error]"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_negative_grace_is_refused_with_what_a_grace_may_be_not_taken_for_a_flag() {
    for args in [
        &["drain", "dns", "--reason", "x", "--grace", "-5s"][..],
        &["stop", "--grace", "-5s"][..],
    ] {
        let out = anycastd(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("invalid value '-5s' for '--grace <DURATION>': must be 0 (withdraw at once) or a positive duration")
                && !err.contains("unexpected argument"),
            "{args:?}: {err}"
        );
    }
    // replay's what-if grace alike.
    let out = anycastd(&["replay", "dns", "--drain-grace", "-5s"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("invalid value '-5s' for '--drain-grace <DURATION>': must be 0")
            && !err.contains("unexpected argument"),
        "{err}"
    );
    // A sum of units is one duration (`1h1s`), refused here only as longer than an hour.
    let out = anycastd(&["stop", "--grace", "1h1s"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("at most 3600 s"), "{}", stderr(&out));
}

#[test]
fn a_drain_reason_with_a_control_character_is_a_usage_error_that_shows_it_escaped() {
    for (reason, escaped, shown) in [
        ("two\nlines", "\"two\\nlines\"", "'\\n'"),
        ("bell\u{7}", "\"bell\\u{7}\"", "'\\u{7}'"),
        ("\u{1b}[2J", "\"\\u{1b}[2J\"", "'\\u{1b}'"),
    ] {
        let out = anycastd(&["drain", "dns", "--reason", reason]);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        // The socket's words, and the value escaped: nothing raw reaches the terminal.
        let first = stderr(&out).lines().next().unwrap_or_default().to_owned();
        assert_eq!(
            first,
            format!(
                "error: invalid value {escaped} for '--reason <REASON>': must not contain control \
                 characters (it has {shown}): one line of text, as history and status print it"
            )
        );
        assert!(
            !stderr(&out).chars().any(|c| c.is_control() && c != '\n'),
            "{:?}",
            stderr(&out)
        );
    }
    // A reason that is text is not refused by the parser (no daemon answers here: 69).
    let out = anycastd(&[
        "drain",
        "dns",
        "--reason",
        "kernel upgrade – ticket #42",
        "--socket",
        "/nonexistent/anycastd.sock",
    ]);
    assert_ne!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn a_missing_config_or_a_directory_exits_66_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.toml");
    let out = anycastd(&["run", "-c", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(66));
    assert_eq!(
        stderr(&out),
        format!("{}: cannot read config: no such file\n", missing.display())
    );
    let out = anycastd(&["run", "--configuration", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(66));
    assert!(
        stderr(&out).ends_with("cannot read config: is a directory\n"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_invalid_config_exits_65_with_every_problem_and_never_runs_vtysh() {
    let dir = tempfile::tempdir().unwrap();
    let calls = dir.path().join("calls");
    let vtysh = dir.path().join("vtysh");
    std::fs::write(
        &vtysh,
        format!("#!/bin/sh\necho \"$@\" >> {}\n", calls.display()),
    )
    .unwrap();
    std::fs::set_permissions(&vtysh, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[services.dns]\nprefixes.frrouting = [{{ prefix = \"203.0.113.53\", vtysh = {:?} }}]\nchecks.cabourotte = [\"dns\"]\n\n\
             [services.ntp]\nprefixes.frrouting = [\"203.0.113.123/24\"]\nchecks.cabourotte = [{{ name = \"ntp\", interval = 0 }}]\n",
            vtysh.display().to_string()
        ),
    )
    .unwrap();
    let out = anycastd(&["run", "-c", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(65));
    let file = config.display().to_string();
    assert_eq!(
        stderr(&out),
        format!(
            "{file}:6: services.ntp.prefixes.frrouting[0]: \"203.0.113.123/24\" has host bits set (did you mean \"203.0.113.0/24\"?)\n\
             {file}:7: services.ntp.checks.cabourotte[0].interval: must be greater than 0\n"
        )
    );
    assert!(
        !Path::new(&calls).exists(),
        "vtysh was run for an invalid config"
    );
}

#[test]
fn a_second_daemon_on_the_same_journal_exits_69_naming_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    // The first daemon runs and announces nothing.
    let config = one_service_config(
        dir.path(),
        r#"[{ name = "dns", url = "http://127.0.0.1:9" }]"#,
        OneService::default(),
    );
    let mut first = Daemon::start(&config, &dir.path().join("log"));
    first.wait_log("Starting service");
    let out = anycastd(&["run", "-c", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(69));
    assert!(
        stderr(&out).contains(&format!("held by another anycastd (pid {})", first.pid())),
        "{}",
        stderr(&out)
    );
    first.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(
        first.wait(Duration::from_secs(30)),
        0,
        "{}",
        first.log_text()
    );
}

#[test]
fn json_logs_are_one_object_per_line_with_structured_fields() {
    let dir = tempfile::tempdir().unwrap();
    let config = one_service_config(
        dir.path(),
        r#"[{ name = "dns", url = "http://127.0.0.1:9", interval = "100ms" }]"#,
        OneService::default(),
    );
    let mut daemon = Daemon::start(&config, &dir.path().join("log"));
    daemon.wait_log("Cabourotte health check");
    daemon.signal(nix::sys::signal::Signal::SIGINT);
    assert_eq!(daemon.wait(Duration::from_secs(30)), 0);
    let log = daemon.log_text();
    let events: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let failed = events
        .iter()
        .find(|e| e["message"] == "Cabourotte health check \"dns\" failed.")
        .unwrap_or_else(|| panic!("{log}"));
    assert_eq!(failed["service"], "dns");
    assert_eq!(failed["level"], "WARN");
    assert!(
        failed["reason"]
            .as_str()
            .unwrap()
            .starts_with("cannot connect"),
        "{failed}"
    );
    assert!(events
        .iter()
        .any(|e| e["message"] == "Received SIGINT, terminating."));
    // The failure is logged on its edge, not on every poll.
    let repeats = events
        .iter()
        .filter(|e| e["message"] == "Cabourotte health check \"dns\" failed.")
        .count();
    assert_eq!(repeats, 1, "{log}");
}

/// The daemon's environment as its process sees it.
fn environ(pid: i32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/environ"))
        .unwrap()
        .split(|b| *b == 0)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

#[test]
fn run_restarts_itself_in_place_with_the_malloc_setting_unless_the_operator_set_one() {
    let dir = tempfile::tempdir().unwrap();
    let config = one_service_config(
        dir.path(),
        r#"[{ name = "dns", url = "http://127.0.0.1:9" }]"#,
        OneService::default(),
    );
    for (given, expected) in [(None, "65536"), (Some("131072"), "131072")] {
        let env: Vec<(&str, &str)> = given
            .map(|v| vec![("MALLOC_MMAP_THRESHOLD_", v)])
            .unwrap_or_default();
        let mut daemon = Daemon::start_with_env(&config, &dir.path().join("log"), &env);
        daemon.wait_log("Starting service");
        // Same process (exec, not a child): the pid a supervisor knows is the daemon's.
        let settings: Vec<String> = environ(daemon.pid())
            .into_iter()
            .filter(|v| v.starts_with("MALLOC_MMAP_THRESHOLD_="))
            .collect();
        assert_eq!(
            settings,
            vec![format!("MALLOC_MMAP_THRESHOLD_={expected}")],
            "given {given:?}"
        );
        daemon.signal(nix::sys::signal::Signal::SIGTERM);
        assert_eq!(
            daemon.wait(Duration::from_secs(30)),
            0,
            "{}",
            daemon.log_text()
        );
    }
}

#[test]
fn check_config_summarises_a_valid_file_and_lists_every_error_of_an_invalid_one() {
    let out = anycastd(&["check-config", "-c", "examples/config.toml"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "config ok: 2 service(s), 4 prefix(es), 3 check(s)\n"
    );
    let out = anycastd(&["check-config", "-c", "tests/golden/config/bad_checks.toml"]);
    assert_eq!(out.status.code(), Some(65));
    assert_eq!(
        stderr(&out),
        std::fs::read_to_string("tests/golden/config/bad_checks.err").unwrap()
    );
}

#[test]
fn completions_and_the_man_page_come_from_the_command_line_definition() {
    let out = anycastd(&["completions", "bash"]);
    assert_eq!(out.status.code(), Some(0));
    let script = String::from_utf8_lossy(&out.stdout);
    for sub in [
        "run",
        "history",
        "status",
        "drain",
        "undrain",
        "reload",
        "check-config",
        "stop",
    ] {
        assert!(script.contains(sub), "{sub} missing from the completion");
    }
    let out = anycastd(&["man"]);
    assert_eq!(out.status.code(), Some(0));
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(page.contains("\n.TH ANYCASTD 1 "), "{page}");
    // One complete page: every subcommand, every config key and exit code of the documentation,
    // and no reference to a page that does not exist.
    for sub in [
        "run",
        "history",
        "status",
        "drain",
        "undrain",
        "replay",
        "report",
        "reload",
        "check-config",
        "completions",
        "schema",
        "man",
        "stop",
    ] {
        assert!(
            page.contains(&format!(".SS {sub}\n")),
            "{sub} missing from the page"
        );
    }
    for key in [
        "services.NAME.rise",
        "[journal] cache_mib",
        "[frrouting] reconcile_interval",
        "[bird] include_dir",
        "services.NAME.prefixes.bird",
    ] {
        assert!(page.contains(&key.replace('-', "\\-")), "{key} missing");
    }
    for code in ["0", "2", "65", "66", "69", "70", "77"] {
        assert!(
            page.contains(&format!(".TP\n\\fB{code}\\fR")),
            "exit code {code} missing"
        );
    }
    assert!(
        !page.contains("anycastd\\-history"),
        "names a page that is not generated"
    );
    // man renders it without complaint.
    match std::process::Command::new("man")
        .args(["--warnings", "-l", "-"])
        .env("MANWIDTH", "100")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        Err(_) => {
            support::skip::skip("rendering the page: man is missing (apt-get install man-db)")
        }
        Ok(mut child) => {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(&out.stdout).unwrap();
            let rendered = child.wait_with_output().unwrap();
            let warnings = String::from_utf8_lossy(&rendered.stderr);
            assert!(warnings.trim().is_empty(), "{warnings}");
            assert!(String::from_utf8_lossy(&rendered.stdout).contains("EXIT STATUS"));
        }
    }
}

#[test]
fn a_config_with_exec_checks_that_others_can_write_or_own_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        "[services.ntp]\nprefixes.frrouting = [\"203.0.113.123\"]\n\n[services.ntp.checks]\nexec = [\"/bin/true\"]\n",
    )
    .unwrap();
    let file = config.display().to_string();
    let check = || anycastd(&["check-config", "-c", &file]);
    std::fs::set_permissions(&config, PermissionsExt::from_mode(0o644)).unwrap();
    assert_eq!(check().status.code(), Some(0), "{}", stderr(&check()));
    for (mode, who) in [
        (0o664, "its group"),
        (0o646, "others"),
        (0o666, "its group and others"),
    ] {
        std::fs::set_permissions(&config, PermissionsExt::from_mode(mode)).unwrap();
        let out = check();
        assert_eq!(out.status.code(), Some(65));
        assert_eq!(
            stderr(&out),
            format!("{file}:5: services.ntp.checks.exec[0]: exec checks and hooks make this file a program, but {who} can write it (mode {mode:04o}): chmod go-w it\n")
        );
        // The daemon refuses it the same way, before anything else.
        let out = anycastd(&["run", "-c", &file]);
        assert_eq!(out.status.code(), Some(65));
    }
    // The same file without exec checks is not a program: its mode is the operator's business.
    std::fs::write(
        &config,
        "[services.ntp]\nprefixes.frrouting = [\"203.0.113.123\"]\nchecks.tcp = [\"127.0.0.1:123\"]\n",
    )
    .unwrap();
    assert_eq!(check().status.code(), Some(0));
    if nix::unistd::geteuid().is_root() {
        std::fs::write(
            &config,
            "[services.ntp]\nprefixes.frrouting = [\"203.0.113.123\"]\nchecks.exec = [\"/bin/true\"]\n",
        )
        .unwrap();
        std::fs::set_permissions(&config, PermissionsExt::from_mode(0o644)).unwrap();
        let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
        nix::unistd::chown(&config, Some(nobody.uid), None).unwrap();
        let out = check();
        assert_eq!(out.status.code(), Some(65));
        assert_eq!(
            stderr(&out),
            format!(
                "{file}:3: services.ntp.checks.exec[0]: exec checks and hooks make this file a program, but it is owned by uid {}, neither root nor the daemon's user (uid 0): chown it\n",
                nobody.uid
            )
        );
    } else {
        support::skip::skip("the ownership half: needs root to chown");
    }
}

/// The environment variables the command line reads, removed from the test's own environment
/// so that only the values a case sets count.
const CLI_ENVIRONMENT: [&str; 5] = [
    "CONFIG",
    "ANYCASTD_SOCKET",
    "LOG_FORMAT",
    "LOG_LEVEL",
    "NO_COLOR",
];

/// `anycastd ARGS` in `dir` with only `env` of the command line's variables set.
fn anycastd_with_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_anycastd"));
    for name in CLI_ENVIRONMENT {
        command.env_remove(name);
    }
    command
        .current_dir(dir)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// What `anycastd ARGS` prints on a terminal (util-linux `script` gives it one), and its exit
/// code.
fn on_a_terminal(dir: &Path, args: &str, env: &[(&str, &str)]) -> (String, Option<i32>) {
    let mut command = Command::new("script");
    for name in CLI_ENVIRONMENT {
        command.env_remove(name);
    }
    let out = command
        .current_dir(dir)
        .envs(env.iter().copied())
        .arg("-qec")
        .arg(format!("{} {args}", env!("CARGO_BIN_EXE_anycastd")))
        .arg("/dev/null")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        out.status.code(),
    )
}

#[test]
fn every_environment_variable_takes_odd_values_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let missing = "run -c nope.toml --log-format human";

    // NO_COLOR (no-color.org): any value but an empty one turns colours off; an empty one is
    // ignored. Never a usage error.
    let (colours, code) = on_a_terminal(d, missing, &[]);
    assert_eq!(code, Some(66), "{colours}");
    assert!(
        colours.contains("\x1b["),
        "colours on a terminal: {colours:?}"
    );
    for value in ["", "1", "yes", "0", "false", "garbage"] {
        let (text, code) = on_a_terminal(d, missing, &[("NO_COLOR", value)]);
        assert_eq!(code, Some(66), "NO_COLOR={value:?}: {text}");
        assert!(text.contains("Reading configuration"), "{text}");
        assert_eq!(
            text.contains("\x1b["),
            value.is_empty(),
            "NO_COLOR={value:?}: {text:?}"
        );
    }
    let out = anycastd_with_env(
        d,
        &["check-config", "-c", "nope.toml"],
        &[("NO_COLOR", "1")],
    );
    assert_eq!(
        (out.status.code(), stderr(&out).as_str()),
        (Some(66), "nope.toml: cannot read config: no such file\n")
    );

    // LOG_FORMAT and LOG_LEVEL: empty is unset (the defaults: JSON off a terminal, info); a
    // valid value in any case is taken; another is a usage error naming the variable.
    let run_missing = ["run", "-c", "nope.toml"];
    for (env, first) in [
        (vec![("LOG_FORMAT", "")], "{"),
        (vec![("LOG_FORMAT", "JSON")], "{"),
        (vec![("LOG_FORMAT", "logfmt")], "timestamp="),
        (vec![("LOG_FORMAT", "Human"), ("LOG_LEVEL", "")], "20"),
        (vec![("LOG_LEVEL", "DEBUG")], "{"),
    ] {
        let out = anycastd_with_env(d, &run_missing, &env);
        assert_eq!(out.status.code(), Some(66), "{env:?}: {}", stderr(&out));
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &stderr(&out);
        assert!(text.starts_with(first), "{env:?}: {text}");
        assert!(text.contains("Reading configuration"), "{env:?}: {text}");
    }
    for level in ["warn", "WARNING", "error"] {
        let out = anycastd_with_env(d, &run_missing, &[("LOG_LEVEL", level)]);
        assert_eq!(out.status.code(), Some(66));
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &stderr(&out);
        assert!(
            !text.contains("Reading configuration"),
            "LOG_LEVEL={level}: {text}"
        );
    }
    for (name, value, possible) in [
        ("LOG_FORMAT", "1", "human, json, logfmt"),
        ("LOG_FORMAT", "garbage", "human, json, logfmt"),
        ("LOG_LEVEL", "1", "debug, info, warning, warn, error"),
        ("LOG_LEVEL", "yes", "debug, info, warning, warn, error"),
        ("LOG_LEVEL", "trace", "debug, info, warning, warn, error"),
    ] {
        let out = anycastd_with_env(d, &["check-config", "-c", "nope.toml"], &[(name, value)]);
        assert_eq!(out.status.code(), Some(2), "{name}={value}");
        assert_eq!(
            stderr(&out),
            format!(
                "error: invalid value '{value}' for environment variable {name} [possible values: {possible}]\n"
            )
        );
    }
    // An option wins over its variable, even an invalid one.
    let out = anycastd_with_env(
        d,
        &["check-config", "-c", "nope.toml", "--log-level", "info"],
        &[("LOG_LEVEL", "trace")],
    );
    assert_eq!(out.status.code(), Some(66), "{}", stderr(&out));

    // CONFIG: empty is unset (the default path); another value is the file's path.
    let out = anycastd_with_env(d, &["check-config"], &[("CONFIG", "")]);
    if !Path::new("/etc/anycastd/config.toml").exists() {
        assert_eq!(
            (out.status.code(), stderr(&out).as_str()),
            (
                Some(66),
                "/etc/anycastd/config.toml: cannot read config: no such file\n"
            )
        );
    }
    for value in ["1", "yes", "garbage"] {
        let out = anycastd_with_env(d, &["check-config"], &[("CONFIG", value)]);
        assert_eq!(
            (out.status.code(), stderr(&out)),
            (
                Some(66),
                format!("{value}: cannot read config: no such file\n")
            )
        );
    }
    let config = one_service_config(
        d,
        r#"[{ name = "dns", url = "http://127.0.0.1:9" }]"#,
        OneService::default(),
    );
    let out = anycastd_with_env(d, &["check-config"], &[("CONFIG", "config.toml")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    // ANYCASTD_SOCKET: empty is unset (the config's socket); another value is the socket.
    let mut daemon = Daemon::start(&config, &d.join("log"));
    daemon.wait_log("Starting service");
    let status = |env: &[(&str, &str)]| anycastd_with_env(d, &["status", "-c", "config.toml"], env);
    for env in [vec![], vec![("ANYCASTD_SOCKET", "")]] {
        let out = status(&env);
        assert_eq!(out.status.code(), Some(0), "{env:?}: {}", stderr(&out));
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("not running"),
            "{env:?}: the daemon answered"
        );
    }
    for value in ["1", "garbage"] {
        let out = status(&[("ANYCASTD_SOCKET", value)]);
        assert_ne!(out.status.code(), Some(0), "ANYCASTD_SOCKET={value}");
        assert!(
            stderr(&out).contains(&format!("control socket {value} ")),
            "ANYCASTD_SOCKET={value}: {}",
            stderr(&out)
        );
    }
    let socket = d.join("ctl.sock");
    let out = anycastd_with_env(
        d,
        &["status", "-c", "nope.toml"],
        &[("ANYCASTD_SOCKET", socket.to_str().unwrap())],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("dns"));
    daemon.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(daemon.wait(Duration::from_secs(20)), 0);
}

/// A vtysh wrapper script that names its vty socket through a variable: check-config says
/// restart detection will be off for it (exit 0, the file is valid) and which key to set; a
/// literal one, or the key, needs no warning.
#[test]
fn check_config_warns_of_a_vtysh_wrapper_whose_vty_socket_cannot_be_known() {
    let dir = tempfile::tempdir().unwrap();
    let script = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let variable = script(
        "vtysh-variable",
        "#!/bin/sh\nD=/run/frr/blue\nexec vtysh --vty_socket \"$D\" \"$@\"\n",
    );
    let literal = script(
        "vtysh-literal",
        "#!/bin/sh\nexec vtysh --vty_socket /run/frr/blue \"$@\" # not --vty_socket /x\n",
    );
    let config = |frrouting: &str, vtysh: &str| {
        let path = dir.path().join("config.toml");
        std::fs::write(
            &path,
            format!(
                "[frrouting]\n{frrouting}\n[services.dns]\nprefixes.frrouting = [{{ prefix = \"203.0.113.53\", vtysh = \"{vtysh}\" }}]\nchecks.tcp = [\"127.0.0.1:53\"]\n"
            ),
        )
        .unwrap();
        anycastd(&["check-config", "-c", path.to_str().unwrap()])
    };
    let out = config("", &variable);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let warning = format!(
        "warning: restart detection off for vtysh {variable}: {variable} is a script that names its vty socket through a variable ($D); set [frrouting] vty_sockets = {{ \"{variable}\" = \"DIR\" }}, DIR being the --vty_socket of its bgpd; a bgpd restart would be repaired only within reconcile_interval (30s)\n"
    );
    assert_eq!(stderr(&out), warning);
    for (frrouting, vtysh) in [
        (
            format!("vty_sockets = {{ \"{variable}\" = \"/run/frr/blue\" }}"),
            &variable,
        ),
        (String::new(), &literal),
    ] {
        let out = config(&frrouting, vtysh);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert_eq!(stderr(&out), "", "{vtysh}");
    }
}

#[test]
fn check_config_refuses_bad_graded_announcement_keys_with_exit_65_and_file_line_key() {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/config/bad_graded.toml")
        .display()
        .to_string();
    let out = anycastd(&["check-config", "-c", &file]);
    assert_eq!(out.status.code(), Some(65), "{}", stderr(&out));
    let err = stderr(&out);
    for (line, key) in [
        (5, "services.a.on_unhealthy"),
        (6, "services.a.deprefer.as_path_prepend"),
        (6, "services.a.deprefer.color: unknown key"),
        (11, "services.b.deprefer.as_path_prepend"),
        (11, "services.b.deprefer.med"),
        (
            11,
            "services.b.deprefer.communities[0]: '65536:1': 65536 is out of range",
        ),
        (
            17,
            "services.c.on_unhealthy: \"deprefer\" needs a deprefer table",
        ),
        // A community listed twice (65535:0, GRACEFUL_SHUTDOWN, is allowed).
        (
            28,
            "services.e.deprefer.communities[2]: 65000:666 is listed twice (also communities[0])",
        ),
        (
            28,
            "services.e.deprefer.large_communities[1]: 1:2:3 is listed twice (also large_communities[0])",
        ),
    ] {
        assert!(
            err.lines()
                .any(|l| l.starts_with(&format!("{file}:{line}: {key}"))),
            "no {file}:{line}: {key} in\n{err}"
        );
    }
}
