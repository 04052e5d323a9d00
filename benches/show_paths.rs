//! The big `show` replies at 4,096 paths (1,024 maps of 4). `show paths` from the
//! state owner's records to the reply's bytes: the views the owner publishes (a
//! snapshot built afresh) and the CLI server's answer from them, encoded as the
//! socket sends it; the answer alone from a published snapshot (what each client
//! costs the server). Then the formatting alone, over views built here (two ALUA
//! groups of two, FC attributes set): `paths_table`, `topology`, `maps_json`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use multipathd::cli::format::{
    CheckerState, DmInfo, Failback, Hcil, InitState, MapView, NoPathRetry, PATHS_FORMAT, PathDmState, PathGroupView,
    PathView, PgState, maps_json, paths_table, topology,
};
use multipathd::cli::parse::Command;
use multipathd::cli::protocol::{LEN_SIZE, encode, payload_text};
use multipathd::cli::snapshot::Snapshot;

const MAPS: usize = 1024;
const PATHS_PER_MAP: usize = 4;

#[path = "../tests/common/mod.rs"]
mod common;

use common::dm::Harness;

/// Major:minor of the `i`-th sd disk (16 minors per disk, as the kernel hands them out).
fn sd_dev_t(i: usize) -> String {
    const MAJORS: [u32; 16] = [8, 65, 66, 67, 68, 69, 70, 71, 128, 129, 130, 131, 132, 133, 134, 135];
    format!("{}:{}", MAJORS[(i / 16) % 16], (i % 16) * 16)
}

fn wwid(map: usize) -> String {
    format!("3600a0980{map:023x}")
}

/// Path `j` of map `m`: paths 0-1 go through host 1 (optimized, prio 50), 2-3 through
/// host 2 (non-optimized, prio 10); every 16th map has one failed path.
fn path(m: usize, j: usize) -> PathView {
    let i = m * PATHS_PER_MAP + j;
    let failed = m.is_multiple_of(16) && j == 3;
    PathView {
        dev: common::sd_name(i),
        dev_t: sd_dev_t(i),
        wwid: wwid(m),
        hcil: Some(Hcil {
            host: 1 + (j / 2) as u32,
            channel: 0,
            target: (j % 2) as u32,
            lun: m as u64,
        }),
        dm_state: if failed {
            PathDmState::Failed
        } else {
            PathDmState::Active
        },
        offline: false,
        state: if failed { CheckerState::Down } else { CheckerState::Up },
        vendor: "NETAPP".into(),
        product: "LUN C-Mode".into(),
        rev: "9800".into(),
        checker: Some("tur".into()),
        tick: (i % 20) as i64,
        checkint: 20,
        priority: if j < 2 { 50 } else { 10 },
        size: 209_715_200,
        serial: format!("81Mp+$Q{m:05}"),
        marginal: false,
        map: Some(format!("mpath{m}")),
        add_when_online: false,
        host_wwnn: Some("0x20000024ff7f1a2b".into()),
        target_wwnn: Some("0x2000d039ea000001".into()),
        host_wwpn: Some(format!("0x21000024ff7f1a{:02x}", j / 2)),
        target_wwpn: Some(format!("0x2001d039ea0000{:02x}", j)),
        host_adapter: Some(format!("0000:3b:00.{}", j / 2)),
        vpd_data: None,
        failures: i32::from(failed),
        protocol: "scsi:fcp".into(),
        init: InitState::Ok,
        tpg_id: Some(if j < 2 { 1 } else { 2 }),
        max_sectors_kb: Some(512),
    }
}

fn map(m: usize, paths: &[PathView]) -> MapView {
    let group = |prio: i32, state: PgState, ps: &[PathView]| PathGroupView {
        priority: prio,
        state,
        marginal: false,
        paths: ps.to_vec(),
    };
    MapView {
        name: format!("mpath{m}"),
        wwid: wwid(m),
        dm: Some(DmInfo {
            minor: m as u32,
            read_only: false,
            suspended: false,
        }),
        failback: Failback::Immediate,
        failback_tick: 0,
        no_path_retry: NoPathRetry::Retries(12),
        retry_tick: 0,
        size: 209_715_200,
        features: "3 queue_if_no_path pg_init_retries 50".into(),
        hwhandler: "1 alua".into(),
        action: None,
        path_faults: (m % 3) as u32,
        switch_grp: 0,
        map_loads: 1,
        total_q_time: 0,
        q_timeouts: 0,
        map_failures: 0,
        selector: "service-time 0".into(),
        vpd_data: None,
        max_sectors_kb: Some(512),
        groups: vec![
            group(50, PgState::Active, &paths[..2]),
            group(10, PgState::Enabled, &paths[2..]),
        ],
    }
}

/// The bytes the server writes for `show paths`, answered from `snap`.
fn show_paths(snap: &Snapshot) -> Vec<u8> {
    encode(&snap.answer(&Command::ShowPaths).expect("a show").expect("answered"))
}

fn from_owner(c: &mut Criterion) {
    let sys = common::FakeSys::new();
    let h = Harness::coldplugged(&sys, MAPS as u32, PATHS_PER_MAP as u32);
    let published = h.owner.snapshot();
    let reply = show_paths(&published);
    let text = payload_text(&reply[LEN_SIZE..]);
    // Header plus one line per path, each checked up and active in its map.
    assert_eq!(text.lines().count(), 4097);
    let up = |l: &&str| {
        l.split_whitespace()
            .collect::<Vec<_>>()
            .windows(3)
            .any(|w| w == ["active", "ready", "running"])
    };
    assert_eq!(text.lines().filter(up).count(), 4096, "{text:.300}");

    let mut g = c.benchmark_group("show paths");
    g.sampling_mode(SamplingMode::Flat);
    g.throughput(Throughput::Elements(4096));
    g.bench_function("from the owner's records: snapshot, answer, encode, 4096 paths", |b| {
        b.iter(|| show_paths(&black_box(&h.owner).snapshot()))
    });
    g.bench_function("from a published snapshot: answer, encode, 4096 paths", |b| {
        b.iter(|| show_paths(black_box(&published)))
    });
    g.finish();
}

fn format_only(c: &mut Criterion) {
    let paths: Vec<PathView> = (0..MAPS)
        .flat_map(|m| (0..PATHS_PER_MAP).map(move |j| path(m, j)))
        .collect();
    let maps: Vec<MapView> = (0..MAPS)
        .map(|m| map(m, &paths[m * PATHS_PER_MAP..(m + 1) * PATHS_PER_MAP]))
        .collect();
    assert_eq!(paths.len(), 4096);
    assert_eq!(paths[4095].dev, "sdfan");
    // Header plus one line per path; a topology has a name and a size line
    // per map, one line per path group and one per path.
    assert_eq!(paths_table(&paths, PATHS_FORMAT, false).lines().count(), 4097);
    assert_eq!(topology(&maps, &paths).lines().count(), MAPS * (2 + 2 + PATHS_PER_MAP));

    let mut g = c.benchmark_group("format only");
    // Milliseconds per iteration: equal-sized samples (not a linear ramp) fit the time.
    g.sampling_mode(SamplingMode::Flat);
    g.throughput(Throughput::Elements(paths.len() as u64));
    g.bench_function("paths_table 4096 paths", |b| {
        b.iter(|| paths_table(black_box(&paths), PATHS_FORMAT, false))
    });
    g.bench_function("topology 1024 maps x 4 paths", |b| {
        b.iter(|| topology(black_box(&maps), &paths))
    });
    g.throughput(Throughput::Elements(maps.len() as u64));
    g.bench_function("maps_json 1024 maps x 4 paths", |b| {
        b.iter(|| maps_json(black_box(&maps)))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    targets = from_owner, format_only
}
criterion_main!(benches);
