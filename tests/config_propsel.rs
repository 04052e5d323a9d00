//! Property selection precedence and origin strings.

use multipathd::config::propsel::*;
use multipathd::config::{self, Config};

fn cfg(text: &str) -> Config {
    config::parse_str("f", text).unwrap().config
}

const LAYERS: &str = "defaults {\n\tfailback 5\n\tprio_args d\n\tprio alua\n\tno_path_retry 3\n\tpath_checker readsector0\n\tuid_attribute DEF_ATTR\n}\n\
devices {\n\tdevice {\n\t\tvendor ACME\n\t\tproduct .*\n\t\tfailback immediate\n\t\tno_path_retry queue\n\t\tprio_args hw_args\n\t\tpath_checker hp_sw\n\t\thardware_handler \"1 alua\"\n\t}\n\
\tdevice {\n\t\tvendor ACME\n\t\tproduct Z\n\t\tprio hds\n\t}\n}\n\
overrides {\n\tfailback followover\n\tfast_io_fail_tmo 7\n\tprotocol {\n\t\ttype scsi:iscsi\n\t\tfast_io_fail_tmo off\n\t}\n}\n\
multipaths {\n\tmultipath {\n\t\twwid W\n\t\tfailback manual\n\t\talias db\n\t\tpath_selector \"queue-length 0\"\n\t}\n}\n";

#[test]
fn each_level_with_its_origin() {
    let c = cfg(LAYERS);
    let s = Selector::new(&c, "ACME", "Z", "", "W");
    assert_eq!(
        s.failback(),
        Selected {
            value: Failback::Manual,
            origin: ORIGIN_MULTIPATHS
        }
    );
    assert_eq!(
        s.alias(),
        Some(Selected {
            value: "db".into(),
            origin: ORIGIN_MULTIPATHS
        })
    );
    assert_eq!(
        s.selector(),
        Selected {
            value: "queue-length 0".into(),
            origin: ORIGIN_MULTIPATHS
        }
    );
    assert_eq!(
        s.no_path_retry(),
        Selected {
            value: NoPathRetry::Queue,
            origin: ORIGIN_HWE
        }
    );
    assert_eq!(
        s.hwhandler(),
        Selected {
            value: "1 alua".into(),
            origin: ORIGIN_HWE
        }
    );
    // checker has no multipaths level; devices entries beat defaults.
    assert_eq!(
        s.checker(),
        Selected {
            value: "hp_sw".into(),
            origin: ORIGIN_HWE
        }
    );
    // prio from one entry, prio_args from another.
    assert_eq!(
        s.prio(),
        Selected {
            value: ("hds".into(), "hw_args".into()),
            origin: ORIGIN_HWE
        }
    );
    assert_eq!(
        s.uid_attribute("sda"),
        Selected {
            value: "DEF_ATTR".into(),
            origin: ORIGIN_CONF
        }
    );
    assert_eq!(
        s.rr_min_io(),
        Selected {
            value: 1000,
            origin: ORIGIN_DEFAULT
        }
    );

    let other = Selector::new(&c, "ACME", "Y", "", "X");
    assert_eq!(
        other.failback(),
        Selected {
            value: Failback::Followover,
            origin: ORIGIN_OVERRIDES
        }
    );
    assert_eq!(other.alias(), None);
    assert_eq!(
        other.prio(),
        Selected {
            value: ("alua".into(), "d".into()),
            origin: ORIGIN_CONF
        }
    );
    let none = Selector::new(&c, "OTHER", "Y", "", "X");
    assert_eq!(
        none.no_path_retry(),
        Selected {
            value: NoPathRetry::Retries(3),
            origin: ORIGIN_CONF
        }
    );
    assert_eq!(
        none.hwhandler(),
        Selected {
            value: "0".into(),
            origin: ORIGIN_DEFAULT
        }
    );
}

#[test]
fn duplicated_protocol_sections_merge_at_run_time() {
    // Upstream merges protocol sections of one type (the later wins, the earlier fills in);
    // the first one used to win here while the dump printed both.
    let c = cfg(
        "overrides {\n\tprotocol {\n\t\ttype scsi:fcp\n\t\tfast_io_fail_tmo 3\n\t\teh_deadline 9\n\t}\n\
                 \tprotocol {\n\t\ttype scsi:fcp\n\t\tfast_io_fail_tmo 8\n\t\tdev_loss_tmo 70\n\t}\n}\n",
    );
    let s = Selector::new(&c, "OTHER", "Y", "", "X");
    let secs = |n| Selected {
        value: Some(Timeout::Secs(n)),
        origin: ORIGIN_OVERRIDES_PROTOCOL,
    };
    assert_eq!(s.fast_io_fail(Some("scsi:fcp")), secs(8));
    assert_eq!(s.dev_loss(Some("scsi:fcp")), secs(70));
    assert_eq!(s.eh_deadline(Some("scsi:fcp")), secs(9));
}

#[test]
fn transport_timeouts_with_protocol_subsection() {
    let c = cfg(LAYERS);
    let s = Selector::new(&c, "OTHER", "Y", "", "X");
    assert_eq!(
        s.fast_io_fail(Some("scsi:iscsi")),
        Selected {
            value: Some(Timeout::Off),
            origin: ORIGIN_OVERRIDES_PROTOCOL
        }
    );
    assert_eq!(
        s.fast_io_fail(Some("scsi:fcp")),
        Selected {
            value: Some(Timeout::Secs(7)),
            origin: ORIGIN_OVERRIDES
        }
    );
    assert_eq!(
        s.dev_loss(None),
        Selected {
            value: None,
            origin: ORIGIN_DEFAULT
        }
    );
    let empty = Config::default();
    let d = Selector::new(&empty, "a", "b", "", "w");
    assert_eq!(
        d.fast_io_fail(None),
        Selected {
            value: Some(Timeout::Secs(5)),
            origin: ORIGIN_DEFAULT
        }
    );
    let inf = cfg("defaults {\n\tdev_loss_tmo infinity\n}\n");
    assert_eq!(
        Selector::new(&inf, "a", "b", "", "w").dev_loss(None).value,
        Some(Timeout::Secs(u32::MAX))
    );
}

#[test]
fn uid_attrs_beats_everything() {
    let c = cfg(
        "defaults {\n\tuid_attrs \"dasd:ID_SPAM   sd:ID_BOGUS nvme:ID_EGGS    \"\n}\noverrides {\n\tuid_attribute OVR\n}\n",
    );
    let s = Selector::new(&c, "a", "b", "", "w");
    assert_eq!(
        s.uid_attribute("sdaw"),
        Selected {
            value: "ID_BOGUS".into(),
            origin: ORIGIN_UID_ATTRS
        }
    );
    assert_eq!(s.uid_attribute("dasdu").value, "ID_SPAM");
    assert_eq!(s.uid_attribute("nvme2n4").value, "ID_EGGS");
    assert_eq!(
        s.uid_attribute("hda"),
        Selected {
            value: "OVR".into(),
            origin: ORIGIN_OVERRIDES
        }
    );
}

#[test]
fn marginal_path_switches_san_path_err_off() {
    let text = "defaults {\n\tsan_path_err_threshold 2\n\tsan_path_err_forget_rate 3\n\tsan_path_err_recovery_time 30\n\
                \tmarginal_path_err_sample_time 120\n\tmarginal_path_err_rate_threshold 10\n\tmarginal_path_err_recheck_gap_time 30\n}\n\
                multipaths {\n\tmultipath {\n\t\twwid W\n\t\tmarginal_path_double_failed_time 60\n\t}\n}\n";
    let c = cfg(text);
    let on = Selector::new(&c, "a", "b", "", "W").shaky_path();
    assert!(on.marginal_path_enabled());
    assert!(!on.san_path_err_enabled());
    assert_eq!(
        on.san_path_err_threshold,
        Selected {
            value: None,
            origin: ORIGIN_MARGINAL_PATH
        }
    );
    assert_eq!(
        on.marginal_path_double_failed_time,
        Selected {
            value: Some(60),
            origin: ORIGIN_MULTIPATHS
        }
    );
    assert_eq!(
        on.marginal_path_err_sample_time,
        Selected {
            value: Some(120),
            origin: ORIGIN_CONF
        }
    );
    // Without the multipaths entry marginal_path is incomplete, so san_path_err stays on.
    let off = Selector::new(&c, "a", "b", "", "V").shaky_path();
    assert!(!off.marginal_path_enabled());
    assert!(off.san_path_err_enabled());
    assert_eq!(
        off.san_path_err_recovery_time,
        Selected {
            value: Some(30),
            origin: ORIGIN_CONF
        }
    );
}

#[test]
fn rate_threshold_zero_disables_marginal_path_and_fpin_disables_both() {
    let base = "\tmarginal_path_err_sample_time 150\n\tmarginal_path_err_recheck_gap_time 30\n\tmarginal_path_double_failed_time 60\n";
    let c = cfg(&format!(
        "defaults {{\n{base}\tmarginal_path_err_rate_threshold 0\n}}\n"
    ));
    assert!(
        !Selector::new(&c, "a", "b", "", "w")
            .shaky_path()
            .marginal_path_enabled()
    );
    let c = cfg(&format!(
        "defaults {{\n{base}\tmarginal_path_err_rate_threshold 5\n\tmarginal_pathgroups fpin\n\tsan_path_err_threshold 2\n}}\n"
    ));
    let s = Selector::new(&c, "a", "b", "", "w").shaky_path();
    assert!(!s.marginal_path_enabled());
    assert_eq!(s.san_path_err_threshold.value, None);
}

#[test]
fn delay_checks_stand_in_for_san_path_err() {
    let c = cfg("defaults {\n\tdelay_watch_checks 4\n\tdelay_wait_checks 3\n\tpolling_interval 5\n}\n");
    let s = Selector::new(&c, "a", "b", "", "w").shaky_path();
    assert_eq!(
        s.san_path_err_threshold,
        Selected {
            value: Some(1),
            origin: ORIGIN_DELAY_WAIT
        }
    );
    assert_eq!(
        s.san_path_err_forget_rate,
        Selected {
            value: Some(4),
            origin: ORIGIN_DELAY_WATCH
        }
    );
    assert_eq!(
        s.san_path_err_recovery_time,
        Selected {
            value: Some(60),
            origin: ORIGIN_DELAY_WAIT
        }
    );
    let c = cfg("defaults {\n\tdelay_watch_checks 4\n\tsan_path_err_threshold 9\n}\n");
    let s = Selector::new(&c, "a", "b", "", "w").shaky_path();
    assert_eq!(s.san_path_err_threshold.value, Some(9));
    assert_eq!(s.san_path_err_forget_rate.value, None);
}

#[test]
fn node_attributes_only_from_multipaths_or_defaults() {
    let c = cfg(
        "defaults {\n\tmode 0640\n\tuid 0\n}\nmultipaths {\n\tmultipath {\n\t\twwid W\n\t\tmode 0600\n\t\treservation_key file\n\t}\n}\n",
    );
    let s = Selector::new(&c, "a", "b", "", "W");
    assert_eq!(
        s.mode(),
        Some(Selected {
            value: 0o600,
            origin: ORIGIN_MULTIPATHS
        })
    );
    assert_eq!(
        s.uid(),
        Some(Selected {
            value: 0,
            origin: ORIGIN_CONF
        })
    );
    assert_eq!(s.gid(), None);
    assert_eq!(s.reservation_key().map(|r| r.value), Some("file".to_string()));
    assert_eq!(
        Selector::new(&c, "a", "b", "", "V").mode().map(|m| m.value),
        Some(0o640)
    );
}

#[test]
fn flags_and_defaults() {
    let c = Config::default();
    let s = Selector::new(&c, "a", "b", "", "w");
    assert_eq!(
        s.detect_prio(),
        Selected {
            value: true,
            origin: ORIGIN_DEFAULT
        }
    );
    assert!(s.retain_hwhandler().value);
    assert!(!s.user_friendly_names().value);
    assert_eq!(s.alias_prefix().value, "mpath");
    assert_eq!(s.ghost_delay().value, None);
    assert_eq!(s.flush_on_last_del().value, "unused");
    assert_eq!(s.marginal_pathgroups().value, "off");
    assert_eq!(
        s.pgpolicy(),
        Selected {
            value: "failover".into(),
            origin: ORIGIN_DEFAULT
        }
    );
    // alias_prefix has no multipaths level, so a multipaths setting could not exist:
    // the table rejects it as an unknown keyword.
    let l = config::parse_str(
        "f",
        "multipaths {\n\tmultipath {\n\t\twwid W\n\t\talias_prefix x\n\t}\n}\n",
    )
    .unwrap();
    assert_eq!(
        l.diagnostics[0].message,
        "f line 4, invalid keyword in the multipath section: alias_prefix"
    );
}

#[test]
fn queue_if_no_path_feature_becomes_no_path_retry() {
    let c = cfg("defaults {\n\tfeatures \"3 queue_if_no_path pg_init_retries 50\"\n}\n");
    let s = Selector::new(&c, "a", "b", "", "w");
    assert_eq!(
        s.features(),
        Selected {
            value: "2 pg_init_retries 50".into(),
            origin: ORIGIN_CONF
        }
    );
    assert_eq!(
        s.no_path_retry(),
        Selected {
            value: NoPathRetry::Queue,
            origin: ORIGIN_FEATURE_QUEUE
        }
    );
    // An explicit no_path_retry wins over the feature.
    let c = cfg("defaults {\n\tfeatures \"1 queue_if_no_path\"\n\tno_path_retry fail\n}\n");
    let s = Selector::new(&c, "a", "b", "", "w");
    assert_eq!(s.features().value, "0");
    assert_eq!(s.no_path_retry().value, NoPathRetry::Fail);
}

#[test]
fn remove_feature_vectors() {
    assert_eq!(remove_feature("4 this is a test", "is a"), "2 this test");
    assert_eq!(remove_feature("1 queue_if_no_path", "queue_if_no_path"), "0");
    assert_eq!(remove_feature("0", "queue_if_no_path"), "0");
    assert_eq!(remove_feature("bad", "x"), "bad");
}

#[test]
fn autodetection_steps() {
    let c = cfg(
        "devices {\n\tdevice {\n\t\tvendor V\n\t\tproduct P\n\t\tpath_checker hp_sw\n\t\tprio alua\n\t\tdetect_checker no\n\t}\n}\n",
    );
    let alua = PathFacts {
        tpgs: true,
        rdac: false,
        detected_prio: Some("sysfs"),
    };
    let plain = PathFacts::default();
    let generic = Selector::new(&c, "X", "Y", "", "w");
    assert_eq!(
        generic.checker_for_path(&alua),
        Selected {
            value: "tur".into(),
            origin: ORIGIN_AUTODETECT
        }
    );
    let rdac = PathFacts { rdac: true, ..plain };
    assert_eq!(generic.checker_for_path(&rdac).value, "rdac");
    assert_eq!(
        generic.checker_for_path(&plain),
        Selected {
            value: "tur".into(),
            origin: ORIGIN_DEFAULT
        }
    );
    assert_eq!(
        generic.prio_for_path(&alua),
        Selected {
            value: ("sysfs".into(), String::new()),
            origin: ORIGIN_AUTODETECT
        }
    );
    let vp = Selector::new(&c, "V", "P", "", "w");
    // detect_checker off for this device: the configured checker stays.
    assert_eq!(
        vp.checker_for_path(&alua),
        Selected {
            value: "hp_sw".into(),
            origin: ORIGIN_HWE
        }
    );
    // alua prio without TPGS falls back to const.
    assert_eq!(
        vp.prio_for_path(&PathFacts {
            detected_prio: None,
            ..plain
        }),
        Selected {
            value: ("const".into(), String::new()),
            origin: ORIGIN_ALUA_FALLBACK
        }
    );
}

#[test]
fn map_level_autodetection() {
    let c = cfg(
        "defaults {\n\tpath_grouping_policy group_by_tpg\n}\ndevices {\n\tdevice {\n\t\tvendor V\n\t\tproduct P\n\t\thardware_handler \"1 alua\"\n\t\tdetect_pgpolicy_use_tpg yes\n\t}\n}\n",
    );
    let s = Selector::new(&c, "X", "Y", "", "w");
    assert_eq!(
        s.pgpolicy_for_map(true),
        Selected {
            value: "group_by_prio".into(),
            origin: ORIGIN_AUTODETECT
        }
    );
    assert_eq!(
        s.pgpolicy_for_map(false),
        Selected {
            value: "failover".into(),
            origin: ORIGIN_TPG_FALLBACK
        }
    );
    let vp = Selector::new(&c, "V", "P", "", "w");
    assert_eq!(vp.pgpolicy_for_map(true).value, "group_by_tpg");
    assert_eq!(
        s.hwhandler_for_map(&[None, None], true),
        Selected {
            value: "1 alua".into(),
            origin: ORIGIN_TPGS
        }
    );
    assert_eq!(
        s.hwhandler_for_map(&[Some("detached")], false),
        Selected {
            value: "0".into(),
            origin: ORIGIN_DEFAULT
        }
    );
    assert_eq!(
        s.hwhandler_for_map(&[Some("rdac"), Some("rdac")], false),
        Selected {
            value: "1 rdac".into(),
            origin: ORIGIN_RETAINED
        }
    );
    assert_eq!(
        vp.hwhandler_for_map(&[None], false),
        Selected {
            value: "0".into(),
            origin: ORIGIN_TPGS
        }
    );
    assert_eq!(
        vp.hwhandler_for_map(&[None], true),
        Selected {
            value: "1 alua".into(),
            origin: ORIGIN_HWE
        }
    );
}
