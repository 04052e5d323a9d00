//! Parsing client command lines (the socket protocol's request text) into commands:
//! the mix `multipath`, `multipathd`, udev rules and monitoring scripts actually send.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use multipathd::cli::parse::parse;

const COMMANDS: &[&str] = &[
    "show paths",
    "show maps",
    "show maps json",
    "show paths raw format \"%d\"",
    "show paths format \"%w %d %t %i %o %T %z %s %m\"",
    "list maps status",
    "show maps stats",
    "show topology",
    "show map mpatha topology",
    "show map 3600a098038304437415d4b6a59684a52 json",
    "show status",
    "show daemon",
    "show config",
    "del path /dev/sdx",
    "add path sdy",
    "resize map mpatha",
    "reinstate path 8:16",
    "fail path sdb",
    "switchgroup map mpathb group 2",
    "disablequeueing maps",
    "reconfigure",
    "setprstatus map mpathc",
];

fn bench(c: &mut Criterion) {
    for cmd in COMMANDS {
        assert!(parse(cmd).is_ok(), "{cmd:?} does not parse");
    }
    let mut g = c.benchmark_group("cli_parse");
    g.throughput(Throughput::Elements(COMMANDS.len() as u64));
    g.bench_function("parse 22 client commands", |b| {
        b.iter(|| {
            for cmd in COMMANDS {
                black_box(parse(black_box(cmd)).ok());
            }
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
