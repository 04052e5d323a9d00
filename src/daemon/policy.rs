//! Turns property selection results into the plain values the checker state machine
//! and the marginal module take (they do not depend on the selector).

use crate::checkers::state::{MarginalPathgroups, Policy};
use crate::config::Config;
use crate::config::keywords::Setting;
use crate::config::propsel::Selector;
use crate::marginal::config::{MarginalConfig, PathGroups};

fn pathgroups(name: &str) -> (MarginalPathgroups, PathGroups) {
    match name {
        "on" => (MarginalPathgroups::On, PathGroups::On),
        _ => (MarginalPathgroups::Off, PathGroups::Off),
    }
}

/// The marginal-path settings of one map. `latency_bound_ms` is our extension.
pub fn marginal(sel: &Selector) -> MarginalConfig {
    let shaky = sel.shaky_path();
    let latency = match sel.get(Setting::MarginalPathErrLatencyBound) {
        Some(s) => match s.value {
            crate::config::value::Value::Int(n) if n > 0 => Some(n as u32),
            _ => None,
        },
        None => None,
    };
    MarginalConfig {
        double_failed_time: shaky.marginal_path_double_failed_time.value,
        err_sample_time: shaky.marginal_path_err_sample_time.value,
        err_rate_threshold: shaky.marginal_path_err_rate_threshold.value,
        err_recheck_gap_time: shaky.marginal_path_err_recheck_gap_time.value,
        pathgroups: pathgroups(&sel.marginal_pathgroups().value).1,
        latency_bound_ms: latency,
    }
}

/// The checker state machine's view of a map's configuration.
pub fn checker_policy(cfg: &Config, sel: &Selector) -> Policy {
    let shaky = sel.shaky_path();
    Policy {
        polling_interval: cfg.polling_interval(),
        max_polling_interval: cfg.max_polling_interval(),
        no_path_retry: sel.no_path_retry().value,
        failback: sel.failback().value,
        delay_watch_checks: sel.delay_watch_checks().value.unwrap_or(0),
        delay_wait_checks: sel.delay_wait_checks().value.unwrap_or(0),
        san_path_err_threshold: shaky.san_path_err_threshold.value.unwrap_or(0),
        san_path_err_forget_rate: shaky.san_path_err_forget_rate.value.unwrap_or(0),
        san_path_err_recovery_time: shaky.san_path_err_recovery_time.value.unwrap_or(0),
        marginal_path_enabled: shaky.marginal_path_enabled(),
        marginal_pathgroups: pathgroups(&sel.marginal_pathgroups().value).0,
        ghost_delay: sel.ghost_delay().value.unwrap_or(0),
        log_checker_err_once: cfg.setting_str(Setting::LogCheckerErr).as_deref() == Some("once"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_str;
    use crate::config::propsel::{Failback, NoPathRetry};

    #[test]
    fn marginal_settings_flow_through_and_disable_san_path_err() {
        let c = parse_str(
            "multipath.conf",
            "defaults {\n marginal_path_double_failed_time 60\n marginal_path_err_sample_time 180\n marginal_path_err_rate_threshold 10\n marginal_path_err_recheck_gap_time 300\n marginal_path_err_latency_bound 500\n san_path_err_threshold 3\n polling_interval 2\n no_path_retry 5\n failback immediate\n}\n",
        )
        .unwrap()
        .config;
        let sel = Selector::new(&c, "Linux", "scsi_debug", "0191", "w");
        let m = marginal(&sel);
        assert!(m.enabled());
        assert_eq!(m.err_sample_time, Some(180));
        assert_eq!(m.err_rate_threshold, Some(10));
        assert_eq!(m.latency_bound_ms, Some(500));
        let p = checker_policy(&c, &sel);
        assert!(p.marginal_path_enabled);
        assert_eq!(p.san_path_err_threshold, 0, "marginal_path forces san_path_err off");
        assert_eq!(p.polling_interval, 2);
        assert_eq!(p.max_polling_interval, 8);
        assert_eq!(p.no_path_retry, NoPathRetry::Retries(5));
        assert_eq!(p.failback, Failback::Immediate);
    }
}
