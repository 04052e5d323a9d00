//! marginal
