//! Ethernet ports: find by device name, configure queues, descriptors and MTU, start and
//! stop, burst I/O through per-queue handles, and ethdev statistics.
//!
//! Queue handles are `Send` and not `Clone`: each RX or TX queue belongs to exactly one
//! lcore, which is what lets the driver skip locking. `Port` stops and closes the device
//! on drop, which releases any mbufs its queues still hold.

use std::ffi::{CStr, CString, c_char};

use super::error::{DpdkError, Result, strerror};
use super::ffi;
use arrayvec::ArrayVec;

use super::mbuf::{Mbuf, MbufBurst};
use super::mempool::Mempool;

/// Queue and descriptor layout for a port.
#[derive(Debug, Clone)]
pub struct PortConfig {
    pub rx_queues: u16,
    pub tx_queues: u16,
    pub rx_desc: u16,
    pub tx_desc: u16,
    /// MTU to set (clamped to what the device allows; devices without MTU control keep
    /// their own).
    pub mtu: u16,
    /// Put the port in promiscuous mode (for net_tap and real NICs).
    pub promiscuous: bool,
}

impl Default for PortConfig {
    fn default() -> Self {
        PortConfig { rx_queues: 1, tx_queues: 1, rx_desc: 1024, tx_desc: 1024, mtu: 9100, promiscuous: true }
    }
}

/// Counters from `rte_eth_stats_get`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortStats {
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// Dropped by the device: no free descriptor.
    pub rx_missed: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    /// RX failures for lack of mbufs.
    pub rx_nombuf: u64,
}

/// The two pools a port may receive into (see [`Port::configure`]).
#[derive(Debug, Clone, Copy)]
pub struct RxPools<'a> {
    /// Small mbufs ([`super::mempool::RX_DATA_SIZE`]).
    pub small: &'a Mempool,
    /// Jumbo mbufs, for a device that can neither fit nor chain its longest frame.
    pub jumbo: &'a Mempool,
    /// The driver chains long frames without advertising scatter RX.
    pub chains_anyway: bool,
}

/// The device part of a vdev string ("net_pcap0" of "net_pcap0,rx_pcap=a.pcap").
pub fn vdev_name(vdev: &str) -> &str {
    vdev.split(',').next().unwrap_or(vdev).trim()
}

/// A configured ethdev port.
#[derive(Debug)]
pub struct Port {
    id: u16,
    name: String,
    cfg: PortConfig,
    started: bool,
    rx_taken: u64,
    tx_taken: u64,
}

fn check(port: u16, name: &str, op: &'static str, rc: i32) -> Result<()> {
    if rc < 0 {
        Err(DpdkError::Port { port, name: name.to_string(), op, code: -rc, message: strerror(-rc) })
    } else {
        Ok(())
    }
}

impl Port {
    /// Find a probed port by device name (a vdev name such as "net_pcap0", or a PCI
    /// address). A vdev that failed to probe leaves no port: that is an error here.
    pub fn by_name(name: &str) -> Result<Port> {
        let cname = CString::new(name).map_err(|_| DpdkError::BadArgument(name.to_string()))?;
        let mut id = 0u16;
        // SAFETY: cname is a valid C string; id is a valid out-pointer. The EAL is up
        // (ports only exist after Eal::init; before it the lookup fails cleanly).
        let rc = unsafe { ffi::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut id) };
        if rc != 0 {
            return Err(DpdkError::NoSuchPort { name: name.to_string(), detail: String::new() });
        }
        Ok(Port { id, name: name.to_string(), cfg: PortConfig::default(), started: false, rx_taken: 0, tx_taken: 0 })
    }

    pub fn id(&self) -> u16 {
        self.id
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The name DPDK gives the port.
    pub fn dpdk_name(&self) -> String {
        let mut buf = [0 as c_char; 64];
        // SAFETY: buf has RTE_ETH_NAME_MAX_LEN (64) bytes as the API requires.
        let rc = unsafe { ffi::rte_eth_dev_get_name_by_port(self.id, buf.as_mut_ptr()) };
        if rc != 0 {
            return self.name.clone();
        }
        // SAFETY: on success the buffer holds a NUL-terminated name.
        unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy().into_owned()
    }

    /// Configure queues and MTU. Call before `start`.
    ///
    /// RX queues fill from `rx.small` when a frame of the MTU fits its mbufs, when the
    /// device can chain longer frames (scatter RX, switched on whenever the device offers
    /// it), or when `rx.chains_anyway` says the driver chains them without advertising it
    /// (net_pcap); otherwise from `rx.jumbo`. The MTU is `cfg.mtu` within what the device
    /// allows: [`Port::mtu`] says what it became.
    pub fn configure(&mut self, cfg: &PortConfig, rx: RxPools<'_>) -> Result<()> {
        let (id, name) = (self.id, self.name.clone());
        let mut info = ffi::rte_eth_dev_info::default();
        // SAFETY: info is a valid out-struct for this port id.
        check(id, &name, "dev_info_get", unsafe { ffi::rte_eth_dev_info_get(id, &mut info) })?;
        let rxq = cfg.rx_queues.min(info.max_rx_queues.max(1));
        let txq = cfg.tx_queues.min(info.max_tx_queues.max(1));
        if rxq != cfg.rx_queues || txq != cfg.tx_queues {
            return Err(DpdkError::Port {
                port: id,
                name,
                op: "configure",
                code: libc::EINVAL,
                message: format!(
                    "device has {} rx / {} tx queues at most, {} / {} asked",
                    info.max_rx_queues, info.max_tx_queues, cfg.rx_queues, cfg.tx_queues
                ),
            });
        }
        let mut conf = ffi::rte_eth_conf::default();
        let max_mtu = if info.max_mtu == 0 { 1500 } else { info.max_mtu };
        // The frame (MTU + L2 overhead) must also fit the device's max_rx_pktlen (net_tap:
        // max_mtu 65535 but 1522-byte frames). The overhead: max_rx_pktlen - max_mtu when
        // the driver reports a real max_mtu; else Ethernet header, one 802.1Q tag and CRC
        // (22 bytes), as net_tap counts them (its 1522 is RTE_ETHER_MAX_VLAN_FRAME_LEN, and
        // its TX refuses frames over MTU + 22): such a device carries 1500-byte IP packets.
        // (ethdev itself counts 18 and would accept 1504, which the kernel tap does not
        // default to and no peer expects.)
        let pktlen = info.max_rx_pktlen;
        let overhead = if max_mtu != u16::MAX && pktlen > u32::from(max_mtu) {
            pktlen - u32::from(max_mtu)
        } else {
            22
        };
        let max_mtu = match pktlen.checked_sub(overhead) {
            Some(m) if pktlen != 0 => max_mtu.min(u16::try_from(m).unwrap_or(u16::MAX)),
            _ => max_mtu,
        };
        let min_mtu = info.min_mtu.max(68).min(max_mtu);
        conf.rxmode.mtu = u32::from(cfg.mtu.clamp(min_mtu, max_mtu));
        let frame = conf.rxmode.mtu.saturating_add(overhead.max(18));
        // SAFETY: returns a compile-time constant through the shim.
        let scatter_bit = unsafe { ffi::vpcemu_rx_offload_scatter() };
        let fits = frame <= u32::from(rx.small.data_size());
        // Scatter RX whenever the device offers it, even when a frame of its MTU fits one
        // small mbuf: a device may deliver longer frames than its MTU (net_tap passes on
        // whatever the kernel interface sends, 9015 bytes at MTU 9001), and without scatter
        // it drops them as RX errors before any stage could count why. (At the 9100 asked
        // for, a frame never fits a small mbuf: this only changes devices capped lower.)
        let scatter = info.rx_offload_capa & scatter_bit != 0;
        if scatter {
            conf.rxmode.offloads |= scatter_bit;
        }
        let pool = if fits || scatter || rx.chains_anyway { rx.small } else { rx.jumbo };
        // SAFETY: conf is a valid, zero-initialised configuration struct that the call copies.
        check(id, &name, "configure", unsafe { ffi::rte_eth_dev_configure(id, rxq, txq, &conf) })?;
        let (mut nrx, mut ntx) = (cfg.rx_desc, cfg.tx_desc);
        // SAFETY: valid port id and out-pointers.
        check(id, &name, "adjust_nb_rx_tx_desc", unsafe {
            ffi::rte_eth_dev_adjust_nb_rx_tx_desc(id, &mut nrx, &mut ntx)
        })?;
        // SAFETY: plain query.
        let socket = unsafe { ffi::rte_eth_dev_socket_id(id) };
        let socket = if socket < 0 { 0 } else { socket as u32 };
        for q in 0..rxq {
            // SAFETY: the port is configured with rxq queues; pool is a live pktmbuf pool
            // that outlives the port (the runtime drops ports first); NULL rxconf = defaults.
            check(id, &name, "rx_queue_setup", unsafe {
                ffi::rte_eth_rx_queue_setup(id, q, nrx, socket, std::ptr::null(), pool.as_ptr())
            })?;
        }
        for q in 0..txq {
            // SAFETY: as above; NULL txconf = defaults.
            check(id, &name, "tx_queue_setup", unsafe {
                ffi::rte_eth_tx_queue_setup(id, q, ntx, socket, std::ptr::null())
            })?;
        }
        self.cfg = cfg.clone();
        Ok(())
    }

    pub fn start(&mut self) -> Result<()> {
        // SAFETY: configured port id.
        check(self.id, &self.name, "start", unsafe { ffi::rte_eth_dev_start(self.id) })?;
        self.started = true;
        if self.cfg.promiscuous {
            // Not every device supports it (-ENOTSUP); that is not an error for us.
            // SAFETY: started port id.
            let _ = unsafe { ffi::rte_eth_promiscuous_enable(self.id) };
        }
        Ok(())
    }

    pub fn stop(&mut self) -> Result<()> {
        if self.started {
            self.started = false;
            // SAFETY: started port id; no lcore polls it any more (workers are joined
            // before the runtime stops ports).
            check(self.id, &self.name, "stop", unsafe { ffi::rte_eth_dev_stop(self.id) })?;
        }
        Ok(())
    }

    /// The RX queue handle for queue `q`; each queue can be taken once.
    pub fn rx_queue(&mut self, q: u16) -> Option<RxQueue> {
        if q >= self.cfg.rx_queues || q >= 64 || self.rx_taken & (1 << q) != 0 {
            return None;
        }
        self.rx_taken |= 1 << q;
        Some(RxQueue { port: self.id, queue: q })
    }

    /// The TX queue handle for queue `q`; each queue can be taken once.
    pub fn tx_queue(&mut self, q: u16) -> Option<TxQueue> {
        if q >= self.cfg.tx_queues || q >= 64 || self.tx_taken & (1 << q) != 0 {
            return None;
        }
        self.tx_taken |= 1 << q;
        Some(TxQueue { port: self.id, queue: q })
    }

    pub fn stats(&self) -> PortStats {
        stats_of(self.id)
    }

    /// The port's MTU (the largest IP packet it carries), as configured; `None` if the
    /// device does not say.
    pub fn mtu(&self) -> Option<u16> {
        let mut mtu = 0u16;
        // SAFETY: mtu is a valid out-pointer; an invalid id just returns an error.
        let rc = unsafe { ffi::rte_eth_dev_get_mtu(self.id, &mut mtu) };
        (rc == 0 && mtu != 0).then_some(mtu)
    }
}

/// Ethdev statistics of a port id (zeros if the port is gone).
pub fn stats_of(port: u16) -> PortStats {
    let mut s = ffi::rte_eth_stats::default();
    // SAFETY: s is a valid out-struct; an invalid id just returns an error.
    let rc = unsafe { ffi::rte_eth_stats_get(port, &mut s) };
    if rc != 0 {
        return PortStats::default();
    }
    PortStats {
        rx_packets: s.ipackets,
        tx_packets: s.opackets,
        rx_bytes: s.ibytes,
        tx_bytes: s.obytes,
        rx_missed: s.imissed,
        rx_errors: s.ierrors,
        tx_errors: s.oerrors,
        rx_nombuf: s.rx_nombuf,
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        let _ = self.stop();
        // SAFETY: stopped port id owned by this value; closing releases its queues and
        // any mbufs they hold. Nothing uses the id afterwards.
        unsafe {
            ffi::rte_eth_dev_close(self.id);
        }
    }
}

/// One RX queue of a started port, owned by one lcore.
#[derive(Debug)]
pub struct RxQueue {
    port: u16,
    queue: u16,
}

impl RxQueue {
    pub fn port_id(&self) -> u16 {
        self.port
    }

    /// Receive up to `max` packets (bounded by the burst's room) into `burst`.
    #[inline]
    pub fn rx_burst(&mut self, burst: &mut MbufBurst, max: usize) -> usize {
        let n = max.min(burst.room());
        if n == 0 {
            return 0;
        }
        // SAFETY: the port is started and this handle is the only user of the queue; the
        // driver writes at most n (<= room) mbuf pointers into the spare slots, each a
        // valid mbuf whose ownership passes to us.
        unsafe {
            let got = usize::from(ffi::vpcemu_rx_burst(self.port, self.queue, burst.spare_ptr(), n as u16));
            burst.assume_filled(got.min(n));
            got.min(n)
        }
    }
}

/// One TX queue of a started port, owned by one lcore.
#[derive(Debug)]
pub struct TxQueue {
    port: u16,
    queue: u16,
}

/// What a `tx_burst` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TxResult {
    pub sent: usize,
    /// Packets the device did not take, freed.
    pub dropped: usize,
}

impl TxQueue {
    pub fn port_id(&self) -> u16 {
        self.port
    }

    /// Send every packet in `burst`; what the device does not take is freed and counted.
    /// The burst is empty afterwards.
    #[inline]
    pub fn tx_burst(&mut self, burst: &mut MbufBurst) -> TxResult {
        let n = burst.len();
        if n == 0 {
            return TxResult::default();
        }
        // SAFETY: the port is started and this handle is the only user of the queue; the
        // first n slots are owned mbufs. The driver takes ownership of the first `sent`.
        let sent = unsafe { usize::from(ffi::vpcemu_tx_burst(self.port, self.queue, burst.as_raw_ptr(), n as u16)) };
        let sent = sent.min(n);
        // SAFETY: the driver owns the first `sent` packets now.
        unsafe { burst.consume_front(sent) };
        let dropped = burst.free_all();
        TxResult { sent, dropped }
    }

    /// Send the packets of `pkts` (a pipeline output group); the ones the device took are
    /// removed from the front, the rest stay for the caller to count and free. Returns
    /// how many were sent.
    #[inline]
    pub fn tx_vec<const N: usize>(&mut self, pkts: &mut ArrayVec<Mbuf, N>) -> usize {
        let n = pkts.len().min(usize::from(u16::MAX));
        if n == 0 {
            return 0;
        }
        let p = pkts.as_mut_ptr();
        // SAFETY: Mbuf is repr(transparent) over a non-null rte_mbuf pointer, so the vector's
        // first n elements are n valid, owned mbuf pointers; this handle is the queue's only
        // user. The driver takes ownership of the first `sent`.
        let sent = unsafe { usize::from(ffi::vpcemu_tx_burst(self.port, self.queue, p.cast(), n as u16)) }.min(n);
        // SAFETY: the first `sent` elements now belong to the driver: move the rest down over
        // them without dropping anything, then shrink the length to what we still own.
        unsafe {
            std::ptr::copy(p.add(sent), p, pkts.len() - sent);
            pkts.set_len(pkts.len() - sent);
        }
        sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vdev_names() {
        assert_eq!(vdev_name("net_pcap0,rx_pcap=a.pcap,tx_pcap=b.pcap"), "net_pcap0");
        assert_eq!(vdev_name("net_null1"), "net_null1");
        assert_eq!(vdev_name("0000:03:00.0"), "0000:03:00.0");
    }
}
