//! Device helpers shared by `vpcemu run` and `vpcemu passthrough`: naming devices to the
//! EAL, finding a port and saying why it is missing, what a vdev needs of the pools, and
//! how large the pools are.

use std::sync::Arc;

use mapping_client::topology::{Dataplane, Hugepages};

use crate::dpdk::{self, DpdkError, Eal, EalBuilder, Mempool, Port};

/// The EAL of a topology's `[dataplane]` with the devices `devices` (vdevs or PCI
/// addresses) and, when given, the file prefix.
pub fn eal_builder<'a>(dp: &Dataplane, file_prefix: Option<&str>, devices: impl Iterator<Item = &'a str>) -> EalBuilder {
    let hugepages = match dp.hugepages {
        Hugepages::Auto => dpdk::Hugepages::Auto,
        Hugepages::On => dpdk::Hugepages::On,
        Hugepages::Off => dpdk::Hugepages::Off,
    };
    let mut eal = EalBuilder::new().lcores(lcore_list(&dp.lcores)).memory_mb(dp.memory_mb).hugepages(hugepages);
    if let Some(p) = file_prefix {
        eal = eal.file_prefix(p);
    }
    devices.fold(eal, with_device)
}

/// The RX (small) and jumbo pools for ports whose RX needs are `needs` ([`rx_needs`]) and
/// `workers` workers, within `memory_mb`; an error says how many mbufs of which size did
/// not fit.
pub fn make_pools(memory_mb: u32, needs: &[(u64, bool)], workers: usize) -> Result<(Arc<Mempool>, Arc<Mempool>), String> {
    let held_small = needs.iter().filter(|n| n.1).map(|n| n.0).sum();
    let held_jumbo = needs.iter().filter(|n| !n.1).map(|n| n.0).sum();
    let (small, jumbo) = pool_sizes(memory_mb, needs.len(), workers, held_small, held_jumbo);
    let pool_err = |n: u32, what: &'static str| {
        move |e: DpdkError| format!("{e} ({n} mbufs of {what} in dataplane.memory_mb = {memory_mb})")
    };
    let rx_pool =
        Mempool::with_data_size("vpcemu-rx", small, 256, dpdk::RX_DATA_SIZE).map_err(pool_err(small, "2.4 KiB"))?;
    let pool = Mempool::new("vpcemu", jumbo, 256).map_err(pool_err(jumbo, "9.6 KiB"))?;
    Ok((Arc::new(rx_pool), Arc::new(pool)))
}

/// A PCI address (domain:bus:device.function or bus:device.function) rather than a vdev.
pub fn is_pci_address(dev: &str) -> bool {
    let parts: Vec<&str> = dev.split(':').collect();
    let hex = |s: &str, n: usize| s.len() == n && s.chars().all(|c| c.is_ascii_hexdigit());
    let devfn = |s: &str| s.split_once('.').is_some_and(|(d, f)| hex(d, 2) && f.len() == 1 && hex(f, 1));
    match parts.as_slice() {
        [dom, bus, df] => hex(dom, 4) && hex(bus, 2) && devfn(df),
        [bus, df] => hex(bus, 2) && devfn(df),
        _ => false,
    }
}

/// Name a device to the EAL: a PCI address is allowed, anything else is a vdev.
pub fn with_device(eal: EalBuilder, dev: &str) -> EalBuilder {
    if is_pci_address(dev) { eal.pci_device(dev) } else { eal.vdev(dev) }
}

/// Find a port by its vdev (or PCI) name and say why it is missing: a vdev that fails to
/// probe leaves the EAL up with no port, and DPDK logged the reason.
pub fn find_port(eal: &Eal, name: &str) -> Result<Port, DpdkError> {
    Port::by_name(name).map_err(|e| match e {
        DpdkError::NoSuchPort { name, .. } => {
            let detail = eal.logged_cause(&[&name]).map(|c| format!(": {c}")).unwrap_or_else(|| {
                format!(": the device did not probe ({} port(s) available)", eal.port_count())
            });
            DpdkError::NoSuchPort { name, detail }
        }
        other => other,
    })
}

/// The port id a DPDK error is about (0 when it names none).
pub fn port_id_of(e: &DpdkError) -> u16 {
    match e {
        DpdkError::Port { port, .. } => *port,
        _ => 0,
    }
}

/// The EAL's `-l` list.
pub fn lcore_list(lcores: &[u32]) -> String {
    lcores.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

/// Mbufs to create, small (RX) and jumbo: enough for every port's descriptors, the soft
/// queues, the workers' own packets and the frames net_pcap holds for `infinite_rx`,
/// within the memory the topology gives DPDK (about 60% of it for the pools; the RX pool
/// is served first, with at most two thirds of that).
pub fn pool_sizes(memory_mb: u32, ports: usize, workers: usize, held_small: u64, held_jumbo: u64) -> (u32, u32) {
    let per = |data: u16| u64::from(data) + 128 + 128 + 64;
    let (per_small, per_jumbo) = (per(dpdk::RX_DATA_SIZE), per(dpdk::MBUF_DATA_SIZE));
    let budget = u64::from(memory_mb) * 1024 * 1024 * 6 / 10;
    let small_want = 1024 + 2048 * ports as u64 + 512 * workers as u64 + held_small;
    let small = small_want.min(budget * 2 / 3 / per_small);
    let jumbo_want = 4096 + 2048 * ports as u64 + 1024 * workers as u64 + held_jumbo;
    let jumbo = jumbo_want.min(budget.saturating_sub(small * per_small) / per_jumbo);
    let cap = |n: u64| n.min(u64::from(u32::MAX)) as u32;
    (cap(small), cap(jumbo))
}

/// What a net_pcap vdev with `infinite_rx=1` keeps in mbufs: its whole `rx_pcap` file
/// (frames, longest frame). (0, 0) for any other vdev.
fn infinite_rx_frames(vdev: &str) -> (u64, usize) {
    let args: Vec<&str> = vdev.split(',').collect();
    if !args.iter().any(|a| a.trim() == "infinite_rx=1") {
        return (0, 0);
    }
    let Some(path) = args.iter().find_map(|a| a.trim().strip_prefix("rx_pcap=")) else { return (0, 0) };
    let Ok(bytes) = std::fs::read(path) else { return (0, 0) };
    match wire::pcap::Reader::new(&bytes) {
        Ok(r) => r.flatten().fold((0, 0), |(n, max), rec| (n + 1, max.max(rec.data.len()))),
        Err(_) => (0, 0),
    }
}

/// What a vdev's RX needs of the pools: the frames it holds for `infinite_rx`, and whether
/// its queues fill from the small pool although its driver does not advertise scatter RX
/// (`chains_anyway`): net_pcap chains long frames itself, except in `infinite_rx` replay,
/// which copies only the first segment of each stored frame (DPDK 22.11), so a replay file
/// with frames longer than a small mbuf needs the jumbo pool.
pub fn rx_needs(vdev: &str) -> (u64, bool) {
    let (held, longest) = infinite_rx_frames(vdev);
    (held, dpdk::vdev_name(vdev).starts_with("net_pcap") && longest <= usize::from(dpdk::RX_DATA_SIZE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pci_addresses() {
        assert!(is_pci_address("0000:03:00.0"));
        assert!(is_pci_address("03:00.1"));
        assert!(!is_pci_address("net_pcap0,rx_pcap=a.pcap"));
        assert!(!is_pci_address("net_null0"));
        assert!(!is_pci_address("0000:03:00"));
    }

    #[test]
    fn lcores_and_rx_needs() {
        assert_eq!(lcore_list(&[0, 2, 3]), "0,2,3");
        // Not a replay: nothing held; net_pcap chains, other drivers are asked.
        assert_eq!(rx_needs("net_pcap0,rx_pcap=/nonexistent.pcap"), (0, true));
        assert_eq!(rx_needs("net_tap0,iface=t0"), (0, false));
        assert_eq!(rx_needs("net_pcap0,rx_pcap=/nonexistent.pcap,infinite_rx=1"), (0, true));
    }

    #[test]
    fn pools_fit_the_memory_given() {
        let (small, jumbo) = pool_sizes(512, 4, 1, 0, 0);
        assert_eq!(small, 1024 + 2048 * 4 + 512);
        assert_eq!(jumbo, 4096 + 2048 * 4 + 1024);
        // A small memory: both capped within 60% of it, the RX pool at two thirds.
        let (small, jumbo) = pool_sizes(64, 8, 2, 100_000, 100_000);
        let per = |d: u16| u64::from(d) + 320;
        let used = u64::from(small) * per(dpdk::RX_DATA_SIZE) + u64::from(jumbo) * per(dpdk::MBUF_DATA_SIZE);
        assert!(used <= 64 * 1024 * 1024 * 6 / 10, "{small} + {jumbo} mbufs overflow the budget");
        assert!(u64::from(small) * per(dpdk::RX_DATA_SIZE) <= 64 * 1024 * 1024 * 6 / 10 * 2 / 3);
    }
}

/// The EAL options `--pdump` needs: a secondary process (`dpdk-dumpcap`) attaches to the
/// shared configuration and maps the hugepage files of a hugetlbfs mount, so the run uses
/// hugepages, not `--in-memory`, not `--no-huge --no-shconf`. Refused with the reason when
/// the machine has no hugetlbfs mount or too few free hugepages for `memory_mb`.
pub fn pdump_eal(eal: crate::dpdk::EalBuilder, memory_mb: u32) -> Result<crate::dpdk::EalBuilder, String> {
    if !crate::dpdk::eal::hugetlbfs_mounted() {
        return Err("--pdump needs a hugetlbfs mount for the memory dpdk-dumpcap maps (mount -t hugetlbfs nodev /dev/hugepages; scripts/setup.sh does)".into());
    }
    let free = crate::dpdk::eal::free_hugepages();
    if free * 2 < u64::from(memory_mb) {
        return Err(format!(
            "--pdump needs {memory_mb} MB of hugepages (dataplane.memory_mb), {} MB are free (echo N > /proc/sys/vm/nr_hugepages)",
            free * 2
        ));
    }
    Ok(eal.hugepages(crate::dpdk::Hugepages::On).multi_process(true))
}
