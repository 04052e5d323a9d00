//! The built-in hardware table and hardware-entry precedence (upstream tests/hwtable.c vectors).

use multipathd::config::hwtable;
use multipathd::config::keywords::Setting;
use multipathd::config::propsel::{NoPathRetry, ORIGIN_CONF, ORIGIN_DEFAULT, ORIGIN_HWE, ORIGIN_MULTIPATHS, Selector};
use multipathd::config::{self, LoadOptions};

#[test]
fn builtin_table_parses_cleanly() {
    let loaded = config::parse_str_bare(hwtable::NAME, hwtable::TEXT).unwrap();
    assert!(loaded.diagnostics.is_empty(), "{:#?}", loaded.diagnostics);
    assert_eq!(hwtable::builtin().len(), loaded.config.devices.len());
}

#[test]
fn builtin_table_has_all_upstream_entries() {
    let t = hwtable::builtin();
    assert_eq!(t.len(), 137);
    let bl = t.iter().filter(|h| h.str(Setting::ProductBlacklist).is_some());
    assert_eq!(bl.count(), 33);
}

#[test]
fn builtin_entries_identify_hardware_and_set_no_handler() {
    let t = hwtable::builtin();
    assert!(t.len() > 100);
    for h in t {
        assert!(
            h.str(Setting::Vendor).is_some() && h.str(Setting::Product).is_some(),
            "{h:?}"
        );
        // Upstream removed hardware handlers from the table in 0.11.0.
        assert!(h.str(Setting::HardwareHandler).is_none(), "{h:?}");
    }
}

#[test]
fn nvme_entries() {
    let cfg = config::builtin();
    let s = Selector::new(&cfg, "NVME", "NoName", "", "w");
    assert_eq!(s.checker().value, "none");
    assert_eq!(s.checker().origin, ORIGIN_HWE);
    assert_eq!(s.uid_attribute("nvme0n1").value, "ID_WWN");
    assert_eq!(s.pgpolicy().value, "group_by_prio");
    assert_eq!(s.no_path_retry().value, NoPathRetry::Undef);
    assert_eq!(s.no_path_retry().origin, ORIGIN_DEFAULT);
    let s = Selector::new(&cfg, "NVME", "NetApp ONTAP Controller", "", "w");
    assert_eq!(s.no_path_retry().value, NoPathRetry::Queue);
}

#[test]
fn examples_from_the_reference() {
    let cfg = config::builtin();
    let s = Selector::new(&cfg, "DGC", "VRAID", "0001", "w");
    assert_eq!(s.checker().value, "emc_clariion");
    assert_eq!(s.prio().value.0, "emc");
    assert_eq!(s.no_path_retry().value, NoPathRetry::Retries(60));
    assert!(!s.detect_checker().value);
    let s = Selector::new(&cfg, "NETAPP", "LUN C-Mode", "", "w");
    assert_eq!(s.features().value, "2 pg_init_retries 50");
    assert_eq!(s.flush_on_last_del().value, "always");
    assert_eq!(s.prio().value.0, "ontap");
    let s = Selector::new(&cfg, "LIO-ORG", "whatever", "", "w");
    assert_eq!(s.checker().value, "directio");
    assert_eq!(s.no_path_retry().value, NoPathRetry::Retries(12));
    // Unknown hardware falls through to the built-in defaults.
    let s = Selector::new(&cfg, "ACME", "Thing", "", "w");
    assert_eq!(
        (s.checker().value.as_str(), s.checker().origin),
        ("tur", ORIGIN_DEFAULT)
    );
}

const KV1: &str = "devices {\n\tdevice {\n\t\tvendor \"^.oo\"\n\t\tproduct \"(bar|baz|ba\\.)$\"\n\t\tprio emc\n\t\tpath_checker hp_sw\n\t}\n}\n";
const KV2: &str =
    "devices {\n\tdevice {\n\t\tvendor foo\n\t\tproduct bar\n\t\tprio hds\n\t\tvpd_vendor hp3par\n\t}\n}\n";

fn triple(cfg: &config::Config, v: &str, p: &str) -> (String, Option<String>, String) {
    let s = Selector::new(cfg, v, p, "", "w");
    let vpd = s
        .hwes()
        .iter()
        .find_map(|h| h.str(Setting::VpdVendor).map(str::to_string));
    (s.prio().value.0, vpd, s.checker().value)
}

fn t(p: &str, v: Option<&str>, c: &str) -> (String, Option<String>, String) {
    (p.to_string(), v.map(str::to_string), c.to_string())
}

#[test]
fn multiple_hwe_in_one_file() {
    let text = format!("{KV1}{KV2}");
    let cfg = config::parse_str("/etc/multipath.conf", &text).unwrap().config;
    assert_eq!(triple(&cfg, "foo", "baz"), t("emc", None, "hp_sw"));
    assert_eq!(triple(&cfg, "foo", "bar"), t("hds", Some("hp3par"), "hp_sw"));
    assert_eq!(triple(&cfg, ".oo", "ba."), t("emc", None, "hp_sw"));
    assert_eq!(Selector::new(&cfg, "foo", "bar", "", "w").prio().origin, ORIGIN_HWE);
}

#[test]
fn conf_d_entry_beats_main_file_entry() {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("multipath.conf");
    let confd = dir.path().join("conf.d");
    std::fs::create_dir(&confd).unwrap();
    std::fs::write(&main, KV2).unwrap();
    std::fs::write(confd.join("kv1.conf"), KV1).unwrap();
    std::fs::write(confd.join("ignored.txt"), "defaults {\n\tverbosity 4\n}\n").unwrap();
    let loaded = config::load(&LoadOptions {
        path: main,
        conf_dir: confd,
    })
    .unwrap();
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
    assert_eq!(triple(&loaded.config, "foo", "bar"), t("emc", Some("hp3par"), "hp_sw"));
    assert!(!loaded.config.defaults.contains_key("verbosity"));
}

#[test]
fn quoted_product_matches_literal_quotes_and_entry_without_product_is_dropped() {
    let text = "devices {\n\tdevice {\n\t\tvendor foo\n\t\tproduct \"\"\"bar\"\"\"\n\t\tprio hds\n\t}\n\tdevice {\n\t\tvendor foo\n\t\tprio emc\n\t}\n}\n";
    let l = config::parse_str("/etc/multipath.conf", text).unwrap();
    assert_eq!(l.config.devices.len(), 1);
    assert_eq!(
        l.diagnostics.iter().map(|d| d.message.as_str()).collect::<Vec<_>>(),
        ["device config in /etc/multipath.conf missing vendor or product parameter"]
    );
    assert_eq!(
        Selector::new(&l.config, "foo", "\"bar\"", "", "w").prio().value.0,
        "hds"
    );
    assert_eq!(Selector::new(&l.config, "foo", "bar", "", "w").prio().value.0, "const");
}

#[test]
fn multipaths_entry_beats_device_entry() {
    let text = "multipaths {\n\tmultipath {\n\t\twwid W\n\t\tprio rdac\n\t\trr_min_io_rq 99\n\t}\n}\n\
                devices {\n\tdevice {\n\t\tvendor foo\n\t\tproduct bar\n\t\tprio emc\n\t\tuid_attribute BAZ_ATTR\n\t}\n}\n";
    let cfg = config::parse_str("f", text).unwrap().config;
    let s = Selector::new(&cfg, "foo", "bar", "", "W");
    assert_eq!(
        (s.prio().value.0.as_str(), s.prio().origin),
        ("rdac", ORIGIN_MULTIPATHS)
    );
    assert_eq!(s.rr_min_io_rq().value, 99);
    assert_eq!(s.uid_attribute("sda").value, "BAZ_ATTR");
    let s = Selector::new(&cfg, "foo", "bar", "", "other");
    assert_eq!(s.prio().value.0, "emc");
    assert_eq!((s.rr_min_io_rq().value, s.rr_min_io_rq().origin), (1, ORIGIN_DEFAULT));
}

#[test]
fn two_multipaths_entries_for_one_wwid_merge() {
    let text = "multipaths {\n\tmultipath {\n\t\twwid W\n\t\tprio rdac\n\t\tno_path_retry queue\n\t}\n\
                \tmultipath {\n\t\twwid W\n\t\trr_min_io_rq 99\n\t\tno_path_retry 37\n\t}\n}\n\
                defaults {\n\tpath_checker directio\n}\n";
    let cfg = config::parse_str("f", text).unwrap().config;
    assert_eq!(cfg.multipaths.len(), 1);
    let s = Selector::new(&cfg, "x", "y", "", "W");
    assert_eq!(s.prio().value.0, "rdac");
    assert_eq!(s.rr_min_io_rq().value, 99);
    assert_eq!(s.no_path_retry().value, NoPathRetry::Retries(37));
    assert_eq!(
        (s.checker().value.as_str(), s.checker().origin),
        ("directio", ORIGIN_CONF)
    );
}
