//! Fuzz target: the CLI output formatters (`cli::format`), which print client-supplied
//! format strings (`show paths format F`, `show map M format F`) over daemon state.
//!
//! Inputs: format strings (random text, soups of every wildcard, `%%`, a trailing `%`,
//! multi-byte characters) and path/map views with extreme numbers (zero and negative
//! check intervals, `u64::MAX` sizes, negative path ticks, `u32::MAX` map countdowns) and names holding quotes,
//! backslashes and control characters. Properties: no panic; the JSON output parses
//! (when no string in it needs escaping, see `tests/fuzz_regressions.rs`).

mod fuzz_support;

use multipathd::cli::format::*;
use proptest::prelude::*;

fn fmt() -> impl Strategy<Value = String> {
    let mut words: Vec<String> = MAP_WILDCARDS
        .iter()
        .chain(PATH_WILDCARDS)
        .map(|(c, _)| format!("%{c}"))
        .collect();
    for w in ["%", "%%", " ", "x", "é", "\t", "%é", "\"", "\n"] {
        words.push(w.to_string());
    }
    for f in [PATHS_FORMAT, MAPS_FORMAT, MAPS_STATUS_FORMAT, MAPS_STATS_FORMAT] {
        words.push(f.to_string());
    }
    prop_oneof![1 => ".{0,20}", 4 => fuzz_support::soup(words, &["", " "], 12)]
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-z0-9:_-]{0,10}",
        1 => ".{0,6}",
        1 => Just("a\"b\\c\u{1}\n".to_string())
    ]
}

fn num() -> impl Strategy<Value = i64> {
    prop_oneof![-3i64..8, Just(i64::MIN), Just(i64::MAX), any::<i64>()]
}

fn tick() -> impl Strategy<Value = u32> {
    prop_oneof![0u32..8, Just(u32::MAX), any::<u32>()]
}

fn int() -> impl Strategy<Value = i32> {
    prop_oneof![-3i32..100, Just(i32::MIN), Just(i32::MAX)]
}

fn path() -> impl Strategy<Value = PathView> {
    let dm = prop_oneof![
        Just(PathDmState::Active),
        Just(PathDmState::Failed),
        Just(PathDmState::Undef)
    ];
    let init = prop_oneof![
        Just(InitState::New),
        Just(InitState::Failed),
        Just(InitState::MissingUdev),
        Just(InitState::RequestedUdev),
        Just(InitState::Ok),
        Just(InitState::Removed),
        Just(InitState::Partial)
    ];
    let hcil = proptest::option::of((any::<u32>(), any::<u32>(), any::<u32>(), any::<u64>()).prop_map(
        |(host, channel, target, lun)| Hcil {
            host,
            channel,
            target,
            lun,
        },
    ));
    (
        (
            text(),
            text(),
            text(),
            hcil,
            dm,
            any::<bool>(),
            0..CheckerState::ALL.len(),
        ),
        (
            text(),
            text(),
            proptest::option::of(text()),
            num(),
            num(),
            int(),
            any::<u64>(),
        ),
        (
            any::<bool>(),
            proptest::option::of(text()),
            any::<bool>(),
            proptest::option::of(text()),
        ),
        (
            int(),
            init,
            proptest::option::of(any::<u16>()),
            proptest::option::of(int()),
        ),
    )
        .prop_map(
            |(
                (dev, dev_t, wwid, hcil, dm_state, offline, st),
                (vendor, product, checker, tick, checkint, priority, size),
                (marginal, map, add_when_online, fc),
                (failures, init, tpg_id, max_sectors_kb),
            )| PathView {
                dev,
                dev_t,
                wwid,
                hcil,
                dm_state,
                offline,
                state: CheckerState::ALL[st],
                vendor,
                product: product.clone(),
                rev: product,
                checker,
                tick,
                checkint,
                priority,
                size,
                serial: "s".into(),
                marginal,
                map,
                add_when_online,
                host_wwnn: fc.clone(),
                target_wwnn: fc.clone(),
                host_wwpn: fc.clone(),
                target_wwpn: fc.clone(),
                host_adapter: fc.clone(),
                vpd_data: fc,
                failures,
                protocol: "scsi:fcp".into(),
                init,
                tpg_id,
                max_sectors_kb,
            },
        )
}

fn map() -> impl Strategy<Value = MapView> {
    // The setting with its countdown in seconds.
    let failback = (
        prop_oneof![
            Just(Failback::Immediate),
            Just(Failback::Followover),
            Just(Failback::Manual),
            tick().prop_map(Failback::Deferred),
        ],
        tick(),
    );
    let queueing = (
        prop_oneof![
            Just(NoPathRetry::Fail),
            Just(NoPathRetry::Queue),
            Just(NoPathRetry::Undef),
            tick().prop_map(NoPathRetry::Retries),
        ],
        tick(),
    );
    let pg_state = prop_oneof![
        Just(PgState::Enabled),
        Just(PgState::Disabled),
        Just(PgState::Active),
        Just(PgState::Undef)
    ];
    let group = (int(), pg_state, any::<bool>(), proptest::collection::vec(path(), 0..3)).prop_map(
        |(priority, state, marginal, paths)| PathGroupView {
            priority,
            state,
            marginal,
            paths,
        },
    );
    let dm = proptest::option::of((any::<u32>(), any::<bool>(), any::<bool>()).prop_map(
        |(minor, read_only, suspended)| DmInfo {
            minor,
            read_only,
            suspended,
        },
    ));
    (
        (text(), text(), dm, failback, queueing, any::<u64>(), text(), text()),
        (
            proptest::option::of(text()),
            any::<[u32; 6]>(),
            text(),
            proptest::option::of(int()),
        ),
        proptest::collection::vec(group, 0..3),
    )
        .prop_map(
            |(
                (name, wwid, dm, failback, queueing, size, features, hwhandler),
                (action, counters, selector, max_sectors_kb),
                groups,
            )| MapView {
                name,
                wwid,
                dm,
                failback: failback.0,
                failback_tick: failback.1,
                no_path_retry: queueing.0,
                retry_tick: queueing.1,
                size,
                features,
                hwhandler,
                action,
                path_faults: counters[0],
                switch_grp: counters[1],
                map_loads: counters[2],
                total_q_time: counters[3],
                q_timeouts: counters[4],
                map_failures: counters[5],
                selector,
                vpd_data: None,
                max_sectors_kb,
                groups,
            },
        )
}

fn input() -> impl Strategy<Value = (String, Vec<MapView>, Vec<PathView>, bool)> {
    (
        fmt(),
        proptest::collection::vec(map(), 0..3),
        proptest::collection::vec(path(), 0..3),
        any::<bool>(),
    )
}

fn json_ok(out: &str) {
    if let Err(e) = serde_json::from_str::<serde_json::Value>(out) {
        panic!("JSON output does not parse ({e}):\n{out}");
    }
}

fn property(case: &(String, Vec<MapView>, Vec<PathView>, bool)) {
    let (fmt, maps, paths, raw) = case;
    let _ = paths_table(paths, fmt, *raw);
    let _ = maps_table(maps, fmt, *raw);
    let _ = topology(maps, paths);
    let json = maps_json(maps);
    let map_json: Vec<String> = maps.iter().map(map_json).collect();
    // Strings are written into the JSON unescaped (finding json_strings_unescaped in
    // tests/fuzz_regressions.rs): check validity only when no string needs escaping,
    // which is when their Debug form has no backslash.
    if !format!("{maps:?}").contains('\\') {
        json_ok(&json);
        map_json.iter().for_each(|j| json_ok(j));
    }
    for m in maps {
        let _ = map_line(m, maps, fmt);
    }
    for p in paths {
        let _ = path_line(p, fmt);
    }
    if let Some(p) = paths.first() {
        let _ = human_size(p.size);
    }
}

#[test]
fn fuzz_cli_format() {
    fuzz_support::run("fuzz_cli_format", input(), property);
}
