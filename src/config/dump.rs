//! `show config`: the configuration in effect, in multipath.conf syntax.
//!
//! Layout as upstream: sections defaults, blacklist, blacklist_exceptions,
//! devices (built-in then user entries), overrides, multipaths (only when it
//! has entries); one tab of
//! indentation per level; strings and keywords-as-values quoted with `"`
//! doubled, numbers bare. In `defaults` every keyword with a built-in default
//! is printed with its effective value; elsewhere only what is set.

use std::fmt::Write;

use super::blacklist::effective_lists;
use super::keywords::{self, Keyword, Section};
use super::model::{Attrs, BlacklistLists, Config, DeviceEntry};
use super::propsel::Selector;
use super::value::{self, Value, quote};

/// The full dump.
pub fn show_config(cfg: &Config) -> String {
    dump(cfg, cfg.all_devices().collect(), None)
}

/// `show config local`, as upstream: only the device entries the paths match (in the
/// paths' order, each path's entries highest precedence first, each entry once), and
/// only the `multipaths` entries of existing maps, each map's alias in a comment, then
/// an entry for each map the section does not name. `paths` are (vendor, product,
/// revision); `maps` are (wwid, alias).
pub fn show_config_local(cfg: &Config, paths: &[(&str, &str, &str)], maps: &[(&str, &str)]) -> String {
    let mut used: Vec<&DeviceEntry> = Vec::new();
    for (v, p, r) in paths {
        for hwe in Selector::new(cfg, v, p, r, "").hwes() {
            if !used.iter().any(|u| std::ptr::eq(*u, *hwe)) {
                used.push(hwe);
            }
        }
    }
    dump(cfg, used, Some(maps))
}

fn dump(cfg: &Config, devices: Vec<&DeviceEntry>, maps: Option<&[(&str, &str)]>) -> String {
    let mut out = String::new();
    defaults(&mut out, cfg);
    let (bl, ex) = effective_lists(cfg, false);
    blacklist(&mut out, "blacklist", &bl);
    blacklist(&mut out, "blacklist_exceptions", &ex);
    out.push_str("devices {\n");
    for hwe in devices {
        out.push_str("\tdevice {\n");
        attrs(&mut out, Section::Device, &hwe.attrs, 2);
        out.push_str("\t}\n");
    }
    out.push_str("}\n");
    out.push_str("overrides {\n");
    attrs(&mut out, Section::Overrides, &cfg.overrides.attrs, 1);
    for p in &cfg.overrides.protocols {
        out.push_str("\tprotocol {\n");
        attrs(&mut out, Section::Protocol, &p.attrs, 2);
        out.push_str("\t}\n");
    }
    out.push_str("}\n");
    // As upstream, the multipaths section is left out when it would have no entries.
    if !cfg.multipaths.is_empty() || maps.is_some_and(|m| !m.is_empty()) {
        out.push_str("multipaths {\n");
        let alias_of = |wwid: Option<&str>| maps.map(|m| m.iter().find(|(w, _)| Some(*w) == wwid).map(|(_, a)| *a));
        for mpe in &cfg.multipaths {
            let alias = alias_of(mpe.wwid());
            if alias == Some(None) {
                continue;
            }
            out.push_str("\tmultipath {\n");
            attrs(&mut out, Section::Multipath, &mpe.attrs, 2);
            map_alias_comment(&mut out, mpe.wwid().unwrap_or(""), alias.flatten());
            out.push_str("\t}\n");
        }
        for (wwid, alias) in maps.unwrap_or(&[]) {
            if cfg.multipaths.iter().any(|m| m.wwid() == Some(*wwid)) {
                continue;
            }
            let _ = writeln!(out, "\tmultipath {{\n\t\twwid \"{wwid}\"");
            map_alias_comment(&mut out, wwid, Some(alias));
            out.push_str("\t}\n");
        }
        out.push_str("}\n");
    }
    out
}

/// A map's alias, when it has one besides its WWID, as a comment (`show config local`).
fn map_alias_comment(out: &mut String, wwid: &str, alias: Option<&str>) {
    if let Some(a) = alias.filter(|a| *a != wwid) {
        let _ = writeln!(out, "\t\t# alias \"{a}\"");
    }
}

/// Keywords printed for a section, in upstream's print order (no `checker` alias, no
/// deprecated keyword: the order lists only printable ones).
fn printable(section: Section) -> impl Iterator<Item = &'static Keyword> {
    keywords::print_order(section)
        .iter()
        .filter_map(move |name| keywords::lookup(section, name))
}

fn line(out: &mut String, depth: usize, name: &str, value: &str) {
    let _ = writeln!(out, "{}{name} {value}", "\t".repeat(depth));
}

fn attrs(out: &mut String, section: Section, a: &Attrs, depth: usize) {
    for kw in printable(section) {
        if let Some(v) = a.get(kw.name).filter(|v| !value::hidden(kw.ty, v)) {
            line(out, depth, kw.name, &value::print(kw.ty, v));
        }
    }
}

fn defaults(out: &mut String, cfg: &Config) {
    out.push_str("defaults {\n");
    for kw in printable(Section::Defaults) {
        let effective = match kw.name {
            "polling_interval" => Some(Value::Int(cfg.polling_interval().into())),
            "max_polling_interval" => Some(Value::Int(cfg.max_polling_interval().into())),
            _ => cfg.defaults.get(kw.name).cloned().or_else(|| builtin_default(kw)),
        };
        if let Some(v) = effective.filter(|v| !value::hidden(kw.ty, v)) {
            line(out, 1, kw.name, &value::print(kw.ty, &v));
        }
    }
    out.push_str("}\n");
}

/// The parsed built-in default of a keyword, if it has one.
pub fn builtin_default(kw: &Keyword) -> Option<Value> {
    kw.default.and_then(|d| value::parse(kw.ty, d).ok()).map(|(v, _)| v)
}

fn blacklist(out: &mut String, name: &str, l: &BlacklistLists) {
    let _ = writeln!(out, "{name} {{");
    for (kw, list) in [
        ("devnode", &l.devnode),
        ("wwid", &l.wwid),
        ("property", &l.property),
        ("protocol", &l.protocol),
    ] {
        for p in list {
            line(out, 1, kw, &quote(&p.text));
        }
    }
    for d in &l.device {
        out.push_str("\tdevice {\n");
        if let Some(v) = &d.vendor {
            line(out, 2, "vendor", &quote(&v.text));
        }
        if let Some(p) = &d.product {
            line(out, 2, "product", &quote(&p.text));
        }
        out.push_str("\t}\n");
    }
    out.push_str("}\n");
}
