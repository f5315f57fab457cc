//! The Environment Abstraction Layer: a builder that picks working flags for this
//! machine, and an `Eal` guard that calls `rte_eal_cleanup` on drop.
//!
//! `rte_eal_init` works once per process; a second `init` returns
//! [`DpdkError::EalAlreadyInitialised`]. DPDK's own log goes to a private temporary file
//! by default, so a failure is reported as one line that quotes the root cause DPDK
//! logged (see [`LogTarget`]).
//!
//! DPDK 22.11 leaves its runtime directory (`/var/run/dpdk/PREFIX`) behind at
//! `rte_eal_cleanup`, and a primary with shared configuration (`multi_process`) also its
//! hugepage files (`PREFIX` `map_N` on the hugetlbfs mount, memory no one else can use until
//! a primary of the same prefix starts): the guard removes both after the cleanup, so a run
//! leaves nothing of itself (its prefix is its own: unique, or the one the user gave).

use std::ffi::{CStr, CString, c_char, c_int};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::error::{DpdkError, Result, rte_errno, strerror};
use super::ffi;

static EAL_STARTED: AtomicBool = AtomicBool::new(false);

/// Whether to back DPDK memory with hugepages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Hugepages {
    /// Use hugepages when the machine has free ones, else ordinary memory (`--no-huge`).
    #[default]
    Auto,
    /// Require hugepages.
    On,
    /// Never use hugepages (`--no-huge`).
    Off,
}

impl std::str::FromStr for Hugepages {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "auto" => Ok(Hugepages::Auto),
            "on" => Ok(Hugepages::On),
            "off" => Ok(Hugepages::Off),
            other => Err(format!("hugepages must be auto, on or off, not {other:?}")),
        }
    }
}

/// Where DPDK's log lines go.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LogTarget {
    /// A private temporary file, searched for the root cause when something fails.
    #[default]
    Capture,
    /// DPDK's default (the console).
    Console,
}

/// Free 2 MiB (or default-size) hugepages according to /proc/meminfo.
pub fn free_hugepages() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("HugePages_Free:").and_then(|v| v.trim().parse::<u64>().ok())
            })
        })
        .unwrap_or(0)
}

/// Whether a hugetlbfs is mounted (per /proc/mounts): DPDK's hugepage memory outside
/// `--in-memory` lives in files there.
pub fn hugetlbfs_mounted() -> bool {
    !hugetlbfs_mounts().is_empty()
}

/// The hugetlbfs mount points, per /proc/mounts.
pub fn hugetlbfs_mounts() -> Vec<PathBuf> {
    std::fs::read_to_string("/proc/mounts")
        .map(|m| {
            m.lines()
                .filter_map(|l| {
                    let mut f = l.split_whitespace();
                    let dir = f.nth(1)?;
                    (f.next() == Some("hugetlbfs")).then(|| PathBuf::from(dir))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The hugepage files a primary of `prefix` left in `dirs` (DPDK names them `PREFIXmap_N`,
/// or `PREFIXmap_N-M` with one file per segment list).
pub fn hugepage_files(dirs: &[PathBuf], prefix: &str) -> Vec<PathBuf> {
    let head = format!("{prefix}map_");
    dirs.iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flatten()
        .filter_map(|e| e.ok())
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.strip_prefix(&head)
                .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit() || b == b'-'))
        })
        .map(|e| e.path())
        .collect()
}

/// Builds the EAL argument list and initialises the EAL.
#[derive(Debug, Clone)]
pub struct EalBuilder {
    program: String,
    lcores: String,
    memory_mb: u32,
    hugepages: Hugepages,
    pci: bool,
    allow: Vec<String>,
    vdevs: Vec<String>,
    log_level: Option<String>,
    log: LogTarget,
    file_prefix: Option<String>,
    extra: Vec<String>,
    multi_process: bool,
}

impl Default for EalBuilder {
    fn default() -> Self {
        EalBuilder {
            program: "vpcemu".into(),
            lcores: "0-1".into(),
            memory_mb: 512,
            hugepages: Hugepages::Auto,
            pci: false,
            allow: Vec::new(),
            vdevs: Vec::new(),
            log_level: None,
            log: LogTarget::Capture,
            file_prefix: None,
            extra: Vec::new(),
            multi_process: false,
        }
    }
}

impl EalBuilder {
    pub fn new() -> Self {
        Self::default()
    }
    /// The lcore list (`-l`), e.g. "0-1": the first is the main (control) lcore.
    pub fn lcores(mut self, lcores: impl Into<String>) -> Self {
        self.lcores = lcores.into();
        self
    }
    /// Memory to reserve, in MiB (`-m`).
    pub fn memory_mb(mut self, mb: u32) -> Self {
        self.memory_mb = mb;
        self
    }
    pub fn hugepages(mut self, h: Hugepages) -> Self {
        self.hugepages = h;
        self
    }
    /// Add a virtual device (`--vdev`), e.g. "net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap".
    pub fn vdev(mut self, vdev: impl Into<String>) -> Self {
        self.vdevs.push(vdev.into());
        self
    }
    /// Allow a PCI device (`-a 0000:03:00.0`); enables the PCI bus.
    pub fn pci_device(mut self, addr: impl Into<String>) -> Self {
        self.pci = true;
        self.allow.push(addr.into());
        self
    }
    /// DPDK log level (`--log-level`), e.g. "notice" or "pmd.net.pcap:debug".
    pub fn log_level(mut self, level: impl Into<String>) -> Self {
        self.log_level = Some(level.into());
        self
    }
    pub fn log_target(mut self, target: LogTarget) -> Self {
        self.log = target;
        self
    }
    /// Fix the file prefix (default: unique per process).
    pub fn file_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.file_prefix = Some(prefix.into());
        self
    }
    /// Let secondary processes (`dpdk-dumpcap`, `dpdk-proc-info`) attach: the shared
    /// configuration under `/var/run/dpdk/PREFIX` and hugepage memory from a hugetlbfs
    /// mount, instead of `--in-memory` or `--no-huge --no-shconf` (a secondary cannot map
    /// either). Needs free hugepages and a mounted hugetlbfs ([`hugetlbfs_mounted`]).
    pub fn multi_process(mut self, on: bool) -> Self {
        self.multi_process = on;
        self
    }

    /// Further EAL arguments, passed as they are.
    pub fn extra_args<I: IntoIterator<Item = String>>(mut self, args: I) -> Self {
        self.extra.extend(args);
        self
    }

    /// The argument vector `init` passes to `rte_eal_init`.
    pub fn args(&self) -> Result<Vec<String>> {
        let use_huge = match self.hugepages {
            Hugepages::On => true,
            Hugepages::Off => false,
            Hugepages::Auto => free_hugepages() * 2 >= u64::from(self.memory_mb),
        };
        let prefix = self.file_prefix.clone().unwrap_or_else(|| {
            let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
            format!("{}-{}-{}", self.program, std::process::id(), nanos)
        });
        let mut a = vec![self.program.clone(), "-l".into(), self.lcores.clone()];
        a.extend(["-m".into(), self.memory_mb.to_string()]);
        if self.multi_process {
            // Hugepages from the mount, shared config: what secondaries need.
        } else if use_huge {
            a.push("--in-memory".into());
        } else {
            // --in-memory cannot be combined with --no-huge.
            a.extend(["--no-huge".into(), "--no-shconf".into()]);
        }
        a.extend(["--file-prefix".into(), prefix]);
        if !self.pci {
            a.push("--no-pci".into());
        }
        for dev in &self.allow {
            a.extend(["-a".into(), dev.clone()]);
        }
        for v in &self.vdevs {
            a.extend(["--vdev".into(), v.clone()]);
        }
        if let Some(l) = &self.log_level {
            a.push(format!("--log-level={l}"));
        }
        a.extend(self.extra.iter().cloned());
        for s in &a {
            if s.contains('\0') {
                return Err(DpdkError::BadArgument(s.clone()));
            }
        }
        Ok(a)
    }

    /// Initialise the EAL. Works once per process.
    pub fn init(self) -> Result<Eal> {
        if EAL_STARTED.swap(true, Ordering::SeqCst) {
            return Err(DpdkError::EalAlreadyInitialised);
        }
        let args = self.args()?;
        let log = match self.log {
            LogTarget::Capture => LogCapture::open(),
            LogTarget::Console => None,
        };
        let cargs: Vec<CString> = args
            .iter()
            .map(|s| CString::new(s.as_str()).map_err(|_| DpdkError::BadArgument(s.clone())))
            .collect::<Result<_>>()?;
        // rte_eal_init may permute argv; give it pointers into strings we keep alive.
        let mut argv: Vec<*mut c_char> = cargs.iter().map(|c| c.as_ptr() as *mut c_char).collect();
        argv.push(std::ptr::null_mut());
        let argc = c_int::try_from(cargs.len()).unwrap_or(c_int::MAX);
        // SAFETY: argv holds argc valid NUL-terminated strings followed by NULL; the strings
        // (`cargs`) outlive the call and are not used through argv afterwards. EAL_STARTED
        // guarantees this runs at most once per process, from one thread.
        let rc = unsafe { ffi::rte_eal_init(argc, argv.as_mut_ptr()) };
        if rc < 0 {
            let code = rte_errno();
            let detail = log.as_ref().and_then(|l| l.root_cause(&[])).map(|d| format!(" ({d})")).unwrap_or_default();
            return Err(DpdkError::EalInit { code, message: strerror(code), detail });
        }
        // SAFETY: valid after a successful rte_eal_init; the string is EAL's own, NUL-terminated,
        // and copied here before any cleanup.
        let dir = unsafe { ffi::rte_eal_get_runtime_dir() };
        let runtime_dir = if dir.is_null() {
            None
        } else {
            // SAFETY: non-null, NUL-terminated (above); read once, copied.
            let d = unsafe { CStr::from_ptr(dir) };
            Some(PathBuf::from(d.to_string_lossy().into_owned()))
        };
        Ok(Eal { log, args, runtime_dir, multi_process: self.multi_process })
    }
}

/// DPDK's log captured into an unlinked temporary file.
#[derive(Debug)]
pub(crate) struct LogCapture {
    fd: i32,
}

impl LogCapture {
    fn open() -> Option<LogCapture> {
        // SAFETY: tmpfile() returns an owned FILE* or NULL. rte_openlog_stream keeps the
        // pointer for the life of the process; we never fclose it, so it stays valid.
        // fileno on a valid FILE* has no other precondition.
        unsafe {
            let f = libc::tmpfile();
            if f.is_null() {
                return None;
            }
            if ffi::rte_openlog_stream(f.cast()) != 0 {
                return None;
            }
            Some(LogCapture { fd: libc::fileno(f) })
        }
    }

    /// Everything DPDK logged so far.
    pub(crate) fn contents(&self) -> String {
        // SAFETY: fflush(NULL) flushes every open output stream; no preconditions.
        unsafe {
            libc::fflush(std::ptr::null_mut());
        }
        std::fs::read(format!("/proc/self/fd/{}", self.fd))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The lines that read like the cause of a failure: the first failing line DPDK
    /// logged and, when different, the first failing line that mentions one of `names`.
    pub(crate) fn root_cause(&self, names: &[&str]) -> Option<String> {
        let text = self.contents();
        let failing = |l: &str| {
            let low = l.to_ascii_lowercase();
            ["fail", "cannot", "couldn't", "unable", "error", "invalid", "no such", "not found"]
                .iter()
                .any(|k| low.contains(k))
        };
        let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty() && failing(l));
        let first = lines.next()?;
        let named = std::iter::once(first)
            .chain(lines)
            .find(|l| names.iter().any(|n| l.contains(n)))
            .filter(|l| *l != first);
        Some(match named {
            Some(n) => format!("{first}; {n}"),
            None => first.to_string(),
        })
    }
}

/// The running EAL. Dropping it calls `rte_eal_cleanup`; drop every port, pool and mbuf
/// first (the runtime's ownership order does).
#[derive(Debug)]
pub struct Eal {
    log: Option<LogCapture>,
    args: Vec<String>,
    /// `/var/run/dpdk/PREFIX` (or under `$XDG_RUNTIME_DIR`), removed after the cleanup.
    runtime_dir: Option<PathBuf>,
    /// Shared configuration and hugepage files (removed after the cleanup).
    multi_process: bool,
}

impl Eal {
    /// The arguments the EAL was started with.
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// A root cause DPDK logged, if the log is captured (see [`LogTarget`]).
    pub fn logged_cause(&self, names: &[&str]) -> Option<String> {
        self.log.as_ref().and_then(|l| l.root_cause(names))
    }

    /// Everything DPDK logged, when captured.
    pub fn log_contents(&self) -> Option<String> {
        self.log.as_ref().map(LogCapture::contents)
    }

    /// Number of ethdev ports that probed.
    pub fn port_count(&self) -> u16 {
        // SAFETY: the EAL is initialised (self exists); the call only reads ethdev state.
        unsafe { ffi::rte_eth_dev_count_avail() }
    }

    /// The TSC frequency DPDK measured, in Hz.
    pub fn tsc_hz(&self) -> u64 {
        // SAFETY: valid after rte_eal_init; reads a value set during init.
        unsafe { ffi::rte_get_tsc_hz() }
    }

    /// Initialise DPDK's packet capture framework (`rte_pdump_init`), so that
    /// `dpdk-dumpcap` in a secondary process can capture this process's ports.
    pub fn pdump_init(&self) -> Result<()> {
        // SAFETY: valid after rte_eal_init (self exists); reserves a memzone and registers
        // a multi-process action, from the main thread.
        let rc = unsafe { ffi::rte_pdump_init() };
        if rc < 0 {
            let code = rte_errno();
            return Err(DpdkError::EalInit { code, message: strerror(code), detail: " (rte_pdump_init)".into() });
        }
        Ok(())
    }

    /// The `--file-prefix` the EAL runs with (secondary processes name it).
    pub fn file_prefix(&self) -> Option<&str> {
        let i = self.args.iter().position(|a| a == "--file-prefix")?;
        self.args.get(i + 1).map(String::as_str)
    }

    /// The main (control) lcore.
    pub fn main_lcore(&self) -> u32 {
        // SAFETY: valid after rte_eal_init; reads EAL configuration.
        unsafe { ffi::rte_get_main_lcore() }
    }

    /// The worker lcores, in order.
    pub fn worker_lcores(&self) -> Vec<u32> {
        let mut out = Vec::new();
        // SAFETY: valid after rte_eal_init; RTE_MAX_LCORE-bounded iteration over EAL config.
        let mut id = unsafe { ffi::rte_get_next_lcore(u32::MAX, 1, 0) };
        while id < ffi::RTE_MAX_LCORE {
            out.push(id);
            // SAFETY: as above.
            id = unsafe { ffi::rte_get_next_lcore(id, 1, 0) };
        }
        out
    }
}

impl Drop for Eal {
    fn drop(&mut self) {
        // SAFETY: the EAL was initialised by this guard, and the guard is dropped once;
        // the owners of ports, pools and mbufs are dropped before it by construction.
        unsafe {
            ffi::rte_eal_cleanup();
        }
        let Some(prefix) = self.file_prefix().map(str::to_owned) else { return };
        if self.multi_process {
            for f in hugepage_files(&hugetlbfs_mounts(), &prefix) {
                let _ = std::fs::remove_file(f);
            }
        }
        if let Some(dir) = &self.runtime_dir {
            remove_runtime_dir(dir, &prefix);
        }
    }
}

/// Removes DPDK's runtime directory of this process, `dir`, when it is named by `prefix`
/// (never anything else: a directory DPDK did not make for this prefix stays).
fn remove_runtime_dir(dir: &Path, prefix: &str) {
    if !prefix.is_empty() && dir.file_name().is_some_and(|n| n == prefix) {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Reads the TSC (one `rdtsc`): `pipeline::clock::rdtsc` on x86_64, DPDK's read elsewhere.
#[cfg(target_arch = "x86_64")]
pub use pipeline::clock::rdtsc;

/// Reads the cycle counter through DPDK (no `rdtsc` on this architecture).
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
pub fn rdtsc() -> u64 {
    // SAFETY: reads the cycle counter through DPDK; no memory is touched.
    unsafe { ffi::vpcemu_rdtsc() }
}

/// The TSC frequency DPDK measured at init, in Hz (callable from any lcore).
pub fn tsc_hz_now() -> u64 {
    // SAFETY: reads a value EAL set during init; 0 before it.
    unsafe { ffi::rte_get_tsc_hz() }
}

/// The TSC as a `pipeline::Clock`, for stage timing on the workers.
#[cfg(target_arch = "x86_64")]
pub use pipeline::clock::TscClock;

/// The cycle counter as a `pipeline::Clock`, for stage timing on the workers.
#[cfg(not(target_arch = "x86_64"))]
#[derive(Debug, Clone, Copy, Default)]
pub struct TscClock;

#[cfg(not(target_arch = "x86_64"))]
impl pipeline::Clock for TscClock {
    #[inline(always)]
    fn now(&self) -> u64 {
        rdtsc()
    }
}

/// The lcore id of the calling thread (`u32::MAX` on a non-EAL thread).
#[inline]
pub fn lcore_id() -> u32 {
    // SAFETY: reads a thread-local; no preconditions.
    unsafe { ffi::vpcemu_lcore_id() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_without_hugepages() {
        let a = EalBuilder::new()
            .lcores("0-1")
            .memory_mb(256)
            .hugepages(Hugepages::Off)
            .vdev("net_null0")
            .file_prefix("p")
            .args()
            .unwrap();
        let s = a.join(" ");
        assert!(s.starts_with("vpcemu -l 0-1 -m 256 --no-huge --no-shconf --file-prefix p --no-pci"), "{s}");
        assert!(s.ends_with("--vdev net_null0"));
        assert!(!s.contains("--in-memory"));
    }

    #[test]
    fn args_with_hugepages_use_in_memory() {
        let a = EalBuilder::new().hugepages(Hugepages::On).pci_device("0000:03:00.0").args().unwrap();
        assert!(a.contains(&"--in-memory".to_string()));
        assert!(!a.contains(&"--no-huge".to_string()));
        assert!(!a.contains(&"--no-pci".to_string()));
        assert!(a.windows(2).any(|w| w[0] == "-a" && w[1] == "0000:03:00.0"));
    }

    #[test]
    fn unique_prefix_and_nul_rejected() {
        let a = EalBuilder::new().args().unwrap();
        let i = a.iter().position(|s| s == "--file-prefix").unwrap();
        assert!(a[i + 1].starts_with(&format!("vpcemu-{}-", std::process::id())));
        assert!(matches!(EalBuilder::new().vdev("a\0b").args(), Err(DpdkError::BadArgument(_))));
    }

    #[test]
    fn multi_process_shares_the_config_and_uses_hugepages() {
        let a = EalBuilder::new().hugepages(Hugepages::On).multi_process(true).file_prefix("p").args().unwrap();
        for gone in ["--in-memory", "--no-huge", "--no-shconf"] {
            assert!(!a.contains(&gone.to_string()), "{a:?}");
        }
        let i = a.iter().position(|s| s == "--file-prefix").unwrap();
        assert_eq!(a[i + 1], "p");
    }

    #[test]
    fn hugepages_parse() {
        assert_eq!("auto".parse::<Hugepages>().unwrap(), Hugepages::Auto);
        assert!("yes".parse::<Hugepages>().is_err());
    }

    #[test]
    fn leftovers_are_only_this_prefixs_files_and_directory() {
        let root = std::env::temp_dir().join(format!("vpcemu-eal-leftovers-{}", std::process::id()));
        let huge = root.join("huge");
        std::fs::create_dir_all(&huge).unwrap();
        for f in ["pmap_0", "pmap_12", "pmap_3-1", "pmap_", "pmap_x", "pqmap_0", "p2map_0", "other"] {
            std::fs::write(huge.join(f), b"").unwrap();
        }
        let mut found: Vec<String> = hugepage_files(std::slice::from_ref(&huge), "p")
            .iter()
            .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        found.sort();
        assert_eq!(found, ["pmap_0", "pmap_12", "pmap_3-1"]);

        // The runtime directory goes only when it is named by the prefix.
        let run = root.join("run");
        std::fs::create_dir_all(run.join("p")).unwrap();
        std::fs::write(run.join("p").join("config"), b"").unwrap();
        remove_runtime_dir(&run, "p");
        assert!(run.join("p").exists());
        remove_runtime_dir(&run.join("p"), "");
        assert!(run.join("p").exists());
        remove_runtime_dir(&run.join("p"), "p");
        assert!(!run.join("p").exists() && run.exists());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
