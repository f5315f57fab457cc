//! Scenario `ovs-geneve-egress` (run only when named): a data plane people would pick
//! instead of a Nitro card, doing the card's egress work on the same traffic. Open vSwitch
//! with DPDK (Debian's `openvswitch-switch-dpdk`, userspace datapath) reads the
//! `nitro-egress` pcap from net_pcap (infinite_rx) on lcore 1, matches each frame by one
//! OpenFlow rule per destination (in port, source MAC, source and destination address:
//! what the card's verify-send and route check), sets the tunnel destination (the
//! destination's host PA), the VNI (its VPC's) and the source-VPC Geneve option, and sends
//! it in Geneve out of net_null (no-rx=1).
//!
//! One difference OVS cannot avoid: its Geneve port carries Ethernet frames (protocol
//! 0x6558); OVS 3.1 has no L3 (`packet_type`) mode for Geneve (only GRE, VXLAN-GPE, LISP
//! and bareudp have one), so its frames keep the inner Ethernet header (14 bytes more)
//! where the card sends the bare IPv4 packet (protocol 0x0800).
//!
//! The whole OVS (ovsdb-server, ovs-vswitchd, its bridges and taps) lives in a network
//! namespace and a temporary directory of its own; [`Ovs`]'s drop stops it and removes
//! them, and puts back the hugepage count it found, also when a step fails.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::dpdk_tools::{cpu_share, thread_schedstat};
use crate::nitro;
use crate::report::{median, Row};

pub const NAME: &str = "ovs-geneve-egress";

const VSWITCHD: &str = "/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk";
const SCHEMA: &str = "/usr/share/openvswitch/vswitch.ovsschema";
/// DPDK memory for OVS (its shared mempool of up to 256k mbufs, and the 64k frames
/// net_pcap holds).
const SOCKET_MB: u64 = 1024;
/// OpenFlow port numbers of the input (net_pcap) and the Geneve port.
const IN_PORT: u32 = 10;
const TUNNEL_PORT: u32 = 2;
/// The underlay next hop (the card's `next_hop` in the nitro world), on br-phy's subnet.
const NEXT_HOP: Ipv4Addr = Ipv4Addr::new(198, 18, 255, 254);
const NEXT_HOP_MAC: &str = "02:00:c6:12:ff:fe";
/// How long the megaflow cache may take to fill.
const WARM_TIMEOUT: Duration = Duration::from_secs(300);

/// A running Open vSwitch of its own, torn down on drop.
struct Ovs {
    dir: PathBuf,
    netns: Option<String>,
    ovsdb: Option<Child>,
    vswitchd: Option<Child>,
    /// `nr_hugepages` before this run raised it.
    hugepages_found: Option<u64>,
}

fn run_tool(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.stdin(Stdio::null()).output().map_err(|e| format!("running {:?}: {e}", cmd.get_program()))?;
    if !out.status.success() {
        let args: Vec<_> = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        let shown = args.iter().take(6).cloned().collect::<Vec<_>>().join(" ");
        return Err(format!(
            "{} {shown}: {}",
            cmd.get_program().to_string_lossy(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn meminfo(key: &str) -> Option<u64> {
    std::fs::read_to_string("/proc/meminfo")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(key).and_then(|v| v.split_whitespace().next()?.parse().ok()))
}

const NR_HUGEPAGES: &str = "/proc/sys/vm/nr_hugepages";

/// Wait up to `limit` for `child` to end; kill it if it does not.
fn reap(child: &mut Child, limit: Duration) {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Ovs {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn env(&self, cmd: &mut Command) {
        for var in ["OVS_RUNDIR", "OVS_DBDIR", "OVS_LOGDIR", "OVS_SYSCONFDIR"] {
            cmd.env(var, &self.dir);
        }
    }

    fn tool(&self, program: &str, args: &[&str]) -> Result<String, String> {
        let mut cmd = Command::new(program);
        self.env(&mut cmd);
        run_tool(cmd.args(args))
    }

    fn vsctl(&self, args: &[&str]) -> Result<String, String> {
        let db = format!("--db=unix:{}", self.path("db.sock").display());
        self.tool("ovs-vsctl", &[&[db.as_str(), "--timeout=60"], args].concat())
    }

    fn appctl(&self, args: &[&str]) -> Result<String, String> {
        let target = self.path("vswitchd.ctl");
        self.tool("ovs-appctl", &[&["--timeout=60", "-t", target.to_str().unwrap_or_default()], args].concat())
    }

    fn ofctl(&self, args: &[&str]) -> Result<String, String> {
        self.tool("ovs-ofctl", args)
    }

    fn ip(&self, args: &[&str]) -> Result<String, String> {
        let ns = self.netns.as_deref().unwrap_or_default();
        run_tool(Command::new("ip").args(["-n", ns]).args(args))
    }

    /// Reserve hugepages for `SOCKET_MB` if fewer are free (remembering the count found).
    fn reserve_hugepages(&mut self) -> Result<(), String> {
        if !std::fs::read_to_string("/proc/mounts").unwrap_or_default().contains(" hugetlbfs ") {
            return Err("no hugetlbfs mounted (scripts/setup.sh mounts /dev/hugepages)".into());
        }
        let page_mb = meminfo("Hugepagesize:").unwrap_or(2048) / 1024;
        let need = SOCKET_MB / page_mb.max(1);
        let free = meminfo("HugePages_Free:").unwrap_or(0);
        if free >= need {
            return Ok(());
        }
        let text = std::fs::read_to_string(NR_HUGEPAGES).map_err(|e| format!("{NR_HUGEPAGES}: {e}"))?;
        let found: u64 = text.trim().parse().map_err(|_| format!("{NR_HUGEPAGES}: {text:?}"))?;
        self.hugepages_found = Some(found);
        std::fs::write(NR_HUGEPAGES, format!("{}\n", found + need - free)).map_err(|e| format!("{NR_HUGEPAGES}: {e}"))?;
        if meminfo("HugePages_Free:").unwrap_or(0) < need {
            return Err(format!("could not reserve {need} free hugepages for Open vSwitch"));
        }
        Ok(())
    }

    /// Start ovsdb-server and ovs-vswitchd (DPDK on lcore 0, the PMD thread on lcore 1).
    fn start() -> Result<Ovs, String> {
        if !Path::new(VSWITCHD).exists() {
            return Err(format!(
                "{NAME} needs Open vSwitch with DPDK ({VSWITCHD}): apt-get install openvswitch-switch-dpdk \
                 (scripts/setup.sh installs it where the package exists)"
            ));
        }
        let tag = format!("vpcbench-ovs-{}", std::process::id());
        let mut ovs = Ovs {
            dir: std::env::temp_dir().join(&tag),
            netns: None,
            ovsdb: None,
            vswitchd: None,
            hugepages_found: None,
        };
        std::fs::create_dir_all(&ovs.dir).map_err(|e| format!("{}: {e}", ovs.dir.display()))?;
        run_tool(Command::new("ip").args(["netns", "add", &tag]))?;
        ovs.netns = Some(tag.clone());
        ovs.reserve_hugepages()?;
        let db = ovs.path("conf.db");
        run_tool(Command::new("ovsdb-tool").arg("create").arg(&db).arg(SCHEMA))?;
        let mut cmd = Command::new("ovsdb-server");
        ovs.env(&mut cmd);
        cmd.arg(&db)
            .arg(format!("--remote=punix:{}", ovs.path("db.sock").display()))
            .arg(format!("--unixctl={}", ovs.path("ovsdb.ctl").display()))
            .arg(format!("--log-file={}", ovs.path("ovsdb.log").display()));
        ovs.ovsdb = Some(cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().map_err(|e| format!("ovsdb-server: {e}"))?);
        ovs.until("ovsdb-server answers", Duration::from_secs(20), |o| Ok(o.vsctl(&["--no-wait", "init"]).is_ok()))?;
        let extra = format!("other_config:dpdk-extra=--no-pci --in-memory --file-prefix {tag}");
        let mem = format!("other_config:dpdk-socket-mem={SOCKET_MB}");
        ovs.vsctl(&[
            "--no-wait", "set", "Open_vSwitch", ".", "other_config:dpdk-init=true", "other_config:dpdk-lcore-mask=0x1",
            "other_config:pmd-cpu-mask=0x2", &mem, &extra, "other_config:max-idle=60000",
            "other_config:flow-limit=200000",
        ])?;
        let mut cmd = Command::new("ip");
        ovs.env(&mut cmd);
        cmd.args(["netns", "exec", &tag, VSWITCHD])
            .arg(format!("unix:{}", ovs.path("db.sock").display()))
            .arg(format!("--unixctl={}", ovs.path("vswitchd.ctl").display()))
            .arg(format!("--log-file={}", ovs.path("vswitchd.log").display()));
        ovs.vswitchd = Some(cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().map_err(|e| format!("{VSWITCHD}: {e}"))?);
        ovs.until("ovs-vswitchd initialises DPDK", Duration::from_secs(120), |o| {
            Ok(o.vsctl(&["get", "Open_vSwitch", ".", "dpdk_initialized"]).is_ok_and(|v| v.trim() == "true"))
        })?;
        Ok(ovs)
    }

    /// Poll `ready` every 200 ms for up to `limit`; fails if ovs-vswitchd or ovsdb-server ended.
    fn until(&mut self, what: &str, limit: Duration, mut ready: impl FnMut(&Ovs) -> Result<bool, String>) -> Result<(), String> {
        let start = Instant::now();
        loop {
            if ready(self)? {
                return Ok(());
            }
            let dir = &self.dir;
            for (name, log, child) in
                [("ovs-vswitchd", "vswitchd.log", &mut self.vswitchd), ("ovsdb-server", "ovsdb.log", &mut self.ovsdb)]
            {
                if let Some(Ok(Some(status))) = child.as_mut().map(Child::try_wait) {
                    let log = std::fs::read_to_string(dir.join(log)).unwrap_or_default();
                    let last = log.lines().rev().take(3).collect::<Vec<_>>().join(" | ");
                    return Err(format!("{name} ended ({status}) before {what}: {last}"));
                }
            }
            if start.elapsed() > limit {
                return Err(format!("timed out after {limit:?} waiting until {what}"));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Bridges, ports, the underlay route and the rules: `destinations` (address, VNI, PA)
    /// each get one rule on br0; br-phy forwards what the tunnel sends out of out0.
    fn configure(&mut self, pcap: &Path, destinations: &[(Ipv4Addr, u32, Ipv4Addr)]) -> Result<(), String> {
        self.vsctl(&["add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=netdev", "fail_mode=secure"])?;
        let hwaddr = format!("other_config:hwaddr={}", mac(&wire::vpc::card_mac(nitro::LOCAL_PA).0));
        self.vsctl(&["add-br", "br-phy", "--", "set", "bridge", "br-phy", "datapath_type=netdev", "fail_mode=secure", &hwaddr])?;
        self.vsctl(&[
            "add-port", "br-phy", "out0", "--", "set", "Interface", "out0", "type=dpdk",
            "options:dpdk-devargs=net_null0,no-rx=1",
        ])?;
        let tunnel = format!("ofport_request={TUNNEL_PORT}");
        self.vsctl(&[
            "add-port", "br0", "gnv0", "--", "set", "Interface", "gnv0", "type=geneve", "options:remote_ip=flow",
            "options:key=flow", "options:csum=false", &tunnel,
        ])?;
        self.ip(&["addr", "add", &format!("{}/16", nitro::LOCAL_PA), "dev", "br-phy"])?;
        self.ip(&["link", "set", "br-phy", "up"])?;
        self.appctl(&["ovs/route/add", "198.19.0.0/16", "br-phy", &NEXT_HOP.to_string()])?;
        self.appctl(&["tnl/arp/set", "br-phy", &NEXT_HOP.to_string(), NEXT_HOP_MAC])?;
        self.ofctl(&["add-flow", "br-phy", "in_port=LOCAL,actions=output:out0"])?;
        // The source-VPC option of ARCHITECTURE section 3: class 0xFFF0, type 1, 4 bytes.
        self.ofctl(&["add-tlv-map", "br0", "{class=0xfff0,type=0x01,len=4}->tun_metadata0"])?;
        let flows = self.path("flows.txt");
        std::fs::write(&flows, rules(destinations)).map_err(|e| format!("{}: {e}", flows.display()))?;
        self.ofctl(&["add-flows", "br0", flows.to_str().unwrap_or_default()])?;
        let pcap = pcap.canonicalize().map_err(|e| format!("{}: {e}", pcap.display()))?;
        self.vsctl(&[
            "add-port", "br0", "in0", "--", "set", "Interface", "in0", "type=dpdk",
            &format!("options:dpdk-devargs=net_pcap0,rx_pcap={},infinite_rx=1", pcap.display()),
            &format!("ofport_request={IN_PORT}"),
        ])?;
        Ok(())
    }

    fn pmd_stats(&self) -> Result<PmdStats, String> {
        PmdStats::parse(&self.appctl(&["dpif-netdev/pmd-stats-show", "-pmd", "1"])?)
    }

    /// (megaflows in the datapath, out0's TX packets) from `dpctl/show -s`.
    fn datapath(&self) -> Result<(u64, u64), String> {
        let text = self.appctl(&["dpctl/show", "-s"])?;
        let flows = text.lines().find_map(|l| l.trim().strip_prefix("flows:")?.trim().parse().ok());
        let mut lines = text.lines().skip_while(|l| !(l.trim_start().starts_with("port ") && l.contains(": out0 ")));
        let tx = lines.find_map(|l| l.trim().strip_prefix("TX packets:")?.split_whitespace().next()?.parse().ok());
        match (flows, tx) {
            (Some(f), Some(t)) => Ok((f, t)),
            _ => Err(format!("could not read dpctl/show -s: {}", text.lines().take(12).collect::<Vec<_>>().join(" | "))),
        }
    }

    /// The PMD thread's schedstat (nanoseconds run, nanoseconds waited).
    fn pmd_schedstat(&self) -> Option<(u64, u64)> {
        thread_schedstat(self.vswitchd.as_ref()?.id(), &["pmd"])
    }
}

impl Drop for Ovs {
    fn drop(&mut self) {
        if let Some(mut child) = self.vswitchd.take() {
            // --cleanup: the datapath and its taps go too.
            let _ = self.appctl(&["exit", "--cleanup"]);
            reap(&mut child, Duration::from_secs(15));
        }
        if let Some(mut child) = self.ovsdb.take() {
            let target = self.path("ovsdb.ctl");
            let _ = self.tool("ovs-appctl", &["--timeout=5", "-t", target.to_str().unwrap_or_default(), "exit"]);
            reap(&mut child, Duration::from_secs(5));
        }
        if let Some(ns) = self.netns.take() {
            if let Err(e) = run_tool(Command::new("ip").args(["netns", "del", &ns])) {
                eprintln!("vpcemu-bench: {NAME}: {e}");
            }
        }
        if let Some(n) = self.hugepages_found.take() {
            if let Err(e) = std::fs::write(NR_HUGEPAGES, format!("{n}\n")) {
                eprintln!("vpcemu-bench: {NAME}: restoring {NR_HUGEPAGES} to {n}: {e}");
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn mac(b: &[u8; 6]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(":")
}

/// One OpenFlow rule per destination: the local instance's frames (its port, MAC and
/// address) to `dst` leave by the Geneve port towards `pa` with `vni` and the source-VPC
/// option.
fn rules(destinations: &[(Ipv4Addr, u32, Ipv4Addr)]) -> String {
    let mut t = String::with_capacity(destinations.len() * 220);
    let src_mac = mac(&nitro::LOCAL_MAC);
    for (dst, vni, pa) in destinations {
        let _ = writeln!(
            t,
            "priority=10,in_port={IN_PORT},dl_src={src_mac},ip,nw_src={},nw_dst={dst},\
             actions=set_field:{pa}->tun_dst,set_field:{vni}->tun_id,set_field:{}->tun_metadata0,output:{TUNNEL_PORT}",
            nitro::LOCAL_IP,
            nitro::LOCAL_VNI,
        );
    }
    t
}

/// The PMD thread's counters since the last `pmd-stats-clear`.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct PmdStats {
    packets: u64,
    emc_hits: u64,
    smc_hits: u64,
    megaflow_hits: u64,
    upcalls: u64,
    failed_upcalls: u64,
    idle_cycles: u64,
    processing_cycles: u64,
}

impl PmdStats {
    /// `dpif-netdev/pmd-stats-show` of one PMD thread (OVS 3.1's wording).
    fn parse(text: &str) -> Result<PmdStats, String> {
        let field = |name: &str| -> Result<u64, String> {
            text.lines()
                .find_map(|l| l.trim().strip_prefix(name)?.strip_prefix(':')?.split_whitespace().next()?.parse().ok())
                .ok_or_else(|| format!("no {name:?} in pmd-stats-show: {}", text.lines().take(4).collect::<Vec<_>>().join(" | ")))
        };
        Ok(PmdStats {
            packets: field("packets received")?,
            emc_hits: field("emc hits")?,
            smc_hits: field("smc hits")?,
            megaflow_hits: field("megaflow hits")?,
            upcalls: field("miss with success upcall")?,
            failed_upcalls: field("miss with failed upcall")?,
            idle_cycles: field("idle cycles")?,
            processing_cycles: field("processing cycles")?,
        })
    }

    fn cycles(&self) -> u64 {
        self.idle_cycles + self.processing_cycles
    }
}

/// One measuring window.
struct Window {
    pps: f64,
    /// The PMD's TSC cycles (idle and processing) per packet received.
    cycles: f64,
    processing_cycles: f64,
    /// The share of the window the PMD thread ran.
    cpu_share: f64,
    stats: PmdStats,
}

fn measure(ovs: &Ovs, seconds: f64) -> Result<Window, String> {
    ovs.appctl(&["dpif-netdev/pmd-stats-clear"])?;
    let (_, tx0) = ovs.datapath()?;
    let (sched0, t0) = (ovs.pmd_schedstat(), Instant::now());
    std::thread::sleep(Duration::from_secs_f64(seconds));
    let (sched1, elapsed) = (ovs.pmd_schedstat(), t0.elapsed().as_secs_f64());
    let (_, tx1) = ovs.datapath()?;
    let stats = ovs.pmd_stats()?;
    if stats.packets == 0 || tx1 <= tx0 {
        return Err(format!("{NAME}: no packets moved in the window ({stats:?}, out0 tx {tx0} -> {tx1})"));
    }
    let share = match (sched0, sched1) {
        (Some(a), Some(b)) => cpu_share(b.0.saturating_sub(a.0), b.1.saturating_sub(a.1)),
        _ => 1.0,
    };
    let n = stats.packets as f64;
    Ok(Window {
        pps: (tx1 - tx0) as f64 / elapsed,
        cycles: stats.cycles() as f64 / n,
        processing_cycles: stats.processing_cycles as f64 / n,
        cpu_share: share,
        stats,
    })
}

/// Run the scenario: set OVS up, wait for its megaflow cache to hold every destination
/// and its upcalls to stop, then measure `repeat` windows of `seconds`.
pub fn run(s: &nitro::Setup) -> Result<Vec<Row>, String> {
    let (pcap, _) = nitro::egress_pcap(s.run.work, s.mappings)?;
    let destinations = nitro::egress_destinations(s.mappings);
    let mut ovs = Ovs::start()?;
    ovs.configure(&pcap, &destinations)?;
    let start = Instant::now();
    let want = destinations.len() as u64;
    let mut last_upcalls = u64::MAX;
    ovs.until("the megaflow cache is warm", WARM_TIMEOUT, |o| {
        let (flows, _) = o.datapath()?;
        let upcalls = o.pmd_stats()?.upcalls;
        let settled = flows >= want && upcalls == last_upcalls;
        last_upcalls = upcalls;
        if !settled {
            std::thread::sleep(Duration::from_millis(800));
        }
        Ok(settled)
    })?;
    let warm_seconds = start.elapsed().as_secs_f64();
    let (megaflows, _) = ovs.datapath()?;
    // What the datapath does to a frame of the first destination (tnl_push with Geneve).
    let (dst, _, _) = destinations.first().copied().ok_or("no destinations")?;
    let trace = ovs.appctl(&[
        "ofproto/trace",
        "br0",
        &format!(
            "in_port={IN_PORT},dl_src={},dl_dst=02:00:00:ff:00:00,udp,nw_src={},nw_dst={dst},nw_ttl=64",
            mac(&nitro::LOCAL_MAC),
            nitro::LOCAL_IP
        ),
    ])?;
    let actions = trace
        .lines()
        .find_map(|l| l.strip_prefix("Datapath actions: "))
        .unwrap_or_default()
        .to_string();
    if !(actions.contains("tnl_push") && actions.contains("geneve(") && actions.contains("class=0xfff0")) {
        return Err(format!("{NAME}: OVS does not encapsulate as configured: datapath actions {actions:?}"));
    }
    let windows: Vec<Window> = (0..s.run.repeat.max(1)).map(|_| measure(&ovs, s.run.seconds)).collect::<Result<_, _>>()?;
    drop(ovs);
    let med = |f: &dyn Fn(&Window) -> f64| median(windows.iter().map(f).collect::<Vec<f64>>());
    let pps = med(&|w| w.pps);
    let cycles = med(&|w| w.cycles);
    let last = windows.last().map(|w| w.stats).unwrap_or_default();
    let hits = last.packets.max(1) as f64;
    let mut row = Row::new(NAME);
    row.mpps = Some(pps / 1e6);
    row.cycles_per_packet = Some(cycles);
    Ok(vec![row
        .with("cpu_cycles_per_packet", med(&|w| w.cycles * w.cpu_share))
        .with("processing_cycles_per_packet", med(&|w| w.processing_cycles))
        .with("cpu_share", med(&|w| w.cpu_share))
        .with("openflow_rules", want)
        .with("megaflows", megaflows)
        .with("warm_up_seconds", warm_seconds)
        .with("emc_hit_share", last.emc_hits as f64 / hits)
        .with("smc_hit_share", last.smc_hits as f64 / hits)
        .with("megaflow_hit_share", last.megaflow_hits as f64 / hits)
        .with("upcalls_in_window", last.upcalls + last.failed_upcalls)
        .with("datapath_actions", actions)])
}

/// With `nitro-egress` measured in the same invocation, make it the OVS row's baseline:
/// `ratio` is OVS's Mpps over the card's, and the card's cycles stand beside OVS's.
pub fn compare(rows: &mut [Row]) {
    let Some(nitro) = rows.iter().find(|r| r.name == "nitro-egress").cloned() else { return };
    for row in rows.iter_mut().filter(|r| r.name == NAME) {
        row.baseline = Some("nitro-egress".into());
        row.baseline_mpps = nitro.mpps;
        row.ratio = row.mpps.zip(nitro.mpps).map(|(a, b)| a / b);
        if let Some(c) = nitro.cycles_per_packet {
            row.extra.insert("baseline_cycles_per_packet".into(), c.into());
        }
        if let Some(c) = nitro.extra.get("cpu_cycles_per_packet") {
            row.extra.insert("baseline_cpu_cycles_per_packet".into(), c.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ovs_3_1_pmd_stats() {
        let text = "pmd thread numa_id 0 core_id 1:\n  packets received: 9316224\n  packet recirculations: 0\n  \
                    avg. datapath passes per packet: 1.00\n  phwol hits: 0\n  mfex opt hits: 0\n  simple match hits: 0\n  \
                    emc hits: 93162\n  smc hits: 0\n  megaflow hits: 9223040\n  \
                    avg. subtable lookups per megaflow hit: 1.00\n  miss with success upcall: 22\n  \
                    miss with failed upcall: 0\n  avg. packets per output batch: 31.98\n  \
                    idle cycles: 1000 (0.00%)\n  processing cycles: 14000000000 (100.00%)\n  \
                    avg cycles per packet: 1502.75 (14000001000/9316224)\n  avg processing cycles per packet: 1502.75 (14000000000/9316224)\n";
        let s = PmdStats::parse(text).unwrap();
        assert_eq!(
            s,
            PmdStats {
                packets: 9_316_224,
                emc_hits: 93_162,
                smc_hits: 0,
                megaflow_hits: 9_223_040,
                upcalls: 22,
                failed_upcalls: 0,
                idle_cycles: 1000,
                processing_cycles: 14_000_000_000,
            }
        );
        assert_eq!(s.cycles(), 14_000_001_000);
        assert!(PmdStats::parse("pmd thread numa_id 0 core_id 1:\n  packets received: 3\n").is_err());
    }

    #[test]
    fn one_rule_per_destination_sets_tunnel_vni_and_source_vpc() {
        let d = [
            (Ipv4Addr::new(10, 0, 0, 4), 101, Ipv4Addr::new(198, 19, 0, 0)),
            (Ipv4Addr::new(10, 3, 1, 7), 104, Ipv4Addr::new(198, 19, 0, 63)),
        ];
        let t = rules(&d);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(
            lines[1],
            "priority=10,in_port=10,dl_src=02:00:0a:00:00:0a,ip,nw_src=10.0.0.10,nw_dst=10.3.1.7,\
             actions=set_field:198.19.0.63->tun_dst,set_field:104->tun_id,set_field:101->tun_metadata0,output:2"
        );
    }

    #[test]
    fn the_ovs_row_takes_nitro_egress_as_its_baseline() {
        let mut nitro = Row::new("nitro-egress").with("cpu_cycles_per_packet", 200.0);
        nitro.mpps = Some(8.0);
        nitro.cycles_per_packet = Some(325.0);
        let mut ovs = Row::new(NAME);
        ovs.mpps = Some(2.0);
        let mut rows = vec![nitro, ovs];
        compare(&mut rows);
        assert_eq!(rows[1].baseline.as_deref(), Some("nitro-egress"));
        assert_eq!(rows[1].ratio, Some(0.25));
        assert_eq!(rows[1].extra["baseline_cycles_per_packet"], 325.0);
        assert_eq!(rows[1].extra["baseline_cpu_cycles_per_packet"], 200.0);
    }
}
