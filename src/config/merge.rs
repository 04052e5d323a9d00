//! What upstream does to the entries of a configuration once they are read: after each file,
//! device entries are checked and entries with the same vendor/product/revision merged (a
//! user's entry into the built-in one, across conf.d files too) and protocol entries without a
//! type dropped; after all files, protocol entries of one type and multipaths entries of one
//! wwid merged.
//!
//! Merging fills what the later entry leaves unset from the earlier one (an empty string does
//! not count as set) and keeps the later entry's place.

use std::collections::HashMap;

use super::diag::{Diagnostic, Level};
use super::keywords::Setting;
use super::keywords::ValueType;
use super::model::{Attrs, Config, DeviceEntry, MultipathEntry};
use super::propsel::remove_feature;
use super::value::{self, Value, enc};

/// Fills `dst`'s unset keys from `src`.
fn fill(dst: &mut Attrs, src: Attrs) {
    for (k, v) in src {
        if matches!(&v, Value::Str(s) if s.is_empty()) {
            continue;
        }
        dst.entry(k).or_insert(v);
    }
}

/// The device node attributes of a multipaths entry.
const NODE_ATTRS: [&str; 3] = ["mode", "uid", "gid"];

/// A multipaths entry's node attributes as upstream keeps them while it merges: three numbers
/// (0 when not given) and which of them are set. A merge can leave a number whose flag is
/// clear; it is not printed or used, but it travels on to the next entry of the same wwid.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct NodeAttrs {
    values: [i64; 3],
    set: [bool; 3],
}

impl NodeAttrs {
    fn of(attrs: &Attrs) -> NodeAttrs {
        let mut n = NodeAttrs::default();
        for (i, k) in NODE_ATTRS.iter().enumerate() {
            if let Some(Value::Int(v)) = attrs.get(k) {
                n.values[i] = *v;
                n.set[i] = true;
            }
        }
        n
    }

    /// Takes the earlier entry's flags only when this entry sets none of the three (they are
    /// one word upstream), and each of its numbers where this one's is 0, set or not.
    fn merge(&mut self, earlier: &NodeAttrs) {
        if !self.set.contains(&true) {
            self.set = earlier.set;
        }
        for (v, e) in self.values.iter_mut().zip(earlier.values) {
            if *v == 0 {
                *v = e;
            }
        }
    }

    /// Writes the attributes whose flag is set into `attrs`, and only those.
    fn store(&self, attrs: &mut Attrs) {
        for (i, k) in NODE_ATTRS.iter().enumerate() {
            if self.set[i] {
                attrs.insert(k, Value::Int(self.values[i]));
            } else {
                attrs.remove(k);
            }
        }
    }
}

fn str_of(a: &Attrs, kw: Setting) -> Option<&str> {
    match a.get(kw.name()) {
        Some(Value::Str(s)) => Some(s),
        _ => None,
    }
}

fn diag(diags: &mut Vec<Diagnostic>, level: Level, file: &str, message: String) {
    diags.push(Diagnostic {
        level,
        file: file.to_string(),
        line: 0,
        message,
    });
}

/// After a file: drops its device entries without vendor or product and merges every entry
/// with the same vendor/product/revision as a later one of this file into that later one.
/// `new` are this file's entries as read; `desc` names the file as upstream does (the path
/// of the main file, the bare name of a conf.d file).
pub(crate) fn factorize_devices(cfg: &mut Config, new: Vec<Attrs>, desc: &str, diags: &mut Vec<Diagnostic>) {
    type Id = [Option<String>; 3];
    let id_of =
        |a: &Attrs| [Setting::Vendor, Setting::Product, Setting::Revision].map(|k| str_of(a, k).map(str::to_string));
    if new.is_empty() {
        return;
    }
    // The entries read so far, built-in first; a slot becomes None when merged away. Their ids
    // are unique (each earlier file was factorized the same way).
    let mut slots: Vec<Option<Attrs>> = Vec::new();
    let builtin = cfg.hwtable.len();
    let mut index: HashMap<Id, usize> = HashMap::new();
    for e in cfg.hwtable.drain(..).chain(cfg.devices.drain(..)) {
        index.insert(id_of(&e.attrs), slots.len());
        slots.push(Some(e.attrs));
    }
    let old = slots.len();
    // Messages go out in upstream's order: by the position of the entry they are about.
    let mut notes: Vec<(usize, Level, String)> = Vec::new();
    for mut attrs in new {
        let pos = slots.len();
        if str_of(&attrs, Setting::Vendor).is_none() || str_of(&attrs, Setting::Product).is_none() {
            notes.push((
                pos,
                Level::Error,
                format!("device config in {desc} missing vendor or product parameter"),
            ));
            slots.push(None);
            continue;
        }
        let id = id_of(&attrs);
        if let Some(prev) = index.get(&id).copied()
            && let Some(earlier) = slots[prev].take()
        {
            let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(null)".into());
            // A duplicate of an entry of an earlier table is only worth a debug message.
            let level = if prev >= old { Level::Warning } else { Level::Info };
            notes.push((
                prev,
                level,
                format!(
                    "factorize_hwtable: duplicate device section for {}:{}:{} in {desc}",
                    show(&id[0]),
                    show(&id[1]),
                    show(&id[2])
                ),
            ));
            fill(&mut attrs, earlier);
            let vp = format!("{}/{}", show(&id[0]), show(&id[1]));
            reconcile_features(&vp, &mut attrs, &mut notes, prev);
        }
        index.insert(id, pos);
        slots.push(Some(attrs));
    }
    notes.sort_by_key(|n| n.0);
    for (_, level, message) in notes {
        diag(diags, level, desc, message);
    }
    let mut hw = Vec::new();
    let mut user = Vec::new();
    for (i, s) in slots.into_iter().enumerate() {
        if let Some(a) = s {
            let e = DeviceEntry::new(a);
            if i < builtin { hw.push(e) } else { user.push(e) }
        }
    }
    cfg.hwtable = hw;
    cfg.devices = user;
}

/// Upstream's clean-up of a merged device entry's `features`: `queue_if_no_path` becomes
/// `no_path_retry queue` (unless no_path_retry is set) and `retain_attached_hw_handler` the
/// keyword of that name, both taken out of the string, each with a deprecation message.
fn reconcile_features(id: &str, attrs: &mut Attrs, notes: &mut Vec<(usize, Level, String)>, pos: usize) {
    const QUEUE: &str = "queue_if_no_path";
    const RETAIN: &str = "retain_attached_hw_handler";
    let Some(mut features) = str_of(attrs, Setting::Features).map(str::to_string) else {
        return;
    };
    let npr_kw = Setting::NoPathRetry.name();
    let retain_kw = Setting::RetainAttachedHwHandler.name();
    if features.contains(QUEUE) {
        notes.push((
            pos,
            Level::Error,
            format!("{id}: option 'features \"1 {QUEUE}\"' is deprecated, please use 'no_path_retry queue' instead"),
        ));
        match attrs.get(npr_kw) {
            None => {
                attrs.insert(npr_kw, Value::Int(enc::NPR_QUEUE));
            }
            Some(Value::Int(enc::NPR_QUEUE)) => {}
            Some(v) => {
                let shown = value::print(ValueType::NoPathRetry, v);
                notes.push((
                    pos,
                    Level::Notice,
                    format!("{id}: ignoring feature '{QUEUE}' because no_path_retry is set to '{shown}'"),
                ));
            }
        }
        features = remove_feature(&features, QUEUE);
    }
    if features.contains(RETAIN) {
        notes.push((
            pos,
            Level::Error,
            format!("{id}: option 'features \"1 {RETAIN}\"' is deprecated"),
        ));
        match attrs.get(retain_kw) {
            None => {
                attrs.insert(retain_kw, Value::Bool(true));
            }
            Some(Value::Bool(false)) => notes.push((
                pos,
                Level::Notice,
                format!("{id}: ignoring feature '{RETAIN}' because {RETAIN} is set to 'off'"),
            )),
            Some(_) => {}
        }
        features = remove_feature(&features, RETAIN);
    }
    attrs.insert(Setting::Features.name(), Value::Str(features));
}

/// After a file: drops its `overrides` protocol entries without a type (from `first` on).
pub(crate) fn validate_protocols(cfg: &mut Config, first: usize, desc: &str, diags: &mut Vec<Diagnostic>) {
    let mut i = first;
    while i < cfg.overrides.protocols.len() {
        if cfg.overrides.protocols[i].protocol().is_none() {
            cfg.overrides.protocols.remove(i);
            diag(
                diags,
                Level::Error,
                desc,
                format!("protocol section in {desc} missing type"),
            );
        } else {
            i += 1;
        }
    }
}

/// After all files: protocol entries of the same type become one, at the place of the last,
/// which wins (the daemon and `show config` see the same single entry).
pub(crate) fn merge_protocols(cfg: &mut Config) {
    let protocols = std::mem::take(&mut cfg.overrides.protocols);
    let mut last: HashMap<String, usize> = HashMap::new();
    for (i, p) in protocols.iter().enumerate() {
        last.insert(p.protocol().unwrap_or_default().to_string(), i);
    }
    let mut acc: HashMap<String, Attrs> = HashMap::new();
    for (i, p) in protocols.into_iter().enumerate() {
        let t = p.protocol().unwrap_or_default().to_string();
        let mut attrs = p.attrs;
        if let Some(earlier) = acc.remove(&t) {
            fill(&mut attrs, earlier);
        }
        if last.get(&t) == Some(&i) {
            cfg.overrides.protocols.push(super::model::ProtocolEntry { attrs });
        } else {
            acc.insert(t, attrs);
        }
    }
}

/// After all files: drops multipaths entries without a wwid, orders the entries by wwid and
/// merges entries of one wwid (the later one wins), as upstream does.
pub(crate) fn merge_multipaths(cfg: &mut Config, diags: &mut Vec<Diagnostic>, file: &str) {
    let mut entries: Vec<MultipathEntry> = Vec::new();
    for mpe in std::mem::take(&mut cfg.multipaths) {
        if mpe.wwid().is_none() {
            diag(
                diags,
                Level::Error,
                file,
                "multipaths config section missing wwid".into(),
            );
        } else {
            entries.push(mpe);
        }
    }
    // Stable: entries of one wwid stay in file order, so the later one wins.
    entries.sort_by(|a, b| {
        a.wwid()
            .unwrap_or_default()
            .as_bytes()
            .cmp(b.wwid().unwrap_or_default().as_bytes())
    });
    // Each kept entry with its node attributes, hidden numbers included.
    let mut kept: Vec<(MultipathEntry, NodeAttrs)> = Vec::with_capacity(entries.len());
    for mut mpe in entries {
        let mut node = NodeAttrs::of(&mpe.attrs);
        if let Some((prev, prev_node)) = kept.last_mut()
            && prev.wwid() == mpe.wwid()
        {
            diag(
                diags,
                Level::Warning,
                file,
                format!(
                    "merge_mptable: duplicate multipath config section for {}",
                    mpe.wwid().unwrap_or_default()
                ),
            );
            let mut earlier = std::mem::take(&mut prev.attrs);
            for k in NODE_ATTRS {
                earlier.remove(k);
            }
            fill(&mut mpe.attrs, earlier);
            node.merge(prev_node);
            node.store(&mut mpe.attrs);
            *prev = mpe;
            *prev_node = node;
        } else {
            kept.push((mpe, node));
        }
    }
    // Nothing after the merge reads a number whose flag is clear.
    cfg.multipaths = kept.into_iter().map(|(mpe, _)| mpe).collect();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(v: &str, p: &str, extra: &[(&'static str, Value)]) -> DeviceEntry {
        let mut a = Attrs::new();
        a.insert("vendor", Value::Str(v.into()));
        a.insert("product", Value::Str(p.into()));
        for (k, x) in extra {
            a.insert(k, x.clone());
        }
        DeviceEntry::new(a)
    }

    #[test]
    fn a_user_entry_absorbs_the_builtin_one_and_cleans_features() {
        let mut cfg = Config {
            hwtable: vec![
                dev("A", "B", &[("path_checker", Value::Str("tur".into()))]),
                dev("C", "D", &[]),
            ],
            ..Config::default()
        };
        let user = dev(
            "A",
            "B",
            &[
                ("features", Value::Str("2 queue_if_no_path pg_init_retries".into())),
                ("no_path_retry", Value::Int(5)),
            ],
        );
        let mut d = Vec::new();
        factorize_devices(&mut cfg, vec![user.attrs], "f", &mut d);
        assert_eq!(cfg.hwtable.len(), 1);
        let a = &cfg.devices[0].attrs;
        assert_eq!(a.get("path_checker"), Some(&Value::Str("tur".into())));
        assert_eq!(a.get("features"), Some(&Value::Str("1 pg_init_retries".into())));
        let m: Vec<_> = d.iter().map(|d| (d.level, d.message.as_str())).collect();
        assert_eq!(
            m,
            [
                (
                    Level::Info,
                    "factorize_hwtable: duplicate device section for A:B:(null) in f"
                ),
                (
                    Level::Error,
                    "A/B: option 'features \"1 queue_if_no_path\"' is deprecated, please use 'no_path_retry queue' instead"
                ),
                (
                    Level::Notice,
                    "A/B: ignoring feature 'queue_if_no_path' because no_path_retry is set to '5'"
                ),
            ]
        );
    }

    #[test]
    fn protocols_of_one_type_merge_into_the_last() {
        let text = "overrides {\n\tprotocol {\n\t\ttype scsi:fcp\n\t\tdev_loss_tmo 60\n\t\teh_deadline 3\n\t}\n\
                    \tprotocol {\n\t\ttype scsi:iscsi\n\t}\n\tprotocol {\n\t\ttype scsi:fcp\n\t\tdev_loss_tmo 90\n\t}\n}\n";
        let cfg = crate::config::parse_str("f", text).unwrap().config;
        let p = &cfg.overrides.protocols;
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].protocol(), Some("scsi:iscsi"));
        assert_eq!(p[1].attrs.get("dev_loss_tmo"), Some(&Value::Int(90)));
        assert_eq!(p[1].attrs.get("eh_deadline"), Some(&Value::Int(3)));
    }

    #[test]
    fn a_hidden_mode_travels_to_a_later_mode_0() {
        let mp = |body: &str| format!("\tmultipath {{\n\t\twwid 1\n\t\t{body}\n\t}}\n");
        let text = format!(
            "multipaths {{\n{}{}{}}}\n",
            mp("mode 0640"),
            mp("uid 1000"),
            mp("mode 0")
        );
        let cfg = crate::config::parse_str("f", &text).unwrap().config;
        let a = &cfg.multipaths[0].attrs;
        // The middle entry's uid flag hid the mode, but its number came along.
        assert_eq!(a.get("mode"), Some(&Value::Int(0o640)));
        assert_eq!(a.get("uid"), None);
        assert_eq!(a.get("gid"), None);
    }

    #[test]
    fn an_entry_setting_no_node_attribute_takes_the_earlier_flags() {
        let mut n = NodeAttrs::of(&Attrs::new());
        let mut earlier = Attrs::new();
        earlier.insert("gid", Value::Int(0));
        let mut e = NodeAttrs::of(&earlier);
        e.values[0] = 0o600;
        n.merge(&e);
        let mut out = Attrs::new();
        out.insert("mode", Value::Int(0o777));
        n.store(&mut out);
        assert_eq!(out.get("mode"), None);
        assert_eq!(out.get("gid"), Some(&Value::Int(0)));
    }
}
