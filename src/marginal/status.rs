//! The per-path accounting view (`show marginal`-style line and JSON fields).

use super::state::rate_permille;

/// Where a path stands in the IO error accounting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestState {
    /// Not under IO error control.
    Normal,
    /// One PATH_FAILED seen; a second one within double_failed_time starts a test.
    PreChecking,
    /// Failed and held back (`delayed` in `%T`), waiting for the next test.
    Delayed,
    /// Being sampled by the io-err-stat thread.
    Testing,
}

impl TestState {
    /// Every state, in the order a path goes through them.
    pub const ALL: [TestState; 4] = [
        TestState::Normal,
        TestState::PreChecking,
        TestState::Delayed,
        TestState::Testing,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TestState::Normal => "normal",
            TestState::PreChecking => "pre-checking",
            TestState::Delayed => "delayed",
            TestState::Testing => "testing",
        }
    }
}

/// Accounting of one path, during a test (live counts) and after (last verdict's counts).
#[derive(Debug, Clone, PartialEq)]
pub struct MarginalStatus {
    pub path: String,
    pub map: String,
    pub state: TestState,
    /// What `%M` / JSON `marginal_st` show.
    pub marginal: bool,
    /// Test reads sent.
    pub ios: u64,
    /// Test reads that failed, came back short, were too slow, or got stuck.
    pub errs: u64,
    /// Seconds until the path may be re-tested (0: as soon as the checker sees it up).
    pub next_recheck_in: Option<u64>,
}

impl MarginalStatus {
    pub fn rate_permille(&self) -> f64 {
        rate_permille(self.ios, self.errs)
    }

    fn marginal_st(&self) -> &'static str {
        if self.marginal { "marginal" } else { "normal" }
    }

    fn recheck(&self) -> String {
        self.next_recheck_in
            .map_or_else(|| "-".to_string(), |s| format!("{s}s"))
    }
}

/// Column header matching [`format_line`].
pub fn header() -> String {
    format!(
        "{:<10} {:<16} {:<12} {:<8} {:>10} {:>8} {:>10} {:>8}",
        "dev", "map", "io_err_st", "marginal", "ios", "errs", "rate", "recheck"
    )
}

/// One `show marginal` line, e.g.
/// `sdb        mpatha           delayed      marginal       1920      192  100.0/1000     301s`.
pub fn format_line(s: &MarginalStatus) -> String {
    format!(
        "{:<10} {:<16} {:<12} {:<8} {:>10} {:>8} {:>10} {:>8}",
        s.path,
        s.map,
        s.state.as_str(),
        s.marginal_st(),
        s.ios,
        s.errs,
        format!("{:.1}/1000", s.rate_permille()),
        s.recheck()
    )
}

/// `show marginal json`, for exporters: every path the accounting knows, in the layout
/// of upstream's `show maps json` (three-space indent, `"key" : value`), e.g.
///
/// ```text
/// {
///    "major_version": 0,
///    "minor_version": 1,
///    "paths": [{
///       "dev" : "sdb",
///       "map" : "mpatha",
///       "io_err_st" : "delayed",
///       "marginal_st" : "normal",
///       "io_err_ios" : 1920,
///       "io_err_errs" : 192,
///       "io_err_rate" : 100.0,
///       "io_err_recheck_in" : 301
///    }]
/// }
/// ```
///
/// `io_err_recheck_in` is null when no test waits. The version numbers are this
/// document's own: a new key raises the minor, a changed or removed one the major.
pub fn json(rows: &[MarginalStatus]) -> String {
    use crate::cli::format::json_escape as esc;
    let mut out = String::from("{\n   \"major_version\": 0,\n   \"minor_version\": 1,\n   \"paths\": [");
    for (i, s) in rows.iter().enumerate() {
        let recheck = s.next_recheck_in.map_or_else(|| "null".to_string(), |v| v.to_string());
        out.push_str(&format!(
            "{{\n      \"dev\" : \"{}\",\n      \"map\" : \"{}\",\n      \"io_err_st\" : \"{}\",\n      \"marginal_st\" : \"{}\",\n      \"io_err_ios\" : {},\n      \"io_err_errs\" : {},\n      \"io_err_rate\" : {:.1},\n      \"io_err_recheck_in\" : {}\n   }}",
            esc(&s.path),
            esc(&s.map),
            s.state.as_str(),
            s.marginal_st(),
            s.ios,
            s.errs,
            s.rate_permille(),
            recheck
        ));
        if i + 1 < rows.len() {
            out.push(',');
        }
    }
    out.push_str("]\n}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st() -> MarginalStatus {
        MarginalStatus {
            path: "sdb".into(),
            map: "mpatha".into(),
            state: TestState::Delayed,
            marginal: true,
            ios: 1920,
            errs: 192,
            next_recheck_in: Some(301),
        }
    }

    #[test]
    fn line_and_header() {
        assert_eq!(
            format_line(&st()),
            "sdb        mpatha           delayed      marginal       1920      192 100.0/1000     301s"
        );
        assert_eq!(
            header(),
            "dev        map              io_err_st    marginal        ios     errs       rate  recheck"
        );
        let idle = MarginalStatus {
            state: TestState::Normal,
            marginal: false,
            ios: 0,
            errs: 0,
            next_recheck_in: None,
            ..st()
        };
        assert_eq!(
            format_line(&idle),
            "sdb        mpatha           normal       normal            0        0   0.0/1000        -"
        );
    }

    #[test]
    fn json_is_exact_and_valid() {
        let t = MarginalStatus {
            path: "sdc".into(),
            map: "my \"db\"".into(),
            state: TestState::Testing,
            marginal: false,
            next_recheck_in: None,
            ..st()
        };
        let j = json(&[st(), t]);
        assert_eq!(
            j,
            "{\n   \"major_version\": 0,\n   \"minor_version\": 1,\n   \"paths\": [{\n      \"dev\" : \"sdb\",\n      \"map\" : \"mpatha\",\n      \"io_err_st\" : \"delayed\",\n      \"marginal_st\" : \"marginal\",\n      \"io_err_ios\" : 1920,\n      \"io_err_errs\" : 192,\n      \"io_err_rate\" : 100.0,\n      \"io_err_recheck_in\" : 301\n   },{\n      \"dev\" : \"sdc\",\n      \"map\" : \"my \\\"db\\\"\",\n      \"io_err_st\" : \"testing\",\n      \"marginal_st\" : \"normal\",\n      \"io_err_ios\" : 1920,\n      \"io_err_errs\" : 192,\n      \"io_err_rate\" : 100.0,\n      \"io_err_recheck_in\" : null\n   }]\n}\n"
        );
        let v: serde_json::Value = serde_json::from_str(&j).expect("valid json");
        assert_eq!(v["paths"][0]["io_err_ios"], 1920);
        assert_eq!(v["paths"][1]["map"], "my \"db\"");
        assert!(v["paths"][1]["io_err_recheck_in"].is_null());
        let empty: serde_json::Value = serde_json::from_str(&json(&[])).expect("valid json");
        assert_eq!(empty["paths"], serde_json::json!([]));
    }
}
