//! Stage: concurrent pairs. A barrier that one thread can abort, so that
//! when one client thread fails the others stop waiting for it.

use std::sync::{Condvar, Mutex};

#[derive(Debug, Default)]
struct State {
    waiting: usize,
    generation: u64,
    aborted: bool,
}

/// Like `std::sync::Barrier`, but `wait` fails once `abort` was called.
#[derive(Debug)]
pub struct AbortBarrier {
    parties: usize,
    state: Mutex<State>,
    cv: Condvar,
}

/// The barrier was aborted by another thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Aborted;

impl AbortBarrier {
    /// A barrier for `parties` threads.
    pub fn new(parties: usize) -> Self {
        Self {
            parties,
            state: Mutex::new(State::default()),
            cv: Condvar::new(),
        }
    }

    /// Block until all parties arrive (or the barrier is aborted).
    pub fn wait(&self) -> Result<(), Aborted> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.aborted {
            return Err(Aborted);
        }
        s.waiting += 1;
        if s.waiting == self.parties {
            s.waiting = 0;
            s.generation += 1;
            self.cv.notify_all();
            return Ok(());
        }
        let generation = s.generation;
        while s.generation == generation && !s.aborted {
            s = self.cv.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        if s.aborted { Err(Aborted) } else { Ok(()) }
    }

    /// Release every waiter with `Err(Aborted)`, now and later.
    pub fn abort(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).aborted = true;
        self.cv.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_together_and_aborts() {
        let b = AbortBarrier::new(3);
        std::thread::scope(|s| {
            let h: Vec<_> = (0..3).map(|_| s.spawn(|| b.wait())).collect();
            for h in h {
                assert_eq!(h.join().unwrap(), Ok(()));
            }
        });
        let b = AbortBarrier::new(2);
        std::thread::scope(|s| {
            let w = s.spawn(|| b.wait());
            std::thread::sleep(std::time::Duration::from_millis(20));
            b.abort();
            assert_eq!(w.join().unwrap(), Err(Aborted));
        });
        assert_eq!(b.wait(), Err(Aborted));
    }
}
