//! Blacklist evaluation with upstream's order and return codes.
//!
//! Each `filter_*` returns 0 (no match), a positive code (blacklisted) or the
//! negated code (matched an exception). Exceptions are checked first.

use super::keywords::Setting;
use super::model::{BlacklistDevice, BlacklistLists, Config, Pattern};

pub const MATCH_NOTHING: i32 = 0;
pub const MATCH_WWID_BLIST: i32 = 1;
pub const MATCH_DEVICE_BLIST: i32 = 2;
pub const MATCH_DEVNODE_BLIST: i32 = 3;
pub const MATCH_PROPERTY_BLIST: i32 = 4;
pub const MATCH_PROPERTY_BLIST_MISSING: i32 = 5;
pub const MATCH_PROTOCOL_BLIST: i32 = 6;

/// Built-in devnode blacklist (everything that is not sd, dasd or nvme).
pub const DEFAULT_DEVNODE: &str = "!^(sd[a-z]|dasd[a-z]|nvme[0-9])";
/// The same when the kernel does native NVMe multipathing.
pub const DEFAULT_DEVNODE_NATIVE_NVME: &str = "!^(sd[a-z]|dasd[a-z])";
/// Built-in property exception.
pub const DEFAULT_PROPERTY_EXCEPTION: &str = "(SCSI_IDENT_|ID_WWN)";

/// User entries followed by the built-in ones (skipping built-ins the user
/// already lists): the blacklist and exception lists in effect.
pub fn effective_lists(cfg: &Config, nvme_native_multipath: bool) -> (BlacklistLists, BlacklistLists) {
    let mut bl = cfg.blacklist.clone();
    let mut ex = cfg.exceptions.clone();
    let devnode = if nvme_native_multipath {
        DEFAULT_DEVNODE_NATIVE_NVME
    } else {
        DEFAULT_DEVNODE
    };
    add_pattern(&mut bl.devnode, devnode);
    add_pattern(&mut ex.property, DEFAULT_PROPERTY_EXCEPTION);
    for hwe in cfg.all_devices() {
        let (Some(vendor), Some(product)) = (hwe.str(Setting::Vendor), hwe.str(Setting::ProductBlacklist)) else {
            continue;
        };
        let (Ok(v), Ok(p)) = (Pattern::new(vendor), Pattern::new(product)) else {
            continue;
        };
        let dev = BlacklistDevice {
            vendor: Some(v),
            product: Some(p),
        };
        if !bl.device.contains(&dev) {
            bl.device.push(dev);
        }
    }
    merge_lists(&mut bl);
    merge_lists(&mut ex);
    (bl, ex)
}

/// Upstream's clean-up of a list once everything is read: a pattern given twice counts once
/// (protocol patterns excepted: upstream keeps those as given), a device entry with neither
/// vendor nor product is dropped (it names nothing), and one of the same vendor and product
/// as an earlier one counts once.
fn merge_lists(l: &mut BlacklistLists) {
    for list in [&mut l.devnode, &mut l.wwid, &mut l.property] {
        dedup_keep_first(list);
    }
    l.device.retain(|d| d.vendor.is_some() || d.product.is_some());
    dedup_keep_first(&mut l.device);
}

fn dedup_keep_first<T: PartialEq>(list: &mut Vec<T>) {
    let mut i = 0;
    while i < list.len() {
        if list[..i].contains(&list[i]) {
            list.remove(i);
        } else {
            i += 1;
        }
    }
}

fn add_pattern(list: &mut Vec<Pattern>, text: &str) {
    if list.iter().any(|p| p.text == text) {
        return;
    }
    if let Ok(p) = Pattern::new(text) {
        list.push(p);
    }
}

/// A path's identity as the blacklist sees it.
#[derive(Debug, Clone, Default)]
pub struct PathInfo<'a> {
    pub devnode: &'a str,
    pub vendor: &'a str,
    pub product: &'a str,
    pub protocol: &'a str,
    pub wwid: &'a str,
    /// udev property names, in the order udev lists them.
    pub properties: &'a [&'a str],
    /// The selected uid_attribute (`None` or empty = not used).
    pub uid_attribute: Option<&'a str>,
}

/// Compiled blacklist and exceptions.
#[derive(Debug, Clone)]
pub struct Blacklist {
    bl: BlacklistLists,
    ex: BlacklistLists,
}

fn any(list: &[Pattern], s: &str) -> bool {
    list.iter().any(|p| p.is_match(s))
}

fn device_match(list: &[BlacklistDevice], vendor: &str, product: &str) -> bool {
    list.iter().any(|d| {
        d.vendor.as_ref().is_none_or(|p| p.is_match(vendor)) && d.product.as_ref().is_none_or(|p| p.is_match(product))
    })
}

impl Blacklist {
    /// The blacklist in effect for `cfg` (user plus built-in entries).
    pub fn new(cfg: &Config, nvme_native_multipath: bool) -> Blacklist {
        let (bl, ex) = effective_lists(cfg, nvme_native_multipath);
        Blacklist { bl, ex }
    }

    /// Only the given lists, no built-in entries.
    pub fn from_lists(bl: BlacklistLists, ex: BlacklistLists) -> Blacklist {
        Blacklist { bl, ex }
    }

    fn simple(ex: &[Pattern], bl: &[Pattern], s: &str, code: i32) -> i32 {
        if any(ex, s) {
            -code
        } else if any(bl, s) {
            code
        } else {
            MATCH_NOTHING
        }
    }

    pub fn filter_devnode(&self, devnode: &str) -> i32 {
        Self::simple(&self.ex.devnode, &self.bl.devnode, devnode, MATCH_DEVNODE_BLIST)
    }

    pub fn filter_wwid(&self, wwid: &str) -> i32 {
        Self::simple(&self.ex.wwid, &self.bl.wwid, wwid, MATCH_WWID_BLIST)
    }

    pub fn filter_protocol(&self, protocol: &str) -> i32 {
        Self::simple(&self.ex.protocol, &self.bl.protocol, protocol, MATCH_PROTOCOL_BLIST)
    }

    pub fn filter_device(&self, vendor: &str, product: &str) -> i32 {
        if device_match(&self.ex.device, vendor, product) {
            -MATCH_DEVICE_BLIST
        } else if device_match(&self.bl.device, vendor, product) {
            MATCH_DEVICE_BLIST
        } else {
            MATCH_NOTHING
        }
    }

    /// The first property matching either list decides. If none matches and
    /// the path's uid_attribute is among its properties, the path is
    /// blacklisted as "udev property missing".
    pub fn filter_property(&self, properties: &[&str], uid_attribute: Option<&str>) -> i32 {
        if self.ex.property.is_empty() && self.bl.property.is_empty() {
            return MATCH_NOTHING;
        }
        for prop in properties {
            if any(&self.ex.property, prop) {
                return -MATCH_PROPERTY_BLIST;
            }
            if any(&self.bl.property, prop) {
                return MATCH_PROPERTY_BLIST;
            }
        }
        match uid_attribute {
            Some(uid) if !uid.is_empty() && properties.contains(&uid) => MATCH_PROPERTY_BLIST_MISSING,
            _ => MATCH_NOTHING,
        }
    }

    /// All criteria in upstream order: property, devnode, device, protocol,
    /// wwid. The first positive code stops; otherwise the wwid result is returned.
    pub fn filter_path(&self, p: &PathInfo<'_>) -> i32 {
        let checks: [&dyn Fn() -> i32; 4] = [
            &|| self.filter_property(p.properties, p.uid_attribute),
            &|| self.filter_devnode(p.devnode),
            &|| self.filter_device(p.vendor, p.product),
            &|| self.filter_protocol(p.protocol),
        ];
        for check in checks {
            let r = check();
            if r > 0 {
                return r;
            }
        }
        self.filter_wwid(p.wwid)
    }
}

/// Human-readable reason for a positive code, as upstream logs it.
pub fn reason(code: i32) -> &'static str {
    match code {
        MATCH_WWID_BLIST => "wwid blacklisted",
        MATCH_DEVICE_BLIST => "vendor/product blacklisted",
        MATCH_DEVNODE_BLIST => "device node name blacklisted",
        MATCH_PROPERTY_BLIST => "udev property blacklisted",
        MATCH_PROPERTY_BLIST_MISSING => "blacklisted, udev property missing",
        MATCH_PROTOCOL_BLIST => "protocol blacklisted",
        c if c < 0 => "whitelisted",
        _ => "not blacklisted",
    }
}
