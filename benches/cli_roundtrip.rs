//! A command's round trip through the daemon's real handlers, at 1,024 paths (256
//! maps of 4, coldplugged from a fake sysfs over the fake device-mapper of
//! `tests/common/dm.rs`): the real CLI server on a pathname socket and the real owner
//! loop (`run::serve`) on its own thread. Each iteration connects, sends, reads the
//! whole reply. `show paths` is answered by the server from the owner's published
//! views, formatted afresh for each client (the server drops a reply once written, so
//! the next client's cannot share it); `getprstatus` goes to the owner and back, with
//! the publish after every command. Not included: the checker, uevent and signal
//! threads (idle in a daemon at rest).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use multipathd::cli::client::connect;
use multipathd::cli::protocol::{recv_reply, send_frame};
use multipathd::cli::server::{ServerConfig, SocketName, bind};

#[path = "../tests/common/mod.rs"]
mod common;

use common::daemon;
use common::dm::Harness;

const LUNS: u32 = 256;
const HOSTS: u32 = 4;

fn bench(c: &mut Criterion) {
    let sys = common::FakeSys::new();
    let h = Harness::coldplugged(&sys, LUNS, HOSTS);
    let name = SocketName::Path(sys.dir.path().join("bench.sock"));
    let listener = bind(&name).expect("bind");
    let served = daemon::start(h.owner, h.checker, h.reloads, listener, ServerConfig::default());
    let names = [name];
    let round_trip = |cmd: &str| {
        let mut s = connect(&names).expect("connect");
        let deadline = Instant::now() + Duration::from_secs(5);
        send_frame(&mut s, cmd, deadline).expect("send");
        recv_reply(&mut s, deadline).expect("reply")
    };
    let paths = round_trip("show paths");
    // Header plus one line per path, each checked up.
    assert_eq!(paths.lines().count(), 1025, "{paths:.300}");
    assert_eq!(paths.lines().filter(|l| l.contains(" ready ")).count(), 1024);
    let getprstatus = format!("getprstatus map {}", common::lun_wwid(0));
    assert_eq!(round_trip(&getprstatus), "unset\n");

    let mut g = c.benchmark_group("cli_roundtrip");
    g.bench_function("show paths, 1024 paths, new connection", |b| {
        b.iter(|| black_box(round_trip(black_box("show paths"))))
    });
    g.bench_function("getprstatus through the owner, 1024 paths, new connection", |b| {
        b.iter(|| black_box(round_trip(black_box(&getprstatus))))
    });
    g.finish();
    served.stop();
}

criterion_group!(benches, bench);
criterion_main!(benches);
