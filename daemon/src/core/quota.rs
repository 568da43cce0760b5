//! Per-user limits: the core enforces `[quotas] max_queued_runs_per_user` at submission, and
//! hands `max_gpus_per_user` to the scheduler's policy (`scheduler::quota`) with every decision.
//! A submission that would pass the queued limit is refused whole (nothing is stored, no id is
//! taken) with the limit and the user's current count, so a user learns what to wait for; other
//! users are not affected.

use std::sync::atomic::Ordering;

use super::{CoreError, Daemon, Result};
use crate::model::RunState;
use crate::store::RunFilter;

impl Daemon {
    /// Sets the most queued runs one user may have (`None`: no limit).
    pub fn set_max_queued_runs(&self, limit: Option<u32>) {
        self.max_queued
            .store(limit.map_or(0, |l| l.max(1)), Ordering::Relaxed);
    }

    /// Sets the most GPU-equivalents one user's runs may hold at once (`None`: no limit).
    pub fn set_max_gpus(&self, limit: Option<u32>) {
        self.max_gpus
            .store(limit.map_or(0, |l| l.max(1)), Ordering::Relaxed);
    }

    /// The GPU cap the scheduler applies (`None`: no limit).
    pub(super) fn gpu_quota(&self) -> Option<u32> {
        Some(self.max_gpus.load(Ordering::Relaxed)).filter(|&l| l > 0)
    }

    /// Refuses `adding` new queued runs for `user` when they would pass the limit, counting
    /// `already` queued runs not yet stored (earlier submissions of the same group).
    pub(super) fn check_queued_quota(
        &self,
        user: &str,
        already: usize,
        adding: usize,
    ) -> Result<()> {
        let limit = self.max_queued.load(Ordering::Relaxed);
        if limit == 0 || adding == 0 {
            return Ok(());
        }
        let queued = self
            .store
            .list_runs(&RunFilter {
                user: Some(user.to_string()),
                state: Some(RunState::Queued),
                ..RunFilter::default()
            })?
            .len()
            + already;
        if queued + adding > limit as usize {
            return Err(CoreError::QuotaExceeded {
                user: user.to_string(),
                reason: format!(
                    "{queued} queued + {adding} new runs would pass the limit of {limit} queued \
                     runs per user (quotas.max_queued_runs_per_user); wait for some to start"
                ),
            });
        }
        Ok(())
    }
}
