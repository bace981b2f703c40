//! Config load (parse + validate) of a 1,000-service file: 1,000 services × 2 checks × 2
//! prefixes, what a start or a reload reads. `cargo bench --bench config_load`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{criterion_group, criterion_main, Criterion};
use std::fmt::Write as _;

fn config_text(services: usize) -> String {
    let mut text = String::from("[journal]\npath = \"/var/lib/anycastd/journal\"\n");
    for s in 0..services {
        let _ = write!(
            text,
            "\n[services.s{s}]\nrise = 2\nfall = 2\nprefixes.frrouting = [\"10.{}.{}.1/32\", {{ prefix = \"fd00::{s:x}:1/128\", vrf = \"v{}\" }}]\nchecks.cabourotte = [\n    {{ name = \"s{s}c0\", interval = \"1s\" }},\n    {{ name = \"s{s}c1\", url = \"http://127.0.0.1:9013\", interval = \"1s\", timeout = \"500ms\" }},\n]\n",
            (s >> 8) & 255,
            s & 255,
            s % 4
        );
    }
    text
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("anycastd.toml");
    std::fs::write(&path, config_text(1000)).unwrap();
    anycastd::config::load(&path, &anycastd::checks::REGISTRY).unwrap();
    c.bench_function("config load, 1,000 services", |b| {
        b.iter(|| anycastd::config::load(&path, &anycastd::checks::REGISTRY).unwrap())
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
