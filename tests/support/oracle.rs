//! What the replay oracles share: wall-clock time as the emulator logs it, the transitions
//! checks caused in a replay timeline, and their comparison within the slack between a
//! poll's grid point and the moment it was served.

use anycastd::audit::replay::Step;
use std::time::{SystemTime, UNIX_EPOCH};

/// A poll's grid point and the moment the emulator serves it are this close at most (in
/// practice 1-3 ms; generous for a loaded machine).
pub const SERVE_SLACK_MS: i64 = 60;

/// Now, in ms since the epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The transitions checks caused: (time, from, to).
pub fn verdicts(timeline: &[Step]) -> Vec<(i64, String, String)> {
    timeline
        .iter()
        .filter(|s| s.kind == "transition" && !s.to.starts_with("draining"))
        .map(|s| (s.at_ms, s.from.clone(), s.to.clone()))
        .collect()
}

/// The same transitions, each within [`SERVE_SLACK_MS`] of the expected time.
pub fn assert_close(got: &[(i64, String, String)], expected: &[(i64, String, String)], what: &str) {
    assert_eq!(
        got.iter().map(|(_, f, t)| (f, t)).collect::<Vec<_>>(),
        expected.iter().map(|(_, f, t)| (f, t)).collect::<Vec<_>>(),
        "{what}: the same transitions"
    );
    for ((a, _, _), (b, _, _)) in got.iter().zip(expected) {
        assert!(
            (a - b).abs() <= SERVE_SLACK_MS,
            "{what}: {a} vs {b} ({} ms apart)",
            a - b
        );
    }
}
