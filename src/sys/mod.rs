//! Stage: system calls. The only module with `unsafe` and `libc::` calls.
//!
//! Policy: every libc call goes through the `syscall!` macro, which turns `-1` into
//! [`std::io::Error::last_os_error`]; callers attach the call's name when they
//! build an error. Every `unsafe` block states the invariant that makes it
//! sound. File descriptors are wrapped in [`std::os::fd::OwnedFd`] the moment
//! they exist. `nix` is used for one-time setup (typed socket options,
//! addresses, CPU sets, rusage); the measured calls (`socket`, `bind`,
//! `connect`, `accept`, `send`, `recv`, `read`, `write`) are raw libc.
#![allow(unsafe_code)]

/// Call a libc function; `-1` becomes `Err(io::Error::last_os_error())`.
macro_rules! syscall {
    ($fn:ident ( $($arg:expr),* $(,)? )) => {{
        // SAFETY: each call site documents why its arguments are valid for
        // this libc function (live buffers for ptr/len, fds owned by the caller).
        #[allow(unused_unsafe)]
        let res = unsafe { libc::$fn($($arg),*) };
        if res == -1 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(res)
        }
    }};
}

pub mod bpf;
pub mod buf;
pub mod cpustat;
pub mod epoll;
pub mod fs;
pub mod io;
pub mod netns;
pub mod perf;
pub mod process;
pub mod shm;
pub mod socket;
pub mod sysctl;
pub mod tstamp;
