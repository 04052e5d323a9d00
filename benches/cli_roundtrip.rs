//! One command's round trip through the socket server: connect, send, the state owner
//! (here a thread answering at once) replies, the client reads it. Measures what the
//! listener adds; it once polled for replies every 5 ms, which this would show.

use std::hint::black_box;
use std::thread;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use crossbeam_channel::unbounded;
use multipathd::cli::client::connect;
use multipathd::cli::protocol::{recv_reply, send_frame};
use multipathd::cli::server::{Request, ServerConfig, SocketName, bind, spawn};

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let name = SocketName::Path(dir.path().join("bench.sock"));
    let listener = bind(&name).expect("bind");
    let (tx, rx) = unbounded::<Request>();
    let owner = thread::spawn(move || {
        for req in rx {
            let _ = req.reply.send("ok paths\n".to_string());
        }
    });
    let server = spawn(vec![listener], ServerConfig::default(), tx).expect("server");
    let names = [name];
    let round_trip = |cmd: &str| {
        let mut s = connect(&names).expect("connect");
        let deadline = Instant::now() + Duration::from_secs(5);
        send_frame(&mut s, cmd, deadline).expect("send");
        recv_reply(&mut s, deadline).expect("reply")
    };
    assert_eq!(round_trip("show paths"), "ok paths\n");

    let mut g = c.benchmark_group("cli_roundtrip");
    g.bench_function("show_paths_new_connection", |b| {
        b.iter(|| black_box(round_trip(black_box("show paths"))))
    });
    g.finish();
    server.stop();
    let _ = owner.join();
}

criterion_group!(benches, bench);
criterion_main!(benches);
