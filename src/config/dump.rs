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
use super::model::{Attrs, BlacklistLists, Config};
use super::value::{self, Value, quote};

/// The full dump.
pub fn show_config(cfg: &Config) -> String {
    let mut out = String::new();
    defaults(&mut out, cfg);
    let (bl, ex) = effective_lists(cfg, false);
    blacklist(&mut out, "blacklist", &bl);
    blacklist(&mut out, "blacklist_exceptions", &ex);
    out.push_str("devices {\n");
    for hwe in cfg.all_devices() {
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
    // As upstream, the multipaths section is left out when it has no entries.
    if !cfg.multipaths.is_empty() {
        out.push_str("multipaths {\n");
        for mpe in &cfg.multipaths {
            out.push_str("\tmultipath {\n");
            attrs(&mut out, Section::Multipath, &mpe.attrs, 2);
            out.push_str("\t}\n");
        }
        out.push_str("}\n");
    }
    out
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
