//! Prioritizers: ALUA numbers, RTPG/INQUIRY/VPD decoding, weightedpath,
//! path_latency scoring and detect_prio.

use multipathd::discovery::Bus;
use multipathd::discovery::pgpolicy::PRIO_UNDEF;
use multipathd::discovery::prio::*;

#[test]
fn names() {
    for n in [
        "const",
        "random",
        "sysfs",
        "alua",
        "ana",
        "weightedpath",
        "path_latency",
    ] {
        assert_eq!(Prio::from_name(n).map(Prio::name), Some(n));
    }
    assert_eq!(Prio::from_name("emc"), None);
}

/// A prioritizer this build does not have falls back to const, loudly: the owner logs this
/// text at path add, after the path's name.
#[test]
fn an_unimplemented_prio_falls_back_to_const_with_a_warning() {
    use multipathd::discovery::prio::{UPSTREAM_NOT_BUILT, prio_or_fallback};
    assert_eq!(prio_or_fallback("alua"), (Prio::Alua, None));
    for n in UPSTREAM_NOT_BUILT.iter().chain(&["bogus"]) {
        assert_eq!(
            prio_or_fallback(n),
            (
                Prio::Const,
                Some(format!(
                    "prio \"{n}\" is not supported by this multipathd, const is used instead"
                ))
            )
        );
    }
}

#[test]
fn const_and_random() {
    assert_eq!(CONST_PRIO, 1);
    let mut seq = [0u32, 9, 10, 19, u32::MAX].into_iter();
    let mut rng = || seq.next().unwrap();
    let got: Vec<i32> = (0..5).map(|_| random_prio(&mut rng)).collect();
    assert_eq!(got, vec![1, 10, 1, 10, 6]);
}

#[test]
fn alua_numbers() {
    assert_eq!(alua_prio(AAS_OPTIMIZED, false), 50);
    assert_eq!(alua_prio(AAS_NON_OPTIMIZED, false), 10);
    assert_eq!(alua_prio(AAS_LBA_DEPENDENT, false), 5);
    assert_eq!(alua_prio(AAS_STANDBY, false), 1);
    assert_eq!(alua_prio(AAS_UNAVAILABLE, false), 0);
    assert_eq!(alua_prio(AAS_OFFLINE, false), 0);
    assert_eq!(alua_prio(AAS_TRANSITIONING, false), 0);
    // Preferred bit: +80 unless optimized, or always with exclusive_pref_bit.
    assert_eq!(alua_prio(0x80 | AAS_OPTIMIZED, false), 50);
    assert_eq!(alua_prio(0x80 | AAS_OPTIMIZED, true), 130);
    assert_eq!(alua_prio(0x80 | AAS_NON_OPTIMIZED, false), 90);
    assert_eq!(alua_prio(0x80 | AAS_STANDBY, false), 81);
    // Reserved bits 4..6 do not disturb the state.
    assert_eq!(alua_prio(0x70 | AAS_NON_OPTIMIZED, false), 10);
}

#[test]
fn sysfs_numbers() {
    assert_eq!(sysfs_prio(Some("active/optimized"), false, false), 50);
    assert_eq!(sysfs_prio(Some("active/non-optimized"), false, false), 10);
    assert_eq!(sysfs_prio(Some("lba-dependent"), false, false), 5);
    assert_eq!(sysfs_prio(Some("standby"), false, false), 1);
    assert_eq!(sysfs_prio(Some("unavailable"), false, false), 0);
    assert_eq!(sysfs_prio(Some("transitioning"), true, false), 80);
    assert_eq!(sysfs_prio(Some("active/optimized"), true, false), 50);
    assert_eq!(sysfs_prio(Some("active/optimized"), true, true), 130);
    assert_eq!(sysfs_prio(Some("active/non-optimized"), true, false), 90);
    assert_eq!(sysfs_prio(None, true, false), PRIO_UNDEF);
    assert!(exclusive_pref_arg("exclusive_pref_bit"));
    assert!(exclusive_pref_arg("foo\texclusive_pref_bit bar"));
    assert!(!exclusive_pref_arg("exclusive_pref_bits"));
    assert!(!exclusive_pref_arg(""));
}

#[test]
fn inquiry_and_vpd_tpg() {
    let mut inq = [0u8; 36];
    assert_eq!(inquiry_tpgs(&inq), Some(Tpgs::None));
    inq[5] = 0x10;
    assert_eq!(inquiry_tpgs(&inq), Some(Tpgs::Implicit));
    inq[5] = 0x20 | 0x08;
    assert_eq!(inquiry_tpgs(&inq), Some(Tpgs::Explicit));
    inq[5] = 0x30;
    assert_eq!(inquiry_tpgs(&inq), Some(Tpgs::Both));
    assert_eq!(inquiry_tpgs(&inq[..5]), None);

    // NAA LU designator, relative port, then TPG designator (group 0x0102).
    let page = [
        0x00, 0x83, 0x00, 0x1c, 0x01, 0x03, 0x00, 0x08, 0x60, 1, 2, 3, 4, 5, 6, 7, 0x61, 0x94, 0x00, 0x04, 0, 0, 0, 1,
        0x61, 0x95, 0x00, 0x04, 0, 0, 0x01, 0x02,
    ];
    assert_eq!(tpg_from_vpd83(&page), Some(0x0102));
    assert_eq!(tpg_from_vpd83(&page[..24]), None);
    let mut bad = page;
    bad[19] = 0x40; // relative port designator overruns the page
    assert_eq!(tpg_from_vpd83(&bad), None);
    assert_eq!(tpg_from_vpd83(&[0, 0x80, 0, 0]), None);
}

fn rtpg(groups: &[(u8, u16, u8)]) -> Vec<u8> {
    let mut body = Vec::new();
    for &(b0, tpg, ports) in groups {
        body.extend_from_slice(&[b0, 0x0f]);
        body.extend_from_slice(&tpg.to_be_bytes());
        body.extend_from_slice(&[0, 0, 0, ports]);
        for p in 0..ports {
            body.extend_from_slice(&[0, 0, 0, p + 1]);
        }
    }
    let mut r = (body.len() as u32).to_be_bytes().to_vec();
    r.extend(body);
    r
}

#[test]
fn rtpg_decoding() {
    let r = rtpg(&[
        (0x80 | AAS_STANDBY, 1, 2),
        (AAS_OPTIMIZED, 2, 1),
        (AAS_NON_OPTIMIZED, 2, 0),
    ]);
    assert_eq!(rtpg_needed_len(&r), Some(r.len()));
    assert_eq!(rtpg_lookup(&r, 1), Ok(0x82));
    assert_eq!(rtpg_lookup(&r, 2), Ok(0x00)); // first descriptor of a group wins
    assert_eq!(rtpg_lookup(&r, 3), Err(RtpgError::TpgNotFound(3)));
    // A truncated reply (device had more than we asked for) is searched as far as it goes.
    assert_eq!(rtpg_lookup(&r[..20], 1), Ok(0x82));
    assert_eq!(rtpg_lookup(&r[..20], 2), Err(RtpgError::TpgNotFound(2)));
    assert_eq!(rtpg_lookup(&r[..3], 1), Err(RtpgError::Truncated(3)));
    assert_eq!(alua_prio(rtpg_lookup(&r, 1).unwrap(), false), 81);
}

#[test]
fn alua_getprio_reports_sg_io_failure_on_a_non_scsi_file() {
    let f = tempfile::NamedTempFile::new().unwrap();
    let e = alua_getprio(f.path(), None, false, 1000).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("SG_IO opcode 0x12"), "{msg}");
    let e = alua_getprio(std::path::Path::new("/nonexistent/sdq"), None, false, 1000).unwrap_err();
    assert_eq!(
        e.to_string(),
        "/nonexistent/sdq: No such file or directory (os error 2)"
    );
}

/// Tiny stand-in for POSIX regex search: `^` anchors, otherwise substring;
/// `(` marks an invalid pattern.
fn fake_re(re: &str, s: &str) -> Option<bool> {
    if re.contains('(') {
        return None;
    }
    Some(match re.strip_prefix('^') {
        Some(p) => s.starts_with(p),
        None => s.contains(re),
    })
}

#[test]
fn weightedpath() {
    let s = WeightedSubject {
        hbtl: "2:0:1:3".into(),
        dev: "sdc",
        serial: "SN42",
        wwn: None,
    };
    assert_eq!(weightedpath_prio("hbtl ^1: 10 ^2: 20", &s, &fake_re), 20);
    assert_eq!(weightedpath_prio("hbtl :0: 5 ^2: 20", &s, &fake_re), 5);
    assert_eq!(weightedpath_prio("devname sdb 1 sdc 7", &s, &fake_re), 7);
    assert_eq!(weightedpath_prio("serial\tSN4(  9 SN4 -3", &s, &fake_re), -3);
    assert_eq!(weightedpath_prio("serial X 9", &s, &fake_re), 0);
    assert_eq!(weightedpath_prio("serial SN 12abc", &s, &fake_re), 12);
    assert_eq!(weightedpath_prio("serial SN", &s, &fake_re), 0);
    assert_eq!(weightedpath_prio("wwn . 4", &s, &fake_re), 0);
    assert_eq!(weightedpath_prio("bogus sdc 4", &s, &fake_re), 0);
    assert_eq!(weightedpath_prio("", &s, &fake_re), 0);
    let fc = WeightedSubject {
        wwn: Some("0x2000:0x2100:0x5000:0x5001".into()),
        ..s
    };
    assert_eq!(weightedpath_prio("wwn :0x5000: 4", &fc, &fake_re), 4);
}

#[test]
fn latency_args() {
    assert_eq!(
        parse_latency_args("io_num=20 base_num=10"),
        Ok(LatencyArgs {
            io_num: 20,
            base_num: 10.0
        })
    );
    assert_eq!(
        parse_latency_args("base_num=1.5\tio_num=200"),
        Ok(LatencyArgs {
            io_num: 200,
            base_num: 1.5
        })
    );
    assert_eq!(
        parse_latency_args("io_num=19 base_num=10"),
        Err(LatencyArgsError::IoNumRange(19))
    );
    assert_eq!(
        parse_latency_args("io_num=20 base_num=1.05"),
        Err(LatencyArgsError::BaseNumRange(1.05))
    );
    assert_eq!(
        parse_latency_args("io_num=x base_num=2"),
        Err(LatencyArgsError::BadIoNum("x".into()))
    );
    assert_eq!(
        parse_latency_args("io_num=20").unwrap_err().to_string(),
        "expected \"io_num=N base_num=X\", got \"io_num=20\""
    );
    // Only the first two words count.
    assert!(parse_latency_args("foo io_num=20 base_num=2").is_err());
    assert_eq!(LATENCY_DEFAULTS.io_num, 100);
}

#[test]
fn latency_scores() {
    let base10 = LatencyArgs {
        io_num: 20,
        base_num: 10.0,
    };
    // log10(1e8 us) = 8 steps from 1 us; each factor of 10 costs one step.
    assert_eq!(path_latency_prio(&[1; 20], base10), 8);
    assert_eq!(path_latency_prio(&[0; 20], base10), 8);
    assert_eq!(path_latency_prio(&[100; 20], base10), 6);
    assert_eq!(path_latency_prio(&[10_000; 20], base10), 4);
    assert_eq!(path_latency_prio(&[100_000_000; 20], base10), 0);
    assert_eq!(path_latency_prio(&[u64::MAX; 20], base10), 0);
    // Geometric mean: 10 and 1000 average to 100.
    assert_eq!(path_latency_prio(&[10, 1000], base10), 6);
    // Finer base, more steps: about 10**(1/4) gives 4 steps per decade; the
    // score truncates like C's double-to-int, so 23.99... scores 23.
    assert_eq!(path_latency_prio(&[100; 100], LATENCY_DEFAULTS), 23);
    assert_eq!(path_latency_prio(&[1; 100], LATENCY_DEFAULTS), 31);
    assert_eq!(path_latency_prio(&[], base10), 8);
}

#[test]
fn detect_prio_rules() {
    let scsi = DetectPrioFacts {
        bus: Bus::Scsi,
        nvme_ana: false,
        tpgs: Tpgs::Implicit,
        rdac: false,
        access_state_readable: true,
    };
    assert_eq!(detect_prio(&scsi), Some(Prio::Sysfs));
    assert_eq!(
        detect_prio(&DetectPrioFacts {
            access_state_readable: false,
            ..scsi
        }),
        Some(Prio::Alua)
    );
    assert_eq!(detect_prio(&DetectPrioFacts { rdac: true, ..scsi }), Some(Prio::Alua));
    assert_eq!(
        detect_prio(&DetectPrioFacts {
            rdac: true,
            tpgs: Tpgs::Explicit,
            ..scsi
        }),
        Some(Prio::Sysfs)
    );
    assert_eq!(
        detect_prio(&DetectPrioFacts {
            tpgs: Tpgs::None,
            ..scsi
        }),
        None
    );
    let nvme = DetectPrioFacts {
        bus: Bus::Nvme,
        nvme_ana: true,
        tpgs: Tpgs::None,
        rdac: false,
        access_state_readable: false,
    };
    assert_eq!(detect_prio(&nvme), Some(Prio::Ana));
    assert_eq!(
        detect_prio(&DetectPrioFacts {
            nvme_ana: false,
            ..nvme
        }),
        None
    );
}

#[test]
fn rdac_page_and_device_probes_fail_cleanly_without_scsi() {
    assert!(is_rdac_page(&[0, 0xc9, 0, 0x28, b'v', b'a', b'c', b'1']));
    assert!(!is_rdac_page(&[0, 0xc9, 0, 0x28, b'v', b'a', b'c', b'2']));
    assert!(!is_rdac_page(&[0, 0x83, 0, 0x28, b'v', b'a', b'c', b'1']));
    assert!(!is_rdac_page(&[0, 0xc9, 0, 0x28, b'v']));
    let f = tempfile::NamedTempFile::new().unwrap();
    let e = read_tpgs(f.path(), 1000).unwrap_err().to_string();
    assert!(e.contains("SG_IO opcode 0x12"), "{e}");
    assert!(!read_is_rdac(f.path(), 1000));
}

/// detect_prio on NVMe: the job asks the controller on its run (a checker worker's), and a
/// device that does not answer the Identify (here: not an NVMe device at all) gets the
/// configured prioritizer, for this run and in the name `show paths` gives it.
#[test]
fn nvme_detection_runs_with_the_job_and_falls_back_to_the_configured_prio() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("dev")).unwrap();
    std::fs::write(root.path().join("dev/nvme0n1"), b"").unwrap();
    let job = PrioJob {
        prio: Prio::Ana,
        args: String::new(),
        unless_ana: Some(AnaDetect::new(Prio::Const, String::new())),
        dev: "nvme0n1".to_string(),
        hcil: multipathd::discovery::Hcil {
            host: 0,
            channel: 0,
            target: 0,
            lun: 1,
        },
        serial: String::new(),
        root: multipathd::discovery::SysfsRoot::new(root.path()),
        dev_dir: root.path().join("dev"),
        attrs: OpenAttrs::default(),
    };
    assert_eq!(job.run(std::time::Duration::from_millis(100)).unwrap(), 1);
    assert_eq!(job.effective(), Prio::Const);
    // Without detection the same device is asked for its ANA state, and cannot answer.
    let plain = PrioJob {
        unless_ana: None,
        ..job
    };
    assert!(plain.run(std::time::Duration::from_millis(100)).is_err());
    assert_eq!(plain.effective(), Prio::Ana);
}

/// The sysfs prioritizer's attributes stay open from one run to the next and are read
/// anew each time: a changed ALUA state shows, an attribute sysfs will not read (as
/// access_state without an ALUA handler) or that is not there yet gives nothing.
#[test]
fn sysfs_attributes_kept_open_are_read_anew_at_every_run() {
    let dir = tempfile::tempdir().unwrap();
    let attrs = OpenAttrs::default();
    std::fs::write(dir.path().join("access_state"), "active/optimized\n").unwrap();
    assert_eq!(
        attrs.read(dir.path(), "access_state").as_deref(),
        Some("active/optimized")
    );
    // The same file, rewritten in place: a kept descriptor sees the new text.
    std::fs::write(dir.path().join("access_state"), "standby\n").unwrap();
    assert_eq!(attrs.read(dir.path(), "access_state").as_deref(), Some("standby"));
    // Renamed away and replaced: the kept one still reads the file it opened, as a
    // sysfs attribute is one file for the device's life.
    std::fs::rename(dir.path().join("access_state"), dir.path().join("old")).unwrap();
    std::fs::write(dir.path().join("access_state"), "unavailable\n").unwrap();
    assert_eq!(attrs.read(dir.path(), "access_state").as_deref(), Some("standby"));
    assert_eq!(attrs.read(dir.path(), "preferred_path"), None);
    std::fs::write(dir.path().join("preferred_path"), "1\n").unwrap();
    assert_eq!(attrs.read(dir.path(), "preferred_path").as_deref(), Some("1"));
    // A directory opens but refuses reads (EISDIR), as sysfs refuses some attributes.
    std::fs::create_dir(dir.path().join("refused")).unwrap();
    assert_eq!(attrs.read(dir.path(), "refused"), None);
    assert_eq!(attrs.read(dir.path(), "refused"), None);
    // A clone is a new job's: it opens its own.
    let fresh = attrs.clone();
    assert_eq!(fresh.read(dir.path(), "access_state").as_deref(), Some("unavailable"));
    assert_eq!(fresh, attrs);
}
