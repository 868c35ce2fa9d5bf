//! Who may share the machine: tests that start nodes run side by side (libtest runs as many tests
//! at once as there are cores), but a chaos run runs alone, because its checkers measure timing
//! (liveness, schedule lag) that a neighbour's cluster on the same cores would distort. When the
//! tests were fourteen binaries each smoke had the machine to itself; in one binary this gate
//! keeps it so.
//!
//! A reader-preferring gate: [`shared`] waits only while a chaos run holds the gate, so a test
//! that starts two clusters never waits on a queued chaos run (no deadlock); [`exclusive`] waits
//! until no test holds it. Guards release on drop, also when a test panics.

use std::sync::{Condvar, Mutex};

/// `(tests holding a shared guard, whether a chaos run holds it)`.
static STATE: Mutex<(usize, bool)> = Mutex::new((0, false));
static CHANGED: Condvar = Condvar::new();

/// Held by a test that runs nodes (the test [`super::Cluster`] holds one).
pub struct Shared(());

/// Held by a chaos run for its whole length.
pub struct Exclusive(());

/// Waits until no chaos run holds the gate, then shares it.
pub fn shared() -> Shared {
    let mut s = CHANGED.wait_while(lock(), |s| s.1).expect("gate lock");
    s.0 += 1;
    Shared(())
}

/// Waits until nobody holds the gate, then holds it alone.
pub fn exclusive() -> Exclusive {
    let mut s = CHANGED.wait_while(lock(), |s| s.1 || s.0 > 0).expect("gate lock");
    s.1 = true;
    Exclusive(())
}

fn lock() -> std::sync::MutexGuard<'static, (usize, bool)> {
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

impl Drop for Shared {
    fn drop(&mut self) {
        lock().0 -= 1;
        CHANGED.notify_all();
    }
}

impl Drop for Exclusive {
    fn drop(&mut self) {
        lock().1 = false;
        CHANGED.notify_all();
    }
}
