//! The `ana` prioritizer's decoders over byte layouts of NVMe Identify data and the
//! ANA log page (log id 0x0C), as controllers return them.

use multipathd::discovery::ana::*;

/// One group descriptor: group id, state byte, NSID list.
struct Group<'a> {
    id: u32,
    state: u8,
    nsids: &'a [u32],
}

/// An ANA log page: header (change count, group count, reserved) and descriptors
/// (group id, NSID count, change count, state, 15 reserved bytes, NSIDs), all
/// little-endian, padded with zeros to `pad_to` bytes as a buffer the size of the
/// controller's maximum is.
fn ana_log(groups: &[Group], pad_to: usize) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&7u64.to_le_bytes());
    b.extend_from_slice(&(groups.len() as u16).to_le_bytes());
    b.extend_from_slice(&[0; 6]);
    for g in groups {
        b.extend_from_slice(&g.id.to_le_bytes());
        b.extend_from_slice(&(g.nsids.len() as u32).to_le_bytes());
        b.extend_from_slice(&3u64.to_le_bytes());
        b.push(g.state);
        b.extend_from_slice(&[0; 15]);
        for n in g.nsids {
            b.extend_from_slice(&n.to_le_bytes());
        }
    }
    if b.len() < pad_to {
        b.resize(pad_to, 0);
    }
    b
}

#[test]
fn every_state_has_upstreams_priority() {
    let log = ana_log(
        &[
            Group {
                id: 1,
                state: 0x01,
                nsids: &[1],
            },
            Group {
                id: 2,
                state: 0x02,
                nsids: &[2],
            },
            Group {
                id: 3,
                state: 0x03,
                nsids: &[3],
            },
            Group {
                id: 4,
                state: 0x04,
                nsids: &[4],
            },
            Group {
                id: 5,
                state: 0x0f,
                nsids: &[5],
            },
        ],
        0,
    );
    let got: Vec<(AnaState, i32)> = (1..=5)
        .map(|nsid| {
            let s = find_ana_state(&log, nsid, None).unwrap();
            (s, s.prio())
        })
        .collect();
    assert_eq!(
        got,
        [
            (AnaState::Optimized, 50),
            (AnaState::NonOptimized, 10),
            (AnaState::Inaccessible, 1),
            (AnaState::PersistentLoss, 0),
            (AnaState::Change, 1),
        ]
    );
}

#[test]
fn the_nsid_is_found_behind_earlier_nsid_lists() {
    // nvmet's layout: every enabled group with its NSIDs, the rest of the buffer zero
    let log = ana_log(
        &[
            Group {
                id: 1,
                state: 0x01,
                nsids: &[1, 3, 5],
            },
            Group {
                id: 2,
                state: 0x03,
                nsids: &[2, 4],
            },
        ],
        16 + 128 * 32 + 1024 * 4,
    );
    for (nsid, want) in [
        (1, AnaState::Optimized),
        (5, AnaState::Optimized),
        (2, AnaState::Inaccessible),
        (4, AnaState::Inaccessible),
    ] {
        assert_eq!(find_ana_state(&log, nsid, None).unwrap(), want, "nsid {nsid}");
    }
    assert!(matches!(
        find_ana_state(&log, 6, None),
        Err(AnaError::NotFound { nsid: 6, grpid: None })
    ));
}

#[test]
fn groups_only_log_is_searched_by_group_id() {
    // RGO: descriptors without NSID lists; the namespace's group id comes from
    // Identify Namespace
    let log = ana_log(
        &[
            Group {
                id: 10,
                state: 0x02,
                nsids: &[],
            },
            Group {
                id: 20,
                state: 0x01,
                nsids: &[],
            },
        ],
        0,
    );
    assert_eq!(find_ana_state(&log, 7, Some(20)).unwrap(), AnaState::Optimized);
    assert_eq!(find_ana_state(&log, 7, Some(10)).unwrap(), AnaState::NonOptimized);
    assert!(matches!(
        find_ana_state(&log, 7, Some(30)),
        Err(AnaError::NotFound {
            nsid: 7,
            grpid: Some(30)
        })
    ));
    // without a group id nothing matches an empty list
    assert!(matches!(find_ana_state(&log, 7, None), Err(AnaError::NotFound { .. })));
}

#[test]
fn group_id_zero_never_matches() {
    let log = ana_log(
        &[Group {
            id: 0,
            state: 0x01,
            nsids: &[],
        }],
        0,
    );
    assert!(matches!(
        find_ana_state(&log, 1, Some(0)),
        Err(AnaError::NotFound { .. })
    ));
}

#[test]
fn an_empty_log_lists_nothing() {
    let log = ana_log(&[], 4096);
    assert!(matches!(
        find_ana_state(&log, 1, Some(1)),
        Err(AnaError::NotFound {
            nsid: 1,
            grpid: Some(1)
        })
    ));
}

#[test]
fn short_logs_are_truncated_errors_with_the_bytes_needed() {
    let log = ana_log(
        &[
            Group {
                id: 1,
                state: 0x02,
                nsids: &[9],
            },
            Group {
                id: 2,
                state: 0x01,
                nsids: &[1, 2],
            },
        ],
        0,
    );
    assert_eq!(log.len(), 16 + 36 + 40);
    // inside the header
    assert!(matches!(
        find_ana_state(&log[..10], 1, None),
        Err(AnaError::Truncated { need: 16, len: 10 })
    ));
    // inside the second descriptor
    assert!(matches!(
        find_ana_state(&log[..60], 1, None),
        Err(AnaError::Truncated { need: 84, len: 60 })
    ));
    // inside the second descriptor's NSID list
    assert!(matches!(
        find_ana_state(&log[..90], 2, None),
        Err(AnaError::Truncated { need: 92, len: 90 })
    ));
    // the first group is answered before the missing part is reached, as upstream
    assert_eq!(find_ana_state(&log[..60], 9, None).unwrap(), AnaState::NonOptimized);
    // the whole log answers
    assert_eq!(find_ana_state(&log, 2, None).unwrap(), AnaState::Optimized);
}

#[test]
fn a_group_count_beyond_the_data_is_truncated() {
    let mut log = ana_log(
        &[Group {
            id: 1,
            state: 0x01,
            nsids: &[1],
        }],
        0,
    );
    log[8] = 3; // three groups announced, one present
    assert!(matches!(
        find_ana_state(&log, 2, None),
        Err(AnaError::Truncated { need: 84, len: 52 })
    ));
}

#[test]
fn an_nsid_count_that_overflows_is_truncated() {
    let mut log = ana_log(
        &[Group {
            id: 1,
            state: 0x01,
            nsids: &[],
        }],
        0,
    );
    log[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(find_ana_state(&log, 1, None), Err(AnaError::Truncated { .. })));
}

#[test]
fn undefined_state_bytes_are_invalid() {
    for state in [0x00u8, 0x05, 0x0e, 0x11, 0xff] {
        let log = ana_log(
            &[Group {
                id: 4,
                state,
                nsids: &[1],
            }],
            0,
        );
        match find_ana_state(&log, 1, None) {
            Err(AnaError::InvalidState { grpid: 4, state: s }) => assert_eq!(s, state),
            other => panic!("state {state:#x}: {other:?}"),
        }
    }
}

/// Identify Controller data with CMIC, ANACAP, NANAGRPID and MNAN at their offsets.
fn id_ctrl(cmic: u8, anacap: u8, nanagrpid: u32, mnan: u32) -> Vec<u8> {
    let mut d = vec![0u8; 4096];
    d[76] = cmic;
    d[343] = anacap;
    d[348..352].copy_from_slice(&nanagrpid.to_le_bytes());
    d[540..544].copy_from_slice(&mnan.to_le_bytes());
    d
}

#[test]
fn identify_controller_fields() {
    // nvmet: CMIC multi-port | multi-controller | ANA, ANACAP 0x1f, 128 groups, 1024 namespaces
    let c = parse_id_ctrl(&id_ctrl(0x0b, 0x1f, 128, 1024)).unwrap();
    assert_eq!(
        c,
        CtrlAna {
            supported: true,
            grpid_fixed: false,
            groups: 128,
            max_namespaces: 1024
        }
    );
    assert_eq!(c.log_len().unwrap(), 16 + 128 * 32 + 1024 * 4);
    // group ids fixed: no NSID lists asked for
    let c = parse_id_ctrl(&id_ctrl(0x08, 0x40, 4, 1024)).unwrap();
    assert!(c.supported && c.grpid_fixed);
    assert_eq!(c.log_len().unwrap(), 16 + 4 * 32);
    // no ANA: CMIC bit 3 clear
    assert!(!parse_id_ctrl(&id_ctrl(0x07, 0xff, 1, 1)).unwrap().supported);
}

#[test]
fn identify_data_too_short_is_an_error() {
    assert!(matches!(
        parse_id_ctrl(&id_ctrl(0x08, 0, 1, 1)[..512]),
        Err(AnaError::ShortIdentify { len: 512, .. })
    ));
    assert!(matches!(
        parse_id_ctrl(&[]),
        Err(AnaError::ShortIdentify { len: 0, .. })
    ));
    let mut ns = vec![0u8; 4096];
    ns[92..96].copy_from_slice(&0x0102_0304u32.to_le_bytes());
    assert_eq!(parse_ns_anagrpid(&ns).unwrap(), 0x0102_0304);
    assert!(matches!(
        parse_ns_anagrpid(&ns[..95]),
        Err(AnaError::ShortIdentify { len: 95, .. })
    ));
}

#[test]
fn bogus_sizes_do_not_allocate_gigabytes() {
    let c = parse_id_ctrl(&id_ctrl(0x08, 0, u32::MAX, u32::MAX)).unwrap();
    assert!(matches!(
        c.log_len(),
        Err(AnaError::LogTooLarge {
            groups: u32::MAX,
            max_namespaces: u32::MAX
        })
    ));
    let c = parse_id_ctrl(&id_ctrl(0x08, 0x40, 1 << 16, u32::MAX)).unwrap();
    assert!(matches!(c.log_len(), Err(AnaError::LogTooLarge { .. })));
}

#[test]
fn error_texts_say_what_and_why() {
    assert_eq!(
        AnaError::Truncated { need: 84, len: 60 }.to_string(),
        "ANA log truncated: 84 bytes needed, 60 read"
    );
    assert_eq!(
        AnaError::NotFound {
            nsid: 3,
            grpid: Some(2)
        }
        .to_string(),
        "neither NSID 3 nor ANA group 2 in the ANA log"
    );
    assert_eq!(
        AnaError::InvalidState { grpid: 4, state: 0x11 }.to_string(),
        "ANA group 4: invalid state 0x11"
    );
    assert_eq!(
        AnaError::Status {
            what: "get ANA log page",
            status: 0x4002
        }
        .to_string(),
        "get ANA log page: NVMe status 0x4002"
    );
}

#[test]
fn device_errors_are_typed() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        read_ana_state(&dir.path().join("nvme0n1"), std::time::Duration::from_secs(1)),
        Err(AnaError::Open { .. })
    ));
    // a regular file is no NVMe device: the admin ioctl fails
    let f = dir.path().join("file");
    std::fs::write(&f, b"x").unwrap();
    assert!(matches!(
        ana_supported(&f, std::time::Duration::from_secs(1)),
        Err(AnaError::Ioctl {
            what: "identify controller",
            ..
        })
    ));
}
