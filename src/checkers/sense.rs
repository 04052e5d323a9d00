//! Interpreting a finished SCSI command: status byte, host status and sense data.
//!
//! Pure functions over the fields the SG driver returns, so the decisions of the
//! `tur` and `readsector0` checkers are tested without a SCSI device.

use super::state::{PathState, Verdict};

/// SAM status byte values (masked with 0x7e as the kernel defines them).
const SAM_STAT_RESERVATION_CONFLICT: u8 = 0x18;

/// Host status values after which a retry cannot help or the verdict is final.
const DID_OK: u16 = 0x00;
const DID_NO_CONNECT: u16 = 0x01;
const DID_BAD_TARGET: u16 = 0x04;
const DID_ABORT: u16 = 0x05;
const DID_TRANSPORT_FAILFAST: u16 = 0x0f;

/// Sense keys.
pub const RECOVERED_ERROR: u8 = 0x1;
pub const NOT_READY: u8 = 0x2;
pub const ILLEGAL_REQUEST: u8 = 0x5;
pub const UNIT_ATTENTION: u8 = 0x6;

/// Sense key, additional sense code and qualifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sense {
    pub key: u8,
    pub asc: u8,
    pub ascq: u8,
}

/// Decodes fixed (0x70/0x71) or descriptor (0x72/0x73) format sense data; `None`
/// when too short or of an unknown format.
pub fn decode_sense(sb: &[u8]) -> Option<Sense> {
    if sb.len() < 4 {
        return None;
    }
    match sb[0] & 0x7f {
        0x72 | 0x73 => Some(Sense {
            key: sb[1] & 0x0f,
            asc: sb[2],
            ascq: sb[3],
        }),
        0x70 | 0x71 if sb.len() > 13 => Some(Sense {
            key: sb[2] & 0x0f,
            asc: sb[12],
            ascq: sb[13],
        }),
        _ => None,
    }
}

/// The completion fields of one SG_IO call the checkers look at.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScsiCompletion {
    /// `info & SG_INFO_OK_MASK` was clear: no error of any layer.
    pub ok: bool,
    pub status: u8,
    pub host_status: u16,
    /// The sense bytes actually written (`sb_len_wr`).
    pub sense: Vec<u8>,
}

/// What to do with one TEST UNIT READY completion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TurDecision {
    Done(Verdict),
    /// Unit attention or a transient driver error: issue the command again.
    Retry,
}

pub const MSG_UP: &str = " reports path is up";
pub const MSG_DOWN: &str = " reports path is down";
pub const MSG_GHOST: &str = " reports path is ghost";
pub const MSG_TRANSITIONING: &str = " reports path is transitioning";
pub const MSG_DISCONNECTED: &str = " reports path is disconnected";
pub const MSG_TIMEOUT: &str = " timed out";
pub const MSG_UNSUPPORTED: &str = " doesn't support this device";

/// Interprets a TEST UNIT READY completion as upstream's tur checker:
/// reservation conflict means the LUN answers (up); unit attention and driver
/// errors are retried; NOT READY 04/0b (standby) is ghost, 04/0a (ALUA state
/// transition) pending; ILLEGAL REQUEST 25/00 (LUN not supported) disconnected;
/// any other error down. `retries_left` counts the attempts still allowed after
/// this one.
pub fn interpret_tur(c: &ScsiCompletion, retries_left: u32) -> TurDecision {
    if c.status & 0x7e == SAM_STAT_RESERVATION_CONFLICT {
        return TurDecision::Done(Verdict::new(PathState::Up, MSG_UP));
    }
    if c.ok {
        return TurDecision::Done(Verdict::new(PathState::Up, MSG_UP));
    }
    let final_host = matches!(
        c.host_status,
        DID_OK | DID_NO_CONNECT | DID_BAD_TARGET | DID_ABORT | DID_TRANSPORT_FAILFAST
    );
    if !final_host && retries_left > 0 {
        return TurDecision::Retry;
    }
    let sense = decode_sense(&c.sense).unwrap_or_default();
    match (sense.key, sense.asc, sense.ascq) {
        (UNIT_ATTENTION, _, _) if retries_left > 0 => TurDecision::Retry,
        (NOT_READY, 0x04, 0x0b) => TurDecision::Done(Verdict::new(PathState::Ghost, MSG_GHOST)),
        (NOT_READY, 0x04, 0x0a) => TurDecision::Done(Verdict::new(PathState::Pending, MSG_TRANSITIONING)),
        (ILLEGAL_REQUEST, 0x25, 0x00) => TurDecision::Done(Verdict::new(PathState::Disconnected, MSG_DISCONNECTED)),
        _ => TurDecision::Done(Verdict::new(PathState::Down, MSG_DOWN)),
    }
}

/// Interprets a READ(10) of sector 0 for readsector0: success or a recovered
/// error is up, unit attention is retried, anything else down.
pub fn interpret_read(c: &ScsiCompletion, retries_left: u32) -> TurDecision {
    if c.ok {
        return TurDecision::Done(Verdict::new(PathState::Up, MSG_UP));
    }
    match decode_sense(&c.sense).map(|s| s.key) {
        Some(RECOVERED_ERROR) => TurDecision::Done(Verdict::new(PathState::Up, MSG_UP)),
        Some(UNIT_ATTENTION) if retries_left > 0 => TurDecision::Retry,
        _ => TurDecision::Done(Verdict::new(PathState::Down, MSG_DOWN)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed(key: u8, asc: u8, ascq: u8) -> Vec<u8> {
        let mut s = vec![0u8; 18];
        s[0] = 0x70;
        s[2] = key;
        s[7] = 10;
        s[12] = asc;
        s[13] = ascq;
        s
    }

    fn desc(key: u8, asc: u8, ascq: u8) -> Vec<u8> {
        vec![0x72, key, asc, ascq, 0, 0, 0, 0]
    }

    fn check_condition(sense: Vec<u8>) -> ScsiCompletion {
        ScsiCompletion {
            ok: false,
            status: 0x02,
            host_status: 0,
            sense,
        }
    }

    fn done(state: PathState, msg: &str) -> TurDecision {
        TurDecision::Done(Verdict::new(state, msg))
    }

    #[test]
    fn decodes_both_sense_formats() {
        let want = Some(Sense {
            key: 2,
            asc: 4,
            ascq: 0x0b,
        });
        assert_eq!(decode_sense(&fixed(2, 4, 0x0b)), want);
        assert_eq!(decode_sense(&desc(2, 4, 0x0b)), want);
        // Deferred-error and "valid bit" variants.
        let mut f = fixed(6, 0x29, 0);
        f[0] = 0xf1;
        assert_eq!(
            decode_sense(&f),
            Some(Sense {
                key: 6,
                asc: 0x29,
                ascq: 0
            })
        );
        assert_eq!(
            decode_sense(&[0x73, 0x05, 0x25, 0x00]),
            Some(Sense {
                key: 5,
                asc: 0x25,
                ascq: 0
            })
        );
        // Too short or unknown.
        assert_eq!(decode_sense(&fixed(2, 4, 0x0b)[..13]), None);
        assert_eq!(decode_sense(&[0x72, 1, 2]), None);
        assert_eq!(decode_sense(&[0x7f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), None);
    }

    #[test]
    fn tur_table() {
        let cases: Vec<(ScsiCompletion, u32, TurDecision)> = vec![
            (
                ScsiCompletion {
                    ok: true,
                    ..Default::default()
                },
                3,
                done(PathState::Up, MSG_UP),
            ),
            // Reservation conflict (also with a stray low bit) is up.
            (
                ScsiCompletion {
                    ok: false,
                    status: 0x18,
                    ..Default::default()
                },
                3,
                done(PathState::Up, MSG_UP),
            ),
            (
                ScsiCompletion {
                    ok: false,
                    status: 0x19,
                    ..Default::default()
                },
                0,
                done(PathState::Up, MSG_UP),
            ),
            (check_condition(fixed(6, 0x29, 0)), 2, TurDecision::Retry),
            (check_condition(desc(6, 0x2a, 6)), 1, TurDecision::Retry),
            (check_condition(fixed(6, 0x29, 0)), 0, done(PathState::Down, MSG_DOWN)),
            (check_condition(fixed(2, 4, 0x0b)), 3, done(PathState::Ghost, MSG_GHOST)),
            (check_condition(desc(2, 4, 0x0b)), 3, done(PathState::Ghost, MSG_GHOST)),
            (
                check_condition(fixed(2, 4, 0x0a)),
                3,
                done(PathState::Pending, MSG_TRANSITIONING),
            ),
            (check_condition(fixed(2, 4, 0x02)), 3, done(PathState::Down, MSG_DOWN)),
            (check_condition(fixed(2, 0x3a, 0)), 3, done(PathState::Down, MSG_DOWN)),
            (
                check_condition(fixed(5, 0x25, 0)),
                3,
                done(PathState::Disconnected, MSG_DISCONNECTED),
            ),
            (check_condition(fixed(5, 0x24, 0)), 3, done(PathState::Down, MSG_DOWN)),
            (check_condition(fixed(3, 0x11, 0)), 3, done(PathState::Down, MSG_DOWN)),
            (check_condition(vec![]), 3, done(PathState::Down, MSG_DOWN)),
            // Transient driver/host error (DID_ERROR 0x07, DID_SOFT_ERROR 0x0b): retried.
            (
                ScsiCompletion {
                    ok: false,
                    status: 0,
                    host_status: 0x07,
                    sense: vec![],
                },
                1,
                TurDecision::Retry,
            ),
            (
                ScsiCompletion {
                    ok: false,
                    status: 0,
                    host_status: 0x0b,
                    sense: vec![],
                },
                0,
                done(PathState::Down, MSG_DOWN),
            ),
            // Final host errors are not retried.
            (
                ScsiCompletion {
                    ok: false,
                    status: 0,
                    host_status: 0x01,
                    sense: vec![],
                },
                3,
                done(PathState::Down, MSG_DOWN),
            ),
            (
                ScsiCompletion {
                    ok: false,
                    status: 0,
                    host_status: 0x0f,
                    sense: vec![],
                },
                3,
                done(PathState::Down, MSG_DOWN),
            ),
            // A transient host error whose sense says standby, out of retries: ghost.
            (
                ScsiCompletion {
                    ok: false,
                    status: 2,
                    host_status: 0x07,
                    sense: fixed(2, 4, 0x0b),
                },
                0,
                done(PathState::Ghost, MSG_GHOST),
            ),
        ];
        for (i, (c, left, want)) in cases.into_iter().enumerate() {
            assert_eq!(interpret_tur(&c, left), want, "case {i}: {c:?}");
        }
    }

    #[test]
    fn read_table() {
        assert_eq!(
            interpret_read(
                &ScsiCompletion {
                    ok: true,
                    ..Default::default()
                },
                0
            ),
            done(PathState::Up, MSG_UP)
        );
        assert_eq!(
            interpret_read(&check_condition(fixed(1, 0x17, 0)), 0),
            done(PathState::Up, MSG_UP)
        );
        assert_eq!(
            interpret_read(&check_condition(fixed(6, 0x29, 0)), 1),
            TurDecision::Retry
        );
        assert_eq!(
            interpret_read(&check_condition(fixed(6, 0x29, 0)), 0),
            done(PathState::Down, MSG_DOWN)
        );
        assert_eq!(
            interpret_read(&check_condition(fixed(3, 0x11, 0)), 3),
            done(PathState::Down, MSG_DOWN)
        );
        assert_eq!(
            interpret_read(&check_condition(fixed(2, 4, 0x0b)), 3),
            done(PathState::Down, MSG_DOWN)
        );
    }
}

/// An INQUIRY answered usefully: no error, or only a recovered error.
pub fn inquiry_ok(c: &ScsiCompletion) -> bool {
    c.ok || decode_sense(&c.sense).is_some_and(|s| s.key == RECOVERED_ERROR)
}

/// Host statuses the rdac checker retries (bus busy, error, soft error,
/// transport disrupted).
pub fn transient_host_status(host_status: u16) -> bool {
    matches!(host_status, 0x02 | 0x07 | 0x0b | 0x0e)
}

/// Length of the RDAC volume access page (INQUIRY VPD 0xC9) the checker reads.
pub const RDAC_PAGE_LEN: usize = 48;

const RTPG_UNAVAILABLE: u8 = 0x3;
const RTPG_TRANSITIONING: u8 = 0xf;

/// Judges an RDAC volume access page (VPD 0xC9) as upstream's rdac checker: a LUN
/// not connected, an unavailable target port group, or a controller booting alone
/// (transitioning while its peer is not) is down; the owning controller or one in
/// IO-shipping mode is up; the other controller is ghost.
pub fn rdac_verdict(page: &[u8]) -> Verdict {
    let byte = |i: usize| page.get(i).copied().unwrap_or(0);
    let (pq_pdt, avtcvp, aas_cur, vs_cur, aas_alt) = (byte(0), byte(8), byte(10), byte(11), byte(12));
    let down = |why: &str| {
        let msg = if why.is_empty() {
            MSG_DOWN.to_string()
        } else {
            format!("{MSG_DOWN}: {why}")
        };
        Verdict::new(PathState::Down, &msg)
    };
    if pq_pdt & 0xe0 == 0x20 || pq_pdt & 0x7f != 0 {
        return down("lun not connected");
    }
    // TPG data valid: the ALUA-like state of this and the peer controller.
    if avtcvp & 0x10 != 0 {
        let cur = aas_cur & 0x0f;
        if cur == RTPG_UNAVAILABLE {
            return down(match vs_cur {
                0x2 => "non-responsive to queries",
                0x3 => "ctlr held in reset",
                0x4 | 0x5 => "ctlr firmware downloading",
                0x6 => "ctlr quiesced by admin request",
                0x7 => "ctlr is in service mode",
                _ => "ctlr is unavailable",
            });
        }
        // Both transitioning = a mode select / STPG in progress, which is fine.
        if cur == RTPG_TRANSITIONING && aas_alt & 0x0f != RTPG_TRANSITIONING {
            return down("ctlr is in startup sequence");
        }
    }
    if avtcvp & 0x01 != 0 || avtcvp & 0x20 != 0 {
        Verdict::new(PathState::Up, MSG_UP)
    } else {
        Verdict::new(PathState::Ghost, MSG_GHOST)
    }
}

#[cfg(test)]
mod vendor_tests {
    use super::*;

    fn page(pq_pdt: u8, avtcvp: u8, aas_cur: u8, vs_cur: u8, aas_alt: u8) -> Vec<u8> {
        let mut p = vec![0u8; RDAC_PAGE_LEN];
        p[0] = pq_pdt;
        p[1] = 0xc9;
        p[8] = avtcvp;
        p[10] = aas_cur;
        p[11] = vs_cur;
        p[12] = aas_alt;
        p
    }

    #[test]
    fn rdac_table() {
        let cases: &[(Vec<u8>, PathState, &str)] = &[
            (page(0, 0x01, 0, 0, 0), PathState::Up, " reports path is up"),
            (page(0, 0x20, 0, 0, 0), PathState::Up, " reports path is up"),
            (page(0, 0x00, 0, 0, 0), PathState::Ghost, " reports path is ghost"),
            (
                page(0x20, 0x01, 0, 0, 0),
                PathState::Down,
                " reports path is down: lun not connected",
            ),
            (
                page(0x01, 0x01, 0, 0, 0),
                PathState::Down,
                " reports path is down: lun not connected",
            ),
            (
                page(0, 0x11, 0x3, 0x2, 0),
                PathState::Down,
                " reports path is down: non-responsive to queries",
            ),
            (
                page(0, 0x11, 0x3, 0x3, 0),
                PathState::Down,
                " reports path is down: ctlr held in reset",
            ),
            (
                page(0, 0x11, 0x3, 0x4, 0),
                PathState::Down,
                " reports path is down: ctlr firmware downloading",
            ),
            (
                page(0, 0x11, 0x3, 0x5, 0),
                PathState::Down,
                " reports path is down: ctlr firmware downloading",
            ),
            (
                page(0, 0x11, 0x3, 0x6, 0),
                PathState::Down,
                " reports path is down: ctlr quiesced by admin request",
            ),
            (
                page(0, 0x11, 0x3, 0x7, 0),
                PathState::Down,
                " reports path is down: ctlr is in service mode",
            ),
            (
                page(0, 0x11, 0x3, 0x9, 0),
                PathState::Down,
                " reports path is down: ctlr is unavailable",
            ),
            (
                page(0, 0x11, 0xf, 0, 0x0),
                PathState::Down,
                " reports path is down: ctlr is in startup sequence",
            ),
            // Both controllers transitioning: judged by ownership.
            (page(0, 0x11, 0xf, 0, 0xf), PathState::Up, " reports path is up"),
            (page(0, 0x10, 0xf, 0, 0xf), PathState::Ghost, " reports path is ghost"),
            // Without the TPG-valid bit the AAS fields are ignored.
            (page(0, 0x01, 0x3, 0, 0), PathState::Up, " reports path is up"),
            (page(0, 0x10, 0x1, 0, 0), PathState::Ghost, " reports path is ghost"),
            // A short answer reads as zeros: not owner, ghost.
            (vec![0u8; 4], PathState::Ghost, " reports path is ghost"),
        ];
        for (i, (p, state, msg)) in cases.iter().enumerate() {
            assert_eq!(rdac_verdict(p), Verdict::new(*state, msg), "case {i}");
        }
    }

    #[test]
    fn inquiry_outcomes() {
        assert!(inquiry_ok(&ScsiCompletion {
            ok: true,
            ..Default::default()
        }));
        let recovered = ScsiCompletion {
            ok: false,
            status: 2,
            host_status: 0,
            sense: vec![0x70, 0, 1, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x17, 0],
        };
        assert!(inquiry_ok(&recovered));
        let medium = ScsiCompletion {
            sense: vec![0x72, 3, 0x11, 0],
            ..recovered.clone()
        };
        assert!(!inquiry_ok(&medium));
        assert!(!inquiry_ok(&ScsiCompletion {
            ok: false,
            status: 0,
            host_status: 1,
            sense: vec![]
        }));
        assert!(transient_host_status(0x07) && transient_host_status(0x0e));
        assert!(!transient_host_status(0x01) && !transient_host_status(0));
    }
}
