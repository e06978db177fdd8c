//! What every task run is given: the time it runs at, whether it may change anything, whether
//! heavy work may run outside the maintenance windows, a deadline, and a way to be cancelled.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use tokio::sync::Notify;

/// The context of one run of one or more tasks.
///
/// ```
/// let ctx = kyb_core::RunCtx::new(time::OffsetDateTime::now_utc()).with_dry_run(true);
/// assert!(ctx.dry_run && !ctx.emergency && !ctx.cancel.is_cancelled());
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RunCtx {
    /// The time the run counts as happening at: ages, windows and names are judged against it.
    pub now: OffsetDateTime,
    /// Change nothing: report what would be done.
    pub dry_run: bool,
    /// Heavy work (VACUUM, restarts) may run outside the maintenance windows.
    pub emergency: bool,
    /// When the run must be over; a task still running then is stopped and reported.
    pub deadline: Option<Instant>,
    /// Set when the run is to stop (Ctrl-C, SIGTERM); tasks that write stop and clean up.
    pub cancel: Cancel,
    /// Whether a maintenance window is open for heavy work at `now`.
    pub window: WindowState,
}

/// Whether heavy work (VACUUM, REINDEX, restarts, package upgrades) may start: the run's
/// maintenance windows as seen at its start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum WindowState {
    /// A window is open, or none is enforced.
    #[default]
    Open,
    /// Outside every window.
    Closed {
        /// The windows, as one line for reports (`Sun 02:00-06:00, Wed 02:00-04:00`).
        windows: String,
        /// When the next one opens.
        next_open: Option<OffsetDateTime>,
    },
}

impl RunCtx {
    /// A run at `now` that may change things, within the windows, without a deadline.
    pub fn new(now: OffsetDateTime) -> RunCtx {
        RunCtx {
            now,
            dry_run: false,
            emergency: false,
            deadline: None,
            cancel: Cancel::default(),
            window: WindowState::Open,
        }
    }

    /// The same run, changing nothing when `dry_run`.
    pub fn with_dry_run(mut self, dry_run: bool) -> RunCtx {
        self.dry_run = dry_run;
        self
    }

    /// The same run, outside the windows too when `emergency`.
    pub fn with_emergency(mut self, emergency: bool) -> RunCtx {
        self.emergency = emergency;
        self
    }

    /// The same run, to be over by `deadline`.
    pub fn with_deadline(mut self, deadline: Option<Instant>) -> RunCtx {
        self.deadline = deadline;
        self
    }

    /// The same run, with the maintenance windows in `window`.
    pub fn with_window(mut self, window: WindowState) -> RunCtx {
        self.window = window;
        self
    }

    /// Whether heavy work may start: a window is open, or the run is an emergency.
    pub fn heavy_work_allowed(&self) -> bool {
        self.emergency || self.window == WindowState::Open
    }

    /// The time left before the deadline (zero once it has passed); `None` without one.
    pub fn time_left(&self) -> Option<Duration> {
        self.deadline.map(|d| d.saturating_duration_since(Instant::now()))
    }
}

/// A cancellation shared by every clone: [`Cancel::cancel`] once, and every waiter of
/// [`Cancel::cancelled`] wakes.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<CancelState>);

#[derive(Debug, Default)]
struct CancelState {
    set: AtomicBool,
    notify: Notify,
}

impl Cancel {
    /// Cancels the run.
    pub fn cancel(&self) {
        self.0.set.store(true, Ordering::SeqCst);
        self.0.notify.notify_waiters();
    }

    /// Whether the run was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.0.set.load(Ordering::SeqCst)
    }

    /// Completes once the run is cancelled (at once if it already is).
    pub async fn cancelled(&self) {
        loop {
            let notified = self.0.notify.notified();
            tokio::pin!(notified);
            // Registered before the flag is read, so a cancel in between is not missed.
            notified.as_mut().enable();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heavy_work_waits_for_a_window_unless_it_is_an_emergency() {
        let now = OffsetDateTime::UNIX_EPOCH;
        assert!(RunCtx::new(now).heavy_work_allowed(), "no windows: always open");
        let closed = WindowState::Closed { windows: "Sun 02:00-06:00".into(), next_open: None };
        let ctx = RunCtx::new(now).with_window(closed);
        assert!(!ctx.heavy_work_allowed());
        assert!(ctx.with_emergency(true).heavy_work_allowed());
    }

    #[tokio::test]
    async fn a_cancel_wakes_every_waiter_and_later_ones_at_once() {
        let cancel = Cancel::default();
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let c = cancel.clone();
                tokio::spawn(async move { c.cancelled().await })
            })
            .collect();
        tokio::task::yield_now().await;
        assert!(!cancel.is_cancelled());
        cancel.cancel();
        for w in waiters {
            tokio::time::timeout(Duration::from_secs(10), w).await.expect("woken").unwrap();
        }
        tokio::time::timeout(Duration::from_secs(10), cancel.cancelled()).await.expect("already cancelled");
    }

    #[test]
    fn time_left_counts_down_to_zero() {
        let ctx = RunCtx::new(OffsetDateTime::now_utc());
        assert_eq!(ctx.time_left(), None);
        let past = ctx.clone().with_deadline(Some(Instant::now()));
        assert_eq!(past.time_left(), Some(Duration::ZERO));
        let later = ctx.with_deadline(Some(Instant::now() + Duration::from_secs(60)));
        assert!(later.time_left().is_some_and(|d| d > Duration::from_secs(50)));
    }
}
