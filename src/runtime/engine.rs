//! The engine behind `vpcemu run` and `vpcemu demo`: every host and edge of a topology in
//! one process, their ports on pinned worker lcores, joined by the in-process fabric, with
//! the mapping service and the control work on the main lcore.
//!
//! # Threads and ownership
//!
//! - Control core (the thread that calls [`Engine::start`]): owns the embedded mapping
//!   [`Service`], one mapping [`Client`] and one RCU [`Publisher`] per card, the stage
//!   timing collector, the alert aggregator, the ports (for their ethdev statistics) and
//!   the pool. [`Engine::tick`] does its periodic work; [`Engine::execute`] applies a
//!   live mapping change.
//! - Workers (every other lcore): each polls the RX side of the ports given to it, round
//!   robin, and owns one TX queue on every port. A burst runs to completion: the card's
//!   stages, then TX grouped by output; what a card sends to the fabric goes on to the
//!   receiving card's stages in the same pass (see [`super::worker`]).
//!
//! # Ports
//!
//! Topology `[[port]]`s are DPDK devices (`vdev`); the demo adds in-process
//! [`SoftPort`]s. Output numbers are port indexes; [`FABRIC`] is the in-process fabric.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mapping_client::rcu::Publisher;
use mapping_client::service::{Command, Service};
use mapping_client::tables::Tables;
use mapping_client::topology::{Attach, CardId, Topology};
use mapping_client::Client;
use pipeline::{
    AlertAggregator, AlertConfig, AlertConsumer, AlertNames, HistogramConfig, Output, PublishedCounters,
    StatsReport, TimingCollector, TscHz, alert_channel,
};

use super::find_port;
use super::softport::SoftPort;
use super::worker::{self, RxSource, TxSink, WorkerSetup};
use crate::dpdk::{self, Eal, EalBuilder, Mempool, Port, PortConfig};
use wire::vpc::{UNDERLAY_MTU, VPC_MTU};

/// Output number of the in-process fabric. Port indexes are below it.
pub const FABRIC: usize = pipeline::MAX_OUTPUTS - 1;
/// Most ports one process takes (one output number each, below [`FABRIC`]).
pub const MAX_PORTS: usize = FABRIC;

/// How a port is realised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortIo {
    /// A DPDK device: a vdev string or a PCI address.
    Vdev(String),
    /// An in-process [`SoftPort`].
    Soft,
}

/// A port to open.
#[derive(Debug, Clone)]
pub struct PortSpec {
    pub name: String,
    pub io: PortIo,
    pub attach: Attach,
}

/// What the engine needs to start.
#[derive(Debug, Clone)]
pub struct EngineSpec {
    pub topology: Topology,
    pub ports: Vec<PortSpec>,
    /// Time every stage with the TSC (default); off only to measure its cost.
    pub stage_timing: bool,
    /// EAL file prefix (default unique); names the telemetry socket directory.
    pub file_prefix: Option<String>,
    pub alerts: AlertConfig,
    /// Run only these cards (hosts or edges, by name); default every card of the
    /// topology. Packets for a card not run here leave by the sending card's `underlay:`
    /// port, as between processes on different machines.
    pub cards: Option<Vec<String>>,
    /// The edges' ESP cipher.
    pub esp_cipher: EspCipher,
}

impl EngineSpec {
    /// The topology's own ports.
    pub fn from_topology(topology: Topology) -> EngineSpec {
        let ports = topology
            .ports()
            .iter()
            .map(|p| PortSpec { name: p.name.clone(), io: PortIo::Vdev(p.vdev.clone()), attach: p.attach.clone() })
            .collect();
        EngineSpec { topology, ports, stage_timing: true, file_prefix: None, alerts: AlertConfig::default(), cards: None, esp_cipher: EspCipher::Auto }
    }
}

/// What a port carries against what may have to leave by it ([`Engine::port_mtus`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMtu {
    pub name: String,
    /// The attach point as the topology file writes it (`instance:red-1`).
    pub attach: String,
    /// The largest IP packet the port carries; `None`: no limit known.
    pub mtu: Option<u16>,
    /// An in-process port (no limit).
    pub soft: bool,
    /// The largest IP packet that may have to leave by it: the VPC MTU for an instance or
    /// DX port, the VPC MTU plus the encapsulation for underlay, services and fabric ports,
    /// 1500 for an edge's internet side (the edge fits its packets to that itself).
    pub needed: usize,
}

impl PortMtu {
    /// An instance's vNIC.
    pub fn is_instance(&self) -> bool {
        self.attach.starts_with("instance:")
    }

    /// The line `vpcemu run` prints at start for an instance port.
    pub fn describe(&self) -> String {
        match self.mtu {
            Some(mtu) => format!(
                "port {} ({}): IP packets up to {mtu} bytes ({}-byte Ethernet frames)",
                self.name,
                self.attach,
                usize::from(mtu) + 18
            ),
            None if self.soft => format!("port {} ({}): an in-process queue, no size limit", self.name, self.attach),
            None => format!("port {} ({}): the device does not say how large a packet it carries", self.name, self.attach),
        }
    }

    /// The warning for a port below what may have to leave by it, if it is.
    pub fn warning(&self) -> Option<String> {
        let mtu = self.mtu?;
        if usize::from(mtu) >= self.needed {
            return None;
        }
        let head = format!("port {} ({}) carries IP packets up to {mtu} bytes", self.name, self.attach);
        Some(if self.is_instance() {
            format!(
                "{head}, less than the VPC MTU of {VPC_MTU}: longer packets for the instance are fragmented, or, with \
                 DF, dropped (mtu_exceeded) and answered with ICMP fragmentation-needed (MTU {mtu})"
            )
        } else {
            format!("{head}, less than the {} that may leave by it: longer ones are dropped (mtu_exceeded)", self.needed)
        })
    }
}

/// What a port is, for the workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// An instance's vNIC. The ENI and the card it is on live in [`InstanceBinding`]
    /// (they change with register/deregister/move).
    Instance,
    /// A card's physical (underlay) port.
    Underlay { card: usize },
    /// An edge's outside ports.
    EdgeInternet { card: usize },
    EdgeDx { card: usize },
    EdgeServices { card: usize },
    /// A copy of everything that crosses the fabric (TX only).
    Fabric,
}

/// The live binding of an instance port: which ENI it is and which card it is on.
/// Written by the control core after the tables of that card are published (Release),
/// read by the worker once per burst (Acquire).
#[derive(Debug)]
pub struct InstanceBinding {
    /// ENI id, or `u32::MAX` while the instance is not registered.
    pub eni: AtomicU32,
    /// Card index: the instance's host, or the card the port was last on when the instance
    /// is deregistered or on a card of another process (`u32::MAX` only before the first
    /// binding).
    pub card: AtomicU32,
}

pub const UNBOUND: u32 = u32::MAX;

/// The bindings of every port, with a generation the control core bumps (Release) after
/// changing any of them, so that workers rebuild their ENI -> port tables (Acquire).
#[derive(Debug)]
pub struct Bindings {
    pub ports: Vec<InstanceBinding>,
    pub generation: std::sync::atomic::AtomicU64,
}

/// One card as the runtime sees it.
#[derive(Debug, Clone)]
pub struct CardInfo {
    pub id: CardId,
    pub name: String,
    pub pa: Ipv4Addr,
    pub alert_id: pipeline::CardId,
    /// The card's `underlay:` port, if it has one.
    pub underlay_port: Option<usize>,
    /// An edge's outside ports (`edge:EDGE:internet|dx|services`), if it has them.
    pub internet_port: Option<usize>,
    pub dx_port: Option<usize>,
    pub services_port: Option<usize>,
    /// An edge's outbound SAs, shared by every worker (sequence numbers never reused).
    pub sas: Option<Arc<blackfoot::EdgeSas>>,
    /// The AES-GCM implementation of the edge's SAs (inbound ones are made per worker).
    pub cipher: Cipher,
    /// The card's limit on the ICMP errors it sends, shared by every worker (TSC ticks).
    pub icmp_limit: Arc<pipeline::RateLimit>,
}

/// Which AES-128-GCM the edges' ESP uses (`vpcemu run --esp-cipher`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EspCipher {
    /// DPDK's `crypto_aesni_gcm` when it starts on this machine, else ring.
    #[default]
    Auto,
    /// ring's AES-GCM (`blackfoot::aead::RingAesGcm`).
    Ring,
    /// DPDK's ipsec_mb `crypto_aesni_gcm` through the synchronous CPU-crypto API; the run
    /// fails if it cannot start.
    AesniGcm,
}

impl std::str::FromStr for EspCipher {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(EspCipher::Auto),
            "ring" => Ok(EspCipher::Ring),
            "aesni-gcm" => Ok(EspCipher::AesniGcm),
            other => Err(format!("the ESP cipher is auto, ring or aesni-gcm, not {other:?}")),
        }
    }
}

/// The cipher implementation an edge's SAs were made with.
#[derive(Debug, Clone, Default)]
pub enum Cipher {
    #[default]
    Ring,
    Dpdk(dpdk::CryptoDev),
}

impl Cipher {
    /// What makes the SAs' ciphers.
    pub fn factory(&self) -> &dyn blackfoot::aead::AeadFactory {
        match self {
            Cipher::Ring => &blackfoot::aead::RingFactory,
            Cipher::Dpdk(dev) => dev,
        }
    }

    /// Start the chosen cipher. `Auto` falls back to ring when DPDK's cannot start; the
    /// second value then says why.
    fn start(choice: EspCipher) -> Result<(Cipher, Option<String>), EngineError> {
        match choice {
            EspCipher::Ring => Ok((Cipher::Ring, None)),
            EspCipher::AesniGcm => Ok((Cipher::Dpdk(dpdk::CryptoDev::aesni_gcm()?), None)),
            EspCipher::Auto => match dpdk::CryptoDev::aesni_gcm() {
                Ok(dev) => Ok((Cipher::Dpdk(dev), None)),
                Err(e) => Ok((Cipher::Ring, Some(format!("{e}; ESP uses ring's AES-GCM")))),
            },
        }
    }
}

struct PortRt {
    name: String,
    role: Role,
    attach: Attach,
    eth: Option<Port>,
    soft: Option<Arc<SoftPort>>,
    /// The largest IP packet the port carries (its MTU); `None`: no limit known (soft
    /// ports, devices that do not say).
    mtu: Option<u16>,
}

/// Errors that stop the engine from starting.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Dpdk(#[from] dpdk::DpdkError),
    #[error("{0}")]
    Config(String),
}

/// The running engine, owned by the control core.
pub struct Engine {
    // Field order is drop order: workers first, then ports, then the pool, then the EAL.
    workers: Vec<dpdk::WorkerHandle>,
    stop: Arc<AtomicBool>,
    ports: Vec<PortRt>,
    pub(crate) cards: Vec<CardInfo>,
    bindings: Arc<Bindings>,
    service: Service,
    clients: Vec<Client>,
    publishers: Vec<Publisher<Tables>>,
    published: Vec<Arc<PublishedCounters>>,
    timing: TimingCollector,
    returned: Arc<Mutex<Vec<pipeline::Meters>>>,
    alert_consumers: Vec<AlertConsumer>,
    aggregator: AlertAggregator,
    started: Instant,
    tsc_hz: u64,
    /// The edges' ESP cipher (None without edges) and why `auto` fell back to ring.
    esp_cipher: Option<(&'static str, Option<String>)>,
    /// Jumbo mbufs: the workers' own packets and the copies of chained arrivals.
    pool: Arc<Mempool>,
    /// Small mbufs ports receive into.
    rx_pool: Arc<Mempool>,
    eal: Eal,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("ports", &self.ports.len()).field("cards", &self.cards.len()).finish()
    }
}

fn lcore_list(lcores: &[u32]) -> String {
    lcores.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

/// Mbufs to create, small (RX) and jumbo: enough for every port's descriptors, the soft
/// queues, the workers' own packets and the frames net_pcap holds for `infinite_rx`,
/// within the memory the topology gives DPDK (about 60% of it for the pools; the RX pool
/// is served first, with at most two thirds of that).
fn pool_sizes(memory_mb: u32, ports: usize, workers: usize, held_small: u64, held_jumbo: u64) -> (u32, u32) {
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
pub(crate) fn rx_needs(vdev: &str) -> (u64, bool) {
    let (held, longest) = infinite_rx_frames(vdev);
    (held, dpdk::vdev_name(vdev).starts_with("net_pcap") && longest <= usize::from(dpdk::RX_DATA_SIZE))
}

impl Engine {
    /// Start the EAL, the ports, the mapping service and the workers.
    pub fn start(spec: EngineSpec) -> Result<Engine, EngineError> {
        let topo = spec.topology;
        let dp = topo.dataplane().clone();
        let workers = dp.worker_lcores().to_vec();
        if workers.is_empty() {
            return Err(EngineError::Config("dataplane.lcores: at least two lcores are needed (control + worker)".into()));
        }
        if spec.ports.len() > MAX_PORTS {
            return Err(EngineError::Config(format!("{} ports: at most {MAX_PORTS} per process", spec.ports.len())));
        }
        let mut eal = EalBuilder::new().lcores(lcore_list(&dp.lcores)).memory_mb(dp.memory_mb).hugepages(match dp.hugepages {
            mapping_client::topology::Hugepages::Auto => dpdk::Hugepages::Auto,
            mapping_client::topology::Hugepages::On => dpdk::Hugepages::On,
            mapping_client::topology::Hugepages::Off => dpdk::Hugepages::Off,
        });
        if let Some(p) = &spec.file_prefix {
            eal = eal.file_prefix(p.as_str());
        }
        for p in &spec.ports {
            if let PortIo::Vdev(v) = &p.io {
                eal = if super::passthrough::is_pci_address(v) { eal.pci_device(v.as_str()) } else { eal.vdev(v.as_str()) };
            }
        }
        // The edges' ESP cipher: DPDK's AES-GCM device, unless ring is asked for.
        let edges_here = topo
            .edges()
            .iter()
            .any(|e| spec.cards.as_ref().is_none_or(|names| names.iter().any(|n| *n == e.name)));
        if edges_here && spec.esp_cipher != EspCipher::Ring {
            eal = eal.vdev(dpdk::crypto::AESNI_GCM_VDEV);
        }
        let eal = eal.init()?;
        let tsc_hz = eal.tsc_hz();
        let needs: Vec<(u64, bool)> = spec
            .ports
            .iter()
            .map(|p| match &p.io {
                PortIo::Vdev(v) => rx_needs(v),
                PortIo::Soft => (0, false),
            })
            .collect();
        let held_small = needs.iter().filter(|n| n.1).map(|n| n.0).sum();
        let held_jumbo = needs.iter().filter(|n| !n.1).map(|n| n.0).sum();
        let (small, jumbo) = pool_sizes(dp.memory_mb, spec.ports.len(), workers.len(), held_small, held_jumbo);
        let memory_mb = dp.memory_mb;
        let pool_err = |n: u32, what: &'static str| {
            move |e: dpdk::DpdkError| {
                EngineError::Config(format!("{e} ({n} mbufs of {what} in dataplane.memory_mb = {memory_mb})"))
            }
        };
        let rx_pool = Arc::new(
            Mempool::with_data_size("vpcemu-rx", small, 256, dpdk::RX_DATA_SIZE).map_err(pool_err(small, "2.4 KiB"))?,
        );
        let pool = Arc::new(Mempool::new("vpcemu", jumbo, 256).map_err(pool_err(jumbo, "9.6 KiB"))?);

        // Cards: hosts then edges, in file order.
        if let Some(names) = &spec.cards {
            for n in names {
                if topo.card_by_name(n).is_none() {
                    return Err(EngineError::Config(format!("--cards: no host or edge named {n:?}")));
                }
            }
        }
        let run_here = |id: CardId| {
            spec.cards.as_ref().is_none_or(|names| names.iter().any(|n| topo.card_by_name(n) == Some(id)))
        };
        let cards: Vec<CardInfo> = topo
            .cards()
            .filter(|id| run_here(*id))
            .map(|id| CardInfo {
                id,
                name: topo.card_name(id).unwrap_or("?").to_string(),
                pa: topo.card_pa(id).unwrap_or(Ipv4Addr::UNSPECIFIED),
                alert_id: nitro::card_id(id),
                underlay_port: None,
                internet_port: None,
                dx_port: None,
                services_port: None,
                sas: None,
                cipher: Cipher::Ring,
                icmp_limit: Arc::new(pipeline::RateLimit::new(nitro::ICMP_RATE_PER_SEC, nitro::ICMP_BURST, tsc_hz)),
            })
            .collect();
        let mut cards = cards;
        let ids: Vec<CardId> = cards.iter().map(|c| c.id).collect();
        let card_index = |id: CardId| ids.iter().position(|c| *c == id);

        // Ports.
        let cfg = PortConfig { tx_queues: workers.len() as u16, rx_desc: 512, tx_desc: 512, ..PortConfig::default() };
        let mut ports = Vec::with_capacity(spec.ports.len());
        for (i, p) in spec.ports.iter().enumerate() {
            let here = |id: CardId| {
                card_index(id).ok_or_else(|| {
                    EngineError::Config(format!(
                        "port {}: its card {} is not run in this process (--cards)",
                        p.name,
                        topo.card_name(id).unwrap_or("?")
                    ))
                })
            };
            let role = match &p.attach {
                Attach::Instance(name) => {
                    // A vNIC sits on its instance's host card, which must run here: what the
                    // port sends always meets a card's verify-send.
                    if let Some(inst) = topo.instance_by_name(name) {
                        here(CardId::Host(inst.host))?;
                    }
                    Role::Instance
                }
                Attach::Underlay(c) => Role::Underlay { card: here(*c)? },
                Attach::EdgeInternet(e) => Role::EdgeInternet { card: here(CardId::Edge(*e))? },
                Attach::EdgeDx(e) => Role::EdgeDx { card: here(CardId::Edge(*e))? },
                Attach::EdgeServices(e) => Role::EdgeServices { card: here(CardId::Edge(*e))? },
                Attach::Fabric => Role::Fabric,
            };
            let (eth, soft) = match &p.io {
                PortIo::Vdev(v) => {
                    let mut port = find_port(&eal, dpdk::vdev_name(v))?;
                    // DPDK says why in its log: quote it beside the errno.
                    let why = |e: dpdk::DpdkError| match eal.logged_cause(&[&format!("port_id {}", port_id_of(&e))]) {
                        Some(cause) => EngineError::Config(format!("{e} ({cause})")),
                        None => EngineError::Dpdk(e),
                    };
                    let chains_anyway = needs.get(i).is_some_and(|n| n.1);
                    let rx = dpdk::RxPools { small: &rx_pool, jumbo: &pool, chains_anyway };
                    port.configure(&cfg, rx).map_err(why)?;
                    port.start().map_err(why)?;
                    (Some(port), None)
                }
                PortIo::Soft => (None, Some(Arc::new(SoftPort::default()))),
            };
            match role {
                Role::Underlay { card } => cards[card].underlay_port = Some(i),
                Role::EdgeInternet { card } => cards[card].internet_port = Some(i),
                Role::EdgeDx { card } => cards[card].dx_port = Some(i),
                Role::EdgeServices { card } => cards[card].services_port = Some(i),
                _ => {}
            }
            let mtu = eth.as_ref().and_then(Port::mtu);
            ports.push(PortRt { name: p.name.clone(), role, attach: p.attach.clone(), eth, soft, mtu });
        }

        // Mapping service, clients, publishers.
        let mut service = Service::new(topo.clone());
        let mut clients: Vec<Client> = cards.iter().map(|c| Client::new(c.id)).collect();
        let mut publishers: Vec<Publisher<Tables>> =
            cards.iter().map(|c| Publisher::new(Tables::empty(Some(c.id), c.name.clone(), c.pa))).collect();
        sync_all(&mut service, &mut clients, &mut publishers, Duration::ZERO);
        // Each edge's outbound SAs, from its first tables (the VPN set does not change at run
        // time: the control socket has no VPN commands).
        let (cipher, cipher_note) = if cards.iter().any(|c| matches!(c.id, CardId::Edge(_))) {
            Cipher::start(spec.esp_cipher)?
        } else {
            (Cipher::Ring, None)
        };
        let esp_cipher = cards
            .iter()
            .any(|c| matches!(c.id, CardId::Edge(_)))
            .then(|| (cipher.factory().name(), cipher_note.clone()));
        for (card, publisher) in cards.iter_mut().zip(publishers.iter()) {
            if matches!(card.id, CardId::Edge(_)) {
                let sas = blackfoot::EdgeSas::with(publisher.live(), cipher.factory())
                    .and_then(|sas| blackfoot::InboundSas::with(publisher.live(), cipher.factory()).map(|_| sas))
                    .map_err(|e| EngineError::Config(format!("edge {}: {e} by {}", card.name, cipher.factory().name())))?;
                card.sas = Some(Arc::new(sas));
                card.cipher = cipher.clone();
            }
        }
        let cards = cards;

        // Instance bindings, from the model.
        let bindings = Arc::new(Bindings {
            ports: ports
                .iter()
                .map(|_| InstanceBinding { eni: AtomicU32::new(UNBOUND), card: AtomicU32::new(UNBOUND) })
                .collect(),
            generation: std::sync::atomic::AtomicU64::new(0),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let mut timing = TimingCollector::new(HistogramConfig::default())
            .map_err(|e| EngineError::Config(format!("stage timing: {e:?}")))?;
        let returned = Arc::new(Mutex::new(Vec::new()));

        let mut engine_ports = ports;
        let mut alert_consumers = Vec::new();
        let mut published = Vec::new();
        let mut setups = Vec::new();
        for (w, &lcore) in workers.iter().enumerate() {
            let (producer, consumer) = alert_channel(4096);
            alert_consumers.push(consumer);
            let counters = Arc::new(PublishedCounters::new());
            published.push(Arc::clone(&counters));
            let wt = timing
                .add_worker(tsc_hz / 100)
                .map_err(|e| EngineError::Config(format!("stage timing: {e:?}")))?;
            let mut rx = Vec::new();
            let mut tx = Vec::new();
            for (i, p) in engine_ports.iter_mut().enumerate() {
                // RX: ports are dealt to workers round robin; the fabric capture is TX only.
                let mine = i % workers.len() == w && p.role != Role::Fabric;
                if let Some(eth) = p.eth.as_mut() {
                    if mine {
                        if let Some(q) = eth.rx_queue(0) {
                            rx.push((i, RxSource::Eth(q)));
                        }
                    }
                    tx.push(eth.tx_queue(w as u16).map(TxSink::Eth).unwrap_or(TxSink::None));
                } else if let Some(s) = &p.soft {
                    if mine {
                        rx.push((i, RxSource::Soft(Arc::clone(s))));
                    }
                    tx.push(TxSink::Soft(Arc::clone(s)));
                }
            }
            let subscribers = publishers.iter_mut().map(|p| p.subscribe()).collect();
            setups.push((
                lcore,
                WorkerSetup {
                    rx,
                    tx,
                    roles: engine_ports.iter().map(|p| p.role).collect(),
                    port_mtu: engine_ports.iter().map(|p| p.mtu).collect(),
                    bindings: Arc::clone(&bindings),
                    cards: cards.clone(),
                    subscribers,
                    fabric_capture: engine_ports.iter().position(|p| p.role == Role::Fabric),
                    pool: Arc::clone(&pool),
                    counters,
                    meters: pipeline::Meters::new(wt),
                    alerts: producer,
                    stop: Arc::clone(&stop),
                    returned: Arc::clone(&returned),
                },
            ));
        }
        let mut engine = Engine {
            workers: Vec::new(),
            stop,
            ports: engine_ports,
            cards,
            bindings,
            service,
            clients,
            publishers,
            published,
            timing,
            returned,
            alert_consumers,
            aggregator: AlertAggregator::new(spec.alerts, unix_ms()),
            started: Instant::now(),
            tsc_hz,
            esp_cipher,
            rx_pool,
            pool,
            eal,
        };
        engine.rebind();
        for (lcore, setup) in setups {
            let timed = spec.stage_timing;
            let handle = dpdk::launch(lcore, move || {
                if timed {
                    worker::run(setup, dpdk::TscClock)
                } else {
                    worker::run(setup, pipeline::NullClock)
                }
            })?;
            engine.workers.push(handle);
        }
        Ok(engine)
    }

    /// Point every instance port at its instance's current ENI (`UNBOUND` while it is not
    /// registered) and card. The card is the instance's host when that runs here; otherwise
    /// (deregistered, or moved to a card of another process) the port stays on the card it
    /// was on, whose verify-send then refuses what it sends (`spoofed_source`, alert).
    fn rebind(&mut self) {
        let topo = self.service.topology();
        for (i, p) in self.ports.iter().enumerate() {
            let Attach::Instance(name) = &p.attach else { continue };
            let inst = topo.instance_by_name(name);
            let eni = inst.map_or(UNBOUND, |inst| inst.eni.0);
            let here = inst.and_then(|inst| self.cards.iter().position(|c| c.id == CardId::Host(inst.host)));
            let binding = &self.bindings.ports[i];
            let card = here.map_or_else(|| binding.card.load(Ordering::Relaxed), |c| c as u32);
            binding.eni.store(eni, Ordering::Release);
            binding.card.store(card, Ordering::Release);
        }
        self.bindings.generation.fetch_add(1, Ordering::Release);
    }

    /// What every port carries (its MTU) against what may have to leave by it, in port
    /// order: for the messages `vpcemu run` prints at start.
    pub fn port_mtus(&self) -> Vec<PortMtu> {
        let topo = self.service.topology();
        let edge = |e: mapping_client::topology::EdgeId| topo.card_name(CardId::Edge(e)).unwrap_or("?");
        self.ports
            .iter()
            .map(|p| {
                let (attach, needed) = match &p.attach {
                    Attach::Instance(name) => (format!("instance:{name}"), VPC_MTU),
                    Attach::Underlay(c) => (format!("underlay:{}", topo.card_name(*c).unwrap_or("?")), UNDERLAY_MTU),
                    Attach::EdgeInternet(e) => (format!("edge:{}:internet", edge(*e)), blackfoot::INTERNET_MTU),
                    Attach::EdgeDx(e) => (format!("edge:{}:dx", edge(*e)), VPC_MTU),
                    Attach::EdgeServices(e) => (format!("edge:{}:services", edge(*e)), UNDERLAY_MTU),
                    Attach::Fabric => ("fabric".to_string(), UNDERLAY_MTU),
                };
                let soft = p.soft.is_some();
                PortMtu { name: p.name.clone(), attach, mtu: if soft { None } else { p.mtu }, soft, needed }
            })
            .collect()
    }

    /// Wall-clock milliseconds since the Unix epoch (the alert clock: alerts carry `ts`).
    pub fn now_ms(&self) -> u64 {
        unix_ms()
    }

    /// Periodic control-core work: table publication and reclamation, mapping heartbeats,
    /// stage-timing collection, alerts. `alerts_out` receives complete alert lines.
    pub fn tick(&mut self, alerts_out: &mut dyn std::io::Write) {
        let now = self.started.elapsed();
        sync_all(&mut self.service, &mut self.clients, &mut self.publishers, now);
        let _ = self.timing.collect();
        let now_ms = self.now_ms();
        self.aggregator.drain(&self.alert_consumers, now_ms);
        let names = Names { topo: self.service.topology(), cards: &self.cards };
        let _ = self.aggregator.flush(now_ms, &names, &mut &mut *alerts_out);
    }

    /// Apply a live change to the mapping service; the workers see it once every card
    /// concerned has published (within a loop of theirs).
    pub fn execute(&mut self, command: &Command) -> Result<(), String> {
        self.service.execute(command).map_err(|e| e.to_string())?;
        let now = self.started.elapsed();
        // Publish until every card holds the change (a publisher waits for its workers to
        // leave the standby copy: a few microseconds).
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            sync_all(&mut self.service, &mut self.clients, &mut self.publishers, now);
            if self.publishers.iter().all(|p| p.pending() == 0) || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_micros(50));
        }
        self.rebind();
        Ok(())
    }

    pub fn topology(&self) -> &Topology {
        self.service.topology()
    }

    pub fn cards(&self) -> &[CardInfo] {
        &self.cards
    }

    pub fn tsc_hz(&self) -> u64 {
        self.tsc_hz
    }

    pub fn pool(&self) -> &Arc<Mempool> {
        &self.pool
    }

    pub fn eal(&self) -> &Eal {
        &self.eal
    }

    /// The soft port named `name`.
    pub fn soft_port(&self, name: &str) -> Option<&Arc<SoftPort>> {
        self.ports.iter().find(|p| p.name == name).and_then(|p| p.soft.as_ref())
    }

    /// Sum of every port's RX and TX so far (for idle detection).
    pub fn movement(&self) -> u64 {
        let eth: u64 = self.ports.iter().filter_map(|p| p.eth.as_ref()).map(|p| {
            let s = p.stats();
            s.rx_packets + s.tx_packets
        }).sum();
        let soft: u64 = self.published.iter().map(|c| c.snapshot().packets()).sum();
        eth + soft
    }

    /// The stats report of ARCHITECTURE section 8 as of now.
    /// The edges' ESP cipher (None when the process runs no edge), and, when `auto` fell
    /// back to ring, why.
    pub fn esp_cipher(&self) -> Option<(&'static str, Option<&str>)> {
        self.esp_cipher.as_ref().map(|(name, note)| (*name, note.as_deref()))
    }

    pub fn report(&self) -> StatsReport {
        let mut counters = pipeline::Counters::new();
        for c in &self.published {
            counters.merge(&c.snapshot());
        }
        let ports = self
            .ports
            .iter()
            .map(|p| match &p.eth {
                Some(eth) => {
                    let s = eth.stats();
                    pipeline::PortStats {
                        name: p.name.clone(),
                        rx: s.rx_packets,
                        tx: s.tx_packets,
                        dropped: s.rx_missed + s.rx_nombuf + s.rx_errors + s.tx_errors,
                    }
                }
                None => pipeline::PortStats { name: p.name.clone(), rx: 0, tx: 0, dropped: 0 },
            })
            .collect();
        let mut names: Vec<String> = self.ports.iter().map(|p| p.name.clone()).collect();
        names.resize(FABRIC, String::new());
        names.push("fabric".into());
        let names: Vec<String> = names;
        StatsReport::new(
            ports,
            &counters,
            self.timing.histograms(),
            TscHz(self.tsc_hz),
            &names,
            self.aggregator.totals(),
        )
    }

    /// Write every pending alert line now, whatever its window (the demo reads them step
    /// by step).
    pub fn flush_alerts(&mut self, out: &mut dyn std::io::Write) {
        let now_ms = self.now_ms();
        self.aggregator.drain(&self.alert_consumers, now_ms);
        let names = Names { topo: self.service.topology(), cards: &self.cards };
        let _ = self.aggregator.flush_all(now_ms, &names, &mut &mut *out);
    }

    /// Stop the workers, flush alerts, stop and close the ports; returns the final report
    /// and the number of mbufs still in use (must be 0).
    pub fn shutdown(mut self, alerts_out: &mut dyn std::io::Write) -> (StatsReport, u32) {
        self.stop.store(true, Ordering::Relaxed);
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        if let Ok(mut back) = self.returned.lock() {
            for m in back.drain(..) {
                let _ = self.timing.absorb(m.timing);
            }
        }
        let now_ms = self.now_ms();
        self.aggregator.drain(&self.alert_consumers, now_ms);
        {
            let names = Names { topo: self.service.topology(), cards: &self.cards };
            let _ = self.aggregator.flush_all(now_ms, &names, &mut &mut *alerts_out);
        }
        let report = self.report();
        for p in &mut self.ports {
            if let Some(eth) = p.eth.as_mut() {
                let _ = eth.stop();
            }
            // Packets still queued in soft ports go back to the pool.
            if let Some(s) = &p.soft {
                while s.collect().is_some() {}
            }
            p.eth = None;
            p.soft = None;
        }
        // Old table versions go now, on this thread.
        for p in &mut self.publishers {
            p.reclaim();
        }
        (report, self.pool.in_use() + self.rx_pool.in_use())
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Move requests and messages between the service and the clients until quiet, then
/// hand the updates to the publishers and publish.
fn sync_all(service: &mut Service, clients: &mut [Client], publishers: &mut [Publisher<Tables>], now: Duration) {
    for _ in 0..8 {
        let mut moved = false;
        for c in clients.iter_mut() {
            while let Some(req) = c.poll_request(now) {
                service.handle(req, now);
                moved = true;
            }
        }
        while let Some(msg) = service.poll_transmit(now) {
            if let Some(c) = clients.iter_mut().find(|c| c.card() == msg.card()) {
                c.handle(msg, now);
            }
            moved = true;
        }
        if !moved {
            break;
        }
    }
    for (c, p) in clients.iter_mut().zip(publishers.iter_mut()) {
        c.drain_into(p);
        p.publish();
        p.reclaim();
    }
}

/// Alert names from the model.
struct Names<'a> {
    topo: &'a Topology,
    cards: &'a [CardInfo],
}

impl AlertNames for Names<'_> {
    fn card(&self, card: pipeline::CardId) -> Option<&str> {
        self.cards.iter().find(|c| c.alert_id == card).map(|c| c.name.as_str())
    }
    fn instance(&self, eni: u32) -> Option<&str> {
        self.topo.instance(mapping_client::topology::EniId(eni)).map(|i| i.name.as_str())
    }
    fn vpc(&self, vni: u32) -> Option<&str> {
        self.topo.vpc_by_vni(vni).and_then(|v| self.topo.vpc(v)).map(|v| v.name.as_str())
    }
}

/// The port id a DPDK error is about (0 when it names none).
fn port_id_of(e: &dpdk::DpdkError) -> u16 {
    match e {
        dpdk::DpdkError::Port { port, .. } => *port,
        _ => 0,
    }
}

/// Output number of port `i`.
pub fn port_output(i: usize) -> Option<Output> {
    if i < MAX_PORTS { Output::new(i) } else { None }
}
