//! `show config` format and the parse(dump(config)) round trip.

use multipathd::config::blacklist::effective_lists;
use multipathd::config::dump::{show_config, show_config_local};
use multipathd::config::keywords::{self, KEYWORDS, Keyword, Section, ValueType};
use multipathd::config::{self, Config};

#[test]
fn exact_format_of_the_sections() {
    let text = "blacklist {\n\twwid \"^x\"\n}\ndevices {\n\tdevice {\n\t\tvendor \"A\"\n\t\tproduct \"B\"\n\t\tproduct_blacklist \"C\"\n\t\tno_path_retry queue\n\t}\n}\n\
                multipaths {\n\tmultipath {\n\t\twwid \"W\"\n\t\talias \"say \"\"hi\"\"\"\n\t\tfailback 10\n\t\tmode 0600\n\t}\n}\n";
    let cfg = config::parse_str_bare("f", text).unwrap().config;
    let dump = show_config(&cfg);
    let tail = &dump[dump.find("blacklist {").unwrap()..];
    assert_eq!(
        tail,
        "blacklist {\n\tdevnode \"!^(sd[a-z]|dasd[a-z]|nvme[0-9])\"\n\twwid \"^x\"\n\tdevice {\n\t\tvendor \"A\"\n\t\tproduct \"C\"\n\t}\n}\n\
         blacklist_exceptions {\n\tproperty \"(SCSI_IDENT_|ID_WWN)\"\n}\n\
         devices {\n\tdevice {\n\t\tvendor \"A\"\n\t\tproduct \"B\"\n\t\tproduct_blacklist \"C\"\n\t\tno_path_retry \"queue\"\n\t}\n}\n\
         overrides {\n}\n\
         multipaths {\n\tmultipath {\n\t\twwid \"W\"\n\t\talias \"say \"\"hi\"\"\"\n\t\tfailback 10\n\t\tmode 0600\n\t}\n}\n"
    );
}

#[test]
fn defaults_show_effective_values() {
    let dump = show_config(&Config::default());
    assert!(dump.starts_with(
        "defaults {\n\tverbosity 2\n\tpolling_interval 5\n\tmax_polling_interval 20\n\treassign_maps \"no\"\n\
         \tpath_selector \"service-time 0\"\n\tpath_grouping_policy \"failover\"\n\tuid_attribute \"ID_SERIAL\"\n"
    ));
    for line in [
        "\tfailback \"manual\"\n",
        "\tfast_io_fail_tmo 5\n",
        "\tfind_multipaths \"strict\"\n",
        "\tprio_args \"\"\n",
    ] {
        assert!(dump.contains(line), "{line:?} missing");
    }
    // Unset settings without a built-in default and deprecated keywords are not printed.
    for kw in [
        "\tno_path_retry",
        "\tdev_loss_tmo",
        "\tconfig_dir",
        "\tchecker ",
        "\tuid_attrs",
    ] {
        assert!(!dump.contains(kw), "{kw:?} printed");
    }
    let cfg = config::parse_str_bare("f", "defaults {\n\tpolling_interval 2\n\tno_path_retry 0\n}\n")
        .unwrap()
        .config;
    let dump = show_config(&cfg);
    assert!(dump.contains("\tpolling_interval 2\n\tmax_polling_interval 8\n"));
    assert!(dump.contains("\tno_path_retry \"fail\"\n"));
}

/// A valid value for every value type, as configuration text.
fn sample(kw: &Keyword) -> Option<String> {
    use ValueType as T;
    Some(match kw.ty {
        T::Section(_) | T::Deprecated => return None,
        T::Str if kw.name == "alias" => "\"a \"\"quoted\"\" alias\"".into(),
        T::Str => format!("\"{}-value\"", kw.name),
        T::Regex => "\"^(ab|c)[0-9]\"".into(),
        T::UidAttrs => "\"sd:ID_SERIAL nvme:ID_WWN\"".into(),
        T::Int { min, max } => min.max(1).min(max).to_string(),
        T::Uint { .. } | T::ZeroUnset { .. } | T::PollingInterval => "7".into(),
        T::YesNo => "yes".into(),
        T::Choice(w) => w[0].into(),
        T::PgPolicy => "multibus".into(),
        T::Failback => "followover".into(),
        T::NoPathRetry => "12".into(),
        T::NoOrN => "130".into(),
        T::OffZeroN => "0".into(),
        T::DevLoss => "infinity".into(),
        T::MaxFds => "max".into(),
        T::MaxRetries => "3".into(),
        T::FindMultipaths => "smart".into(),
        T::FlushOnLastDel => "never".into(),
        T::MarginalPathgroups => "on".into(),
        T::Counted => "\"2 pg_init_retries 50\"".into(),
        T::Selector => "\"round-robin 0\"".into(),
        T::Mode => "0600".into(),
        T::Uid | T::Gid => "0".into(),
        T::ReservationKey => "0x1234:aptpl".into(),
        T::PartitionDelimiter => "p".into(),
        T::ProtocolType => "scsi:fcp".into(),
    })
}

fn body(section: Section, depth: usize) -> String {
    let mut s = String::new();
    for kw in keywords::value_keywords(section).filter(|k| k.name != "checker") {
        if let Some(v) = sample(kw) {
            s.push_str(&format!("{}{} {v}\n", "\t".repeat(depth), kw.name));
        }
    }
    s
}

fn every_keyword_config() -> String {
    let mut t = format!("defaults {{\n{}}}\n", body(Section::Defaults, 1));
    for name in ["blacklist", "blacklist_exceptions"] {
        t.push_str(&format!(
            "{name} {{\n{}\tdevice {{\n{}\t}}\n}}\n",
            body(Section::Blacklist, 1),
            body(Section::BlacklistDevice, 2)
        ));
    }
    t.push_str(&format!(
        "devices {{\n\tdevice {{\n{}\t}}\n}}\n",
        body(Section::Device, 2)
    ));
    t.push_str(&format!(
        "overrides {{\n{}\tprotocol {{\n{}\t}}\n}}\n",
        body(Section::Overrides, 1),
        body(Section::Protocol, 2)
    ));
    t.push_str(&format!(
        "multipaths {{\n\tmultipath {{\n{}\t}}\n}}\n",
        body(Section::Multipath, 2)
    ));
    t
}

fn assert_round_trip(cfg: &Config) {
    let dump = show_config(cfg);
    let again = config::parse_str_bare("dump", &dump).unwrap();
    assert!(again.diagnostics.is_empty(), "{:#?}", again.diagnostics);
    let c2 = again.config;
    for (k, v) in &cfg.defaults {
        assert_eq!(c2.defaults.get(k), Some(v), "defaults {k}");
    }
    assert_eq!(
        c2.all_devices().collect::<Vec<_>>(),
        cfg.all_devices().collect::<Vec<_>>()
    );
    assert_eq!(c2.overrides, cfg.overrides);
    assert_eq!(c2.multipaths, cfg.multipaths);
    assert_eq!(effective_lists(&c2, false), effective_lists(cfg, false));
    assert_eq!(show_config(&c2), dump);
}

#[test]
fn round_trip_of_the_builtin_table() {
    assert_round_trip(&config::builtin());
}

#[test]
fn round_trip_of_a_config_setting_every_keyword() {
    let text = every_keyword_config();
    let l = config::parse_str("all.conf", &text).unwrap();
    assert!(l.diagnostics.is_empty(), "{:#?}", l.diagnostics);
    let cfg = l.config;
    // Every non-deprecated keyword is really set in every section it is allowed in.
    for kw in KEYWORDS.iter().filter(|k| sample(k).is_some()) {
        let key = keywords::canonical(kw.name);
        for s in kw.sections() {
            let set = match s {
                Section::Defaults => cfg.defaults.contains_key(key),
                Section::Device => cfg.devices[0].attrs.contains_key(key),
                Section::Overrides => cfg.overrides.attrs.contains_key(key),
                Section::Protocol => cfg.overrides.protocols[0].attrs.contains_key(key),
                Section::Multipath => cfg.multipaths[0].attrs.contains_key(key),
                Section::Blacklist => !cfg.blacklist.devnode.is_empty() && !cfg.exceptions.protocol.is_empty(),
                Section::BlacklistDevice => {
                    cfg.blacklist.device[0].vendor.is_some() && cfg.exceptions.device[0].product.is_some()
                }
                _ => true,
            };
            assert!(set, "{} not set in {:?}", kw.name, s);
        }
    }
    assert_round_trip(&cfg);
}

#[test]
fn empty_multipaths_section_is_left_out() {
    let dump = show_config(&Config::default());
    assert!(dump.ends_with("devices {\n}\noverrides {\n}\n"), "{dump}");
}

/// `show config local`, as upstream 0.14.3 printed it in the lab (cli_compat_upstream):
/// the device entries the paths match, user entry first, each once; the multipaths
/// entries of existing maps with the alias in a comment, a map the section does not
/// name as a wwid entry of its own; an entry without a map left out.
#[test]
fn config_local_has_the_devices_and_maps_in_use() {
    let text = "devices {\n\tdevice {\n\t\tvendor \"LIO-ORG\"\n\t\tproduct \"IBLOCK\"\n\t\tno_path_retry 3\n\t}\n}\n\
                multipaths {\n\tmultipath {\n\t\twwid \"W0\"\n\t\talias \"data0\"\n\t}\n\tmultipath {\n\t\twwid \"W9\"\n\t\talias \"gone\"\n\t}\n}\n";
    let cfg = config::parse_str("f", text).unwrap().config;
    let paths = [("LIO-ORG", "IBLOCK", "4.0"), ("LIO-ORG", "IBLOCK", "4.0")];
    let dump = show_config_local(&cfg, &paths, &[("W0", "data0"), ("W2", "mpatha"), ("W3", "W3")]);
    let tail = &dump[dump.find("devices {").unwrap()..];
    assert_eq!(
        tail,
        "devices {\n\tdevice {\n\t\tvendor \"LIO-ORG\"\n\t\tproduct \"IBLOCK\"\n\t\tno_path_retry 3\n\t}\n\
         \tdevice {\n\t\tvendor \"(LIO-ORG|SUSE)\"\n\t\tproduct \".*\"\n\t\tpath_grouping_policy \"group_by_prio\"\n\
         \t\tpath_checker \"directio\"\n\t\tprio \"alua\"\n\t\tfailback \"immediate\"\n\t\tno_path_retry 12\n\
         \t\tdetect_checker \"no\"\n\t}\n}\n\
         overrides {\n}\n\
         multipaths {\n\tmultipath {\n\t\twwid \"W0\"\n\t\talias \"data0\"\n\t\t# alias \"data0\"\n\t}\n\
         \tmultipath {\n\t\twwid \"W2\"\n\t\t# alias \"mpatha\"\n\t}\n\tmultipath {\n\t\twwid \"W3\"\n\t}\n}\n"
    );
    let none = show_config_local(&Config::default(), &[], &[]);
    assert!(none.ends_with("devices {\n}\noverrides {\n}\n"), "{none}");
}
