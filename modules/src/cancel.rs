//! Stopping commands in flight: the run was interrupted (SIGINT/SIGTERM
//! to `herd`), or the task's `timeout:` has passed.
//!
//! Transports ask [`check`] while they wait on a command and, when it says
//! so, stop the command on the host and return [`crate::HostError::Interrupted`]
//! or [`crate::HostError::TaskTimeout`]. The interruption is process-wide
//! (set from a signal handler, so it is a lock-free atomic); the task
//! deadline belongs to the worker thread running the task, since every
//! command of a task runs on the thread that runs the task.

use std::cell::Cell;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

/// The signal that interrupted the run; 0 while it runs on.
static INTERRUPTED: AtomicI32 = AtomicI32::new(0);

thread_local! {
    /// The running task's deadline and its `timeout:` in seconds.
    static DEADLINE: Cell<Option<(Instant, u64)>> = const { Cell::new(None) };
}

/// Why a command is being stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancel {
    /// The run was interrupted by this signal.
    Interrupted(i32),
    /// The task ran past its `timeout:` of this many seconds.
    TaskTimeout(u64),
}

impl Cancel {
    /// The error a command stopped this way reports.
    pub fn into_error(self) -> crate::HostError {
        match self {
            Cancel::Interrupted(signal) => crate::HostError::Interrupted { signal },
            Cancel::TaskTimeout(seconds) => crate::HostError::TaskTimeout { seconds },
        }
    }
}

/// Record that the run was interrupted by `signal`. Async-signal-safe (one
/// atomic store); the first signal wins.
pub fn interrupt(signal: i32) {
    let _ = INTERRUPTED.compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst);
}

/// The signal that interrupted the run, if one did.
pub fn interrupted() -> Option<i32> {
    match INTERRUPTED.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// Whether the command in flight on this thread should be stopped now.
pub fn check() -> Option<Cancel> {
    if let Some(s) = interrupted() {
        return Some(Cancel::Interrupted(s));
    }
    DEADLINE.with(|d| match d.get() {
        Some((at, seconds)) if Instant::now() >= at => Some(Cancel::TaskTimeout(seconds)),
        _ => None,
    })
}

/// Time left before this thread's task deadline, if it has one.
pub fn remaining() -> Option<Duration> {
    DEADLINE.with(|d| {
        d.get()
            .map(|(at, _)| at.saturating_duration_since(Instant::now()))
    })
}

/// Sleep for `d`, waking early (and saying why) when the run is
/// interrupted or the task's deadline passes.
pub fn sleep(d: Duration) -> Result<(), Cancel> {
    let end = Instant::now() + d;
    loop {
        if let Some(c) = check() {
            return Err(c);
        }
        let now = Instant::now();
        if now >= end {
            return Ok(());
        }
        std::thread::sleep((end - now).min(Duration::from_millis(100)));
    }
}

/// This thread's task deadline for the guard's lifetime (`timeout:` of
/// `seconds`, from now); the previous one comes back on drop.
pub struct TaskDeadline {
    previous: Option<(Instant, u64)>,
}

impl TaskDeadline {
    /// A deadline `seconds` from now.
    pub fn start(seconds: u64) -> TaskDeadline {
        let at = Instant::now() + Duration::from_secs(seconds);
        let previous = DEADLINE.with(|d| d.replace(Some((at, seconds))));
        TaskDeadline { previous }
    }

    /// Whether the deadline has passed.
    pub fn expired(&self) -> bool {
        matches!(check(), Some(Cancel::TaskTimeout(_)))
    }
}

impl Drop for TaskDeadline {
    fn drop(&mut self) {
        DEADLINE.with(|d| d.set(self.previous));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_belongs_to_its_thread_and_its_guard() {
        assert_eq!(check(), None);
        {
            let g = TaskDeadline::start(0);
            assert_eq!(check(), Some(Cancel::TaskTimeout(0)));
            assert!(g.expired());
            // Another thread has no deadline.
            assert_eq!(std::thread::spawn(check).join().ok(), Some(None));
        }
        assert_eq!(check(), None);
        let _g = TaskDeadline::start(3600);
        assert_eq!(check(), None);
        assert!(remaining().is_some_and(|r| r > Duration::from_secs(3500)));
    }

    #[test]
    fn sleep_wakes_at_the_deadline() {
        let _g = TaskDeadline::start(0);
        let started = Instant::now();
        assert_eq!(sleep(Duration::from_secs(5)), Err(Cancel::TaskTimeout(0)));
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
