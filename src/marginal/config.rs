//! The marginal-path settings this module needs, as a plain value.
//!
//! The `config` module parses multipath.conf; it hands us the resolved per-map values
//! here. `None` means unset (upstream folds unset, `0` and `no` into one "off" value).

/// How marginal paths are treated by the path grouping (`marginal_pathgroups`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PathGroups {
    /// A held path is kept out of the map (`delayed` in `%T`).
    #[default]
    Off,
    /// A held path is reinstated into a marginal path group that sorts last.
    On,
}

/// Resolved marginal-path settings of one map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MarginalConfig {
    /// `marginal_path_double_failed_time`, seconds.
    pub double_failed_time: Option<u32>,
    /// `marginal_path_err_sample_time`, seconds (>= 120 for users).
    pub err_sample_time: Option<u32>,
    /// `marginal_path_err_rate_threshold`, per mille.
    pub err_rate_threshold: Option<u32>,
    /// `marginal_path_err_recheck_gap_time`, seconds.
    pub err_recheck_gap_time: Option<u32>,
    /// `marginal_pathgroups`.
    pub pathgroups: PathGroups,
    /// Extension: a test read slower than this (milliseconds) counts as an error.
    pub latency_bound_ms: Option<u32>,
}

/// Smallest sample time a user may configure: two IO timeouts.
pub const MIN_SAMPLE_TIME: u32 = 120;

fn set(v: Option<u32>) -> bool {
    matches!(v, Some(n) if n > 0)
}

impl MarginalConfig {
    /// Whether IO error accounting runs: all four values set and positive.
    pub fn enabled(&self) -> bool {
        set(self.double_failed_time)
            && set(self.err_sample_time)
            && set(self.err_rate_threshold)
            && set(self.err_recheck_gap_time)
    }

    /// Applies the load-time rule: a sample time below 120 s is raised to 120 s with a
    /// configuration error (level 2). Returns the lines to log.
    pub fn normalize(&mut self) -> Vec<(u8, String)> {
        let mut logs = Vec::new();
        if let Some(t) = self.err_sample_time
            && t > 0
            && t < MIN_SAMPLE_TIME
        {
            logs.push((
                2,
                format!("configuration error: marginal_path_err_sample_time must be >= {MIN_SAMPLE_TIME}"),
            ));
            self.err_sample_time = Some(MIN_SAMPLE_TIME);
        }
        logs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> MarginalConfig {
        MarginalConfig {
            double_failed_time: Some(60),
            err_sample_time: Some(120),
            err_rate_threshold: Some(10),
            err_recheck_gap_time: Some(300),
            ..Default::default()
        }
    }

    #[test]
    fn enabled_needs_all_four_positive() {
        assert!(full().enabled());
        assert!(
            !MarginalConfig {
                double_failed_time: None,
                ..full()
            }
            .enabled()
        );
        assert!(
            !MarginalConfig {
                err_sample_time: Some(0),
                ..full()
            }
            .enabled()
        );
        // upstream folds 0 into "no": threshold 0 disables the feature
        assert!(
            !MarginalConfig {
                err_rate_threshold: Some(0),
                ..full()
            }
            .enabled()
        );
        assert!(
            !MarginalConfig {
                err_recheck_gap_time: None,
                ..full()
            }
            .enabled()
        );
        assert!(
            MarginalConfig {
                pathgroups: PathGroups::On,
                ..full()
            }
            .enabled()
        );
    }

    #[test]
    fn short_sample_time_is_raised_with_an_error() {
        let mut c = MarginalConfig {
            err_sample_time: Some(30),
            ..full()
        };
        let logs = c.normalize();
        assert_eq!(c.err_sample_time, Some(120));
        assert_eq!(
            logs,
            vec![(
                2,
                "configuration error: marginal_path_err_sample_time must be >= 120".to_string()
            )]
        );
        let mut ok = full();
        assert!(ok.normalize().is_empty());
        assert_eq!(ok.err_sample_time, Some(120));
    }
}
