//! Parser structure, validation messages, keyword table and load behaviour.

use multipathd::config::keywords::Setting;
use multipathd::config::keywords::{self, KEYWORDS, Section, ValueType};
use multipathd::config::value::Value;
use multipathd::config::{self, ConfigError, Level, LoadOptions};

const F: &str = "/etc/multipath.conf";

fn msgs(text: &str) -> Vec<String> {
    config::parse_str(F, text)
        .unwrap()
        .diagnostics
        .into_iter()
        .map(|d| d.message)
        .collect()
}

#[test]
fn keyword_counts_per_section() {
    // upstream's keywords; our extensions come on top
    let count = |s| keywords::value_keywords(s).filter(|k| !k.extension).count();
    assert_eq!(count(Section::Defaults), 76);
    assert_eq!(count(Section::Device), 48);
    assert_eq!(count(Section::Overrides), 41); // no pg_timeout there
    assert_eq!(count(Section::Multipath), 33);
    assert_eq!(count(Section::Protocol), 4);
    assert_eq!(count(Section::Blacklist), 4);
    assert_eq!(count(Section::BlacklistDevice), 2);
}

#[test]
fn every_builtin_default_parses() {
    for kw in KEYWORDS {
        if let (Some(d), false) = (kw.default, kw.ty == ValueType::Deprecated) {
            assert!(
                config::value::parse(kw.ty, d).is_ok(),
                "default of {} does not parse: {d}",
                kw.name
            );
        }
    }
}

#[test]
fn unknown_keywords_warn_and_parsing_continues() {
    let text = "defaults {\n\tfoo bar\n\tverbosity 3\n}\nbogus {\n}\n";
    let l = config::parse_str(F, text).unwrap();
    let m: Vec<_> = l
        .diagnostics
        .iter()
        .map(|d| (d.level, d.line, d.message.as_str()))
        .collect();
    assert_eq!(
        m,
        [
            (
                Level::Warning,
                2,
                "/etc/multipath.conf line 2, invalid keyword in the defaults section: foo"
            ),
            (Level::Warning, 5, "/etc/multipath.conf line 5, invalid keyword: bogus"),
            (Level::Error, 6, "unmatched '}' at line 6 of /etc/multipath.conf"),
            (Level::Warning, 6, "/etc/multipath.conf line 6, invalid keyword: }"),
        ]
    );
    assert_eq!(l.config.defaults.get("verbosity"), Some(&Value::Int(3)));
}

#[test]
fn unknown_block_closes_the_enclosing_section() {
    // As upstream: the unknown block's `}` ends `defaults`, so `verbosity` lands at top level.
    let m = msgs("defaults {\n\tnewthing {\n\t}\n\tverbosity 3\n}\n");
    assert_eq!(
        m,
        [
            "/etc/multipath.conf line 2, invalid keyword in the defaults section: newthing",
            "/etc/multipath.conf line 4, invalid keyword: verbosity",
            "unmatched '}' at line 5 of /etc/multipath.conf",
            "/etc/multipath.conf line 5, invalid keyword: }",
        ]
    );
}

#[test]
fn line_validation_messages() {
    let text = "defaults {\n\tverbosity\n\tuid_attribute \"open\n\tprio const extra\n\talias_prefix {\n}\n\
                blacklist\n}\nmultipaths x\n}\ndevices {\n\tdevice {\n";
    assert_eq!(
        msgs(text),
        [
            "missing value for option 'verbosity' on line 2 of /etc/multipath.conf",
            "missing closing quotes on line 3 of /etc/multipath.conf",
            "ignoring extra data starting with 'extra' on line 4 of /etc/multipath.conf",
            "missing '{' on line 7 of /etc/multipath.conf",
            "expecting '{' on line 9 of /etc/multipath.conf. found 'x'",
            "missing '}' at end of /etc/multipath.conf",
            "device config in /etc/multipath.conf missing vendor or product parameter",
        ]
    );
    let l = config::parse_str(F, text).unwrap();
    assert_eq!(l.config.defaults.get("uid_attribute"), Some(&Value::Str("open".into())));
    assert_eq!(l.config.defaults.get("prio"), Some(&Value::Str("const".into())));
    // As upstream, a brace in value position is taken as the value.
    assert_eq!(l.config.defaults.get("alias_prefix"), Some(&Value::Str("{".into())));
}

#[test]
fn duplicate_keywords_warn_and_last_wins() {
    let l = config::parse_str(F, "defaults {\n\tverbosity 1\n\tverbosity 3\n}\ndefaults {\n}\n").unwrap();
    let m: Vec<_> = l.diagnostics.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(
        m,
        [
            "/etc/multipath.conf line 3, duplicate keyword: verbosity",
            "/etc/multipath.conf line 5, duplicate keyword: defaults"
        ]
    );
    assert_eq!(l.config.defaults.get("verbosity"), Some(&Value::Int(3)));
}

#[test]
fn value_messages() {
    let text = "defaults {\n\tverbosity 9\n\tuxsock_timeout 10\n\treassign_maps maybe\n\tfeatures \"x\"\n\tpath_selector \"service-time 1\"\n\
                \tflush_on_last_del yes\n\tmarginal_path_err_sample_time 60\n\tgetuid_callout foo\n\tconfig_dir /x\n\tbindings_file /y\n\tconfig_dir /z\n}\n";
    assert_eq!(
        msgs(text),
        [
            "/etc/multipath.conf line 2, value for verbosity too large, capping at 4",
            "/etc/multipath.conf line 3, value for uxsock_timeout too small, capping at 4000",
            "/etc/multipath.conf line 4, invalid value for reassign_maps: \"maybe\"",
            "/etc/multipath.conf line 5, missing argument count for features",
            "/etc/multipath.conf line 6, invalid argument count for path_selector:, got '1' expected '0'",
            "/etc/multipath.conf line 7, \"yes\" is a deprecated value for flush_on_last_del and is treated as \"always\"",
            "/etc/multipath.conf line 9: ignoring deprecated option \"getuid_callout\", using built-in value: \"(not set)\"",
            "/etc/multipath.conf line 10: ignoring deprecated option \"config_dir\", using built-in value: \"/etc/multipath/conf.d\"",
            "/etc/multipath.conf line 11: ignoring deprecated option \"bindings_file\", using built-in value: \"/etc/multipath/bindings\"",
            "/etc/multipath.conf line 12, duplicate keyword: config_dir",
        ]
    );
    let c = config::parse_str(F, text).unwrap().config;
    assert_eq!(c.defaults.get("verbosity"), Some(&Value::Int(4)));
    // Kept as written: upstream raises it to 120 when it selects it for a map (propsel).
    assert_eq!(c.defaults.get("marginal_path_err_sample_time"), Some(&Value::Int(60)));
    assert_eq!(c.defaults.get("flush_on_last_del"), Some(&Value::Str("always".into())));
    assert!(!c.defaults.contains_key("reassign_maps") && !c.defaults.contains_key("features"));
    assert!(!c.defaults.contains_key("config_dir"));
}

#[test]
fn typed_encodings_in_sections() {
    let text = "defaults {\n\tno_path_retry 0\n\tfast_io_fail_tmo off\n\tdelay_watch_checks no\n\tcheckER x\n\tchecker rdac\n\t\
                find_multipaths yes\n\tpartition_delimiter /UNSET/\n\tmode 0640\n\tpath_grouping_policy multibus_extra\n}\n";
    let l = config::parse_str(F, text).unwrap();
    let d = &l.config.defaults;
    assert_eq!(d.get("no_path_retry"), Some(&Value::Int(-1)));
    assert_eq!(d.get("fast_io_fail_tmo"), Some(&Value::Int(-1)));
    assert_eq!(d.get("delay_watch_checks"), Some(&Value::Int(-1)));
    assert_eq!(d.get("path_checker"), Some(&Value::Str("rdac".into())));
    assert_eq!(d.get("find_multipaths"), Some(&Value::Str("on".into())));
    assert_eq!(d.get("mode"), Some(&Value::Int(0o640)));
    assert_eq!(d.get("path_grouping_policy"), Some(&Value::Str("multibus".into())));
    assert!(!d.contains_key("partition_delimiter"));
    // `/UNSET/` has a slash: refused as upstream refuses it (the earlier value, none, stays).
    let m: Vec<&str> = l.diagnostics.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(
        m,
        [
            "/etc/multipath.conf line 5, invalid keyword in the defaults section: checkER",
            "/etc/multipath.conf line 8, /UNSET/ cannot contain a slash. Ignoring"
        ]
    );
}

#[test]
fn polling_interval_rules() {
    let p = |t: &str| {
        let c = config::parse_str(F, t).unwrap().config;
        (c.polling_interval(), c.max_polling_interval())
    };
    assert_eq!(p(""), (5, 20));
    assert_eq!(p("defaults {\n\tpolling_interval 3\n}\n"), (3, 12));
    assert_eq!(p("defaults {\n\tmax_polling_interval 2\n}\n"), (1, 2));
    assert_eq!(p("defaults {\n\tmax_polling_interval 40\n}\n"), (10, 40));
    assert_eq!(
        p("defaults {\n\tpolling_interval 30\n\tmax_polling_interval 10\n}\n"),
        (10, 10)
    );
}

#[test]
fn device_merge_and_protocol_checks() {
    let text = "devices {\n\tdevice {\n\t\tvendor A\n\t\tproduct B\n\t\tprio emc\n\t\tfailback 5\n\t}\n\
                \tdevice {\n\t\tvendor A\n\t\tproduct B\n\t\tprio alua\n\t}\n}\n\
                overrides {\n\tprotocol {\n\t\tfast_io_fail_tmo 3\n\t}\n\tprotocol {\n\t\ttype scsi:fcp\n\t\tdev_loss_tmo infinity\n\t}\n}\n";
    let l = config::parse_str(F, text).unwrap();
    let m: Vec<_> = l.diagnostics.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(
        m,
        [
            "factorize_hwtable: duplicate device section for A:B:(null) in /etc/multipath.conf",
            "protocol section in /etc/multipath.conf missing type"
        ]
    );
    assert_eq!(l.config.devices.len(), 1);
    assert_eq!(l.config.devices[0].str(Setting::Prio), Some("alua"));
    assert_eq!(l.config.devices[0].attrs.get("failback"), Some(&Value::Int(5)));
    assert_eq!(l.config.overrides.protocols.len(), 1);
    assert_eq!(l.config.overrides.protocols[0].protocol(), Some("scsi:fcp"));
}

#[test]
fn multipaths_without_wwid_are_dropped() {
    let l = config::parse_str(F, "multipaths {\n\tmultipath {\n\t\talias foo\n\t}\n}\n").unwrap();
    assert!(l.config.multipaths.is_empty());
    assert_eq!(l.diagnostics[0].message, "multipaths config section missing wwid");
}

#[test]
fn invalid_blacklist_regex_fails_the_main_file() {
    let text = "blacklist {\n\tdevnode \"(\"\n}\n";
    match config::parse_str(F, text) {
        Err(ConfigError::Parse { diagnostics, .. }) => {
            assert_eq!(
                diagnostics[0].message,
                "/etc/multipath.conf line 2, parsing failed: \tdevnode \"(\""
            );
            assert_eq!(diagnostics[0].line, 2);
            // upstream stops there; we add regcomp's reason.
            assert_eq!(
                diagnostics[1].message,
                "/etc/multipath.conf line 2, invalid regular expression \"(\": Unmatched ( or \\("
            );
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
    assert!(matches!(
        config::parse_str(F, "defaults {\n\treservation_key 0xZZ\n}\n"),
        Err(ConfigError::Parse { .. })
    ));
}

#[test]
fn invalid_regex_in_conf_d_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let confd = dir.path().join("conf.d");
    std::fs::create_dir(&confd).unwrap();
    std::fs::write(confd.join("b.conf"), "blacklist {\n\tdevnode \"(\"\n\twwid abc\n}\n").unwrap();
    std::fs::write(confd.join("a.conf"), "defaults {\n\tverbosity 1\n}\n").unwrap();
    std::fs::write(confd.join("c.conf"), "defaults {\n\tverbosity 3\n}\n").unwrap();
    let opts = LoadOptions {
        path: dir.path().join("missing.conf"),
        conf_dir: confd.clone(),
    };
    let l = config::load(&opts).unwrap();
    assert_eq!(l.config.defaults.get("verbosity"), Some(&Value::Int(3)));
    assert_eq!(l.config.blacklist.wwid.len(), 1);
    let b = confd.join("b.conf").display().to_string();
    assert_eq!(l.diagnostics.len(), 2);
    assert_eq!(
        l.diagnostics[0].message,
        format!("{b} line 2, parsing failed: \tdevnode \"(\"")
    );
    assert_eq!(
        l.diagnostics[1].message,
        format!("{b} line 2, invalid regular expression \"(\": Unmatched ( or \\(")
    );
    assert_eq!(l.diagnostics[0].file, b);
}

#[test]
fn missing_files_and_dirs() {
    let dir = tempfile::tempdir().unwrap();
    let opts = LoadOptions {
        path: dir.path().join("none.conf"),
        conf_dir: dir.path().join("nodir"),
    };
    let l = config::load(&opts).unwrap();
    assert_eq!(l.config, config::builtin());
    assert_eq!(
        l.diagnostics[0].message,
        format!("No configuration dir '{}'", dir.path().join("nodir").display())
    );
    let rel = LoadOptions {
        path: dir.path().join("none.conf"),
        conf_dir: "conf.d".into(),
    };
    assert_eq!(
        config::load(&rel).unwrap().diagnostics[0].message,
        "config_dir 'conf.d' must be a fully qualified path"
    );
}

#[test]
fn non_utf8_bytes_are_whitespace_outside_quotes() {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("multipath.conf");
    std::fs::write(&main, b"defaults {\n\tverbosity\xff3\n\talias_prefix \"a\xfeb\"\n}\n").unwrap();
    let l = config::load(&LoadOptions {
        path: main,
        conf_dir: dir.path().to_path_buf(),
    })
    .unwrap();
    assert_eq!(l.config.defaults.get("verbosity"), Some(&Value::Int(3)));
    assert_eq!(
        l.config.defaults.get("alias_prefix"),
        Some(&Value::Str("a\u{fffd}b".into()))
    );
}

#[test]
fn crlf_and_comments() {
    let l = config::parse_str(
        F,
        "# header\r\ndefaults {\r\n\tverbosity 3 # three\r\n\tprio \"a#b\" ! c\r\n}\r\n",
    )
    .unwrap();
    assert!(l.diagnostics.is_empty(), "{:?}", l.diagnostics);
    assert_eq!(l.config.defaults.get("prio"), Some(&Value::Str("a#b".into())));
}

#[test]
fn show_config_offline_reports_diagnostics_and_dump() {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("multipath.conf");
    std::fs::write(&main, "defaults {\n\tnope 1\n}\n").unwrap();
    let (diags, dump) = config::show_config_offline(&LoadOptions {
        path: main.clone(),
        conf_dir: dir.path().into(),
    })
    .unwrap();
    assert_eq!(
        diags[0].to_string(),
        format!(
            "{} line 2, invalid keyword in the defaults section: nope",
            main.display()
        )
    );
    assert!(dump.starts_with("defaults {\n\tverbosity 2\n\tpolling_interval 5\n"));
}

#[test]
fn default_values_for_global_settings() {
    let c = config::parse_str(
        F,
        "defaults {\n\tverbosity 3\n\tchecker rdac\n\tpolling_interval 4\n}\n",
    )
    .unwrap()
    .config;
    assert_eq!(c.default_value(Setting::Verbosity), Some(Value::Int(3)));
    assert_eq!(c.default_value(Setting::PathChecker), Some(Value::Str("rdac".into())));
    assert_eq!(c.default_value(Setting::UxsockTimeout), Some(Value::Int(4000)));
    assert_eq!(
        c.default_value(Setting::FindMultipaths),
        Some(Value::Str("strict".into()))
    );
    assert_eq!(c.default_value(Setting::MaxPollingInterval), Some(Value::Int(16)));
    assert_eq!(c.default_value(Setting::NoPathRetry), None);
    assert_eq!(c.default_value(Setting::Vendor), None);
}

/// As upstream: a device regex that does not compile is kept as written (the entry matches
/// no device); the reason is only a level-3 line.
#[test]
fn device_regex_that_does_not_compile_is_kept_and_matches_nothing() {
    let text = "devices {\n\tdevice {\n\t\tvendor \"(\"\n\t\tproduct X\n\t}\n}\n";
    let l = config::parse_str_bare(F, text).unwrap();
    let m: Vec<_> = l.diagnostics.iter().map(|d| (d.level, d.message.as_str())).collect();
    assert_eq!(
        m,
        [(
            Level::Info,
            "/etc/multipath.conf line 3, invalid regular expression \"(\" for vendor: Unmatched ( or \\("
        )]
    );
    assert_eq!(l.config.devices.len(), 1);
    assert_eq!(l.config.devices[0].str(Setting::Vendor), Some("("));
    assert!(!l.config.devices[0].matches("(", "X", ""));
}

/// This build has no FPIN support (it needs the FC transport's netlink events), so
/// `marginal_pathgroups fpin` is refused as upstream refuses it when built without
/// FPIN: the setting keeps its previous value.
#[test]
fn marginal_pathgroups_fpin_is_refused_and_the_previous_value_kept() {
    let l = config::parse_str(F, "defaults {\n\tmarginal_pathgroups fpin\n}\n").unwrap();
    let m: Vec<_> = l.diagnostics.iter().map(|d| (d.level, d.message.as_str())).collect();
    assert_eq!(
        m,
        [(
            Level::Warning,
            "/etc/multipath.conf line 2, support for \"fpin\" is not compiled in for marginal_pathgroups"
        )]
    );
    assert_eq!(l.config.defaults.get("marginal_pathgroups"), None);
    let l = config::parse_str(
        F,
        "defaults {\n\tmarginal_pathgroups on\n\tmarginal_pathgroups fpin\n}\n",
    )
    .unwrap();
    assert_eq!(
        l.diagnostics.last().map(|d| d.message.as_str()),
        Some("/etc/multipath.conf line 3, support for \"fpin\" is not compiled in for marginal_pathgroups")
    );
    assert_eq!(
        l.config.defaults.get("marginal_pathgroups"),
        Some(&Value::Str("on".into()))
    );
}

#[test]
fn lines_are_checked_before_their_keyword_as_upstream() {
    // Upstream 0.14.3's `multipath -t` words each of these lines so: the token checks come
    // first (even for unknown keywords), a quote marker prints as an empty string, and
    // `overrides` alone is a keyword without a value, not a section.
    let text = "defaults {\n\tfoo bar baz\n\tfoo\n\t\"foo\" bar\n\tverbosity \"3\" x\n}\n} x\noverrides\n}\n\
                foo\rbar\n \rfoo\n";
    let l = config::parse_str(F, text).unwrap();
    let m: Vec<_> = l.diagnostics.iter().map(|d| (d.line, d.message.as_str())).collect();
    assert_eq!(
        m,
        [
            (
                2,
                "ignoring extra data starting with 'baz' on line 2 of /etc/multipath.conf"
            ),
            (
                2,
                "/etc/multipath.conf line 2, invalid keyword in the defaults section: foo"
            ),
            (3, "missing value for option 'foo' on line 3 of /etc/multipath.conf"),
            (
                4,
                "ignoring extra data starting with '' on line 4 of /etc/multipath.conf"
            ),
            (
                4,
                "/etc/multipath.conf line 4, invalid keyword in the defaults section: "
            ),
            (
                5,
                "ignoring extra data starting with 'x' on line 5 of /etc/multipath.conf"
            ),
            (
                7,
                "ignoring extra data starting with 'x' on line 7 of /etc/multipath.conf"
            ),
            (7, "unmatched '}' at line 7 of /etc/multipath.conf"),
            (7, "/etc/multipath.conf line 7, invalid keyword: }"),
            (
                8,
                "missing value for option 'overrides' on line 8 of /etc/multipath.conf"
            ),
            (9, "unmatched '}' at line 9 of /etc/multipath.conf"),
            (9, "/etc/multipath.conf line 9, invalid keyword: }"),
            (10, "missing value for option 'foo' on line 10 of /etc/multipath.conf"),
        ]
    );
    assert_eq!(l.config.defaults.get("verbosity"), Some(&Value::Int(3)));
}

#[test]
fn section_names_are_brace_checked_anywhere() {
    // Upstream checks the `{` after every section name but overrides/protocol, even where
    // the name is not a keyword; `overrides` with any second token opens the section.
    let text = "defaults {\n\tmultipath x\n}\noverrides \"\n\tno_path_retry 5\n}\n";
    let l = config::parse_str(F, text).unwrap();
    let m: Vec<_> = l.diagnostics.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(
        m,
        [
            "expecting '{' on line 2 of /etc/multipath.conf. found 'x'",
            "/etc/multipath.conf line 2, invalid keyword in the defaults section: multipath",
            "missing closing quotes on line 4 of /etc/multipath.conf",
        ]
    );
    assert_eq!(l.config.overrides.attrs.get("no_path_retry"), Some(&Value::Int(5)));
}

fn unsupported(text: &str) -> Vec<String> {
    let l = config::parse_str(F, text).unwrap();
    assert!(l.unsupported.iter().all(|d| d.level == Level::Warning));
    l.unsupported.into_iter().map(|d| d.message).collect()
}

/// Every keyword this multipathd parses but does not honour warns at load, in the one
/// wording, with what happens instead; the value is kept as upstream keeps it.
#[test]
fn keywords_without_effect_warn_at_load_with_what_happens_instead() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "defaults",
            "reassign_maps yes",
            "device-mapper tables found on the paths are left as they are",
        ),
        ("defaults", "force_sync yes", "path checks stay asynchronous"),
        (
            "defaults",
            "strict_timing yes",
            "checks keep the whole-second schedule of the checker loop",
        ),
        ("defaults", "enable_foreign nvme", "no foreign library is loaded"),
        (
            "defaults",
            "missing_uev_wait_timeout 30",
            "the daemon does not wait for the udev event of a map it created",
        ),
        (
            "defaults",
            "partition_delimiter -part",
            "partition maps keep the names kpartx gave them",
        ),
        (
            "defaults",
            "remove_retries 3",
            "the removal of a busy map is tried once",
        ),
        (
            "defaults",
            "find_multipaths_timeout 5",
            "a single path of a find_multipaths smart WWID is never released after a timeout",
        ),
        (
            "overrides",
            "purge_disconnected yes",
            "a disconnected path stays until its device is removed",
        ),
        (
            "overrides",
            "recheck_wwid yes",
            "the WWID of a path that comes back is not read again",
        ),
        (
            "defaults",
            "mode 0600",
            "the map's device node keeps the mode udev gives it",
        ),
        (
            "defaults",
            "uid 0",
            "the map's device node keeps the owner udev gives it",
        ),
        (
            "defaults",
            "gid 6",
            "the map's device node keeps the group udev gives it",
        ),
    ];
    for (section, line, instead) in cases {
        let kw = line.split_once(' ').unwrap().0;
        assert_eq!(
            unsupported(&format!("{section} {{\n\t{line}\n}}\n")),
            [format!(
                "/etc/multipath.conf line 2, {kw} is not supported by this multipathd, {instead}"
            )],
            "{line}"
        );
    }
    // In a device entry, and the value is stored as upstream stores it.
    let text = "devices {\n\tdevice {\n\t\tvendor \"X\"\n\t\tproduct \"Y\"\n\t\tvpd_vendor hp3par\n\t}\n}\n";
    assert_eq!(
        unsupported(text),
        [
            "/etc/multipath.conf line 5, vpd_vendor is not supported by this multipathd, \
          the vendor-specific VPD page is not read (%g shows [undef])"
        ]
    );
    let l = config::parse_str(F, "defaults {\n\tforce_sync yes\n}\n").unwrap();
    assert_eq!(l.config.defaults.get("force_sync"), Some(&Value::Bool(true)));
    // Every refused row of the table is covered above.
    let mut covered: Vec<&str> = cases.iter().map(|c| c.1.split_once(' ').unwrap().0).collect();
    covered.push("vpd_vendor");
    for k in KEYWORDS
        .iter()
        .filter(|k| matches!(k.support, keywords::Support::Refused { .. }))
    {
        assert!(covered.contains(&k.name), "{}: no test of its warning", k.name);
    }
}

/// A refused keyword set to what the daemon does anyway says nothing; an invalid value
/// gets upstream's message only.
#[test]
fn a_refused_keyword_set_to_what_the_daemon_does_is_quiet() {
    for line in [
        "reassign_maps no",
        "force_sync 0",
        "strict_timing no",
        "enable_foreign NONE",
        "remove_retries 0",
        "auto_resize never",
        "flush_on_last_del never",
        "deferred_remove no",
        "skip_kpartx no",
        "purge_disconnected no",
        "recheck_wwid no",
        "allow_usb_devices yes",
    ] {
        assert_eq!(
            unsupported(&format!("defaults {{\n\t{line}\n}}\n")),
            Vec::<String>::new(),
            "{line}"
        );
    }
    let l = config::parse_str(F, "defaults {\n\tforce_sync maybe\n}\n").unwrap();
    assert!(l.unsupported.is_empty());
    assert_eq!(l.diagnostics.len(), 1);
}

/// Checker and prioritizer names this build does not implement warn at load, naming the
/// fallback; upstream's messages (what `multipathd -t` prints) stay upstream's.
#[test]
fn unimplemented_checker_and_prio_names_warn_with_their_fallback() {
    let text = "defaults {\n\tpath_checker emc_clariion\n\tprio ontap\n}\n\
                devices {\n\tdevice {\n\t\tvendor \"X\"\n\t\tproduct \"Y\"\n\t\tchecker cciss_tur\n\t\tprio hds\n\t}\n}\n\
                overrides {\n\tprio weightedpath\n\tpath_checker directio\n\tprio bogus\n}\n";
    assert_eq!(
        unsupported(text),
        [
            "/etc/multipath.conf line 2, path_checker \"emc_clariion\" is not supported by this multipathd, tur is used instead",
            "/etc/multipath.conf line 3, prio \"ontap\" is not supported by this multipathd, const is used instead",
            "/etc/multipath.conf line 9, checker \"cciss_tur\" is not supported by this multipathd, tur is used instead",
            "/etc/multipath.conf line 10, prio \"hds\" is not supported by this multipathd, const is used instead",
            "/etc/multipath.conf line 16, prio \"bogus\" is not supported by this multipathd, const is used instead",
        ]
    );
    assert_eq!(msgs(text), ["/etc/multipath.conf line 16, duplicate keyword: prio"]);
    for n in multipathd::checkers::UPSTREAM_NOT_BUILT {
        let t = format!("defaults {{\n\tpath_checker {n}\n}}\n");
        assert_eq!(unsupported(&t).len(), 1, "{n}");
    }
    for n in multipathd::discovery::prio::UPSTREAM_NOT_BUILT {
        let t = format!("defaults {{\n\tprio {n}\n}}\n");
        assert_eq!(unsupported(&t).len(), 1, "{n}");
    }
    for n in ["tur", "directio", "readsector0", "hp_sw", "rdac", "none"] {
        assert!(
            unsupported(&format!("defaults {{\n\tpath_checker {n}\n}}\n")).is_empty(),
            "{n}"
        );
    }
    for n in [
        "const",
        "random",
        "sysfs",
        "alua",
        "ana",
        "weightedpath",
        "path_latency",
    ] {
        assert!(unsupported(&format!("defaults {{\n\tprio {n}\n}}\n")).is_empty(), "{n}");
    }
}

/// `multipathd -t` prints upstream's messages only (the oracle compares them with
/// `multipath -t`'s); the not-supported warnings are the daemon's and `-C`'s.
#[test]
fn show_config_offline_leaves_the_not_supported_warnings_out() {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("multipath.conf");
    std::fs::write(&main, "defaults {\n\tforce_sync yes\n}\n").unwrap();
    let opts = LoadOptions {
        path: main,
        conf_dir: dir.path().join("conf.d"),
    };
    let (diags, _) = config::show_config_offline(&opts).unwrap();
    assert!(diags.iter().all(|d| !d.message.contains("not supported")), "{diags:?}");
    assert_eq!(config::load(&opts).unwrap().unsupported.len(), 1);
}

/// The daemon's `-v` is the verbosity `show config` prints unless the files set one, as
/// upstream 0.14.3 started with -v3 prints `verbosity 3` (measured in cli_compat_upstream).
#[test]
fn command_line_verbosity_is_shown_unless_the_file_sets_one() {
    let shown = |text: &str, v: Option<u8>| {
        let cfg = config::parse_str("multipath.conf", text)
            .unwrap()
            .config
            .with_verbosity_default(v);
        config::dump::show_config(&cfg)
            .lines()
            .find(|l| l.starts_with("\tverbosity "))
            .map(str::to_string)
    };
    assert_eq!(shown("", None).as_deref(), Some("\tverbosity 2"));
    assert_eq!(shown("", Some(3)).as_deref(), Some("\tverbosity 3"));
    assert_eq!(
        shown("defaults {\n verbosity 1\n}\n", Some(3)).as_deref(),
        Some("\tverbosity 1")
    );
}
