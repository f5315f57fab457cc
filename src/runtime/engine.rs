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
//! [`SoftPort`]s. What each port and card is, and which worker polls which port, is the
//! [`Plan`] (`plan.rs`, no DPDK); output numbers are port indexes and
//! [`FABRIC`](super::plan::FABRIC) is the in-process fabric.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mapping_client::rcu::Publisher;
use mapping_client::service::{Command, Service};
use mapping_client::tables::Tables;
use mapping_client::topology::{CardId, Topology};
use mapping_client::Client;
use pipeline::{
    AlertAggregator, AlertConfig, AlertConsumer, AlertNames, HistogramConfig, PublishedCounters, StatsReport,
    TimingCollector, TscHz, alert_channel,
};

use super::card::CardInfo;
use super::cipher::{Cipher, EspCipher, Started};
use super::devices::{eal_builder, find_port, make_pools, port_id_of, rx_needs};
use super::etcd::{EtcdSource, MappingSource};
use super::plan::{Bindings, Plan, PortIo, PortMtu, PortSpec};
use super::softport::SoftPort;
use super::trash::TrashBin;
use super::worker::{self, PortSink, RxSource, WorkerSetup};
use crate::dpdk::{self, Eal, Mempool, Port, PortConfig};

/// The default of [`EngineSpec::stage_timing_sample_us`]: at line rate (a burst of 32
/// every 2 to 4 microseconds) one burst in four to ten is timed.
pub const DEFAULT_STAGE_TIMING_SAMPLE_US: u64 = 20;

/// What the engine needs to start.
#[derive(Debug, Clone)]
pub struct EngineSpec {
    pub topology: Topology,
    pub ports: Vec<PortSpec>,
    /// Time the stages with the TSC (default); off only to measure its cost.
    pub stage_timing: bool,
    /// A worker times a burst's stages when at least this many microseconds have passed
    /// since it last timed one (every burst at low rates; 0: every burst at any rate).
    pub stage_timing_sample_us: u64,
    /// EAL file prefix (default unique); names the telemetry socket directory.
    pub file_prefix: Option<String>,
    pub alerts: AlertConfig,
    /// Run only these cards (hosts or edges, by name); default every card of the
    /// topology. Packets for a card not run here leave by the sending card's `underlay:`
    /// port, as between processes on different machines.
    pub cards: Option<Vec<String>>,
    /// The edges' ESP cipher.
    pub esp_cipher: EspCipher,
    /// Keep dropped packets for the trash can, this many per reason per second.
    pub trash_limit: Option<u32>,
    /// Let `dpdk-dumpcap` capture the ports: multi-process EAL and `rte_pdump_init`.
    pub pdump: bool,
    /// Where the cards' tables come from: the embedded service (default) or etcd.
    pub mapping: MappingSource,
}

impl EngineSpec {
    /// The topology's own ports.
    pub fn from_topology(topology: Topology) -> EngineSpec {
        let ports = PortSpec::of_topology(&topology);
        EngineSpec {
            topology,
            ports,
            stage_timing: true,
            stage_timing_sample_us: DEFAULT_STAGE_TIMING_SAMPLE_US,
            file_prefix: None,
            alerts: AlertConfig::default(),
            cards: None,
            esp_cipher: EspCipher::Auto,
            trash_limit: None,
            pdump: false,
            mapping: MappingSource::Embedded,
        }
    }
}

/// A port as the control core holds it: its device or queue and its MTU (its name, attach
/// point and role are in the [`Plan`]).
struct PortRt {
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
    plan: Plan,
    pub(crate) cards: Vec<CardInfo>,
    bindings: Arc<Bindings>,
    service: Service,
    /// With `--etcd`: the cards' watchers (then `service` only names things).
    etcd: Option<EtcdSource>,
    clients: Vec<Client>,
    publishers: Vec<Publisher<Tables>>,
    published: Vec<Arc<PublishedCounters>>,
    timing: TimingCollector,
    returned: Arc<Mutex<Vec<pipeline::Meters>>>,
    alert_consumers: Vec<AlertConsumer>,
    aggregator: AlertAggregator,
    started: Instant,
    tsc_hz: u64,
    /// The edges' ESP cipher (None without edges), why `auto` fell back to ring, and which
    /// cipher takes which lengths when two do.
    esp_cipher: Option<(&'static str, Option<String>, Option<String>)>,
    /// Jumbo mbufs: the workers' own packets and the copies of chained arrivals.
    pool: Arc<Mempool>,
    /// Small mbufs ports receive into.
    rx_pool: Arc<Mempool>,
    /// The trash can's queue (`--trash`).
    trash: Option<Arc<TrashBin>>,
    eal: Eal,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("ports", &self.ports.len()).field("cards", &self.cards.len()).finish()
    }
}

impl Engine {
    /// Start the EAL, the ports, the mapping service and the workers, as planned by
    /// [`Plan::new`].
    pub fn start(spec: EngineSpec) -> Result<Engine, EngineError> {
        let topo = spec.topology;
        let plan = Plan::new(&topo, &spec.ports, spec.cards.as_deref()).map_err(EngineError::Config)?;
        let dp = topo.dataplane().clone();
        let workers = dp.worker_lcores().to_vec();
        let vdevs = spec.ports.iter().filter_map(|p| match &p.io {
            PortIo::Vdev(v) => Some(v.as_str()),
            PortIo::Soft => None,
        });
        let mut eal = eal_builder(&dp, spec.file_prefix.as_deref(), vdevs);
        if spec.pdump {
            eal = super::devices::pdump_eal(eal, dp.memory_mb).map_err(EngineError::Config)?;
        }
        // The edges' ESP cipher: DPDK's AES-GCM device, unless ring is asked for.
        if plan.has_edge() && spec.esp_cipher.wants_device() {
            eal = eal.vdev(dpdk::crypto::AESNI_GCM_VDEV);
        }
        let eal = eal.init()?;
        if spec.pdump {
            eal.pdump_init()?;
        }
        let tsc_hz = eal.tsc_hz();
        let needs: Vec<(u64, bool)> = spec
            .ports
            .iter()
            .map(|p| match &p.io {
                PortIo::Vdev(v) => rx_needs(v),
                PortIo::Soft => (0, false),
            })
            .collect();
        let (rx_pool, pool) = make_pools(dp.memory_mb, &needs, workers.len()).map_err(EngineError::Config)?;
        let mut cards: Vec<CardInfo> = plan.cards.iter().map(|c| CardInfo::new(c, tsc_hz)).collect();

        // Ports.
        let cfg = PortConfig { tx_queues: workers.len() as u16, rx_desc: 512, tx_desc: 512, ..PortConfig::default() };
        let mut ports = Vec::with_capacity(spec.ports.len());
        for (i, p) in spec.ports.iter().enumerate() {
            let (eth, soft) = match &p.io {
                PortIo::Vdev(v) => {
                    let chains_anyway = needs.get(i).is_some_and(|n| n.1);
                    let rx = dpdk::RxPools { small: &rx_pool, jumbo: &pool, chains_anyway };
                    (Some(open_port(&eal, v, &cfg, rx)?), None)
                }
                PortIo::Soft => (None, Some(Arc::new(SoftPort::default()))),
            };
            let mtu = eth.as_ref().and_then(Port::mtu);
            ports.push(PortRt { eth, soft, mtu });
        }

        // Mapping service, clients, publishers.
        let mut service = Service::new(topo.clone());
        let mut clients: Vec<Client> = plan.cards.iter().map(|c| Client::new(c.id)).collect();
        let mut publishers: Vec<Publisher<Tables>> =
            plan.cards.iter().map(|c| Publisher::new(Tables::empty(Some(c.id), c.name.clone(), c.pa))).collect();
        let mut etcd = match &spec.mapping {
            MappingSource::Embedded => {
                sync_all(&mut service, &mut clients, &mut publishers, Duration::ZERO);
                None
            }
            MappingSource::Etcd { url } => {
                let cpu = Some(dp.control_lcore() as usize);
                let mut source = EtcdSource::start(url, &cards, cpu).map_err(EngineError::Config)?;
                source.first_snapshots(&mut publishers).map_err(EngineError::Config)?;
                Some(source)
            }
        };
        // Each edge's outbound SAs, from its first tables (the VPN set does not change at run
        // time: the control socket has no VPN commands).
        let esp_cipher = if plan.has_edge() { Some(edge_sas(&mut cards, &publishers, spec.esp_cipher)?) } else { None };
        let cards = cards;

        let bindings = Arc::new(plan.bindings());
        let stop = Arc::new(AtomicBool::new(false));
        let mut timing = TimingCollector::new(HistogramConfig::default())
            .map_err(|e| EngineError::Config(format!("stage timing: {e:?}")))?;
        let returned = Arc::new(Mutex::new(Vec::new()));
        let trash = spec.trash_limit.map(|limit| TrashBin::new(limit, tsc_hz));

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
            let (rx, tx) = worker_io(&mut engine_ports, &plan.rx_ports(w), w);
            let subscribers = publishers.iter_mut().map(|p| p.subscribe()).collect();
            setups.push((
                lcore,
                WorkerSetup {
                    rx,
                    tx,
                    roles: plan.roles(),
                    port_mtu: engine_ports.iter().map(|p| p.mtu).collect(),
                    bindings: Arc::clone(&bindings),
                    cards: cards.clone(),
                    subscribers,
                    fabric_capture: plan.fabric_capture(),
                    pool: Arc::clone(&pool),
                    counters,
                    meters: pipeline::Meters::new(wt),
                    alerts: producer,
                    stop: Arc::clone(&stop),
                    returned: Arc::clone(&returned),
                    trash: trash.clone(),
                },
            ));
        }
        plan.rebind(service.topology(), &bindings);
        if let Some(source) = etcd.as_mut() {
            source.rebind(&plan, &bindings);
        }
        let mut engine = Engine {
            workers: Vec::new(),
            stop,
            ports: engine_ports,
            plan,
            cards,
            bindings,
            service,
            etcd,
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
            trash,
            eal,
        };
        for (lcore, setup) in setups {
            let timed = spec.stage_timing;
            let interval = u128::from(tsc_hz) * u128::from(spec.stage_timing_sample_us) / 1_000_000;
            let interval = u64::try_from(interval).unwrap_or(u64::MAX);
            let handle = dpdk::launch(lcore, move || {
                if timed {
                    worker::run(setup, pipeline::Sampled::new(dpdk::TscClock, interval))
                } else {
                    worker::run(setup, pipeline::NullClock)
                }
            })?;
            engine.workers.push(handle);
        }
        Ok(engine)
    }

    /// What every port carries (its MTU) against what may have to leave by it, in port
    /// order: for the messages `vpcemu run` prints at start.
    pub fn port_mtus(&self) -> Vec<PortMtu> {
        let mtus: Vec<Option<u16>> = self.ports.iter().map(|p| p.mtu).collect();
        self.plan.port_mtus(self.service.topology(), &mtus)
    }

    /// Wall-clock milliseconds since the Unix epoch (the alert clock: alerts carry `ts`).
    pub fn now_ms(&self) -> u64 {
        unix_ms()
    }

    /// Periodic control-core work: table publication and reclamation, mapping heartbeats,
    /// stage-timing collection, alerts. `alerts_out` receives complete alert lines.
    pub fn tick(&mut self, alerts_out: &mut dyn std::io::Write) {
        let now = self.started.elapsed();
        let now_ms = self.now_ms();
        match self.etcd.as_mut() {
            Some(source) => source.poll(&mut self.publishers, &self.plan, &self.bindings, now_ms, alerts_out),
            None => sync_all(&mut self.service, &mut self.clients, &mut self.publishers, now),
        }
        let _ = self.timing.collect();
        self.aggregator.drain(&self.alert_consumers, now_ms);
        let names = Names { topo: self.service.topology(), cards: &self.cards };
        let _ = self.aggregator.flush(now_ms, &names, &mut &mut *alerts_out);
    }

    /// Apply a live change to the mapping service; the workers see it once every card
    /// concerned has published (within a loop of theirs).
    pub fn execute(&mut self, command: &Command) -> Result<(), String> {
        if let Some(source) = &self.etcd {
            return Err(format!("the world is in etcd: change it with `vpcemu ctl --etcd {} ...`", source.url()));
        }
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
        self.plan.rebind(self.service.topology(), &self.bindings);
        Ok(())
    }

    /// With `--etcd`: the watchers' counters (the stats' `mapping`).
    pub fn mapping_stats(&self) -> Option<serde_json::Value> {
        self.etcd.as_ref().map(EtcdSource::stats)
    }

    /// With `--etcd`: the etcd URL.
    pub fn etcd_url(&self) -> Option<&str> {
        self.etcd.as_ref().map(EtcdSource::url)
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
        let i = self.plan.ports.iter().position(|p| p.name == name)?;
        self.ports.get(i).and_then(|p| p.soft.as_ref())
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

    /// The edges' ESP cipher (None when the process runs no edge), and, when `auto` fell
    /// back to ring, why.
    pub fn esp_cipher(&self) -> Option<(&'static str, Option<&str>)> {
        self.esp_cipher.as_ref().map(|(name, note, _)| (*name, note.as_deref()))
    }

    /// Which of two ESP ciphers takes which lengths, when two do (`auto` on a CPU where
    /// ring's is faster on long packets, or `aesni-gcm+ring:N`).
    pub fn esp_cipher_info(&self) -> Option<&str> {
        self.esp_cipher.as_ref().and_then(|(_, _, info)| info.as_deref())
    }

    /// The stats report of ARCHITECTURE section 8 as of now.
    pub fn report(&self) -> StatsReport {
        let mut counters = pipeline::Counters::new();
        for c in &self.published {
            counters.merge(&c.snapshot());
        }
        let ports = self
            .ports
            .iter()
            .zip(&self.plan.ports)
            .map(|(p, planned)| match &p.eth {
                Some(eth) => {
                    let s = eth.stats();
                    pipeline::PortStats {
                        name: planned.name.clone(),
                        rx: s.rx_packets,
                        tx: s.tx_packets,
                        dropped: s.rx_missed + s.rx_nombuf + s.rx_errors + s.tx_errors,
                    }
                }
                None => pipeline::PortStats { name: planned.name.clone(), rx: 0, tx: 0, dropped: 0 },
            })
            .collect();
        let names = self.plan.output_names();
        StatsReport::new(
            ports,
            &counters,
            self.timing.histograms(),
            TscHz(self.tsc_hz),
            &names,
            self.aggregator.totals(),
        )
    }

    /// The trash can's queue, with `--trash`.
    pub fn trash_bin(&self) -> Option<&Arc<TrashBin>> {
        self.trash.as_ref()
    }

    /// The stage histograms merged so far (cycles per packet, by card kind and stage).
    pub fn stage_histograms(&self) -> &pipeline::StageHistograms {
        self.timing.histograms()
    }

    /// Alert events the control core has taken so far, per drop reason.
    pub fn alerts_by_reason(&self) -> [u64; pipeline::DropReason::COUNT] {
        self.aggregator.received()
    }

    /// Each card's name and the version of the mapping tables it holds.
    pub fn mapping_versions(&self) -> Vec<(&str, u64)> {
        self.cards.iter().zip(&self.publishers).map(|(c, p)| (c.plan.name.as_str(), p.version())).collect()
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
    pub fn shutdown(self, alerts_out: &mut dyn std::io::Write) -> (StatsReport, u32) {
        let (report, in_use, _) = self.shutdown_with_histograms(alerts_out);
        (report, in_use)
    }

    /// [`shutdown`](Self::shutdown), also returning the final stage histograms (for
    /// `--hgrm`).
    pub fn shutdown_with_histograms(
        mut self,
        alerts_out: &mut dyn std::io::Write,
    ) -> (StatsReport, u32, pipeline::StageHistograms) {
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
        if let Some(source) = self.etcd.as_mut() {
            source.stop();
        }
        // Old table versions go now, on this thread.
        for p in &mut self.publishers {
            p.reclaim();
        }
        (report, self.pool.in_use() + self.rx_pool.in_use(), self.timing.histograms().clone())
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
    fn card(&self, card: CardId) -> Option<&str> {
        self.cards.iter().find(|c| c.id() == card).map(|c| c.plan.name.as_str())
    }
    fn instance(&self, eni: u32) -> Option<&str> {
        self.topo.instance(mapping_client::topology::EniId(eni)).map(|i| i.name.as_str())
    }
    fn vpc(&self, vni: u32) -> Option<&str> {
        self.topo.vpc_by_vni(vni).and_then(|v| self.topo.vpc(v)).map(|v| v.name.as_str())
    }
}

/// Start the ESP cipher `choice` and give every edge of `cards` its SAs, from its first
/// tables in `publishers` (the VPN set does not change at run time: the control socket has
/// no VPN commands). Returns the cipher's name, when `auto` fell back to ring why, and
/// which cipher takes which lengths when two do.
fn edge_sas(
    cards: &mut [CardInfo],
    publishers: &[Publisher<Tables>],
    choice: EspCipher,
) -> Result<(&'static str, Option<String>, Option<String>), EngineError> {
    let Started { cipher, warning, info } = Cipher::start(choice)?;
    for (card, publisher) in cards.iter_mut().zip(publishers) {
        if card.plan.is_edge() {
            let sas = blackfoot::EdgeSas::with(publisher.live(), cipher.factory())
                .and_then(|sas| blackfoot::InboundSas::with(publisher.live(), cipher.factory()).map(|_| sas))
                .map_err(|e| EngineError::Config(format!("edge {}: {e} by {}", card.plan.name, cipher.factory().name())))?;
            card.sas = Some(Arc::new(sas));
            card.cipher = cipher.clone();
        }
    }
    Ok((cipher.factory().name(), warning, info))
}

/// Worker `w`'s queues: the RX side of the ports in `mine`, its TX queue on every port.
fn worker_io(ports: &mut [PortRt], mine: &[usize], w: usize) -> (Vec<(usize, RxSource)>, Vec<PortSink>) {
    let mut rx = Vec::new();
    let mut tx = Vec::new();
    for (i, p) in ports.iter_mut().enumerate() {
        let polled = mine.contains(&i);
        if let Some(eth) = p.eth.as_mut() {
            if polled {
                if let Some(q) = eth.rx_queue(0) {
                    rx.push((i, RxSource::Eth(q)));
                }
            }
            tx.push(eth.tx_queue(w as u16).map(PortSink::Eth).unwrap_or(PortSink::None));
        } else if let Some(s) = &p.soft {
            if polled {
                rx.push((i, RxSource::Soft(Arc::clone(s))));
            }
            tx.push(PortSink::Soft(Arc::clone(s)));
        }
    }
    (rx, tx)
}

/// Configure and start the device `vdev` found in `eal`; a failure quotes what DPDK logged.
fn open_port(eal: &Eal, vdev: &str, cfg: &PortConfig, rx: dpdk::RxPools<'_>) -> Result<Port, EngineError> {
    let mut port = find_port(eal, dpdk::vdev_name(vdev))?;
    // DPDK says why in its log: quote it beside the errno.
    let why = |e: dpdk::DpdkError| match eal.logged_cause(&[&format!("port_id {}", port_id_of(&e))]) {
        Some(cause) => EngineError::Config(format!("{e} ({cause})")),
        None => EngineError::Dpdk(e),
    };
    port.configure(cfg, rx).map_err(why)?;
    port.start().map_err(why)?;
    Ok(port)
}

/// The trash can of a running engine at `path`: its ports then `fabric` as interfaces,
/// its cards by name.
pub fn open_trash(
    path: &std::path::Path,
    file: std::fs::File,
    bin: &Arc<TrashBin>,
    engine: &Engine,
) -> super::trash::TrashWriter {
    let mut interfaces: Vec<String> = engine.port_mtus().into_iter().map(|p| p.name).collect();
    interfaces.push("fabric".into());
    let cards = engine.cards().iter().map(|c| c.plan.name.clone()).collect();
    super::trash::TrashWriter::create(path, file, Arc::clone(bin), &interfaces, cards, crate::dpdk::rdtsc(), engine.tsc_hz())
}
