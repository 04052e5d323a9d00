//! Parsing speed of large configurations: 10,000 `multipath` entries, and
//! 10,000 `device` sections (each compared with the earlier ones for duplicates).

use std::fmt::Write;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use multipathd::config;

/// A multipaths section with `n` entries of five settings each.
fn generated(n: usize) -> String {
    let mut t = String::from("defaults {\n\tuser_friendly_names yes\n\tpolling_interval 10\n}\nmultipaths {\n");
    for i in 0..n {
        let _ = write!(
            t,
            "\tmultipath {{\n\t\twwid \"3600a0980{i:023x}\"\n\t\talias \"db_{i}\"\n\t\tno_path_retry 12\n\t\tpath_grouping_policy group_by_prio\n\t\tfailback immediate\n\t}}\n"
        );
    }
    t.push_str("}\n");
    t
}

/// A devices section with `n` distinct entries (every tenth product repeated
/// once, so duplicates are merged too).
fn devices(n: usize) -> String {
    let mut t = String::from("devices {\n");
    for i in 0..n {
        let product = if i % 10 == 9 { i - 1 } else { i };
        let _ = write!(
            t,
            "\tdevice {{\n\t\tvendor \"VENDOR{}\"\n\t\tproduct \"MODEL{product}\"\n\t\tpath_grouping_policy group_by_prio\n\t\tprio alua\n\t\tfailback immediate\n\t\tno_path_retry 30\n\t}}\n",
            product % 100
        );
    }
    t.push_str("}\n");
    t
}

fn bench(c: &mut Criterion) {
    let devs = devices(10_000);
    c.bench_function("parse 10k device sections", |b| {
        b.iter(|| {
            let loaded = config::parse_str("bench.conf", black_box(&devs)).unwrap();
            assert_eq!(loaded.config.devices.len(), 9_000);
            loaded
        })
    });
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
