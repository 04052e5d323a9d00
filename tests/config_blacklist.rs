//! Blacklist vectors from upstream tests/blacklist.c and tests/hwtable.c.

use multipathd::config::blacklist::{self as b, Blacklist, PathInfo};
use multipathd::config::model::{BlacklistDevice, BlacklistLists, Pattern};
use multipathd::config::{self, Config};

fn pats(list: &[&str]) -> Vec<Pattern> {
    list.iter().map(|p| Pattern::new(p).unwrap()).collect()
}

fn dev(v: &str, p: &str) -> BlacklistDevice {
    BlacklistDevice {
        vendor: Some(Pattern::new(v).unwrap()),
        product: Some(Pattern::new(p).unwrap()),
    }
}

fn only(bl: BlacklistLists) -> Blacklist {
    Blacklist::from_lists(bl, BlacklistLists::default())
}

#[test]
fn devnode() {
    let bl = only(BlacklistLists {
        devnode: pats(&["sdb"]),
        ..Default::default()
    });
    assert_eq!(bl.filter_devnode("sdb"), b::MATCH_DEVNODE_BLIST);
    assert_eq!(bl.filter_devnode("sdc"), b::MATCH_NOTHING);
    let inv = only(BlacklistLists {
        devnode: pats(&["!sdb"]),
        ..Default::default()
    });
    assert_eq!(inv.filter_devnode("sdb"), 0);
    assert_eq!(inv.filter_devnode("sdc"), 3);
    let ex = Blacklist::from_lists(
        BlacklistLists {
            devnode: pats(&[".*"]),
            ..Default::default()
        },
        BlacklistLists {
            devnode: pats(&["sdb"]),
            ..Default::default()
        },
    );
    assert_eq!(ex.filter_devnode("sdb"), -3);
    assert_eq!(ex.filter_devnode("sdc"), 3);
}

#[test]
fn builtin_devnode_default() {
    let bl = Blacklist::new(&Config::default(), false);
    for (dev, want) in [("sdaa", 0), ("dasda", 0), ("hda", 3), ("nvme0n1", 0), ("loop0", 3)] {
        assert_eq!(bl.filter_devnode(dev), want, "{dev}");
    }
    assert_eq!(Blacklist::new(&Config::default(), true).filter_devnode("nvme0n1"), 3);
}

#[test]
fn device() {
    let bl = only(BlacklistLists {
        device: vec![dev("foo", "bar")],
        ..Default::default()
    });
    assert_eq!(bl.filter_device("foo", "bar"), b::MATCH_DEVICE_BLIST);
    assert_eq!(bl.filter_device("foo", "baz"), 0);
    let bl = only(BlacklistLists {
        device: vec![dev("!foo", "bar")],
        ..Default::default()
    });
    assert_eq!(bl.filter_device("baz", "bar"), 2);
    assert_eq!(bl.filter_device("foo", "bar"), 0);
    let bl = only(BlacklistLists {
        device: vec![dev("foo", "!bar")],
        ..Default::default()
    });
    assert_eq!(bl.filter_device("foo", "baz"), 2);
}

#[test]
fn wwid_and_protocol() {
    let bl = only(BlacklistLists {
        wwid: pats(&["xyzzy"]),
        ..Default::default()
    });
    assert_eq!(bl.filter_wwid("xyzzy"), b::MATCH_WWID_BLIST);
    let bl = only(BlacklistLists {
        wwid: pats(&["!xyzzy"]),
        ..Default::default()
    });
    assert_eq!(bl.filter_wwid("plugh"), 1);
    assert_eq!(bl.filter_wwid("xyzzy"), 0);
    let bl = only(BlacklistLists {
        protocol: pats(&["scsi:fcp"]),
        ..Default::default()
    });
    assert_eq!(bl.filter_protocol("scsi:fcp"), b::MATCH_PROTOCOL_BLIST);
    let bl = only(BlacklistLists {
        protocol: pats(&["!scsi:fcp"]),
        ..Default::default()
    });
    assert_eq!(bl.filter_protocol("scsi:ata"), 6);
}

#[test]
fn property() {
    let props = ["ID_FOO", "ID_WWN", "ID_BAR"];
    let bl = only(BlacklistLists {
        property: pats(&["ID_WWN"]),
        ..Default::default()
    });
    assert_eq!(bl.filter_property(&props, None), b::MATCH_PROPERTY_BLIST);
    let bl = only(BlacklistLists {
        property: pats(&["!ID_WWN"]),
        ..Default::default()
    });
    assert_eq!(bl.filter_property(&props, None), 4);
    let ex = Blacklist::from_lists(
        BlacklistLists::default(),
        BlacklistLists {
            property: pats(&["ID_WWN"]),
            ..Default::default()
        },
    );
    assert_eq!(ex.filter_property(&props, None), -4);
    let missing = ["ID_FOO", "ID_BAZ", "ID_BAR", "ID_SERIAL"];
    assert_eq!(
        ex.filter_property(&missing, Some("ID_SERIAL")),
        b::MATCH_PROPERTY_BLIST_MISSING
    );
    assert_eq!(ex.filter_property(&missing, Some("ID_BLAH")), 0);
    assert_eq!(ex.filter_property(&missing, Some("")), 0);
    assert_eq!(ex.filter_property(&missing, None), 0);
}

#[test]
fn all_criteria_whitelisted_and_order() {
    let all = BlacklistLists {
        devnode: pats(&[".*"]),
        wwid: pats(&[".*"]),
        property: pats(&[".*"]),
        protocol: pats(&[".*"]),
        device: vec![dev(".*", ".*")],
    };
    let p = PathInfo {
        devnode: "sdb",
        vendor: "foo",
        product: "bar",
        protocol: "scsi:fcp",
        wwid: "w",
        properties: &["ID_SERIAL"],
        uid_attribute: Some("ID_SERIAL"),
    };
    assert_eq!(
        Blacklist::from_lists(all.clone(), all.clone()).filter_path(&p),
        -b::MATCH_WWID_BLIST
    );
    // Property is checked first.
    assert_eq!(
        Blacklist::from_lists(all.clone(), BlacklistLists::default()).filter_path(&p),
        b::MATCH_PROPERTY_BLIST
    );
    let mut ex = all.clone();
    ex.property = pats(&["ID_SERIAL"]);
    ex.devnode.clear();
    assert_eq!(Blacklist::from_lists(all, ex).filter_path(&p), b::MATCH_DEVNODE_BLIST);
}

#[test]
fn hwtable_product_blacklist_and_exception() {
    let text = "devices {\n\tdevice {\n\t\tvendor foo\n\t\tproduct .*\n\t\tproduct_blacklist \"(bar|baz|ba\\.)$\"\n\t}\n}\n\
                blacklist_exceptions {\n\tdevice {\n\t\tvendor foo\n\t\tproduct bar\n\t}\n}\n";
    let cfg = config::parse_str("f", text).unwrap().config;
    let bl = Blacklist::new(&cfg, false);
    assert!(bl.filter_device("foo", "bar") <= 0);
    assert_eq!(bl.filter_device("foo", "baz"), 2);
    assert!(bl.filter_device("foo", "bam") <= 0);
}

#[test]
fn mutual_product_blacklists_blacklist_both() {
    let text = "devices {\n\tdevice {\n\t\tvendor foo\n\t\tproduct bar\n\t\tproduct_blacklist baz\n\t}\n\
                \tdevice {\n\t\tvendor foo\n\t\tproduct baz\n\t\tproduct_blacklist bar\n\t}\n}\n";
    let cfg = config::parse_str("f", text).unwrap().config;
    let bl = Blacklist::new(&cfg, false);
    assert_eq!(bl.filter_device("foo", "bar"), 2);
    assert_eq!(bl.filter_device("foo", "baz"), 2);
}

#[test]
fn builtin_property_exception() {
    let bl = Blacklist::new(&Config::default(), false);
    assert_eq!(bl.filter_property(&["ID_WWN"], Some("ID_SERIAL")), -4);
    assert_eq!(bl.filter_property(&["SCSI_IDENT_LUN_NAA_REG"], None), -4);
    assert_eq!(bl.filter_property(&["ID_SERIAL", "DEVTYPE"], Some("ID_SERIAL")), 5);
}

#[test]
fn quoted_inverted_regex_in_config() {
    let cfg = config::parse_str("f", "blacklist {\n\tdevnode \"!^sd\"\n\twwid \"\\!x\"\n}\n")
        .unwrap()
        .config;
    let bl = Blacklist::new(&cfg, false);
    assert_eq!(bl.filter_devnode("hda"), 3);
    assert_eq!(bl.filter_wwid("a!x"), 1);
    assert_eq!(bl.filter_wwid("ax"), 0);
}

#[test]
fn reasons_as_upstream_logs_them() {
    assert_eq!(
        b::reason(b::MATCH_PROPERTY_BLIST_MISSING),
        "blacklisted, udev property missing"
    );
    assert_eq!(b::reason(b::MATCH_DEVNODE_BLIST), "device node name blacklisted");
    assert_eq!(b::reason(-b::MATCH_WWID_BLIST), "whitelisted");
    assert_eq!(b::reason(b::MATCH_NOTHING), "not blacklisted");
}
