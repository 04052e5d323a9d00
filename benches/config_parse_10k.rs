//! Parsing a multipath.conf with 10,000 `multipath` entries (wwid, alias and three
//! or four settings each) on top of the built-in hardware table: the size a large
//! SAN host reaches, and the work `reconfigure` repeats.

use std::fmt::Write;
use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use multipathd::config;

const ENTRIES: usize = 10_000;

/// Settings rotated through the entries (two values per keyword), so that every
/// value parser on the multipath level gets its share instead of one dominating.
const SETTINGS: &[[&str; 2]] = &[
    [
        "path_grouping_policy group_by_prio",
        "path_grouping_policy multibus",
    ],
    ["no_path_retry 12", "no_path_retry queue"],
    ["failback immediate", "failback 30"],
    ["rr_weight priorities", "rr_min_io_rq 1"],
    [
        "path_selector \"service-time 0\"",
        "flush_on_last_del always",
    ],
];

fn generated(n: usize) -> String {
    let mut t = String::from(
        "defaults {\n\tuser_friendly_names yes\n\tfind_multipaths strict\n}\nmultipaths {\n",
    );
    for i in 0..n {
        let _ = write!(
            t,
            "\tmultipath {{\n\t\twwid 3600a0980{i:023x}\n\t\talias \"db_{i}\"\n"
        );
        // Three settings for even entries, four for odd ones, from consecutive rows
        // of SETTINGS so that no keyword repeats within an entry.
        for k in 0..3 + i % 2 {
            let _ = writeln!(
                t,
                "\t\t{}",
                SETTINGS[(i + k) % SETTINGS.len()][(i / SETTINGS.len()) % 2]
            );
        }
        t.push_str("\t}\n");
    }
    t.push_str("}\n");
    t
}

fn bench(c: &mut Criterion) {
    let text = generated(ENTRIES);
    // The input must be clean, or the bench would time the diagnostics path.
    let loaded = config::parse_str("bench.conf", &text).unwrap();
    assert_eq!(loaded.config.multipaths.len(), ENTRIES);
    assert!(
        loaded.diagnostics.is_empty(),
        "{:?}",
        &loaded.diagnostics[..loaded.diagnostics.len().min(3)]
    );

    let mut g = c.benchmark_group("config_parse_10k");
    // Milliseconds per iteration: equal-sized samples (not a linear ramp) fit the time.
    g.sampling_mode(SamplingMode::Flat);
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_function("parse_str 10k multipaths", |b| {
        b.iter(|| config::parse_str("bench.conf", black_box(&text)).unwrap())
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    targets = bench
}
criterion_main!(benches);
