//! Minimized inputs the `fuzz_*` targets found. A crash is kept here `#[ignore]`d with
//! its location until the owning module is fixed; then the `ignore` goes and the test
//! guards the fix.

use multipathd::cli::format::{
    CheckerState, Failback, InitState, MapView, NoPathRetry, PathDmState, PathView, map_json, path_line,
};
use multipathd::config::{self, dump};
use multipathd::dm::table::add_feature;

/// `add_feature` adds the new feature's word count to the parsed count unchecked:
/// a count of `usize::MAX` overflows (panics in debug builds, wraps to `0` in release,
/// giving a feature string whose count no longer matches its words).
#[test]
fn add_feature_count_overflow() {
    // Refusing the string is fine; a result must not have wrapped its count.
    if let Ok(s) = add_feature(Some("18446744073709551615 "), "0") {
        let count: u128 = s.split(' ').next().unwrap().parse().unwrap();
        assert!(count >= u128::from(u64::MAX), "count wrapped: {s:?}");
    }
}

/// A `no|0|N` keyword set to `00` is stored as the number 0 and dumped as `0`, which
/// reads back as `no`: `show config` output does not re-read to the same settings.
#[test]
fn no_or_n_double_zero_dump_round_trip() {
    let text = "defaults {\n\tmarginal_path_err_recheck_gap_time 00\n}\n";
    let first = dump::show_config(&config::parse_str_bare("a.conf", text).unwrap().config);
    let again = config::parse_str_bare("dump", &first).unwrap();
    assert_eq!(dump::show_config(&again.config), first);
}

/// `max_fds 0` (leave the open-file limit as found) prints nothing, as upstream's dump
/// does, so the dump re-reads with `max_fds` unset and the second dump shows the default
/// `max`. The fuzz round-trip property allows exactly this (CI seed 1796471080978013497).
#[test]
fn max_fds_zero_is_left_out_of_the_dump_and_re_reads_as_the_default() {
    let text = "defaults {\n\tmax_fds 0\n}\n";
    let first = dump::show_config(&config::parse_str_bare("a.conf", text).unwrap().config);
    assert!(!first.contains("max_fds"), "{first}");
    let again = config::parse_str_bare("dump", &first).unwrap();
    let second = dump::show_config(&again.config);
    assert!(second.contains("\tmax_fds \"max\"\n"), "{second}");
    assert_eq!(second.replace("\tmax_fds \"max\"\n", ""), first);
}

/// The progress bar (a path's `%C` next-check, a map's `%F` deferred failback) computes `bar length * tick / checkint` unchecked:
/// a tick near `i64::MAX` overflows. Ticks come from daemon state, not from clients, so
/// this needs a corrupted or absurd interval to trigger.
#[test]
fn progress_bar_tick_overflow() {
    let p = PathView {
        dev: "sdb".into(),
        dev_t: "8:16".into(),
        wwid: String::new(),
        hcil: None,
        dm_state: PathDmState::Active,
        offline: false,
        state: CheckerState::Up,
        vendor: String::new(),
        product: String::new(),
        rev: String::new(),
        checker: None,
        tick: i64::MAX,
        checkint: i64::MAX,
        priority: 0,
        size: 0,
        serial: String::new(),
        marginal: false,
        map: Some("mpatha".into()),
        add_when_online: false,
        host_wwnn: None,
        target_wwnn: None,
        host_wwpn: None,
        target_wwpn: None,
        host_adapter: None,
        vpd_data: None,
        failures: 0,
        protocol: String::new(),
        init: InitState::Ok,
        tpg_id: None,
        max_sectors_kb: None,
    };
    assert_eq!(path_line(&p, "%C"), format!("XXXXXXXXXX {0}/{0}\n", i64::MAX));
}

/// `show map(s) json` writes names, WWIDs, selectors and path attributes (vendor and
/// product come from the device's INQUIRY data) into JSON strings without escaping, so
/// a `"`, `\\` or control character makes the output unparsable for JSON clients.
#[test]
fn json_strings_unescaped() {
    let m = MapView {
        name: "a\"b".into(),
        wwid: "3600\\x".into(),
        dm: None,
        failback: Failback::Manual,
        failback_tick: 0,
        no_path_retry: NoPathRetry::Fail,
        retry_tick: 0,
        size: 0,
        features: "0".into(),
        hwhandler: "0".into(),
        action: None,
        path_faults: 0,
        switch_grp: 0,
        map_loads: 0,
        total_q_time: 0,
        q_timeouts: 0,
        map_failures: 0,
        selector: "service-time\u{1} 0".into(),
        vpd_data: None,
        max_sectors_kb: None,
        groups: vec![],
    };
    let v: serde_json::Value = serde_json::from_str(&map_json(&m)).expect("valid JSON");
    assert_eq!(v["map"]["name"], "a\"b");
}
