//! find_multipaths decisions per mode (multipath-tools valid.c / should_multipath).

use FindMultipaths::*;
use PathValidity::*;
use multipathd::discovery::valid::{FindMultipaths, PathValidity, ValidityFacts, is_path_valid, should_multipath};

const ALL: [FindMultipaths; 5] = [Off, On, Strict, Greedy, Smart];

fn fresh() -> ValidityFacts<'static> {
    ValidityFacts {
        is_disk: true,
        wwid: Some("3600a0980"),
        ..ValidityFacts::default()
    }
}

#[test]
fn mode_names() {
    for (v, m) in [
        ("off", Off),
        ("no", Off),
        ("0", Off),
        ("on", On),
        ("yes", On),
        ("1", On),
        ("strict", Strict),
        ("greedy", Greedy),
        ("smart", Smart),
    ] {
        assert_eq!(FindMultipaths::from_value(v), Some(m), "{v}");
    }
    assert_eq!(FindMultipaths::from_value("Smart"), None);
    assert_eq!(FindMultipaths::from_value(""), None);
    assert_eq!(ALL.map(|m| m.to_string()), ["off", "on", "strict", "greedy", "smart"]);
}

#[test]
fn unknown_new_path_per_mode() {
    let got = ALL.map(|m| is_path_valid(m, &fresh()));
    assert_eq!(got, [NotValid, NotValid, NotValid, Valid, MaybeValid]);
}

#[test]
fn wwids_file_and_existing_map() {
    let known = ValidityFacts {
        in_wwids_file: true,
        ..fresh()
    };
    assert_eq!(
        ALL.map(|m| is_path_valid(m, &known)),
        [ValidNoCheck, ValidNoCheck, ValidNoCheck, Valid, ValidNoCheck]
    );
    let mapped = ValidityFacts {
        map_exists: true,
        ..fresh()
    };
    assert_eq!(ALL.map(|m| is_path_valid(m, &mapped)), [Valid; 5]);
}

#[test]
fn exclusions_apply_in_every_mode() {
    let cases = [
        ValidityFacts {
            blacklisted: true,
            in_wwids_file: true,
            ..fresh()
        },
        ValidityFacts {
            is_disk: false,
            in_wwids_file: true,
            ..fresh()
        },
        ValidityFacts {
            wwid: None,
            in_wwids_file: true,
            ..fresh()
        },
        ValidityFacts {
            wwid: Some(""),
            in_wwids_file: true,
            ..fresh()
        },
        ValidityFacts {
            failed_wwid: true,
            in_wwids_file: true,
            ..fresh()
        },
    ];
    for c in &cases {
        assert_eq!(ALL.map(|m| is_path_valid(m, c)), [NotValid; 5], "{c:?}");
    }
}

#[test]
fn in_use_only_matters_for_greedy_and_smart() {
    let used = ValidityFacts {
        in_use: true,
        in_wwids_file: true,
        ..fresh()
    };
    assert_eq!(
        ALL.map(|m| is_path_valid(m, &used)),
        [ValidNoCheck, ValidNoCheck, ValidNoCheck, NotValid, NotValid]
    );
}

#[test]
fn already_in_a_map() {
    let member = ValidityFacts {
        in_multipath_map: true,
        blacklisted: true,
        ..fresh()
    };
    assert_eq!(ALL.map(|m| is_path_valid(m, &member)), [ValidNoCheck; 5]);
    let no_wwid = ValidityFacts {
        in_multipath_map: true,
        wwid: None,
        ..fresh()
    };
    assert_eq!(ALL.map(|m| is_path_valid(m, &no_wwid)), [Error; 5]);
}

#[test]
fn daemon_coalescing() {
    // (in wwids file, map exists, other paths with this WWID)
    let facts = [(false, false, 0), (false, false, 1), (false, true, 0), (true, false, 0)];
    let table: Vec<[bool; 5]> = facts
        .iter()
        .map(|&(w, m, n)| ALL.map(|mode| should_multipath(mode, w, m, n)))
        .collect();
    assert_eq!(
        table,
        vec![
            //  off   on     strict greedy smart
            [true, false, false, true, false],
            [true, true, false, true, true],
            [true, true, false, true, true],
            [true, true, true, true, true],
        ]
    );
}

#[test]
fn candidate_maps_group_by_wwid() {
    use multipathd::discovery::valid::candidate_maps;
    use multipathd::discovery::{Bus, Hcil, PathInfo};
    let path = |dev: &str, wwid: Option<&str>| PathInfo {
        dev: dev.into(),
        devt: (8, 0),
        bus: Bus::Scsi,
        hcil: Hcil {
            host: 0,
            channel: 0,
            target: 0,
            lun: 0,
        },
        vendor: "Linux".into(),
        product: "scsi_debug".into(),
        rev: "0191".into(),
        serial: String::new(),
        wwid: wwid.map(String::from),
        wwid_source: None,
        wwid_error: None,
        protocol: "scsi:unspec".into(),
        tgt_node_name: String::new(),
        transport: None,
        state: "running".into(),
        size: 32768,
        access_state: None,
        preferred_path: None,
        tpg: None,
        udev: None,
    };
    let paths = vec![
        path("sda", Some("W1")),
        path("sdb", Some("W2")),
        path("sdc", Some("W1")),
        path("sdd", None),
        path("sde", Some("W3")),
    ];
    let known = |w: &str| w == "W3";
    let none = |_: &str| false;
    assert_eq!(
        (candidate_maps(&paths, On, &known, &none)),
        vec![("W1".to_string(), vec![0, 2]), ("W3".to_string(), vec![4])]
    );
    assert_eq!(
        (candidate_maps(&paths, Strict, &known, &none)),
        vec![("W3".to_string(), vec![4])]
    );
    assert_eq!((candidate_maps(&paths, Greedy, &none, &none)).len(), 3);
    let mapped = |w: &str| w == "W2";
    assert_eq!(
        (candidate_maps(&paths, Smart, &none, &mapped)),
        vec![("W1".to_string(), vec![0, 2]), ("W2".to_string(), vec![1])]
    );
}
