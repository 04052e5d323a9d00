//! Parsing speed of a large configuration: 10,000 `multipath` entries.

use std::fmt::Write;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use multipathd::config;

/// A multipaths section with `n` entries of five settings each.
fn generated(n: usize) -> String {
    let mut t = String::from(
        "defaults {\n\tuser_friendly_names yes\n\tpolling_interval 10\n}\nmultipaths {\n",
    );
    for i in 0..n {
        let _ = write!(
            t,
            "\tmultipath {{\n\t\twwid \"3600a0980{i:023x}\"\n\t\talias \"db_{i}\"\n\t\tno_path_retry 12\n\t\tpath_grouping_policy group_by_prio\n\t\tfailback immediate\n\t}}\n"
        );
    }
    t.push_str("}\n");
    t
}

fn bench(c: &mut Criterion) {
    let text = generated(10_000);
    c.bench_function("parse 10k multipaths", |b| {
        b.iter(|| {
            let loaded = config::parse_str("bench.conf", black_box(&text)).unwrap();
            assert_eq!(loaded.config.multipaths.len(), 10_000);
            loaded
        })
    });
    c.bench_function("parse built-in hwtable", |b| {
        b.iter(|| config::parse_str_bare("hwtable", black_box(config::hwtable::TEXT)).unwrap())
    });
    let cfg = config::parse_str("bench.conf", &text).unwrap().config;
    c.bench_function("show config 10k multipaths", |b| {
        b.iter(|| config::dump::show_config(black_box(&cfg)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
