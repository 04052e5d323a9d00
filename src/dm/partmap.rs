//! kpartx's partition maps on a multipath map, recognised as upstream recognises them
//! before it removes a map: a uuid `part<N>-<map uuid>` (N at least 1) and either no
//! table or a single `linear` target over the map's `major:minor`.

use super::TargetLine;

/// Target type of a partition map.
const PARTITION_TARGET: &str = "linear";

/// Whether `uuid` names a partition of the map whose uuid is `map_uuid` (`mpath-…`).
pub fn is_partition_uuid(uuid: &str, map_uuid: &str) -> bool {
    let Some(rest) = uuid.strip_prefix("part") else {
        return false;
    };
    let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let (n, rest) = rest.split_at(digits);
    let Some(of) = rest.strip_prefix('-') else {
        return false;
    };
    n.parse::<u64>().is_ok_and(|n| n > 0) && of.len() > "mpath-".len() && of.starts_with("mpath-") && of == map_uuid
}

/// Whether a device with uuid `uuid` and live table `table` is a partition map of the
/// map with uuid `map_uuid` and device number `map_devt` (`major:minor`). A partition
/// without a table counts: it still holds the map's name.
pub fn is_partition_of(uuid: &str, table: &[TargetLine], map_uuid: &str, map_devt: &str) -> bool {
    if !is_partition_uuid(uuid, map_uuid) {
        return false;
    }
    match table {
        [] => true,
        [t] if t.target == PARTITION_TARGET => {
            // the device number as the first match in the parameters, not the start of
            // a longer minor (254:1 is not 254:12)
            t.params
                .find(map_devt)
                .is_some_and(|i| !t.params[i + map_devt.len()..].starts_with(|c: char| c.is_ascii_digit()))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAP: &str = "mpath-360014051d5a0c7f1e1e4c1aa9f0c1b2a";

    fn linear(params: &str) -> Vec<TargetLine> {
        vec![TargetLine {
            start: 0,
            length: 8192,
            target: "linear".into(),
            params: params.into(),
        }]
    }

    #[test]
    fn partition_uuids() {
        assert!(is_partition_uuid(&format!("part1-{MAP}"), MAP));
        assert!(is_partition_uuid(&format!("part12-{MAP}"), MAP));
        for bad in [
            format!("part0-{MAP}"),
            format!("part-{MAP}"),
            format!("partx-{MAP}"),
            format!("part1{MAP}"),
            format!("part1-{MAP}x"),
            MAP.to_string(),
            "part1-mpath-".to_string(),
            format!("part1-LVM-{}", &MAP[6..]),
        ] {
            assert!(!is_partition_uuid(&bad, MAP), "{bad}");
        }
        assert!(!is_partition_uuid("part1-mpath-", "mpath-"), "a map uuid needs a wwid");
    }

    #[test]
    fn partition_tables() {
        let uuid = format!("part1-{MAP}");
        assert!(is_partition_of(&uuid, &linear("254:1 2048"), MAP, "254:1"));
        assert!(is_partition_of(&uuid, &[], MAP, "254:1"), "no table yet");
        assert!(!is_partition_of(&uuid, &linear("254:12 2048"), MAP, "254:1"));
        assert!(!is_partition_of(&uuid, &linear("254:2 2048"), MAP, "254:1"));
        assert!(!is_partition_of(
            &format!("part1-{MAP}0"),
            &linear("254:1 2048"),
            MAP,
            "254:1"
        ));
        let mut striped = linear("254:1 2048");
        striped[0].target = "striped".into();
        assert!(!is_partition_of(&uuid, &striped, MAP, "254:1"));
        let two = [linear("254:1 2048"), linear("254:1 10240")].concat();
        assert!(!is_partition_of(&uuid, &two, MAP, "254:1"));
    }

    #[test]
    fn a_backend_lists_the_partition_maps_of_a_map() {
        use crate::dm::{DmBackend, FakeDm, MapUdev, Suspend, UdevFlags};
        let dm = FakeDm::new();
        let mpath = TargetLine::parse("0 32768 multipath 0 0 1 1 round-robin 0 1 1 8:0 1").unwrap();
        let minor = |name| dm.info(name).unwrap().minor;
        let dev = |name: &str, uuid: &str, table: Option<&str>| {
            dm.create(name, uuid, UdevFlags::NONE).unwrap();
            if let Some(t) = table {
                dm.load(name, &linear(t)).unwrap();
                dm.resume(name, Suspend::KEEP_IO, UdevFlags::NONE).unwrap();
            }
        };
        dm.create_map("mpatha", MAP, std::slice::from_ref(&mpath), MapUdev::default())
            .unwrap();
        let other = format!("{MAP}f");
        dm.create_map("mpathb", &other, &[mpath], MapUdev::default()).unwrap();
        let (a, b) = (format!("254:{}", minor("mpatha")), format!("254:{}", minor("mpathb")));
        dev("mpatha-part1", &format!("part1-{MAP}"), Some(&format!("{a} 2048")));
        dev("mpatha-part2", &format!("part2-{MAP}"), None);
        dev("mpathb-part1", &format!("part1-{other}"), Some(&format!("{b} 2048")));
        // a partition uuid of mpatha over another device: not one of mpatha's
        dev("stray", &format!("part3-{MAP}"), Some(&format!("{b} 2048")));
        dev("lvol", "LVM-abc", Some(&format!("{a} 0")));
        let names = |v: Vec<crate::dm::DmInfo>| v.into_iter().map(|i| i.name).collect::<Vec<_>>();
        assert_eq!(
            names(dm.partition_maps("mpatha").unwrap()),
            ["mpatha-part1", "mpatha-part2"]
        );
        assert_eq!(names(dm.partition_maps("mpathb").unwrap()), ["mpathb-part1"]);
        assert!(dm.partition_maps("mpatha-part1").unwrap().is_empty());
        assert_eq!(
            dm.partition_maps("gone").unwrap_err().errno(),
            Some(nix::errno::Errno::ENXIO)
        );
    }
}
