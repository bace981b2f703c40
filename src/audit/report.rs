//! `anycastd report`: one row per service over a window — share of time announced normally,
//! health withdrawals, mean time to repair, longest outage, time drained, damping
//! suppressions, and the time announced de-preferred, in a drain's grace and held by the
//! fleet guard (none of which is a withdrawal or an outage) —
//! each taken from the recorded run of [`crate::audit::replay`] over the same window, so `report` and
//! `replay`'s summary never disagree.

use crate::audit::replay::{Summary, WhatIf};
use serde::{Deserialize, Serialize};

/// One service's figures over the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// The service.
    pub service: String,
    /// The recorded run's summary (as `replay` computes it).
    pub summary: Summary,
}

/// The report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Window start (ms; the first record when not asked).
    pub from_ms: i64,
    /// Window end (ms).
    pub to_ms: i64,
    /// One row per service, by name.
    pub rows: Vec<Row>,
}

/// The services `reader` knows (with a last state), and those of `configured`, by name.
pub fn services(
    reader: &anycastd_journal::Reader,
    configured: &[String],
) -> Result<Vec<String>, anycastd_journal::Error> {
    let mut names: std::collections::BTreeSet<String> = configured.iter().cloned().collect();
    names.extend(reader.last_states()?.into_iter().map(|(name, _)| name));
    Ok(names.into_iter().collect())
}

/// The report of `services` from the journal of `reader`.
pub fn report(
    reader: &anycastd_journal::Reader,
    services: &[String],
    since_ms: Option<i64>,
    until_ms: Option<i64>,
    now_ms: Option<i64>,
) -> Result<Report, anycastd_journal::Error> {
    let mut rows = Vec::new();
    let (mut from_ms, mut to_ms) = (i64::MAX, i64::MIN);
    for service in services {
        let replayed = crate::audit::replay::replay_from(
            reader,
            service,
            since_ms,
            until_ms,
            now_ms,
            &WhatIf::default(),
        )?;
        from_ms = from_ms.min(replayed.from_ms);
        to_ms = to_ms.max(replayed.to_ms);
        rows.push(Row {
            service: service.clone(),
            summary: replayed.recorded.summary,
        });
    }
    if rows.is_empty() {
        (from_ms, to_ms) = (since_ms.unwrap_or(0), until_ms.or(now_ms).unwrap_or(0));
    }
    Ok(Report {
        from_ms,
        to_ms,
        rows,
    })
}

fn seconds(ms: i64) -> String {
    format!("{:.1}", ms as f64 / 1000.0)
}

fn percent(summary: &Summary) -> String {
    if summary.measured_ms == 0 {
        "-".into()
    } else {
        format!("{:.1}", summary.announced_ratio * 100.0)
    }
}

/// The columns, in order, and their values for a row: the first nine, then the time at the
/// other levels than normal (format 6), in `--csv` always, in the table when a row has some.
const COLUMNS: [&str; 12] = [
    "service",
    "announced_%",
    "measured_s",
    "withdrawals",
    "outages",
    "mttr_s",
    "longest_outage_s",
    "drained_s",
    "suppressions",
    "depreferred_s",
    "grace_s",
    "held_s",
];

/// The columns before the levels' (what the table had before graded announcements).
const PLAIN: usize = 9;

fn cells(row: &Row) -> [String; 12] {
    let s = &row.summary;
    [
        row.service.clone(),
        percent(s),
        seconds(s.measured_ms),
        s.flaps.to_string(),
        s.outages.to_string(),
        s.mean_time_to_repair_ms.map_or("-".into(), seconds),
        seconds(s.longest_outage_ms),
        seconds(s.drained_ms),
        s.suppressions.to_string(),
        seconds(s.depreferred_ms),
        seconds(s.grace_ms),
        seconds(s.held_ms),
    ]
}

/// A text table (aligned columns) under a line naming the window.
pub fn render_text(report: &Report) -> String {
    let levels = report
        .rows
        .iter()
        .any(|r| r.summary.depreferred_ms + r.summary.grace_ms + r.summary.held_ms > 0);
    let shown = if levels { COLUMNS.len() } else { PLAIN };
    let mut lines: Vec<Vec<String>> =
        vec![COLUMNS[..shown].iter().map(|c| (*c).to_owned()).collect()];
    lines.extend(report.rows.iter().map(|r| cells(r)[..shown].to_vec()));
    let widths: Vec<usize> = (0..shown)
        .map(|i| lines.iter().map(|l| l[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = format!(
        "report from {} to {}\n",
        crate::audit::text::format_time(report.from_ms),
        crate::audit::text::format_time(report.to_ms)
    );
    for line in &lines {
        let row: Vec<String> = line
            .iter()
            .enumerate()
            .map(|(i, cell)| {
                if i == 0 {
                    format!("{cell:<w$}", w = widths[i])
                } else {
                    format!("{cell:>w$}", w = widths[i])
                }
            })
            .collect();
        out.push_str(row.join("  ").trim_end());
        out.push('\n');
    }
    if report.rows.iter().all(|r| r.summary.measured_ms == 0) {
        out.push_str(
            "note: nothing was measured in this window (the daemon was not running, or no \
             service was configured)\n",
        );
    }
    out
}

/// CSV with a header line (RFC 4180; service names need no quoting); a figure that does
/// not exist (no outage ended, nothing measured) is an empty field.
pub fn render_csv(report: &Report) -> String {
    let mut out = COLUMNS.join(",");
    out.push('\n');
    for row in &report.rows {
        let cells = cells(row).map(|c| if c == "-" { String::new() } else { c });
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(measured_ms: i64) -> Report {
        Report {
            from_ms: 1_764_288_000_000,
            to_ms: 1_764_288_060_000,
            rows: vec![Row {
                service: "dns".into(),
                summary: Summary {
                    measured_ms,
                    ..Summary::default()
                },
            }],
        }
    }

    #[test]
    fn the_table_shows_the_levels_columns_only_when_a_service_had_another_level() {
        let plain = render_text(&report(60_000));
        let header = plain.lines().nth(1).unwrap_or_default();
        assert!(header.ends_with("drained_s  suppressions"), "{plain}");
        let mut graded = report(60_000);
        graded.rows[0].summary.depreferred_ms = 13_000;
        let text = render_text(&graded);
        assert!(
            text.lines()
                .nth(1)
                .unwrap_or_default()
                .ends_with("suppressions  depreferred_s  grace_s  held_s"),
            "{text}"
        );
        assert!(
            text.lines()
                .nth(2)
                .unwrap_or_default()
                .ends_with("13.0      0.0     0.0"),
            "{text}"
        );
        // CSV always has them (a stable header).
        assert!(render_csv(&report(60_000)).starts_with(
            "service,announced_%,measured_s,withdrawals,outages,mttr_s,longest_outage_s,drained_s,suppressions,depreferred_s,grace_s,held_s\n"
        ));
    }

    #[test]
    fn a_window_where_nothing_was_measured_says_so() {
        let note = "note: nothing was measured in this window";
        assert!(render_text(&report(0)).contains(note));
        assert!(!render_text(&report(60_000)).contains(note));
    }
}
