//! docs/development.md's "Adding a routing backend" holds: a routing daemon's
//! config keys (its section `[KEY]`, `prefixes.KEY`, and the keys of both that no other part
//! of the schema has) are written only in its folder `src/routing/KIND/`, and `src/config/`
//! names no routing daemon at all (its key, name or label), so adding one is its folder and
//! its line in `routing::KINDS`. The keys are those of `anycastd schema`, found through the
//! kinds' own loaders, so a new kind is held without editing this test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The lines of a file before its unit tests, without `//` comments (tests and comments may
/// speak of any daemon; the code must not).
fn code_lines(path: &Path) -> Vec<(usize, String)> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("#[cfg(test)]") {
            break;
        }
        let code = match line.find("//") {
            Some(at) if !line[..at].ends_with(':') => &line[..at],
            _ => line,
        };
        lines.push((i + 1, code.to_owned()));
    }
    lines
}

/// The definitions a schema node refers to, transitively.
fn reachable(node: &serde_json::Value, defs: &serde_json::Value, out: &mut BTreeSet<String>) {
    match node {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                if key == "$ref" {
                    let name = value.as_str().unwrap().trim_start_matches("#/definitions/");
                    if out.insert(name.to_owned()) {
                        reachable(&defs[name], defs, out);
                    }
                } else {
                    reachable(value, defs, out);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|i| reachable(i, defs, out)),
        _ => {}
    }
}

/// The property names of a schema node (not following references).
fn properties(node: &serde_json::Value) -> BTreeSet<String> {
    node["properties"]
        .as_object()
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

/// For each routing kind a config file reaches (by its folder's name): its key and the keys
/// of its section and prefix items that appear nowhere else in the schema.
fn config_keys() -> BTreeMap<&'static str, BTreeSet<String>> {
    let schema: serde_json::Value =
        serde_json::from_str(&anycastd::config::schema::json(&anycastd::checks::REGISTRY)).unwrap();
    let defs = &schema["definitions"];
    let kinds: Vec<_> = anycastd::routing::KINDS
        .iter()
        .filter_map(|k| k.words().config().map(|l| (k.name(), l.key())))
        .collect();
    assert!(
        kinds.len() >= 3,
        "the kinds with a config section: {kinds:?}"
    );
    let mut own: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for (_, key) in &kinds {
        let mut reached = BTreeSet::new();
        reachable(&schema["properties"][key], defs, &mut reached);
        reachable(&defs["Prefixes"]["properties"][key], defs, &mut reached);
        assert!(
            !reached.is_empty(),
            "{key}: no section or prefix item in the schema"
        );
        own.insert(key, reached);
    }
    let mut out = BTreeMap::new();
    for (name, key) in &kinds {
        let mine = &own[key];
        let mut elsewhere: BTreeSet<String> = properties(&schema)
            .into_iter()
            .filter(|p| p != key)
            .collect();
        for (def, value) in defs.as_object().unwrap() {
            if !mine.contains(def) {
                elsewhere.extend(properties(value));
            }
        }
        let mut keys: BTreeSet<String> = mine
            .iter()
            .flat_map(|d| properties(&defs[d]))
            .filter(|p| !elsewhere.contains(p))
            .collect();
        keys.insert((*key).to_owned());
        out.insert(*name, keys);
    }
    out
}

/// The string literals of a line of code.
fn literals(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c != '"' {
            continue;
        }
        let mut literal = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    literal.push(c);
                    literal.extend(chars.next());
                }
                '"' => break,
                c => literal.push(c),
            }
        }
        out.push(literal);
    }
    out
}

/// Whether `text` has `word` as a whole word (of A-Z a-z 0-9 _).
fn has_word(text: &str, word: &str) -> bool {
    let part = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    text.match_indices(word).any(|(at, _)| {
        !part(text[..at].chars().next_back()) && !part(text[at + word.len()..].chars().next())
    })
}

/// Whether a string literal names the config key `word`: a word of it is the key itself
/// (`take("vtysh")`, `[bird]`) or a key path with it (`frrouting.vty_sockets`,
/// `prefixes.gobgp`), not prose that happens to contain it (`bird(8)`, `/usr/bin/vtysh`).
fn names_key(literal: &str, word: &str) -> bool {
    literal.split_whitespace().any(|token| {
        let token = token.trim_matches(|c: char| "[](),:;'`{}".contains(c));
        token == word
            || (token.contains('.')
                && token
                    .split('.')
                    .any(|part| part.split('[').next() == Some(word)))
    })
}

/// Literals that are a key's word but not the key, reviewed: (file under src/, literal).
const NOT_KEYS: &[(&str, &str)] = &[
    // A path segment of Cabourotte's result URL, not GoBGP's `api`.
    ("checks/cabourotte.rs", "api"),
];

#[test]
fn a_routing_daemons_config_keys_are_written_only_in_its_folder() {
    let keys = config_keys();
    assert!(
        keys["frr"].contains("vtysh") && keys["frr"].contains("vty_sockets"),
        "the key finder finds FRR's own keys: {:?}",
        keys["frr"]
    );
    assert!(keys["bird"].contains("include_dir"), "{:?}", keys["bird"]);
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut found = Vec::new();
    for (name, words) in &keys {
        let folder = src().join("routing").join(name);
        for file in files.iter().filter(|f| !f.starts_with(&folder)) {
            for (number, line) in code_lines(file) {
                let shown = file.strip_prefix(src()).unwrap().display().to_string();
                for literal in literals(&line) {
                    if NOT_KEYS.contains(&(shown.as_str(), literal.as_str())) {
                        continue;
                    }
                    for word in words.iter().filter(|w| names_key(&literal, w)) {
                        found.push(format!(
                            "{shown}:{number}: {word:?} (a key of {name}) in {literal:?}"
                        ));
                    }
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "config keys of a routing daemon outside its folder:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_config_loader_names_no_routing_daemon() {
    let mut words: Vec<String> = Vec::new();
    for kind in anycastd::routing::KINDS {
        if let Some(loader) = kind.words().config() {
            words.extend([kind.name(), kind.label(), loader.key()].map(str::to_lowercase));
        }
    }
    let mut files = Vec::new();
    rust_files(&src().join("config"), &mut files);
    assert!(files.len() >= 5, "{files:?}");
    let mut found = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (number, line) in code_lines(file) {
            let lower = line.to_lowercase();
            for word in words.iter().filter(|w| has_word(&lower, w)) {
                found.push(format!(
                    "{}:{number}: {word}: {}",
                    file.display(),
                    line.trim()
                ));
            }
            if line.contains("routing::") && !line.contains("crate::routing::{") {
                let named = anycastd::routing::KINDS
                    .iter()
                    .any(|k| line.contains(&format!("routing::{}", k.name())));
                if named {
                    found.push(format!(
                        "{}:{number}: imports a kind: {}",
                        file.display(),
                        line.trim()
                    ));
                }
            }
        }
        // The module docs too: what config/ says it does must not name a daemon either.
        for (number, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| l.starts_with("//!"))
        {
            let lower = line.to_lowercase();
            for word in words.iter().filter(|w| has_word(&lower, w)) {
                found.push(format!(
                    "{}:{}: {word} in its docs",
                    file.display(),
                    number + 1
                ));
            }
        }
    }
    assert!(
        found.is_empty(),
        "src/config/ names a routing daemon:\n{}",
        found.join("\n")
    );
}
