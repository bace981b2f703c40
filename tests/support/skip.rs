//! Skipping a test that cannot run on this machine, out loud. A test runner shows a test that
//! returns early as passed and hides what it printed, so a skip is also appended to the file
//! named by `ANYCASTD_TEST_SKIPS` (set by `scripts/test`, which lists and counts them at the
//! end of the run). With `ANYCASTD_TEST_REQUIRE_ALL=1` (set by `scripts/test --all` and
//! `.ci/run`; `ANYCASTD_REQUIRE_FRR=1` is its old name) every skip is a failure instead.

use std::io::Write;

/// Whether the run requires every test to run (a missing prerequisite is then a failure).
pub fn required() -> bool {
    ["ANYCASTD_TEST_REQUIRE_ALL", "ANYCASTD_REQUIRE_FRR"]
        .iter()
        .any(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty() && v != "0"))
}

/// The test running on this thread, as `binary::name` (libtest names the thread of a test
/// after it).
fn test_name() -> String {
    let binary = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .map(|stem| match stem.rsplit_once('-') {
            // Cargo names a test binary NAME-HASH.
            Some((name, hash)) if hash.chars().all(|c| c.is_ascii_hexdigit()) => name.to_owned(),
            _ => stem,
        })
        .unwrap_or_default();
    let test = std::thread::current()
        .name()
        .unwrap_or("(unnamed thread)")
        .to_owned();
    format!("{binary}::{test}")
}

/// Record that the calling test (or a part of it, as `reason` says) does not run here because
/// of `reason`, or fail it when the run requires every test. The caller returns afterwards.
pub fn skip(reason: &str) {
    let test = test_name();
    if required() {
        panic!("{test} cannot run: {reason} (ANYCASTD_TEST_REQUIRE_ALL is set)");
    }
    eprintln!("SKIPPED: {test}: {reason}");
    if let Some(path) = std::env::var_os("ANYCASTD_TEST_SKIPS").filter(|p| !p.is_empty()) {
        // One short line per skip, appended: tests in several processes write it at once.
        let line = format!("{test}: {reason}\n");
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut file| file.write_all(line.as_bytes()));
        if let Err(e) = written {
            panic!("cannot record the skip in {}: {e}", path.to_string_lossy());
        }
    }
}
