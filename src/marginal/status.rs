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

/// The JSON members added to a path object (without surrounding braces), e.g.
/// `"marginal_st" : "marginal", "io_err_st" : "testing", ...`. Names are plain ASCII,
/// values numbers or fixed words, so no escaping is needed.
pub fn json_fields(s: &MarginalStatus) -> String {
    let recheck = s.next_recheck_in.map_or_else(|| "null".to_string(), |v| v.to_string());
    format!(
        "\"marginal_st\" : \"{}\", \"io_err_st\" : \"{}\", \"io_err_ios\" : {}, \"io_err_errs\" : {}, \"io_err_rate\" : {:.1}, \"io_err_recheck_in\" : {}",
        s.marginal_st(),
        s.state.as_str(),
        s.ios,
        s.errs,
        s.rate_permille(),
        recheck
    )
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
    fn json_is_valid_and_exact() {
        let j = json_fields(&st());
        assert_eq!(
            j,
            "\"marginal_st\" : \"marginal\", \"io_err_st\" : \"delayed\", \"io_err_ios\" : 1920, \"io_err_errs\" : 192, \"io_err_rate\" : 100.0, \"io_err_recheck_in\" : 301"
        );
        let v: serde_json::Value = serde_json::from_str(&format!("{{{j}}}")).expect("valid json");
        assert_eq!(v["io_err_ios"], 1920);
        let t = MarginalStatus {
            state: TestState::Testing,
            next_recheck_in: None,
            ..st()
        };
        let v: serde_json::Value = serde_json::from_str(&format!("{{{}}}", json_fields(&t))).expect("valid json");
        assert!(v["io_err_recheck_in"].is_null());
        assert_eq!(v["io_err_st"], "testing");
    }
}
