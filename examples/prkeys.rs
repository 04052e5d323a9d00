//! prkeys: persistent-reservation commands through one path, over the daemon's own
//! SCSI layer (`persist`), for lab scenarios: `mpathpersist` only works through a map,
//! and the lab has no sg3-utils.
//!
//! usage: prkeys keys DEV | register DEV KEY
//! `keys` prints the LUN's registered keys (READ KEYS), one a line, as `0x<hex>`;
//! `register` registers KEY (hex) through DEV's I_T nexus, ignoring an existing
//! registration; KEY 0 removes that nexus's registration.

use std::process::ExitCode;
use std::time::Duration;

use multipathd::persist::{PrDevice, SgDevice};

const USAGE: &str = "usage: prkeys keys DEV | register DEV KEY";
const TIMEOUT: Duration = Duration::from_secs(10);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let run = || -> Result<(), String> {
        match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
            ["keys", dev] => {
                let mut d = SgDevice::open(dev.as_ref(), TIMEOUT).map_err(|e| format!("{dev}: {e}"))?;
                for k in d.read_keys().map_err(|e| format!("{dev}: {e}"))? {
                    println!("0x{k:x}");
                }
                Ok(())
            }
            ["register", dev, key] => {
                let hex = key.trim_start_matches("0x");
                let key = u64::from_str_radix(hex, 16).map_err(|e| format!("{key}: {e}"))?;
                let mut d = SgDevice::open(dev.as_ref(), TIMEOUT).map_err(|e| format!("{dev}: {e}"))?;
                d.register(key, false).map_err(|e| format!("{dev}: {e}"))
            }
            _ => Err(USAGE.to_string()),
        }
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("prkeys: {e}");
            ExitCode::FAILURE
        }
    }
}
