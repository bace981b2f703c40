//! `anycastd schema`: every example and valid golden config validates against it (checked by
//! Python's `jsonschema`, an independent implementation), configs with unknown keys or kinds
//! do not, and every key of the table in docs/configuration.md is in it; every registered
//! check kind (`checks::REGISTRY`) has its table in the schema and its keys in that table
//! and in docs/configuration.md, and is among the metric label values of docs/operating.md.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

const VALIDATE: &str = r#"
import json, sys, tomllib, jsonschema
schema = json.load(open(sys.argv[1]))
data = tomllib.load(open(sys.argv[2], "rb"))
errors = list(jsonschema.Draft7Validator(schema).iter_errors(data))
print("ok" if not errors else errors[0].message)
"#;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Whether Python's jsonschema is here (a failure where CI requires everything).
fn validator() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import jsonschema, tomllib"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        support::skip::skip("python3-jsonschema missing (apt-get install python3-jsonschema)");
    }
    ok
}

fn validate(schema: &Path, config: &Path) -> String {
    let out = Command::new("python3")
        .args(["-c", VALIDATE])
        .arg(schema)
        .arg(config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Every property name anywhere in the schema.
fn properties(value: &serde_json::Value, out: &mut BTreeSet<String>) {
    match value {
        serde_json::Value::Object(map) => {
            if let Some(serde_json::Value::Object(props)) = map.get("properties") {
                out.extend(props.keys().cloned());
            }
            for v in map.values() {
                properties(v, out);
            }
        }
        serde_json::Value::Array(list) => list.iter().for_each(|v| properties(v, out)),
        _ => {}
    }
}

#[test]
fn every_example_and_valid_golden_validates_and_unknown_keys_do_not() {
    let out = Command::new(env!("CARGO_BIN_EXE_anycastd"))
        .arg("schema")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();

    // Every key of the documented table (its last name) is a property of the schema.
    let doc = std::fs::read_to_string(root().join("docs/configuration.md")).unwrap();
    let table = doc
        .split("### Every key")
        .nth(1)
        .unwrap()
        .split("\n\n")
        .nth(1)
        .unwrap();
    let mut names = BTreeSet::new();
    properties(&schema, &mut names);
    let mut keys = 0;
    for row in table.lines().skip(2) {
        let key = row.split('|').nth(1).unwrap().trim().trim_matches('`');
        let last = key
            .rsplit(['.', ' ', ']', '['])
            .find(|w| !w.is_empty())
            .unwrap();
        if last == "NAME" {
            continue;
        }
        assert!(
            names.contains(last),
            "documented key {key:?} ({last}) is not in the schema"
        );
        keys += 1;
    }
    assert!(keys > 60, "{keys} keys read from docs/configuration.md");

    if !validator() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let schema_file = dir.path().join("schema.json");
    std::fs::write(&schema_file, &out.stdout).unwrap();
    let mut valid: Vec<PathBuf> = std::fs::read_dir(root().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    valid.extend(
        std::fs::read_dir(root().join("tests/golden/config"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                let name = p.file_name().unwrap().to_string_lossy();
                name.starts_with("ok_") && name.ends_with(".toml")
            }),
    );
    assert!(valid.len() >= 7, "{valid:?}");
    for config in &valid {
        assert_eq!(validate(&schema_file, config), "ok", "{}", config.display());
    }
    for (bad, expected) in [
        ("bad_unknown_keys.toml", "'colour' was unexpected"),
        ("bad_unknown_types.toml", "'icmp' was unexpected"),
        ("bad_rise_fall.toml", "is not of type"),
        ("bad_missing_keys.toml", "is a required property"),
    ] {
        let message = validate(&schema_file, &root().join("tests/golden/config").join(bad));
        assert!(message.contains(expected), "{bad}: {message}");
    }
}

/// The keys every check has (read by `config/`, not by the kind).
const CHECK_KEYS: [&str; 7] = [
    "name",
    "interval",
    "timeout",
    "pending_timeout",
    "shadow",
    "hard",
    "vrf",
];

/// The properties of a schema, following `$ref`s and `anyOf`s.
fn own_properties(schema: &serde_json::Value, at: &serde_json::Value, out: &mut BTreeSet<String>) {
    if let Some(r) = at.get("$ref").and_then(|r| r.as_str()) {
        let name = r.trim_start_matches("#/definitions/");
        own_properties(schema, &schema["definitions"][name], out);
    }
    if let Some(items) = at.get("items") {
        own_properties(schema, items, out);
    }
    for alternative in at
        .get("anyOf")
        .and_then(|a| a.as_array())
        .into_iter()
        .flatten()
    {
        own_properties(schema, alternative, out);
    }
    if let Some(props) = at.get("properties").and_then(|p| p.as_object()) {
        out.extend(props.keys().cloned());
    }
}

#[test]
fn every_registered_check_kind_has_its_keys_in_the_schema_and_the_documentation() {
    use anycastd::config::Registry;
    let kinds: Vec<&str> = anycastd::checks::REGISTRY
        .kinds()
        .iter()
        .map(|k| k.name())
        .collect();
    assert!(kinds.len() >= 5, "{kinds:?}");
    let schema: serde_json::Value =
        serde_json::from_str(&anycastd::config::schema::json(&anycastd::checks::REGISTRY)).unwrap();
    let checks = &schema["definitions"]["Checks"]["properties"];
    let documented = std::fs::read_to_string(root().join("docs/configuration.md")).unwrap();
    let table = documented
        .split("### Every key")
        .nth(1)
        .unwrap()
        .split("\n\n")
        .nth(1)
        .unwrap();
    let rows: Vec<&str> = table
        .lines()
        .filter_map(|row| row.split('|').nth(1))
        .map(|key| key.trim().trim_matches('`'))
        .collect();

    // The kinds the documentation lists are the registry's, in its order.
    let listed = table
        .lines()
        .find(|row| row.starts_with("| `services.NAME.checks` "))
        .and_then(|row| row.split("one array per kind: ").nth(1))
        .and_then(|rest| rest.split(" (").next())
        .unwrap();
    let listed: Vec<&str> = listed.split(", ").map(|k| k.trim_matches('`')).collect();
    assert_eq!(
        listed, kinds,
        "the kinds of docs/configuration.md's `checks` row"
    );
    let operating = std::fs::read_to_string(root().join("docs/operating.md")).unwrap();
    let labels = operating
        .lines()
        .find(|row| row.starts_with("| `anycastd_check_results_total` "))
        .and_then(|row| row.split("`kind` (").nth(1))
        .and_then(|rest| rest.split(')').next())
        .unwrap();
    let labels: Vec<&str> = labels.split(", ").collect();
    assert_eq!(
        labels, kinds,
        "the `kind` label values of docs/operating.md"
    );

    for kind in &kinds {
        let mut keys = BTreeSet::new();
        own_properties(&schema, &checks[kind], &mut keys);
        for key in CHECK_KEYS {
            assert!(
                keys.remove(key),
                "checks.{kind}: {key} missing from its schema table"
            );
        }
        for key in &keys {
            let row = format!("checks.{kind}[].{key}");
            assert!(
                rows.contains(&row.as_str()),
                "{row} is not in docs/configuration.md"
            );
        }
        // And every documented key of the kind is in its schema table.
        let prefix = format!("checks.{kind}[].");
        for row in rows.iter().filter_map(|r| r.strip_prefix(&prefix)) {
            assert!(
                keys.contains(row),
                "documented {prefix}{row} is not in the schema"
            );
        }
    }
    // No documented kind that is not registered.
    for row in rows.iter().filter_map(|r| r.strip_prefix("checks.")) {
        let kind = row.split('[').next().unwrap();
        assert!(
            kinds.contains(&kind),
            "documented kind {kind} is not registered"
        );
    }
}
