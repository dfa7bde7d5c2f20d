//! Stage: system calls (shared memory). A region mapped `MAP_SHARED |
//! MAP_ANONYMOUS` before the server is forked, so a thread and a forked
//! child see the same pages, and the `futex` calls that sleep on a word of
//! it and wake its sleeper. The two rungs at the bottom of the transport
//! ladder (`shm-spin`, `futex`) are built on these.

use std::io;
use std::ptr::NonNull;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

/// Pages mapped shared and anonymous: inherited across `fork`, unmapped on drop.
pub struct SharedRegion {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping lives until drop; every access goes through atomics
// or through `copy_in`/`copy_out`, whose callers hand the bytes over by a
// release/acquire pair on a word of the region (see transport::shared).
unsafe impl Send for SharedRegion {}
// SAFETY: as above.
unsafe impl Sync for SharedRegion {}

impl std::fmt::Debug for SharedRegion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SharedRegion({} B)", self.len)
    }
}

impl SharedRegion {
    /// `len` zero bytes (rounded up to pages), shared with any child forked later.
    pub fn new(len: usize) -> io::Result<Self> {
        let len = len.max(1).next_multiple_of(4096);
        // SAFETY: a fresh anonymous mapping: no address hint, no descriptor.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(p.cast::<u8>()).ok_or_else(io::Error::last_os_error)?;
        Ok(Self { ptr, len })
    }

    /// Bytes mapped.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is mapped (never: a region has at least one page).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The 32-bit word at byte `offset` (a multiple of 4 inside the region).
    pub fn word(&self, offset: usize) -> &AtomicU32 {
        assert!(
            offset.is_multiple_of(4) && offset + 4 <= self.len,
            "word {offset} out of the region"
        );
        // SAFETY: in bounds and 4-aligned (the mapping is page-aligned); the
        // pages live as long as `self`, and AtomicU32 has u32's layout.
        unsafe { &*self.ptr.as_ptr().add(offset).cast::<AtomicU32>() }
    }

    /// Copy `src` into the region at `offset`. The caller owns those bytes
    /// until it publishes them (a release store the reader acquires).
    pub fn copy_in(&self, offset: usize, src: &[u8]) {
        assert!(offset + src.len() <= self.len, "copy out of the region");
        // SAFETY: in bounds; the protocol gives the writer sole use of these
        // bytes until it publishes them, so no one reads them meanwhile.
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.as_ptr().add(offset), src.len())
        }
    }

    /// Copy bytes at `offset` out into `dst`, after acquiring them.
    pub fn copy_out(&self, offset: usize, dst: &mut [u8]) {
        assert!(offset + dst.len() <= self.len, "copy out of the region");
        // SAFETY: in bounds; the writer published these bytes (the caller
        // acquired its release store) and writes them again only after this
        // reader answers.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.ptr.as_ptr().add(offset),
                dst.as_mut_ptr(),
                dst.len(),
            )
        }
    }
}

impl Drop for SharedRegion {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are the mapping made in `new`, unmapped once.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

/// Sleep while `word` holds `expected`, for at most `timeout`. Returns
/// when woken, when the word already differs (EAGAIN), or on a signal
/// (EINTR); the caller looks at the word again. A shared (not private)
/// futex: the sleeper and the waker may be different processes.
pub fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) -> io::Result<()> {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `word` is a live, aligned u32; `ts` outlives the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &ts as *const libc::timespec,
        )
    };
    if r == -1 {
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(()),
            _ => Err(e),
        }
    } else {
        Ok(())
    }
}

/// Wake one sleeper on `word` (there may be none).
pub fn futex_wake(word: &AtomicU32) -> io::Result<()> {
    // SAFETY: `word` is a live, aligned u32.
    let r = unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, 1) };
    if r == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The CPU this thread runs on now (`sched_getcpu`: a read of the rseq
/// area or the vDSO, no system call on current glibc).
pub fn current_cpu() -> u32 {
    // SAFETY: no arguments.
    let c = unsafe { libc::sched_getcpu() };
    c.max(0) as u32
}

/// Give the CPU to another runnable thread, if any.
pub fn yield_cpu() {
    // SAFETY: no arguments; it cannot fail on Linux.
    unsafe {
        libc::sched_yield();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    #[test]
    fn a_child_sees_the_parents_writes_and_the_parent_the_childs() {
        let r = SharedRegion::new(100).unwrap();
        assert_eq!(r.len(), 4096);
        r.copy_in(64, b"hello");
        let pid = crate::sys::process::fork_child(&[], "shm-test", || {
            let mut b = [0u8; 5];
            r.copy_out(64, &mut b);
            if &b != b"hello" {
                return 3;
            }
            r.copy_in(128, b"world");
            r.word(0).store(1, Ordering::Release);
            let _ = futex_wake(r.word(0));
            0
        })
        .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while r.word(0).load(Ordering::Acquire) == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the child never answered"
            );
            futex_wait(r.word(0), 0, Duration::from_millis(100)).unwrap();
        }
        let mut b = [0u8; 5];
        r.copy_out(128, &mut b);
        assert_eq!(&b, b"world");
        assert_eq!(crate::sys::process::reap(pid), "exited with status 0");
    }

    #[test]
    fn a_futex_wait_ends_at_its_timeout() {
        let r = SharedRegion::new(4096).unwrap();
        let t0 = std::time::Instant::now();
        let e = futex_wait(r.word(0), 0, Duration::from_millis(20)).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ETIMEDOUT));
        assert!(t0.elapsed() >= Duration::from_millis(20));
    }
}
