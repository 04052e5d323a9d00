//! The `multipath` target's status text (`dmsetup status`), typed.
//!
//! Layout (kernel `multipath_status`, STATUSTYPE_INFO): `<#features> <queue_io>
//! <pg_init_count> <#hwh status> <hwh status..> <#groups> <next group>`, per group
//! `<A|E|D> <#selector status> <selector status..> <#paths> <#per-path selector args>`,
//! per path `<dev> <A|F> <fail_count> <per-path selector args..>`.

use super::tokens::{ParseError, Tokens};

/// Parsed status of one multipath map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultipathStatus {
    /// 1 while the kernel is holding IO back (e.g. during a path-group switch).
    pub queue_io: u32,
    /// Number of hardware handler initialisations done so far.
    pub pg_init_count: u32,
    /// Hardware handler status words (usually empty).
    pub hwhandler: Vec<String>,
    /// 1-based group the next IO goes to; 0 with no groups.
    pub next_group: u32,
    pub groups: Vec<GroupStatus>,
}

/// Kernel state of a priority group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    /// `A`: the group IO currently goes to.
    Active,
    /// `E`: usable, not current.
    Enabled,
    /// `D`: bypassed (disabled).
    Disabled,
}

impl GroupState {
    pub fn as_char(self) -> char {
        match self {
            GroupState::Active => 'A',
            GroupState::Enabled => 'E',
            GroupState::Disabled => 'D',
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupStatus {
    pub state: GroupState,
    /// Selector status words for the group (usually empty).
    pub selector_status: Vec<String>,
    pub paths: Vec<PathStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathStatus {
    /// `major:minor`.
    pub dev: String,
    /// `A` (true) or `F` (false).
    pub active: bool,
    pub fail_count: u32,
    /// Per-path selector status, e.g. service-time's in-flight size and relative throughput.
    pub selector_args: Vec<String>,
}

impl MultipathStatus {
    /// Parses the parameter part of a `multipath` status line.
    pub fn parse(params: &str) -> Result<Self, ParseError> {
        let mut t = Tokens::new(params);
        let nfeat: usize = t.number("status feature count")?;
        if nfeat < 2 {
            return Err(t.error_last(format!(
                "status feature count {nfeat}: expected at least queue_io and pg_init_count"
            )));
        }
        let queue_io = t.number("queue_io")?;
        let pg_init_count = t.number("pg_init_count")?;
        for _ in 2..nfeat {
            t.word("status feature")?;
        }
        let hwhandler = t.counted("hardware handler status")?;
        let ngroups: usize = t.number("path group count")?;
        let next_group: u32 = t.number("next path group")?;
        if next_group as usize > ngroups {
            return Err(t.error_last(format!("next path group {next_group} is beyond the {ngroups} groups")));
        }
        let mut groups = Vec::new();
        for _ in 0..ngroups {
            let state = match t.word("path group state")? {
                "A" => GroupState::Active,
                "E" => GroupState::Enabled,
                "D" => GroupState::Disabled,
                other => {
                    return Err(t.error_last(format!("path group state {other:?}: expected A, E or D")));
                }
            };
            let selector_status = t.counted("selector status")?;
            let npaths: usize = t.number("path count")?;
            let nargs: usize = t.number("per-path selector status count")?;
            let needed = npaths.checked_mul(nargs.saturating_add(3));
            if needed.is_none_or(|n| n > t.remaining()) {
                return Err(t.error(format!(
                    "{npaths} paths with {nargs} selector values each do not fit in the {} words left",
                    t.remaining()
                )));
            }
            let mut paths = Vec::with_capacity(npaths);
            for _ in 0..npaths {
                let dev = t.word("path device")?.to_owned();
                let active = match t.word("path state")? {
                    "A" => true,
                    "F" => false,
                    other => {
                        return Err(t.error_last(format!("path state {other:?}: expected A or F")));
                    }
                };
                let fail_count = t.number("path fail count")?;
                let selector_args = (0..nargs)
                    .map(|_| t.word("path selector status").map(str::to_owned))
                    .collect::<Result<_, _>>()?;
                paths.push(PathStatus {
                    dev,
                    active,
                    fail_count,
                    selector_args,
                });
            }
            groups.push(GroupStatus {
                state,
                selector_status,
                paths,
            });
        }
        t.finish()?;
        Ok(MultipathStatus {
            queue_io,
            pg_init_count,
            hwhandler,
            next_group,
            groups,
        })
    }

    /// The status text as the kernel prints it (used by the fake DM backend).
    pub fn format(&self) -> String {
        let mut out = vec![
            "2".to_owned(),
            self.queue_io.to_string(),
            self.pg_init_count.to_string(),
            self.hwhandler.len().to_string(),
        ];
        out.extend(self.hwhandler.iter().cloned());
        out.push(self.groups.len().to_string());
        out.push(self.next_group.to_string());
        for g in &self.groups {
            out.push(g.state.as_char().to_string());
            out.push(g.selector_status.len().to_string());
            out.extend(g.selector_status.iter().cloned());
            out.push(g.paths.len().to_string());
            out.push(g.paths.first().map_or(0, |p| p.selector_args.len()).to_string());
            for p in &g.paths {
                out.push(p.dev.clone());
                out.push(if p.active { "A" } else { "F" }.to_owned());
                out.push(p.fail_count.to_string());
                out.extend(p.selector_args.iter().cloned());
            }
        }
        out.join(" ")
    }

    /// The status of a path by device, with its 1-based group number.
    pub fn path(&self, dev: &str) -> Option<(u32, &PathStatus)> {
        self.groups
            .iter()
            .zip(1u32..)
            .find_map(|(g, n)| g.paths.iter().find(|p| p.dev == dev).map(|p| (n, p)))
    }

    /// Number of paths the kernel currently considers usable.
    pub fn active_paths(&self) -> usize {
        self.groups.iter().flat_map(|g| &g.paths).filter(|p| p.active).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dm::table::TargetLine;

    fn parse_line(line: &str) -> MultipathStatus {
        let tl = TargetLine::parse(line).unwrap();
        assert_eq!(tl.target, "multipath");
        let s = MultipathStatus::parse(&tl.params).unwrap();
        assert_eq!(s.format(), tl.params, "format must reproduce the kernel text");
        s
    }

    fn p(dev: &str, active: bool, fail_count: u32, args: &[&str]) -> PathStatus {
        PathStatus {
            dev: dev.into(),
            active,
            fail_count,
            selector_args: args.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn service_time_two_groups_failed_path() {
        let s = parse_line("0 32768 multipath 2 0 1 0 2 2 E 0 1 2 8:16 F 1 0 1 A 0 1 2 8:0 A 0 0 1");
        assert_eq!(
            s,
            MultipathStatus {
                queue_io: 0,
                pg_init_count: 1,
                hwhandler: vec![],
                next_group: 2,
                groups: vec![
                    GroupStatus {
                        state: GroupState::Enabled,
                        selector_status: vec![],
                        paths: vec![p("8:16", false, 1, &["0", "1"])],
                    },
                    GroupStatus {
                        state: GroupState::Active,
                        selector_status: vec![],
                        paths: vec![p("8:0", true, 0, &["0", "1"])],
                    },
                ],
            }
        );
        assert_eq!(s.path("8:16").map(|(g, p)| (g, p.active)), Some((1, false)));
        assert_eq!(s.active_paths(), 1);
    }

    #[test]
    fn round_robin_single_group() {
        let s = parse_line("0 32768 multipath 2 1 0 0 1 1 E 0 2 0 8:0 A 0 8:16 A 0");
        assert_eq!(s.queue_io, 1);
        assert_eq!(s.groups[0].state, GroupState::Enabled);
        assert_eq!(s.groups[0].paths, vec![p("8:0", true, 0, &[]), p("8:16", true, 0, &[])]);
        let s = parse_line("0 32768 multipath 2 0 0 0 1 1 A 0 2 0 8:0 A 0 8:16 F 1");
        assert_eq!(s.groups[0].paths[1], p("8:16", false, 1, &[]));
        assert_eq!(s.active_paths(), 1);
        let s = parse_line("0 32768 multipath 2 0 0 0 1 1 A 0 2 0 8:0 A 0 8:16 A 1");
        assert_eq!(s.active_paths(), 2);
        parse_line("0 32768 multipath 2 0 1 0 2 2 E 0 1 2 8:16 A 1 0 1 A 0 1 2 8:0 A 0 0 1");
    }

    #[test]
    fn lab_measured_strings_with_trailing_space() {
        // dmctl/dmsetup output in the lab VM (tests/lab/scenarios/dm_ioctl.sh), kernel 6.1.
        for (line, failed) in [
            (
                "0 32768 multipath 2 1 0 0 2 1 E 0 1 2 8:16 A 0 0 1 E 0 1 2 8:0 A 0 0 1 ",
                0,
            ),
            (
                "0 32768 multipath 2 0 1 0 2 1 A 0 1 2 8:16 F 1 0 1 E 0 1 2 8:0 A 0 0 1 ",
                1,
            ),
        ] {
            let s = MultipathStatus::parse(&TargetLine::parse(line).unwrap().params).unwrap();
            assert_eq!(s.format(), line[18..].trim_end());
            assert_eq!(s.active_paths(), 2 - failed);
        }
    }

    #[test]
    fn hwhandler_status_and_disabled_group() {
        let s = parse_line("0 8 multipath 2 0 0 1 alua 1 0 D 0 1 0 8:32 F 3");
        assert_eq!(s.hwhandler, vec!["alua"]);
        assert_eq!(s.groups[0].state, GroupState::Disabled);
        assert_eq!(s.next_group, 0);
    }

    #[test]
    fn malformed_status_errors_with_position() {
        let e = MultipathStatus::parse("2 0 0 0 1 1 X 0 1 0 8:0 A 0").unwrap_err();
        assert_eq!(
            e.to_string(),
            "word 6 (byte 12): path group state \"X\": expected A, E or D"
        );
        let e = MultipathStatus::parse("2 0 0 0 1 1 A 0 1 0 8:0 Q 0").unwrap_err();
        assert_eq!((e.word, e.reason.as_str()), (11, "path state \"Q\": expected A or F"));
        let e = MultipathStatus::parse("2 0 0 0 1 1 A 0 2 0 8:0 A 0").unwrap_err();
        assert!(
            e.reason.contains("2 paths with 0 selector values each do not fit"),
            "{e}"
        );
        let e = MultipathStatus::parse("1 0 0 0 0").unwrap_err();
        assert_eq!(e.word, 0);
        let e = MultipathStatus::parse("2 0 0 0 1 3").unwrap_err();
        assert!(e.reason.contains("next path group 3"), "{e}");
        let e = MultipathStatus::parse("").unwrap_err();
        assert_eq!(e.to_string(), "word 0 (byte 0): missing status feature count");
        let e = MultipathStatus::parse("2 0 0 0 0 0 junk").unwrap_err();
        assert_eq!(e.word, 6);
        let e = MultipathStatus::parse("2 0 0 0 1 1 A 0 1 0 8:0 A 99999999999").unwrap_err();
        assert!(e.reason.contains("out of range"), "{e}");
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(s in "[0-9AEDF: ]{0,80}") {
            let _ = MultipathStatus::parse(&s);
        }

        #[test]
        fn numeric_soup_never_panics(v in proptest::collection::vec(0u32..5, 0..40)) {
            let s: Vec<String> = v.iter().map(|n| n.to_string()).collect();
            let _ = MultipathStatus::parse(&s.join(" "));
        }
    }
}
