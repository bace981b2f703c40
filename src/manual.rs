//! `anycastd man`: one complete manual page — every subcommand with its options (from the
//! command-line definition), every config key with its default and every exit code (from the
//! tables of docs/configuration.md and docs/operating.md, compiled in, so the page and the
//! documentation cannot disagree), files and
//! environment. It names no other anycastd page: there is only this one.

use clap_mangen::roff::{bold, italic, roman, Roff};
use std::io::Write;

/// The documents whose tables the page quotes: every config key, and the exit codes.
const DOCS: [&str; 2] = [
    include_str!("../docs/configuration.md"),
    include_str!("../docs/operating.md"),
];

/// The rows of the Markdown table that follows `heading` in the documentation (cells, trimmed,
/// without backticks), header and separator excluded.
pub fn docs_table(heading: &str) -> Vec<Vec<String>> {
    let Some(doc) = DOCS
        .iter()
        .find(|doc| doc.lines().any(|l| l.trim() == heading))
    else {
        return Vec::new();
    };
    let mut lines = doc.lines().skip_while(|l| l.trim() != heading).skip(1);
    let mut rows = Vec::new();
    let mut in_table = false;
    for line in lines.by_ref() {
        let line = line.trim_end();
        if !line.starts_with('|') {
            if in_table {
                break;
            }
            continue;
        }
        in_table = true;
        let cells: Vec<String> = line
            .trim_matches('|')
            .split(" | ")
            .map(|c| c.trim().replace('`', ""))
            .collect();
        rows.push(cells);
    }
    rows.into_iter().skip(2).collect()
}

fn paragraph(roff: &mut Roff, text: &str) {
    roff.control("PP", []).text([roman(text)]);
}

fn options(roff: &mut Roff, command: &clap::Command) {
    for arg in command.get_arguments() {
        if arg.is_hide_set() {
            continue;
        }
        let mut names = Vec::new();
        if let Some(short) = arg.get_short() {
            names.push(format!("-{short}"));
        }
        if let Some(long) = arg.get_long() {
            names.push(format!("--{long}"));
        }
        let value = arg.get_value_names().map(|v| {
            v.iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        });
        let takes_value = arg.get_num_args().is_some_and(|n| n.takes_values())
            && !matches!(arg.get_action(), clap::ArgAction::SetTrue);
        let head = if names.is_empty() {
            value.unwrap_or_else(|| arg.get_id().to_string().to_uppercase())
        } else if takes_value {
            format!(
                "{} {}",
                names.join(", "),
                value.unwrap_or_else(|| arg.get_id().to_string().to_uppercase())
            )
        } else {
            names.join(", ")
        };
        let mut help = arg
            .get_long_help()
            .or(arg.get_help())
            .map(|h| h.to_string())
            .unwrap_or_default();
        let defaults: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        if !defaults.is_empty() && takes_value {
            help.push_str(&format!(" [default: {}]", defaults.join(", ")));
        }
        if let Some(env) = arg.get_env() {
            help.push_str(&format!(" [env: {}]", env.to_string_lossy()));
        }
        roff.control("TP", [])
            .text([bold(head)])
            .text([roman(help)]);
    }
}

/// The page, in roff.
pub fn render(command: clap::Command, out: &mut dyn Write) -> std::io::Result<()> {
    let mut command = command;
    command.build();
    let mut roff = Roff::new();
    roff.control(
        "TH",
        [
            "ANYCASTD",
            "1",
            "",
            &format!("anycastd {}", env!("CARGO_PKG_VERSION")),
            "User Commands",
        ],
    );
    roff.control("SH", ["NAME"]).text([roman(
        "anycastd - announce anycast service prefixes through FRRouting, BIRD or GoBGP while their health checks pass",
    )]);
    roff.control("SH", ["SYNOPSIS"]);
    for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
        let usage = sub
            .clone()
            .bin_name(format!("anycastd {}", sub.get_name()))
            .render_usage()
            .to_string();
        let usage = usage.trim_start_matches("Usage: ").to_owned();
        roff.control("PP", []).text([bold(usage)]);
    }
    roff.control("SH", ["DESCRIPTION"]);
    paragraph(
        &mut roff,
        "anycastd announces the prefixes of anycast services (DNS resolvers, NTP, load balancers) over BGP through the local FRRouting, BIRD or GoBGP, only while the health checks of the service pass (all, or as many as `require` asks; built in or read from Cabourotte), and withdraws them when they fail or the daemon stops. Every service is a state machine (starting, healthy, unhealthy, draining) whose decisions are journaled before they are acted on; the journal answers what happened (history) and what other settings would have done (replay).",
    );
    paragraph(
        &mut roff,
        "Client commands (status, history, replay, drain, undrain, reload, stop) talk to the running daemon over its control socket and need only the socket's path: they work while the config file does not validate. history, replay and status read the journal directly when no daemon runs.",
    );
    roff.control("SH", ["GLOBAL OPTIONS"]);
    options(&mut roff, &command);
    roff.control("SH", ["COMMANDS"]);
    for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
        roff.control("SS", [sub.get_name()]);
        if let Some(about) = sub.get_long_about().or(sub.get_about()) {
            paragraph(&mut roff, &about.to_string());
        }
        options(&mut roff, sub);
    }
    roff.control("SH", ["CONFIGURATION"]);
    paragraph(
        &mut roff,
        "TOML; default /etc/anycastd/config.toml. Durations are a number of seconds or a string with a unit (500ms, 5s, 2m, 1h, 90d, 2w). Unknown keys are errors. Every key, with its default:",
    );
    for row in docs_table("### Every key") {
        if let [key, default, meaning] = row.as_slice() {
            roff.control("TP", [])
                .text([bold(key.trim().to_owned())])
                .text([roman(format!("{meaning} [default: {default}]"))]);
        }
    }
    roff.control("SH", ["EXIT STATUS"]);
    for row in docs_table("### Exit codes") {
        if let [code, meaning] = row.as_slice() {
            roff.control("TP", [])
                .text([bold(code.clone())])
                .text([roman(meaning.clone())]);
        }
    }
    roff.control("SH", ["FILES"]);
    for (file, what) in [
        ("/etc/anycastd/config.toml", "the configuration"),
        (
            "/var/lib/anycastd/journal",
            "the journal (a sled database; lock file anycastd.lock holds the daemon's pid)",
        ),
        ("/run/anycastd/anycastd.sock", "the control socket"),
        (
            "/usr/bin/vtysh",
            "FRR's shell, run for every change and read",
        ),
    ] {
        roff.control("TP", [])
            .text([italic(file)])
            .text([roman(what)]);
    }
    roff.control("SH", ["ENVIRONMENT"]);
    for (name, what) in [
        ("CONFIG", "the configuration file (-c)"),
        (
            "ANYCASTD_SOCKET",
            "the control socket of client commands (--socket)",
        ),
        (
            "LOG_FORMAT, LOG_LEVEL, NO_COLOR",
            "logging (--log-format, --log-level, --no-color)",
        ),
        (
            "NOTIFY_SOCKET, WATCHDOG_USEC",
            "set by systemd: readiness, status and watchdog notifications",
        ),
        (
            "MALLOC_MMAP_THRESHOLD_, GLIBC_TUNABLES",
            "run restarts itself with MALLOC_MMAP_THRESHOLD_=65536 unless one of them is set",
        ),
    ] {
        roff.control("TP", [])
            .text([bold(name)])
            .text([roman(what)]);
    }
    roff.control("SH", ["SEE ALSO"]);
    roff.text([roman(
        "vtysh(1), bird(8), birdc(8), systemd.service(5); docs/configuration.md and docs/operating.md of the source distribution (/usr/share/doc/anycastd/docs/ in the Debian package), which this page quotes.",
    )]);
    out.write_all(roff.render().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_tables_are_found() {
        let keys = docs_table("### Every key");
        assert!(keys.len() > 30, "{keys:?}");
        assert!(keys.iter().all(|row| row.len() == 3), "{keys:?}");
        let codes = docs_table("### Exit codes");
        assert!(codes.iter().any(|row| row[0] == "77"), "{codes:?}");
    }
}
