//! Stage: system calls (BPF). A sockmap holding the two ends of one
//! loopback TCP connection and an `sk_msg` verdict program attached to it
//! that redirects every message sent on one end straight into the other
//! end's receive queue (`bpf_msg_redirect_map(…, BPF_F_INGRESS)`): the data
//! travels as sk_msg pages, never as a segment, so it skips building an
//! skb, IP, the loopback device, the receive softirq and TCP's receive
//! processing and ACKs; the socket calls stay TCP's (tcp_bpf's sendmsg and
//! recvmsg). Nine instructions, loaded through the `bpf`
//! system call (no toolchain, no object file).
//!
//! Nothing outlives the run: the map and the program exist only while a
//! descriptor refers to them. The program's descriptor is closed once it is
//! attached; the map's is held by the pair (the map holds the program);
//! when the process ends, however it ends, the kernel frees both and takes
//! the sockets out of the map.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// The program's name, as the kernel lists it (and the tests look for it).
pub const PROGRAM_NAME: &str = "sockbench_redir";

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_GET_NEXT_ID: libc::c_long = 11;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_MAP_TYPE_SOCKMAP: u32 = 15;
const BPF_PROG_TYPE_SK_MSG: u32 = 16;
const BPF_SK_MSG_VERDICT: u32 = 7;
/// `bpf_msg_redirect_map`'s helper number.
const HELPER_MSG_REDIRECT_MAP: i32 = 60;
/// Offset of `local_port` (host byte order) in `struct sk_msg_md`.
const SK_MSG_LOCAL_PORT: i16 = 64;

/// `union bpf_attr`, as large as any command here needs; unused bytes zero.
#[repr(C, align(8))]
struct Attr([u8; 128]);

impl Attr {
    fn new() -> Self {
        Attr([0; 128])
    }
    fn u32_at(mut self, off: usize, v: u32) -> Self {
        self.0[off..off + 4].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn u64_at(mut self, off: usize, v: u64) -> Self {
        self.0[off..off + 8].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn bytes_at(mut self, off: usize, v: &[u8]) -> Self {
        self.0[off..off + v.len()].copy_from_slice(v);
        self
    }
}

/// The `bpf` system call. A signal during it gives EINTR, or EAGAIN from
/// the verifier (it stops when a signal is pending): both are tried again,
/// a bounded number of times.
fn bpf(cmd: libc::c_long, attr: &mut Attr) -> io::Result<libc::c_long> {
    let mut tries = 0;
    loop {
        match bpf_once(cmd, attr) {
            Err(e)
                if matches!(e.raw_os_error(), Some(libc::EINTR | libc::EAGAIN)) && tries < 1000 =>
            {
                tries += 1
            }
            r => return r,
        }
    }
}

fn bpf_once(cmd: libc::c_long, attr: &mut Attr) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, zero-padded bpf_attr of the size passed;
    // the pointers inside it (set by the callers) point to live buffers.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.0.as_mut_ptr(),
            std::mem::size_of::<Attr>() as libc::c_uint,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn owned(fd: libc::c_long) -> OwnedFd {
    // SAFETY: the kernel just returned this descriptor, and no one else owns it.
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

/// One BPF instruction: opcode, registers (dst low nibble, src high), offset, immediate.
fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> u64 {
    let regs = (dst & 0xf) | (src << 4);
    let mut b = [0u8; 8];
    b[0] = code;
    b[1] = regs;
    b[2..4].copy_from_slice(&off.to_ne_bytes());
    b[4..8].copy_from_slice(&imm.to_ne_bytes());
    u64::from_ne_bytes(b)
}

/// The verdict program. Map key 0 holds the server's end, key 1 the
/// client's; a message sent from `server_port` goes to key 1, any other to
/// key 0, into the receive side (`BPF_F_INGRESS`).
fn program(map: i32, server_port: u16) -> [u64; 9] {
    [
        // r2 = ctx->local_port
        insn(0x61, 2, 1, SK_MSG_LOCAL_PORT, 0),
        // r3 = 1
        insn(0xb7, 3, 0, 0, 1),
        // if r2 == server_port goto +1
        insn(0x15, 2, 0, 1, server_port as i32),
        // r3 = 0
        insn(0xb7, 3, 0, 0, 0),
        // r2 = the map (ld_imm64 with BPF_PSEUDO_MAP_FD: two slots)
        insn(0x18, 2, 1, 0, map),
        insn(0, 0, 0, 0, 0),
        // r4 = BPF_F_INGRESS
        insn(0xb7, 4, 0, 0, 1),
        // r0 = bpf_msg_redirect_map(r1 = msg, r2, r3, r4)
        insn(0x85, 0, 0, 0, HELPER_MSG_REDIRECT_MAP),
        // return r0
        insn(0x95, 0, 0, 0, 0),
    ]
}

/// A sockmap that redirects between the two ends of a TCP connection.
/// Dropping it (closing the map) detaches the program and frees both.
#[derive(Debug)]
pub struct Redirect {
    map: OwnedFd,
}

impl Redirect {
    /// An empty two-slot sockmap: the check that this process may use BPF
    /// sockmaps at all (CAP_BPF and CAP_NET_ADMIN, or root).
    pub fn probe() -> io::Result<OwnedFd> {
        let mut a = Attr::new()
            .u32_at(0, BPF_MAP_TYPE_SOCKMAP)
            .u32_at(4, 4) // key size
            .u32_at(8, 4) // value size (a socket descriptor)
            .u32_at(12, 2) // entries
            .bytes_at(28, b"sockbench_pair");
        bpf(BPF_MAP_CREATE, &mut a).map(owned)
    }

    /// Redirect between `server` (listening on `server_port`) and `client`,
    /// two connected ends of one TCP connection. Returns the call that
    /// failed with its error.
    pub fn between(
        server: BorrowedFd<'_>,
        client: BorrowedFd<'_>,
        server_port: u16,
    ) -> Result<Self, (&'static str, io::Error)> {
        let map = Self::probe().map_err(|e| ("bpf(BPF_MAP_CREATE)", e))?;
        let insns = program(map.as_raw_fd(), server_port);
        let license = b"Dual MIT/GPL\0";
        let mut name = [0u8; 16];
        name[..PROGRAM_NAME.len()].copy_from_slice(PROGRAM_NAME.as_bytes());
        let mut log = vec![0u8; 4096];
        let mut a = Attr::new()
            .u32_at(0, BPF_PROG_TYPE_SK_MSG)
            .u32_at(4, insns.len() as u32)
            .u64_at(8, insns.as_ptr() as u64)
            .u64_at(16, license.as_ptr() as u64)
            .u32_at(24, 1) // log_level: the verifier says why it refuses
            .u32_at(28, log.len() as u32)
            .u64_at(32, log.as_mut_ptr() as u64)
            .bytes_at(48, &name)
            .u32_at(68, BPF_SK_MSG_VERDICT); // expected_attach_type
        let prog = bpf(BPF_PROG_LOAD, &mut a).map(owned).map_err(|e| {
            let text =
                String::from_utf8_lossy(&log[..log.iter().position(|&b| b == 0).unwrap_or(0)])
                    .trim()
                    .lines()
                    .rev()
                    .find(|l| !l.starts_with("processed ") && !l.trim().is_empty())
                    .unwrap_or("")
                    .to_string();
            let e = if text.is_empty() {
                e
            } else {
                io::Error::new(e.kind(), format!("{e}; the verifier said: {text}"))
            };
            ("bpf(BPF_PROG_LOAD)", e)
        })?;
        let mut a = Attr::new()
            .u32_at(0, map.as_raw_fd() as u32)
            .u32_at(4, prog.as_raw_fd() as u32)
            .u32_at(8, BPF_SK_MSG_VERDICT);
        bpf(BPF_PROG_ATTACH, &mut a).map_err(|e| ("bpf(BPF_PROG_ATTACH)", e))?;
        drop(prog); // the map holds it now
        for (key, sock) in [(0u32, server), (1u32, client)] {
            let value = sock.as_raw_fd() as u32;
            let mut a = Attr::new()
                .u32_at(0, map.as_raw_fd() as u32)
                .u64_at(8, &key as *const u32 as u64)
                .u64_at(16, &value as *const u32 as u64)
                .u64_at(24, 0); // BPF_ANY
            bpf(BPF_MAP_UPDATE_ELEM, &mut a).map_err(|e| ("bpf(BPF_MAP_UPDATE_ELEM)", e))?;
        }
        Ok(Self { map })
    }

    /// The map's descriptor (a forked server need not keep it).
    pub fn fd(&self) -> BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.map)
    }
}

/// How many BPF programs named [`PROGRAM_NAME`] the kernel holds now
/// (root only: listing programs needs CAP_SYS_ADMIN).
pub fn programs_loaded() -> io::Result<usize> {
    let mut n = 0;
    let mut id = 0u32;
    loop {
        let mut a = Attr::new().u32_at(0, id);
        match bpf(BPF_PROG_GET_NEXT_ID, &mut a) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(n),
            Err(e) => return Err(e),
        }
        id = u32::from_ne_bytes(a.0[4..8].try_into().expect("4 bytes"));
        let mut a = Attr::new().u32_at(0, id);
        let fd = match bpf(BPF_PROG_GET_FD_BY_ID, &mut a) {
            Ok(fd) => owned(fd),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue, // gone meanwhile
            Err(e) => return Err(e),
        };
        // struct bpf_prog_info: name[16] at byte 64.
        let mut info = [0u8; 96];
        let mut a = Attr::new()
            .u32_at(0, fd.as_raw_fd() as u32)
            .u32_at(4, info.len() as u32)
            .u64_at(8, info.as_mut_ptr() as u64);
        bpf(BPF_OBJ_GET_INFO_BY_FD, &mut a)?;
        let name = &info[64..80];
        let len = name.iter().position(|&b| b == 0).unwrap_or(16);
        if &name[..len] == PROGRAM_NAME.as_bytes() {
            n += 1;
        }
    }
}
