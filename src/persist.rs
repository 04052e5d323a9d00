//! Persistent reservations as the daemon takes part in them: a map whose key is
//! registered on the LUN gets that key registered on a path that joins the map or
//! comes back, as upstream's daemon does. Three SPC commands are enough: PERSISTENT
//! RESERVE IN / READ KEYS (is the map's key registered?), PERSISTENT RESERVE OUT /
//! REGISTER AND IGNORE EXISTING KEY (register it through this path, or clear this
//! path's registration with key 0), and PERSISTENT RESERVE IN / READ RESERVATION
//! (does the map's key hold the reservation? what `getprhold` answers mpathpersist).
//!
//! The CDBs, the parameter list and the two PR IN replies are built and read by pure
//! functions; [`register_path`] is the decision upstream makes for one path, over a
//! [`PrDevice`] so it is tested with a fake; a [`PrJob`] runs it on a checker worker
//! through SG_IO, never on the state owner's thread.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::Duration;

use crate::checkers::sense::{ILLEGAL_REQUEST, NOT_READY, UNIT_ATTENTION, decode_sense};
use crate::scsi::{self, Data};

const PERSISTENT_RESERVE_IN: u8 = 0x5e;
const PERSISTENT_RESERVE_OUT: u8 = 0x5f;
const SA_READ_KEYS: u8 = 0x00;
const SA_READ_RESERVATION: u8 = 0x01;
const SA_REGISTER_AND_IGNORE_EXISTING_KEY: u8 = 0x06;
/// The basic PR OUT parameter list (no transport IDs).
pub const PR_OUT_PARAM_LEN: usize = 24;
/// Bit 0 of byte 20 of the parameter list: keep the registration across a power loss.
const APTPL: u8 = 0x01;
/// A PERSISTENT RESERVE IN reply's header (generation, additional length); READ KEYS
/// lists 8 bytes a key after it.
const PR_IN_HEADER: usize = 8;
/// Room for 511 registrations: more I_T nexuses than any map has paths.
const READ_KEYS_ALLOC: u16 = 4096;
/// READ RESERVATION's header and its one reservation descriptor (SPC-4 6.15.3).
const READ_RESERVATION_LEN: u16 = 24;
/// Tries of one command that meets a unit attention or "becoming ready", as upstream.
const TRIES: usize = 6;

/// CDB of PERSISTENT RESERVE IN, service action `sa`, allocation length `alloc`.
fn reserve_in_cdb(sa: u8, alloc: u16) -> [u8; 10] {
    let [hi, lo] = alloc.to_be_bytes();
    [PERSISTENT_RESERVE_IN, sa, 0, 0, 0, 0, 0, hi, lo, 0]
}

/// CDB of PERSISTENT RESERVE IN, READ KEYS, allocation length `alloc`.
pub fn read_keys_cdb(alloc: u16) -> [u8; 10] {
    reserve_in_cdb(SA_READ_KEYS, alloc)
}

/// CDB of PERSISTENT RESERVE IN, READ RESERVATION, room for its one descriptor.
pub fn read_reservation_cdb() -> [u8; 10] {
    reserve_in_cdb(SA_READ_RESERVATION, READ_RESERVATION_LEN)
}

/// CDB of PERSISTENT RESERVE OUT, REGISTER AND IGNORE EXISTING KEY (scope and type 0),
/// with the basic parameter list's length.
pub fn register_ignore_cdb() -> [u8; 10] {
    let len = (PR_OUT_PARAM_LEN as u32).to_be_bytes();
    [
        PERSISTENT_RESERVE_OUT,
        SA_REGISTER_AND_IGNORE_EXISTING_KEY,
        0,
        0,
        0,
        len[0],
        len[1],
        len[2],
        len[3],
        0,
    ]
}

/// Parameter list of REGISTER AND IGNORE EXISTING KEY: the new key goes in the
/// service action reservation key (bytes 8..16; the reservation key is ignored by
/// this service action); key 0 removes the registration.
pub fn register_param(sa_key: u64, aptpl: bool) -> [u8; PR_OUT_PARAM_LEN] {
    let mut p = [0u8; PR_OUT_PARAM_LEN];
    p[8..16].copy_from_slice(&sa_key.to_be_bytes());
    if aptpl {
        p[20] |= APTPL;
    }
    p
}

/// A READ KEYS reply shorter than its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed;

/// The registered keys of a READ KEYS reply, one per registered I_T nexus, from the
/// `got` bytes transferred (the list is cut at what arrived).
pub fn decode_read_keys(buf: &[u8], got: usize) -> Result<Vec<u64>, Malformed> {
    let got = got.min(buf.len());
    if got < PR_IN_HEADER {
        return Err(Malformed);
    }
    let len = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]) as usize;
    let end = PR_IN_HEADER.saturating_add(len).min(got);
    Ok(buf[PR_IN_HEADER..end]
        .chunks_exact(8)
        .map(|k| u64::from_be_bytes(k.try_into().unwrap_or_default()))
        .collect())
}

/// The key holding the reservation in a READ RESERVATION reply of `got` bytes, `None`
/// when the LUN has no reservation (additional length 0).
pub fn decode_read_reservation(buf: &[u8], got: usize) -> Result<Option<u64>, Malformed> {
    let got = got.min(buf.len());
    if got < PR_IN_HEADER {
        return Err(Malformed);
    }
    if buf[4..8] == [0; 4] {
        return Ok(None);
    }
    // The descriptor's first 8 bytes are the holder's key.
    let key: [u8; 8] = buf[..got]
        .get(PR_IN_HEADER..PR_IN_HEADER + 8)
        .and_then(|k| k.try_into().ok())
        .ok_or(Malformed)?;
    Ok(Some(u64::from_be_bytes(key)))
}

/// Why a PR command did not succeed.
#[derive(Debug)]
pub enum PrError {
    /// The device node did not open.
    Open(std::io::Error),
    /// The SG_IO ioctl itself failed.
    Ioctl(std::io::Error),
    /// ILLEGAL REQUEST: the device does not do persistent reservations.
    IllegalRequest,
    /// Any other error completion.
    Failed {
        status: u8,
        host_status: u16,
        sense_key: u8,
    },
    Malformed,
}

impl std::fmt::Display for PrError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PrError::Open(e) => write!(f, "open: {e}"),
            PrError::Ioctl(e) => write!(f, "SG_IO: {e}"),
            PrError::IllegalRequest => f.write_str("illegal request"),
            PrError::Failed {
                status,
                host_status,
                sense_key,
            } => write!(
                f,
                "status 0x{status:02x} host 0x{host_status:02x} sense key 0x{sense_key:x}"
            ),
            PrError::Malformed => f.write_str("malformed PERSISTENT RESERVE IN reply"),
        }
    }
}

impl std::error::Error for PrError {}

/// How a completion is taken: done, or worth sending again.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Ok,
    Retry,
    Error(Kind),
}

#[derive(Debug, PartialEq, Eq)]
enum Kind {
    Illegal,
    Other(u8),
}

/// A unit attention (a registration changed, the nexus is new) and "becoming ready"
/// are sent again, as upstream does; ILLEGAL REQUEST means no PR support.
fn judge(c: &scsi::Completion) -> Verdict {
    if c.ok {
        return Verdict::Ok;
    }
    let sense = decode_sense(&c.sense).unwrap_or_default();
    match (sense.key, sense.asc, sense.ascq) {
        (UNIT_ATTENTION, _, _) | (NOT_READY, 0x04, 0x07) => Verdict::Retry,
        (ILLEGAL_REQUEST, _, _) => Verdict::Error(Kind::Illegal),
        (k, _, _) => Verdict::Error(Kind::Other(k)),
    }
}

/// The commands a path's registration needs.
pub trait PrDevice {
    fn read_keys(&mut self) -> Result<Vec<u64>, PrError>;
    /// The key of the reservation's holder, `None` when the LUN has no reservation.
    fn read_reservation(&mut self) -> Result<Option<u64>, PrError>;
    /// REGISTER AND IGNORE EXISTING KEY with `sa_key` (0: remove this nexus's registration).
    fn register(&mut self, sa_key: u64, aptpl: bool) -> Result<(), PrError>;
}

/// A path's device node, commands through SG_IO.
pub struct SgDevice {
    file: File,
    timeout: Duration,
}

impl SgDevice {
    pub fn open(dev: &std::path::Path, timeout: Duration) -> Result<SgDevice, PrError> {
        let file = File::open(dev).map_err(PrError::Open)?;
        Ok(SgDevice { file, timeout })
    }

    /// `data` is the buffer read into (`Some`) or the parameter list sent (`None`:
    /// `param`); sent again while the device answers with a unit attention.
    fn command(&mut self, cdb: &[u8], mut data: Option<&mut [u8]>, param: &[u8]) -> Result<scsi::Completion, PrError> {
        let mut last = None;
        for _ in 0..TRIES {
            let xfer = match data.as_deref_mut() {
                Some(b) => Data::FromDevice(b),
                None => Data::ToDevice(param),
            };
            let c = scsi::command(self.file.as_raw_fd(), cdb, xfer, self.timeout).map_err(PrError::Ioctl)?;
            match judge(&c) {
                Verdict::Ok => return Ok(c),
                Verdict::Retry => last = Some(c),
                Verdict::Error(Kind::Illegal) => return Err(PrError::IllegalRequest),
                Verdict::Error(Kind::Other(sense_key)) => {
                    return Err(PrError::Failed {
                        status: c.status,
                        host_status: c.host_status,
                        sense_key,
                    });
                }
            }
        }
        let c = last.unwrap_or(scsi::Completion {
            ok: false,
            status: 0,
            host_status: 0,
            driver_status: 0,
            resid: 0,
            sense: Vec::new(),
        });
        Err(PrError::Failed {
            status: c.status,
            host_status: c.host_status,
            sense_key: UNIT_ATTENTION,
        })
    }
}

impl PrDevice for SgDevice {
    fn read_keys(&mut self) -> Result<Vec<u64>, PrError> {
        let cdb = read_keys_cdb(READ_KEYS_ALLOC);
        let mut buf = vec![0u8; usize::from(READ_KEYS_ALLOC)];
        let c = self.command(&cdb, Some(&mut buf), &[])?;
        let got = buf.len().saturating_sub(c.resid);
        decode_read_keys(&buf, got).map_err(|Malformed| PrError::Malformed)
    }

    fn read_reservation(&mut self) -> Result<Option<u64>, PrError> {
        let mut buf = vec![0u8; usize::from(READ_RESERVATION_LEN)];
        let c = self.command(&read_reservation_cdb(), Some(&mut buf), &[])?;
        let got = buf.len().saturating_sub(c.resid);
        decode_read_reservation(&buf, got).map_err(|Malformed| PrError::Malformed)
    }

    fn register(&mut self, sa_key: u64, aptpl: bool) -> Result<(), PrError> {
        let param = register_param(sa_key, aptpl);
        self.command(&register_ignore_cdb(), None, &param).map(|_| ())
    }
}

/// What the owner knows of a map's registration when it asks for a path's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrJob {
    /// The path's device node.
    pub dev: PathBuf,
    /// The map's reservation key (not 0).
    pub key: u64,
    /// The key was given with `:aptpl`.
    pub aptpl: bool,
    /// The map's status was set to unset (by `unsetprstatus`, or a key found missing):
    /// nothing is read, the path's registration is only cleared if there ever was one.
    pub unset: bool,
    /// The key was registered on this map at some point in the daemon's life.
    pub ever_registered: bool,
    /// Whether the map's key holds the reservation is not known: a path that finds
    /// the key registered reads the reservation (upstream's `check_prhold`).
    pub read_hold: bool,
}

/// The result of one path's registration, for the owner to update the map's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrOutcome {
    /// The map's key is registered (`keys` times after this path's registration,
    /// 0 when that second read failed). `hold`: whether the key holds the reservation,
    /// when the job asked and READ RESERVATION answered.
    Registered { keys: usize, hold: Option<bool> },
    /// The key was found, but its registration through this path failed (`hold` as
    /// for `Registered`: it was read before).
    RegisterFailed { hold: Option<bool> },
    /// The key went away while this path registered (preempted): this path's
    /// registration was cleared again; the map is no longer registered.
    Preempted,
    /// The key is not registered (or the status was unset); `cleared`: this path's
    /// registration was removed, since the key had been registered before.
    NotRegistered { cleared: bool },
    /// The device refused READ KEYS as an illegal request: no PR support.
    Unsupported,
    /// READ KEYS failed otherwise: nothing learnt.
    ReadFailed,
}

impl PrOutcome {
    /// The map's status after it: `Some(true)` registered, `Some(false)` not, `None`
    /// unchanged.
    pub fn registered(self) -> Option<bool> {
        match self {
            PrOutcome::Registered { .. } | PrOutcome::RegisterFailed { .. } => Some(true),
            PrOutcome::Preempted | PrOutcome::NotRegistered { .. } | PrOutcome::Unsupported => Some(false),
            PrOutcome::ReadFailed => None,
        }
    }

    /// Whether the map's key holds the reservation, when the path read it.
    pub fn hold(self) -> Option<bool> {
        match self {
            PrOutcome::Registered { hold, .. } | PrOutcome::RegisterFailed { hold } => hold,
            _ => None,
        }
    }
}

/// One path's registration, as upstream decides it: the key must already be
/// registered on the LUN (by mpathpersist through the map's other paths) before this
/// path registers it, and a key that vanished meanwhile is not left behind. A path
/// of a map that had its key and lost it gets its registration cleared, since it may
/// still hold a stale one.
pub fn register_path(dev: &mut dyn PrDevice, job: &PrJob) -> PrOutcome {
    let name = job.dev.display();
    let clear = |dev: &mut dyn PrDevice| match dev.register(0, false) {
        Ok(()) => true,
        Err(e) => {
            log::error!("{name}: clearing reservation registration failed: {e}");
            false
        }
    };
    if !job.unset {
        let found = match dev.read_keys() {
            Ok(keys) => keys.iter().filter(|&&k| k == job.key).count(),
            Err(PrError::IllegalRequest) => {
                log::error!("{name}: pr in read keys service action failed: illegal request");
                return PrOutcome::Unsupported;
            }
            Err(e) => {
                log::error!("{name}: pr in read keys service action failed: {e}");
                return PrOutcome::ReadFailed;
            }
        };
        if found > 0 {
            // As upstream, once the key is known registered and before this path
            // registers it.
            let hold = if job.read_hold { read_hold(dev, job) } else { None };
            log::info!("{name}: setting reservation registration (key 0x{:x})", job.key);
            if let Err(e) = dev.register(job.key, job.aptpl) {
                log::error!("{name}: setting reservation registration failed: {e}");
                return PrOutcome::RegisterFailed { hold };
            }
            return match dev.read_keys() {
                Ok(keys) => {
                    let now = keys.iter().filter(|&&k| k == job.key).count();
                    if now >= found {
                        PrOutcome::Registered { keys: now, hold }
                    } else {
                        log::warn!("{name}: {now} keys found, needed {found}: clearing the registration");
                        clear(dev);
                        PrOutcome::Preempted
                    }
                }
                Err(e) => {
                    log::error!("{name}: pr in read keys service action failed: {e}");
                    PrOutcome::Registered { keys: 0, hold }
                }
            };
        }
    }
    PrOutcome::NotRegistered {
        cleared: job.ever_registered && clear(dev),
    }
}

/// Whether the job's key holds the LUN's reservation; `None` when the read failed.
fn read_hold(dev: &mut dyn PrDevice, job: &PrJob) -> Option<bool> {
    match dev.read_reservation() {
        Ok(holder) => Some(holder == Some(job.key)),
        Err(e) => {
            log::error!("{}: pr in read reservation command failed: {e}", job.dev.display());
            None
        }
    }
}

impl PrJob {
    /// Commands the job sends at most: read keys, read the reservation (when asked),
    /// register, read keys, clear.
    pub fn max_commands(&self) -> u32 {
        4 + u32::from(self.read_hold)
    }

    /// Opens the path and registers it; runs on a checker worker.
    pub fn run(&self, timeout: Duration) -> PrOutcome {
        match SgDevice::open(&self.dev, timeout) {
            Ok(mut d) => register_path(&mut d, self),
            Err(e) => {
                log::error!("{}: {e}", self.dev.display());
                PrOutcome::ReadFailed
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_keys_cdb_is_spc_persistent_reserve_in() {
        // SPC-4 6.15.1: opcode 5Eh, service action in byte 1 bits 4..0 (READ KEYS 00h),
        // allocation length in bytes 7..8, control byte 9.
        assert_eq!(read_keys_cdb(0x1234), [0x5e, 0x00, 0, 0, 0, 0, 0, 0x12, 0x34, 0]);
    }

    #[test]
    fn register_cdb_and_parameter_list_are_spc_persistent_reserve_out() {
        // SPC-4 6.16.1: opcode 5Fh, service action 06h, scope/type byte 2 zero,
        // parameter list length in bytes 5..8 (24 for the basic list).
        assert_eq!(register_ignore_cdb(), [0x5f, 0x06, 0, 0, 0, 0, 0, 0, 24, 0]);
        // SPC-4 6.16.3: reservation key 0..8, service action reservation key 8..16,
        // byte 20 bit 0 APTPL.
        let p = register_param(0x0123_4567_89ab_cdef, false);
        assert_eq!(&p[0..8], &[0; 8]);
        assert_eq!(&p[8..16], &[0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef]);
        assert_eq!(&p[16..], &[0; 8]);
        let p = register_param(0xab, true);
        assert_eq!(&p[8..16], &[0, 0, 0, 0, 0, 0, 0, 0xab]);
        assert_eq!(p[20], 0x01);
        assert_eq!(register_param(0, false), [0; 24]);
    }

    fn reply(generation: u32, keys: &[u64]) -> Vec<u8> {
        let mut b = generation.to_be_bytes().to_vec();
        b.extend(((keys.len() * 8) as u32).to_be_bytes());
        for k in keys {
            b.extend(k.to_be_bytes());
        }
        b
    }

    #[test]
    fn read_keys_reply_lists_every_registration() {
        let b = reply(7, &[0xabc, 0xabc, 0x1]);
        assert_eq!(decode_read_keys(&b, b.len()), Ok(vec![0xabc, 0xabc, 0x1]));
        assert_eq!(decode_read_keys(&reply(0, &[]), 8), Ok(vec![]));
        // More registrations than the allocation held: the keys that arrived.
        let mut cut = reply(1, &[5, 6, 7]);
        cut.truncate(8 + 16 + 3);
        assert_eq!(decode_read_keys(&cut, cut.len()), Ok(vec![5, 6]));
        // The buffer past what was transferred is not read.
        let mut b = reply(1, &[9]);
        b.extend([0xff; 64]);
        assert_eq!(decode_read_keys(&b, 16), Ok(vec![9]));
        assert_eq!(decode_read_keys(&b, 7), Err(Malformed));
    }

    fn completion(ok: bool, sense: &[u8]) -> scsi::Completion {
        scsi::Completion {
            ok,
            status: if ok { 0 } else { 2 },
            host_status: 0,
            driver_status: 0,
            resid: 0,
            sense: sense.to_vec(),
        }
    }

    fn fixed_sense(key: u8, asc: u8, ascq: u8) -> Vec<u8> {
        let mut s = vec![0u8; 18];
        s[0] = 0x70;
        s[2] = key;
        s[12] = asc;
        s[13] = ascq;
        s
    }

    #[test]
    fn unit_attention_is_sent_again_illegal_request_is_no_pr() {
        assert_eq!(judge(&completion(true, &[])), Verdict::Ok);
        // RESERVATIONS PREEMPTED (2A/03), a new nexus's power-on reset (29/00).
        assert_eq!(judge(&completion(false, &fixed_sense(0x6, 0x2a, 0x03))), Verdict::Retry);
        assert_eq!(judge(&completion(false, &fixed_sense(0x6, 0x29, 0x00))), Verdict::Retry);
        assert_eq!(judge(&completion(false, &fixed_sense(0x2, 0x04, 0x07))), Verdict::Retry);
        assert_eq!(
            judge(&completion(false, &fixed_sense(0x2, 0x04, 0x01))),
            Verdict::Error(Kind::Other(2))
        );
        assert_eq!(
            judge(&completion(false, &fixed_sense(0x5, 0x20, 0x00))),
            Verdict::Error(Kind::Illegal)
        );
    }

    /// A LUN's registrations seen through one I_T nexus.
    struct FakeLun {
        /// Keys of the other nexuses.
        others: Vec<u64>,
        /// This path's registration.
        mine: Option<u64>,
        /// Keys the other nexuses lose when this one registers (a preempt racing it).
        preempt_on_register: bool,
        read_err: Option<fn() -> PrError>,
        register_err: bool,
        /// The key holding the reservation; `Err`: READ RESERVATION fails.
        holder: Result<Option<u64>, ()>,
        calls: Vec<String>,
    }

    impl FakeLun {
        fn new(others: &[u64], mine: Option<u64>) -> FakeLun {
            FakeLun {
                others: others.to_vec(),
                mine,
                preempt_on_register: false,
                read_err: None,
                register_err: false,
                holder: Ok(None),
                calls: Vec::new(),
            }
        }
    }

    impl PrDevice for FakeLun {
        fn read_keys(&mut self) -> Result<Vec<u64>, PrError> {
            self.calls.push("read".into());
            if let Some(e) = self.read_err {
                return Err(e());
            }
            Ok(self.others.iter().copied().chain(self.mine).collect())
        }

        fn read_reservation(&mut self) -> Result<Option<u64>, PrError> {
            self.calls.push("read reservation".into());
            self.holder.map_err(|()| PrError::Failed {
                status: 2,
                host_status: 0,
                sense_key: 0x4,
            })
        }

        fn register(&mut self, sa_key: u64, _aptpl: bool) -> Result<(), PrError> {
            self.calls.push(format!("register 0x{sa_key:x}"));
            if self.register_err {
                return Err(PrError::Failed {
                    status: 0x18,
                    host_status: 0,
                    sense_key: 0,
                });
            }
            self.mine = (sa_key != 0).then_some(sa_key);
            if self.preempt_on_register {
                self.others.clear();
                self.mine = None;
            }
            Ok(())
        }
    }

    fn job(unset: bool, ever: bool) -> PrJob {
        PrJob {
            dev: "/dev/sdx".into(),
            key: 0xabc,
            aptpl: false,
            unset,
            ever_registered: ever,
            read_hold: false,
        }
    }

    #[test]
    fn read_reservation_cdb_and_reply_are_spc_persistent_reserve_in() {
        // SPC-4 6.15.1: service action READ RESERVATION 01h; room for the header and
        // the one descriptor (6.15.3: key, obsolete, reserved, scope and type, obsolete).
        assert_eq!(read_reservation_cdb(), [0x5e, 0x01, 0, 0, 0, 0, 0, 0, 24, 0]);
        let none = [0, 0, 0, 3, 0, 0, 0, 0];
        assert_eq!(decode_read_reservation(&none, 8), Ok(None));
        let mut held = vec![0, 0, 0, 4, 0, 0, 0, 0x10];
        held.extend(0x0123_abcd_u64.to_be_bytes());
        held.extend([0, 0, 0, 0, 0, 0x05, 0, 0]);
        assert_eq!(decode_read_reservation(&held, 24), Ok(Some(0x0123_abcd)));
        // A descriptor announced but cut before its key ends, or no whole header.
        assert_eq!(decode_read_reservation(&held, 12), Err(Malformed));
        assert_eq!(decode_read_reservation(&held, 7), Err(Malformed));
    }

    #[test]
    fn a_path_that_finds_the_key_reads_whether_it_holds_the_reservation_when_asked() {
        let hold_job = PrJob {
            read_hold: true,
            ..job(false, false)
        };
        for (holder, hold) in [
            (Ok(Some(0xabc)), Some(true)),
            (Ok(Some(0x77)), Some(false)),
            (Ok(None), Some(false)),
            (Err(()), None),
        ] {
            let mut lun = FakeLun::new(&[0xabc, 0x77], None);
            lun.holder = holder;
            assert_eq!(
                register_path(&mut lun, &hold_job),
                PrOutcome::Registered { keys: 2, hold },
                "holder {holder:?}"
            );
            // Read before this path registers, as upstream; a failed read registers all the same.
            assert_eq!(lun.calls, ["read", "read reservation", "register 0xabc", "read"]);
        }
        // The key not registered: the reservation is not the map's business.
        let mut lun = FakeLun::new(&[0x77], None);
        lun.holder = Ok(Some(0x77));
        assert_eq!(
            register_path(&mut lun, &hold_job),
            PrOutcome::NotRegistered { cleared: false }
        );
        assert_eq!(lun.calls, ["read"]);
        // Read before a registration that fails: what it found still goes back.
        let mut lun = FakeLun::new(&[0xabc], None);
        lun.holder = Ok(Some(0xabc));
        lun.register_err = true;
        assert_eq!(
            register_path(&mut lun, &hold_job),
            PrOutcome::RegisterFailed { hold: Some(true) }
        );
    }

    #[test]
    fn a_path_registers_the_key_the_lun_already_has() {
        let mut lun = FakeLun::new(&[0xabc, 0x77], None);
        assert_eq!(
            register_path(&mut lun, &job(false, false)),
            PrOutcome::Registered { keys: 2, hold: None }
        );
        assert_eq!(lun.mine, Some(0xabc));
        assert_eq!(lun.calls, ["read", "register 0xabc", "read"]);
        // Already registered through this path: registered again, harmless.
        let mut lun = FakeLun::new(&[0xabc], Some(0xabc));
        assert_eq!(
            register_path(&mut lun, &job(false, true)),
            PrOutcome::Registered { keys: 2, hold: None }
        );
    }

    #[test]
    fn a_key_not_on_the_lun_is_not_registered() {
        let mut lun = FakeLun::new(&[0x77], None);
        assert_eq!(
            register_path(&mut lun, &job(false, false)),
            PrOutcome::NotRegistered { cleared: false }
        );
        assert_eq!(lun.calls, ["read"]);
        // It was registered once: a stale registration through this path is removed.
        let mut lun = FakeLun::new(&[0x77], Some(0x55));
        assert_eq!(
            register_path(&mut lun, &job(false, true)),
            PrOutcome::NotRegistered { cleared: true }
        );
        assert_eq!(lun.mine, None);
        assert_eq!(lun.calls, ["read", "register 0x0"]);
    }

    #[test]
    fn an_unset_status_reads_nothing_and_only_clears() {
        let mut lun = FakeLun::new(&[0xabc], None);
        assert_eq!(
            register_path(&mut lun, &job(true, false)),
            PrOutcome::NotRegistered { cleared: false }
        );
        assert!(lun.calls.is_empty());
        let mut lun = FakeLun::new(&[0xabc], Some(0xabc));
        assert_eq!(
            register_path(&mut lun, &job(true, true)),
            PrOutcome::NotRegistered { cleared: true }
        );
        assert_eq!(lun.calls, ["register 0x0"]);
    }

    #[test]
    fn a_key_preempted_during_registration_is_not_left_behind() {
        let mut lun = FakeLun::new(&[0xabc], None);
        lun.preempt_on_register = true;
        assert_eq!(register_path(&mut lun, &job(false, false)), PrOutcome::Preempted);
        assert_eq!(lun.calls, ["read", "register 0xabc", "read", "register 0x0"]);
    }

    #[test]
    fn failures_say_what_is_known() {
        let mut lun = FakeLun::new(&[0xabc], None);
        lun.read_err = Some(|| PrError::IllegalRequest);
        assert_eq!(register_path(&mut lun, &job(false, true)), PrOutcome::Unsupported);
        assert_eq!(lun.calls, ["read"], "nothing is cleared on a device without PR");
        lun.read_err = Some(|| PrError::Malformed);
        assert_eq!(register_path(&mut lun, &job(false, true)), PrOutcome::ReadFailed);
        let mut lun = FakeLun::new(&[0xabc], None);
        lun.register_err = true;
        assert_eq!(
            register_path(&mut lun, &job(false, false)),
            PrOutcome::RegisterFailed { hold: None }
        );
        assert_eq!(PrOutcome::RegisterFailed { hold: None }.registered(), Some(true));
        assert_eq!(PrOutcome::ReadFailed.registered(), None);
        assert_eq!(PrOutcome::Preempted.registered(), Some(false));
    }
}
