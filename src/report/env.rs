//! Stage: results. The environment fingerprint written with every result:
//! what a reader needs to judge or reproduce a number. Reads /proc and /sys
//! only; a value that cannot be read is recorded as absent, never guessed.

use std::collections::BTreeMap;
use std::fs;

/// Socket-related sysctls recorded with every run (paths under /proc/sys).
pub const SYSCTLS: &[&str] = &[
    "net/core/rmem_default",
    "net/core/rmem_max",
    "net/core/wmem_default",
    "net/core/wmem_max",
    "net/core/optmem_max",
    "net/core/somaxconn",
    "net/core/netdev_max_backlog",
    "net/core/busy_poll",
    "net/core/busy_read",
    "net/core/default_qdisc",
    "net/ipv4/tcp_rmem",
    "net/ipv4/tcp_wmem",
    "net/ipv4/tcp_mem",
    "net/ipv4/tcp_autocorking",
    "net/ipv4/tcp_congestion_control",
    "net/ipv4/tcp_notsent_lowat",
    "net/ipv4/tcp_slow_start_after_idle",
    "net/ipv4/tcp_timestamps",
    "net/ipv4/tcp_sack",
    "net/ipv4/tcp_fastopen",
    "net/ipv4/tcp_tw_reuse",
    "net/ipv4/ip_local_port_range",
    "net/ipv4/udp_mem",
    "net/ipv4/udp_rmem_min",
    "net/ipv4/udp_wmem_min",
    "net/ipv6/conf/lo/disable_ipv6",
    "net/unix/max_dgram_qlen",
    "kernel/sched_autogroup_enabled",
    "kernel/numa_balancing",
];

/// Besides [`SYSCTLS`], every sysctl in these directories whose name starts
/// so: a host setting changed by hand between two runs shows in a
/// comparison of their fingerprints (`scripts/compare`), whichever it is.
/// Names holding a key (`tcp_fastopen_key`) are left out: they are secrets.
pub const SYSCTL_FAMILIES: &[(&str, &str)] = &[
    ("net/core", ""),
    ("net/unix", ""),
    ("net/ipv4", "tcp_"),
    ("net/ipv4", "udp_"),
];

/// The machine, kernel, tunables and build a result came from.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, schemars::JsonSchema)]
pub struct Fingerprint {
    /// Host name.
    pub hostname: Option<String>,
    /// `uname -r`.
    pub kernel_release: Option<String>,
    /// `uname -v`.
    pub kernel_version: Option<String>,
    /// /proc/cmdline (isolcpus, nohz_full, mitigations=... show here).
    pub kernel_cmdline: Option<String>,
    /// CPU model name.
    pub cpu_model: Option<String>,
    /// Online CPUs.
    pub cpus_online: Option<String>,
    /// CPUs this process may run on.
    pub cpus_allowed: String,
    /// CPUs the run pinned to: `server=N client=M`, when a run did.
    pub cpus_used: Option<String>,
    /// Whether SMT (hyper-threading) is on.
    pub smt_active: Option<String>,
    /// `hypervisor` CPU flag and the DMI vendor/product, when present.
    pub virtualization: Option<String>,
    /// The kernel's clocksource (tsc is cheapest).
    pub clocksource: Option<String>,
    /// Resolution of CLOCK_MONOTONIC.
    pub clock_resolution_ns: Option<u64>,
    /// CPU frequency governor of CPU 0.
    pub cpufreq_governor: Option<String>,
    /// CPU vulnerability mitigations in force (/sys/devices/system/cpu/vulnerabilities).
    pub mitigations: BTreeMap<String, String>,
    /// Socket-related sysctls and their values: the named ones and every
    /// one in the `SYSCTL_FAMILIES` directories.
    pub sysctls: BTreeMap<String, String>,
    /// Memory of the machine.
    pub memory_total_kib: Option<u64>,
    /// Free page reporting (a VM's balloon hands free memory back to the
    /// hypervisor): the smallest block order reported
    /// (`page_reporting.page_reporting_order`), when the kernel reports.
    /// Memory freed by earlier work then costs microseconds per page to use
    /// again (docs/caveats.md).
    #[serde(default)]
    pub free_page_reporting_order: Option<u32>,
    /// sockbench's version.
    pub sockbench_version: String,
    /// The git revision sockbench was built from (`-dirty` with uncommitted changes).
    pub git_revision: String,
    /// The compiler that built it.
    pub rustc: String,
    /// `release` or `debug`.
    pub build_profile: String,
    /// UTC time the fingerprint was taken (RFC 3339).
    pub taken_at: String,
}

fn read(path: &str) -> Option<String> {
    fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn cpuinfo_field(cpuinfo: &str, key: &str) -> Option<String> {
    cpuinfo.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == key).then(|| v.trim().to_string())
    })
}

/// The order of the blocks the kernel reports free to the hypervisor, if
/// free page reporting is active: a virtio balloon that offers it
/// (feature bit 5, `VIRTIO_BALLOON_F_REPORTING`), and an order the buddy
/// allocator has (11 and up switches reporting off).
fn free_page_reporting_order() -> Option<u32> {
    let balloon_reports = fs::read_dir("/sys/bus/virtio/devices")
        .into_iter()
        .flatten()
        .flatten()
        .any(|d| {
            let p = d.path();
            read(&p.join("device").to_string_lossy()).as_deref() == Some("0x0005")
                && read(&p.join("features").to_string_lossy())
                    .is_some_and(|f| f.as_bytes().get(5) == Some(&b'1'))
        });
    let order: u32 = read("/sys/module/page_reporting/parameters/page_reporting_order")?
        .parse()
        .ok()?;
    (balloon_reports && order <= 10).then_some(order)
}

impl Fingerprint {
    /// Read the fingerprint of this machine now.
    pub fn take() -> Self {
        let uname = nix::sys::utsname::uname().ok();
        let cpuinfo = read("/proc/cpuinfo").unwrap_or_default();
        let hypervisor_flag = cpuinfo_field(&cpuinfo, "flags")
            .is_some_and(|f| f.split(' ').any(|x| x == "hypervisor"));
        let dmi = [
            read("/sys/class/dmi/id/sys_vendor"),
            read("/sys/class/dmi/id/product_name"),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
        let virtualization = match (hypervisor_flag, dmi.is_empty()) {
            (false, _) => None,
            (true, true) => Some("hypervisor".to_string()),
            (true, false) => Some(format!("hypervisor ({dmi})")),
        };
        let mitigations = fs::read_dir("/sys/devices/system/cpu/vulnerabilities")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                read(&e.path().to_string_lossy()).map(|v| (name, v))
            })
            .collect();
        let families = SYSCTL_FAMILIES.iter().flat_map(|(dir, prefix)| {
            let mut names: Vec<String> = fs::read_dir(format!("/proc/sys/{dir}"))
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(prefix) && !n.contains("key"))
                .map(|n| format!("{dir}/{n}"))
                .collect();
            names.sort();
            names
        });
        let sysctls = SYSCTLS
            .iter()
            .map(|p| p.to_string())
            .chain(families)
            .filter_map(|p| {
                read(&format!("/proc/sys/{p}")).map(|v| {
                    (
                        p.replace('/', "."),
                        v.split_whitespace().collect::<Vec<_>>().join(" "),
                    )
                })
            })
            .collect();
        let memory_total_kib = read("/proc/meminfo").and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        });
        Fingerprint {
            hostname: nix::unistd::gethostname()
                .ok()
                .map(|h| h.to_string_lossy().into_owned()),
            kernel_release: uname
                .as_ref()
                .map(|u| u.release().to_string_lossy().into_owned()),
            kernel_version: uname
                .as_ref()
                .map(|u| u.version().to_string_lossy().into_owned()),
            kernel_cmdline: read("/proc/cmdline"),
            cpu_model: cpuinfo_field(&cpuinfo, "model name"),
            cpus_online: read("/sys/devices/system/cpu/online"),
            cpus_allowed: crate::affinity::format_list(&crate::affinity::available()),
            cpus_used: None,
            smt_active: read("/sys/devices/system/cpu/smt/active"),
            virtualization,
            clocksource: read("/sys/devices/system/clocksource/clocksource0/current_clocksource"),
            clock_resolution_ns: crate::clock::resolution_ns(),
            cpufreq_governor: read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
            mitigations,
            sysctls,
            memory_total_kib,
            free_page_reporting_order: free_page_reporting_order(),
            sockbench_version: env!("CARGO_PKG_VERSION").to_string(),
            git_revision: env!("SOCKBENCH_GIT_REVISION").to_string(),
            rustc: env!("SOCKBENCH_RUSTC_VERSION").to_string(),
            build_profile: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            }
            .to_string(),
            taken_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        }
    }
}
