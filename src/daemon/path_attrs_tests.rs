use super::*;

fn hcil(host: u32) -> Hcil {
    Hcil {
        host,
        channel: 0,
        target: 1,
        lun: 2,
    }
}

fn map(npr: NoPathRetry) -> MapTmo {
    MapTmo {
        alias: "mpatha".into(),
        no_path_retry: npr,
        polling_interval: 5,
        max_retries: None,
    }
}

fn secs(n: u32) -> Option<Timeout> {
    Some(Timeout::Secs(n))
}

fn fc(now: u32, fio: Option<Timeout>, dev_loss: Option<Timeout>) -> PathTmo {
    PathTmo {
        dev: "sdc".into(),
        scsi: true,
        protocol: "scsi:fcp".into(),
        hcil: hcil(3),
        transport: Transport::Fc {
            rport: "rport-3:0-1".into(),
            dev_loss_now: Some(Ok(now)),
        },
        host_present: true,
        fast_io_fail: fio,
        dev_loss,
        eh_deadline: None,
    }
}

fn iscsi(fio: Option<Timeout>, dev_loss: Option<Timeout>) -> PathTmo {
    PathTmo {
        dev: "sdd".into(),
        protocol: "scsi:iscsi".into(),
        hcil: hcil(4),
        transport: Transport::Iscsi {
            session: "session2".into(),
            present: true,
        },
        ..fc(0, fio, dev_loss)
    }
}

/// The writes of a plan as (attribute, value), other steps as text.
fn show(steps: &[Step]) -> Vec<String> {
    steps
        .iter()
        .map(|s| match s {
            Step::Write(w) => format!(
                "{} = {}{}",
                w.attr,
                w.value,
                if w.required { " (required)" } else { "" }
            ),
            Step::Log(l, t) => format!("log{l} {t}"),
            Step::Unsupported { dev, protocol } => format!("unsupported {dev} {protocol}"),
        })
        .collect()
}

const TARGET3: &str = "log4 target3:0:1 -> rport-3:0-1";

#[test]
fn min_dev_loss_covers_no_path_retry() {
    assert_eq!(min_dev_loss(NoPathRetry::Retries(12), 5), 60 + 1 + 5);
    assert_eq!(min_dev_loss(NoPathRetry::Retries(1), 5), 5 + 5);
    assert_eq!(min_dev_loss(NoPathRetry::Retries(600), 10), 6000 + 100 + 5);
    assert_eq!(min_dev_loss(NoPathRetry::Retries(u32::MAX), u32::MAX), MAX_DEV_LOSS_TMO);
    assert_eq!(min_dev_loss(NoPathRetry::Queue, 5), MAX_DEV_LOSS_TMO);
    assert_eq!(min_dev_loss(NoPathRetry::Fail, 5), 0);
    assert_eq!(min_dev_loss(NoPathRetry::Undef, 5), 0);
}

#[test]
fn fc_fast_io_fail_below_the_current_dev_loss_is_written_alone() {
    let steps = plan_timeouts(&map(NoPathRetry::Undef), &[fc(30, secs(5), None)]);
    assert_eq!(
        show(&steps),
        [TARGET3, "class/fc_remote_ports/rport-3:0-1/fast_io_fail_tmo = 5"]
    );
}

#[test]
fn fc_dev_loss_goes_up_before_fast_io_fail_then_to_its_value() {
    let steps = plan_timeouts(&map(NoPathRetry::Undef), &[fc(10, secs(20), secs(60))]);
    assert_eq!(
        show(&steps),
        [
            TARGET3,
            "class/fc_remote_ports/rport-3:0-1/dev_loss_tmo = 21 (required)",
            "class/fc_remote_ports/rport-3:0-1/fast_io_fail_tmo = 20",
            "class/fc_remote_ports/rport-3:0-1/dev_loss_tmo = 60",
        ]
    );
    let Step::Write(w) = &steps[1] else { panic!() };
    assert_eq!(w.busy, Some((3, "rport-3:0-1: rport blocked".into())));
    assert_eq!(w.failed, (0, "rport-3:0-1: failed to set dev_loss_tmo to 21".into()));
}

#[test]
fn fc_fast_io_fail_off_and_zero_are_words() {
    let steps = plan_timeouts(&map(NoPathRetry::Undef), &[fc(30, Some(Timeout::Off), secs(45))]);
    assert_eq!(
        show(&steps),
        [
            TARGET3,
            "class/fc_remote_ports/rport-3:0-1/fast_io_fail_tmo = off",
            "class/fc_remote_ports/rport-3:0-1/dev_loss_tmo = 45",
        ]
    );
    let steps = plan_timeouts(&map(NoPathRetry::Undef), &[fc(30, secs(0), None)]);
    assert_eq!(
        show(&steps),
        [TARGET3, "class/fc_remote_ports/rport-3:0-1/fast_io_fail_tmo = 0"]
    );
}

#[test]
fn fc_dev_loss_is_limited_to_600_without_fast_io_fail_unless_queueing() {
    let steps = plan_timeouts(&map(NoPathRetry::Fail), &[fc(30, None, secs(900))]);
    assert_eq!(
        show(&steps),
        [
            TARGET3,
            "log2 rport-3:0-1: limiting dev_loss_tmo to 600, since fast_io_fail is not set",
            "class/fc_remote_ports/rport-3:0-1/dev_loss_tmo = 600",
        ]
    );
    // Queueing for ever: dev_loss_tmo infinity, and no limit.
    let steps = plan_timeouts(&map(NoPathRetry::Queue), &[fc(30, None, secs(900))]);
    assert_eq!(
        show(&steps),
        [
            TARGET3,
            "class/fc_remote_ports/rport-3:0-1/dev_loss_tmo = 4294967295",
            "log2 mpatha: Raising dev_loss_tmo to 4294967295 because of no_path_retry setting",
        ]
    );
    // Neither timeout set: queueing alone changes nothing.
    assert_eq!(
        show(&plan_timeouts(&map(NoPathRetry::Queue), &[fc(30, None, None)])),
        Vec::<String>::new()
    );
}

#[test]
fn no_path_retry_raises_dev_loss_with_one_warning_per_map() {
    let mut b = fc(30, secs(5), secs(30));
    b.dev = "sde".into();
    let steps = plan_timeouts(&map(NoPathRetry::Retries(12)), &[fc(30, secs(5), secs(30)), b]);
    assert_eq!(
        show(&steps),
        [
            TARGET3,
            "class/fc_remote_ports/rport-3:0-1/fast_io_fail_tmo = 5",
            "class/fc_remote_ports/rport-3:0-1/dev_loss_tmo = 66",
            TARGET3,
            "class/fc_remote_ports/rport-3:0-1/fast_io_fail_tmo = 5",
            "class/fc_remote_ports/rport-3:0-1/dev_loss_tmo = 66",
            "log2 mpatha: Raising dev_loss_tmo to 66 because of no_path_retry setting",
        ]
    );
    // An unset dev_loss_tmo takes the minimum without a warning.
    let steps = plan_timeouts(&map(NoPathRetry::Retries(12)), &[fc(30, secs(5), None)]);
    assert_eq!(
        show(&steps),
        [
            TARGET3,
            "class/fc_remote_ports/rport-3:0-1/fast_io_fail_tmo = 5",
            "class/fc_remote_ports/rport-3:0-1/dev_loss_tmo = 66",
        ]
    );
}

#[test]
fn fast_io_fail_not_below_dev_loss_is_turned_off() {
    let steps = plan_timeouts(&map(NoPathRetry::Undef), &[fc(30, secs(40), secs(40))]);
    assert_eq!(
        show(&steps),
        [
            TARGET3,
            "class/fc_remote_ports/rport-3:0-1/fast_io_fail_tmo = off",
            "class/fc_remote_ports/rport-3:0-1/dev_loss_tmo = 40",
            "log3 mpatha: turning off fast_io_fail (not smaller than dev_loss_tmo)",
        ]
    );
}

#[test]
fn fc_port_missing_or_unreadable_is_logged_and_left_alone() {
    let mut p = fc(0, secs(5), None);
    p.transport = Transport::Fc {
        rport: "rport-3:0-1".into(),
        dev_loss_now: None,
    };
    assert_eq!(
        show(&plan_timeouts(&map(NoPathRetry::Undef), &[p.clone()])),
        ["log1 sdc: No fc_remote_port device for 'rport-3:0-1'"]
    );
    p.transport = Transport::Fc {
        rport: "rport-3:0-1".into(),
        dev_loss_now: Some(Err(ReadError::Io(5))),
    };
    assert_eq!(
        show(&plan_timeouts(&map(NoPathRetry::Undef), &[p.clone()])),
        [TARGET3, "log0 rport-3:0-1: failed to read dev_loss_tmo value, error 5"]
    );
    p.transport = Transport::Fc {
        rport: "rport-3:0-1".into(),
        dev_loss_now: Some(Err(ReadError::Parse("soon".into()))),
    };
    assert_eq!(
        show(&plan_timeouts(&map(NoPathRetry::Undef), &[p])),
        [TARGET3, "log0 rport-3:0-1: Cannot parse dev_loss_tmo attribute 'soon'"]
    );
}

#[test]
fn iscsi_fast_io_fail_is_the_session_recovery_tmo() {
    let steps = plan_timeouts(&map(NoPathRetry::Undef), &[iscsi(secs(15), secs(120))]);
    assert_eq!(
        show(&steps),
        [
            "log3 sdd: ignoring dev_loss_tmo on iSCSI",
            "log4 target4:0:1 -> session2",
            "class/iscsi_session/session2/recovery_tmo = 15",
        ]
    );
    assert_eq!(
        show(&plan_timeouts(
            &map(NoPathRetry::Undef),
            &[iscsi(Some(Timeout::Off), None)]
        )),
        [
            "log4 target4:0:1 -> session2",
            "log3 sdd: can't switch off fast_io_fail_tmo on iSCSI"
        ]
    );
    assert_eq!(
        show(&plan_timeouts(&map(NoPathRetry::Undef), &[iscsi(secs(0), None)])),
        [
            "log4 target4:0:1 -> session2",
            "log3 sdd: can't set fast_io_fail_tmo to '0'on iSCSI"
        ]
    );
    let mut p = iscsi(secs(5), None);
    p.transport = Transport::Iscsi {
        session: "session2".into(),
        present: false,
    };
    assert_eq!(
        show(&plan_timeouts(&map(NoPathRetry::Undef), &[p])),
        ["log1 sdd: No iscsi session for 'session2'"]
    );
}

#[test]
fn sas_dev_loss_is_the_nexus_loss_timeout() {
    let p = PathTmo {
        dev: "sdf".into(),
        protocol: "scsi:sas".into(),
        hcil: hcil(5),
        transport: Transport::Sas {
            end_device: "end_device-5:0".into(),
            present: true,
        },
        ..fc(0, secs(5), secs(90))
    };
    assert_eq!(
        show(&plan_timeouts(&map(NoPathRetry::Undef), std::slice::from_ref(&p))),
        [
            "log4 target5:0:1 -> end_device-5:0",
            "class/sas_end_device/end_device-5:0/I_T_nexus_loss_timeout = 90",
        ]
    );
    // fast_io_fail alone means nothing to SAS.
    let p = PathTmo { dev_loss: None, ..p };
    assert_eq!(
        show(&plan_timeouts(&map(NoPathRetry::Undef), &[p])),
        Vec::<String>::new()
    );
}

#[test]
fn other_protocols_get_eh_deadline_but_no_transport_timeouts() {
    let p = PathTmo {
        dev: "sda".into(),
        protocol: "scsi:unspec".into(),
        hcil: hcil(0),
        transport: Transport::Other,
        eh_deadline: secs(30),
        ..fc(0, secs(5), None)
    };
    assert_eq!(
        show(&plan_timeouts(&map(NoPathRetry::Undef), std::slice::from_ref(&p))),
        ["class/scsi_host/host0/eh_deadline = 30", "unsupported sda scsi:unspec"]
    );
    // eh_deadline alone: no complaint about the transport.
    let q = PathTmo {
        fast_io_fail: None,
        eh_deadline: Some(Timeout::Off),
        ..p.clone()
    };
    assert_eq!(
        show(&plan_timeouts(&map(NoPathRetry::Undef), &[q])),
        ["class/scsi_host/host0/eh_deadline = off"]
    );
    // No SCSI host in sysfs: nothing to write.
    let q = PathTmo {
        host_present: false,
        fast_io_fail: None,
        ..p.clone()
    };
    assert_eq!(
        show(&plan_timeouts(&map(NoPathRetry::Undef), &[q])),
        Vec::<String>::new()
    );
    // NVMe: nothing written, reported.
    let n = PathTmo {
        dev: "nvme0n1".into(),
        scsi: false,
        protocol: "nvme:tcp".into(),
        ..p
    };
    assert_eq!(
        show(&plan_timeouts(&map(NoPathRetry::Undef), &[n])),
        ["unsupported nvme0n1 nvme:tcp"]
    );
}

#[test]
fn nothing_set_means_nothing_written() {
    let p = fc(30, None, None);
    assert_eq!(
        show(&plan_timeouts(&map(NoPathRetry::Fail), &[p])),
        Vec::<String>::new()
    );
}

#[test]
fn eh_deadline_and_max_retries_come_before_the_transport() {
    let mut m = map(NoPathRetry::Undef);
    m.max_retries = Some(MaxRetries::Off);
    let p = PathTmo {
        eh_deadline: secs(0),
        ..fc(30, secs(5), None)
    };
    let steps = plan_timeouts(&m, &[p]);
    assert_eq!(
        show(&steps),
        [
            "class/scsi_host/host3/eh_deadline = 0",
            "block/sdc/device/scsi_disk/3:0:1:2/max_retries = -1",
            TARGET3,
            "class/fc_remote_ports/rport-3:0-1/fast_io_fail_tmo = 5",
        ]
    );
    let Step::Write(w) = &steps[0] else { panic!() };
    assert_eq!(w.failed, (3, "host3: failed to set eh_deadline to 0".into()));
    let Step::Write(w) = &steps[1] else { panic!() };
    assert_eq!(
        w.failed,
        (
            3,
            "3:0:1:2/scsi_disk/3:0:1:2/max_retries: failed to set value to -1".into()
        )
    );
    m.max_retries = Some(MaxRetries::Count(3));
    let steps = plan_timeouts(&m, &[fc(30, None, None)]);
    assert_eq!(show(&steps), ["block/sdc/device/scsi_disk/3:0:1:2/max_retries = 3"]);
}

#[test]
fn max_sectors_kb_on_create_and_on_join() {
    let devs = vec!["sda".to_string(), "sdb".to_string()];
    assert_eq!(plan_max_sectors_on_create(None, &devs), vec![]);
    let steps = plan_max_sectors_on_create(Some(256), &devs);
    assert_eq!(
        show(&steps),
        [
            "block/sda/queue/max_sectors_kb = 256",
            "block/sdb/queue/max_sectors_kb = 256"
        ]
    );
    let Step::Write(w) = &steps[1] else { panic!() };
    assert_eq!(w.failed, (1, "failed setting max_sectors_kb on sdb".into()));
    assert_eq!(plan_max_sectors_on_join(Some(256), "sdc", Some(256)), vec![]);
    assert_eq!(plan_max_sectors_on_join(None, "sdc", Some(512)), vec![]);
    let steps = plan_max_sectors_on_join(Some(256), "sdc", Some(512));
    assert_eq!(show(&steps), ["block/sdc/queue/max_sectors_kb = 256"]);
    let Step::Write(w) = &steps[0] else { panic!() };
    assert_eq!(w.failed, (3, "failed setting max_sectors_kb on sdc".into()));
    assert_eq!(
        w.done,
        Some((3, "set_path_max_sectors_kb: set max_sectors_kb to 256 for sdc".into()))
    );
}

#[test]
fn apply_writes_logs_and_stops_a_path_after_a_failed_required_write() {
    let dir = tempfile::tempdir().unwrap();
    let root = SysfsRoot::new(dir.path());
    let attr = |a: &str| root.sys(a);
    std::fs::create_dir_all(attr("class/fc_remote_ports/rport-3:0-1")).unwrap();
    std::fs::write(attr("class/fc_remote_ports/rport-3:0-1/fast_io_fail_tmo"), "off\n").unwrap();
    // No dev_loss_tmo file: the raise fails, so the rest of sdc's writes are skipped.
    std::fs::create_dir_all(attr("class/scsi_host/host0")).unwrap();
    std::fs::write(attr("class/scsi_host/host0/eh_deadline"), "off\n").unwrap();
    let other = PathTmo {
        dev: "sda".into(),
        protocol: "scsi:unspec".into(),
        hcil: hcil(0),
        transport: Transport::Other,
        eh_deadline: secs(30),
        ..fc(0, secs(5), None)
    };
    let steps = plan_timeouts(
        &map(NoPathRetry::Undef),
        &[
            fc(10, secs(20), secs(60)),
            other.clone(),
            PathTmo {
                dev: "sdb".into(),
                ..other
            },
        ],
    );
    let mut warned = BTreeSet::new();
    let mut logs = Vec::new();
    apply(&root, &steps, &mut warned, &mut |l, t| logs.push(format!("{l} {t}")));
    assert_eq!(
        logs,
        [
            "4 target3:0:1 -> rport-3:0-1",
            "0 rport-3:0-1: failed to set dev_loss_tmo to 21: No such file or directory",
            "2 sda: setting scsi timeouts is unsupported for protocol scsi:unspec",
        ]
    );
    assert_eq!(
        std::fs::read_to_string(attr("class/fc_remote_ports/rport-3:0-1/fast_io_fail_tmo")).unwrap(),
        "off\n"
    );
    assert_eq!(
        std::fs::read_to_string(attr("class/scsi_host/host0/eh_deadline")).unwrap(),
        "30"
    );
    // Once per protocol for the daemon's life.
    logs.clear();
    apply(&root, &steps[4..], &mut warned, &mut |l, t| {
        logs.push(format!("{l} {t}"))
    });
    assert_eq!(logs, Vec::<String>::new());
}
