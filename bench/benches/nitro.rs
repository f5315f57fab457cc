//! Nitro card egress and ingress, cycles per packet at burst 32, 64-byte inner packets.
//!
//! # The world
//!
//! 16 VPCs of 65 536 addresses (10.v.0.0/16, VNI v) = 1 048 576 mappings spread over 1 000
//! host PAs, built straight into one card's [`Tables`] with [`TableOp`]s (a topology file
//! of a million instances would cost gigabytes of model for nothing measured here). The
//! card under test (198.18.200.1) has 32 local ENIs in VPC 1.
//!
//! * **egress**: one local ENI sends 64-byte UDP packets to the 65 536 addresses of its VPC
//!   (64k active destinations, in a shuffled order, each a different mapping-table slot
//!   among the million): classify, verify-send, route (one `lookup_burst` per burst),
//!   encap.
//! * **ingress**: Geneve frames from the 65 536 addresses of VPC 1, each from the PA its
//!   mapping gives (64k active sources), to the 32 local ENIs: verify-recv (parse, one
//!   `lookup_burst` of 64 keys per burst), decap.
//!
//! A round is 64 bursts of 32 packets. Before each round the buffers are rewritten to fresh
//! received frames (untimed: that is the NIC's work); the timed part is `process` over the
//! 64 bursts; after it the bursts are drained (untimed: that is the TX path). Timing is
//! either compiled out ([`NullClock`]) or on (an rdtsc clock: one TSC read per stage and
//! one more per burst, one histogram update per stage per burst), on every burst or, in
//! the summary, sampled as `vpcemu run` does by default ([`Sampled`]: a burst per 20 us).
//!
//! After the criterion groups, `nitro-summary` prints cycles per packet measured with the
//! TSC (median of interleaved rounds) and the per-stage p50 from the worker's histograms.

mod common;

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use mapping_client::tables::PrefixTable;
use mapping_client::{
    Cidr, EniId, LocalEni, Location, MacAddr, Route, SubnetId, SubnetInfo, TableOp, Tables,
    VpcEntry,
};
use nitro::{EniPort, FromInstance, FromInstanceOutputs, FromUnderlay};
use pipeline::CardCtx;
use pipeline::{
    alert_channel, AlertProducer, Burst, CardId, Clock, DropReason, HistogramConfig, Meters,
    NullClock, Output, RateLimit, Sampled, StageId, TimingCollector, VecExtra,
};
use wire::vpc::{emit_outer, inner_flow_hash, Encap, OUTER_HEADER_LEN};
use wire::{PacketBuf, TestBuffer};

const BURST: usize = 32;
const BURSTS: usize = 64;
const ROUND: usize = BURST * BURSTS;
const VPCS: u32 = 16;
const VPC_SIZE: u32 = 65_536;
const HOSTS: u32 = 1_000;
const LOCAL: u32 = 32;
/// Local ENIs are addresses FIRST_LOCAL.. of VPC 1.
const FIRST_LOCAL: u32 = 16;
const CARD_PA: Ipv4Addr = Ipv4Addr::new(198, 18, 200, 1);
const EDGE_PA: Ipv4Addr = Ipv4Addr::new(198, 18, 255, 1);
const INNER_LEN: usize = 64;
const EGRESS_FRAME: usize = 14 + INNER_LEN;
const INGRESS_FRAME: usize = OUTER_HEADER_LEN + INNER_LEN;

/// The TSC, read with `rdtsc` (not serialising: the cheap read a worker would use), as the
/// workers time their stages.
use pipeline::clock::{median, rdtsc as tsc, TscClock as Rdtsc};

// ----- the world -----

fn addr(vni: u32, k: u32) -> Ipv4Addr {
    Ipv4Addr::new(10, vni as u8, (k >> 8) as u8, k as u8)
}

fn is_local(vni: u32, k: u32) -> bool {
    vni == 1 && (FIRST_LOCAL..FIRST_LOCAL + LOCAL).contains(&k)
}

fn mix(x: u32) -> u32 {
    let x = (x ^ (x >> 16)).wrapping_mul(0x7feb_352d);
    let x = (x ^ (x >> 15)).wrapping_mul(0x846c_a68b);
    x ^ (x >> 16)
}

fn location(vni: u32, k: u32) -> Location {
    let ip = addr(vni, k);
    if is_local(vni, k) {
        return Location {
            pa: CARD_PA,
            eni: EniId(1 + k - FIRST_LOCAL),
            mac: MacAddr::from_ip(ip),
            subnet: SubnetId(256),
        };
    }
    Location {
        pa: Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 0)) + mix(vni << 16 | k) % HOSTS),
        eni: EniId(1000 + (vni - 1) * VPC_SIZE + k),
        mac: MacAddr::from_ip(ip),
        subnet: SubnetId((vni * 256 + (k >> 8)) as u16),
    }
}

fn tables() -> Tables {
    let mut t = Tables::empty(None, "bench-card".into(), CARD_PA);
    t.reserve_mappings((VPCS * VPC_SIZE) as usize);
    for vni in 1..=VPCS {
        let cidr = Cidr::new(addr(vni, 0), 16).expect("cidr");
        let subnets = (0..256u32)
            .map(|s| SubnetInfo {
                id: SubnetId((vni * 256 + s) as u16),
                name: format!("s{vni}-{s}"),
                vni,
                cidr: Cidr::new(addr(vni, s << 8), 24).expect("subnet"),
            })
            .collect();
        t.apply(&TableOp::UpsertVpc(Box::new(VpcEntry {
            vni,
            name: format!("vpc-{vni}"),
            cidr,
            internet_gateway: Some(EDGE_PA),
            subnets,
            routes: PrefixTable::new([(cidr, Route::Vpc { vni })]),
        })));
        for k in 0..VPC_SIZE {
            t.apply(&TableOp::UpsertMapping {
                vni,
                ip: addr(vni, k),
                location: location(vni, k),
            });
        }
    }
    for k in FIRST_LOCAL..FIRST_LOCAL + LOCAL {
        let loc = location(1, k);
        t.apply(&TableOp::UpsertLocalEni(Box::new(LocalEni {
            eni: loc.eni,
            name: format!("local-{k}"),
            vni: 1,
            subnet: loc.subnet,
            mac: loc.mac,
            ip: addr(1, k),
            secondary_ips: Vec::new(),
            source_dest_check: true,
        })));
    }
    assert_eq!(t.mappings().len(), (VPCS * VPC_SIZE) as usize);
    t
}

/// 0..65536 in a fixed shuffled order.
fn permutation() -> Vec<u32> {
    let mut v: Vec<u32> = (0..VPC_SIZE).collect();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for i in (1..v.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.swap(i, (x % (i as u64 + 1)) as usize);
    }
    // NITRO_BENCH_ACTIVE=N shrinks the active set (to separate the stages' own cost from
    // the cache misses of the mapping lookups).
    if let Some(n) = std::env::var("NITRO_BENCH_ACTIVE")
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
    {
        v.truncate(n.clamp(1, v.len()));
    }
    v
}

// ----- frames -----

/// A 64-byte UDP/IPv4 packet.
fn write_inner(p: &mut [u8], src: Ipv4Addr, dst: Ipv4Addr, sport: u16) {
    p[..INNER_LEN].fill(0);
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(INNER_LEN as u16).to_be_bytes());
    p[6] = 0x40;
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    let c = wire::checksum::ipv4_header(&p[..20]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p[20..22].copy_from_slice(&sport.to_be_bytes());
    p[22..24].copy_from_slice(&80u16.to_be_bytes());
    p[24..26].copy_from_slice(&((INNER_LEN - 20) as u16).to_be_bytes());
}

/// Make `b` hold exactly `len` bytes ending where its data ends now (undoing the previous
/// pass's prepend or adj).
fn resize_front(b: &mut TestBuffer, len: usize) {
    let cur = b.len();
    if cur > len {
        b.adj(cur - len).expect("adj");
    } else {
        b.prepend(len - cur).expect("headroom");
    }
}

fn write_egress(b: &mut TestBuffer, src_mac: MacAddr, dst: u32) {
    resize_front(b, EGRESS_FRAME);
    let f = b.data_mut();
    f[..6].copy_from_slice(&wire::vpc::subnet_router_mac(SubnetId(256).0).0);
    f[6..12].copy_from_slice(&src_mac.0);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    write_inner(
        &mut f[14..],
        addr(1, FIRST_LOCAL),
        addr(1, dst),
        1024 + (dst % 50_000) as u16,
    );
}

fn write_ingress(b: &mut TestBuffer, src: u32, n: usize) {
    resize_front(b, INGRESS_FRAME);
    let f = b.data_mut();
    let dst = FIRST_LOCAL + (n as u32 % LOCAL);
    write_inner(
        &mut f[OUTER_HEADER_LEN..],
        addr(1, src),
        addr(1, dst),
        1024 + (src % 50_000) as u16,
    );
    let src_pa = location(1, src).pa;
    let encap = Encap {
        src_mac: wire::vpc::card_mac(src_pa),
        dst_mac: wire::vpc::UNDERLAY_ROUTER_MAC,
        src_pa,
        dst_pa: CARD_PA,
        vni: 1,
        source_vpc: 1,
    };
    let hash = inner_flow_hash(&f[OUTER_HEADER_LEN..]);
    let head: &mut [u8; OUTER_HEADER_LEN] = (&mut f[..OUTER_HEADER_LEN]).try_into().expect("58");
    emit_outer(head, &encap, INNER_LEN, hash).expect("emit");
}

// ----- the harness -----

#[derive(Clone, Copy, PartialEq, Eq)]
enum Dir {
    Egress,
    Ingress,
}

struct Bench {
    dir: Dir,
    tables: &'static Tables,
    perm: &'static [u32],
    next: usize,
    bursts: Vec<Burst<TestBuffer>>,
    pool: Vec<TestBuffer>,
    egress: FromInstance,
    ingress: FromUnderlay,
    ports: Vec<Option<EniPort>>,
    alerts: AlertProducer,
    meters: Meters,
    _collector: TimingCollector,
    sender: EniId,
    sender_mac: MacAddr,
}

impl Bench {
    fn new(dir: Dir, tables: &'static Tables, perm: &'static [u32]) -> Bench {
        let mut collector = TimingCollector::new(HistogramConfig::default()).expect("histograms");
        let meters = Meters::new(collector.add_worker(u64::MAX).expect("worker"));
        let (alerts, consumer) = alert_channel(1024);
        std::mem::forget(consumer);
        let outputs = FromInstanceOutputs {
            reply: Output::new(0).expect("out"),
            underlay: Output::new(1).expect("out"),
        };
        let mut ports = vec![None; 1 + LOCAL as usize];
        for (i, p) in ports.iter_mut().enumerate().skip(1) {
            *p = Output::new(1 + i).map(EniPort::vpc_mtu);
        }
        let sender = tables
            .local_eni_by_ip(1, addr(1, FIRST_LOCAL))
            .expect("sender");
        let room = 128 + INGRESS_FRAME;
        Bench {
            dir,
            tables,
            perm,
            next: 0,
            bursts: (0..BURSTS).map(|_| Burst::new()).collect(),
            pool: (0..ROUND)
                .map(|_| TestBuffer::with_room(128, room))
                .collect(),
            egress: FromInstance::new(outputs),
            ingress: FromUnderlay::new(outputs.underlay),
            ports,
            alerts,
            meters,
            _collector: collector,
            sender: sender.eni,
            sender_mac: sender.mac,
        }
    }

    /// Untimed: fill the bursts with freshly received frames.
    fn refill(&mut self) {
        for burst in &mut self.bursts {
            for _ in 0..BURST {
                let mut b = self.pool.pop().expect("pool");
                let k = self.perm[self.next % self.perm.len()];
                match self.dir {
                    Dir::Egress => write_egress(&mut b, self.sender_mac, k),
                    Dir::Ingress => write_ingress(&mut b, k, self.next),
                }
                self.next += 1;
                let _ = burst.push(b);
            }
        }
    }

    /// Timed: the card's stages over every burst. With `SAMPLED`, each burst first reads
    /// the TSC for the clock's [`Clock::begin_burst`] (a read the worker makes once a loop
    /// anyway: counted here against sampling).
    #[inline(never)]
    fn process<C: Clock, const SAMPLED: bool>(&mut self, clock: &C) {
        let limit = RateLimit::unlimited();
        let mut ctx = CardCtx {
            tables: self.tables,
            card: CardId::Host(wire::HostId(0)),
            alerts: &mut self.alerts,
            icmp_limit: &limit,
            now: 0,
        };
        // Every frame fits its port: nothing is made beyond a burst.
        let mut extra = VecExtra::new(|| None::<TestBuffer>);
        for burst in &mut self.bursts {
            if SAMPLED {
                clock.begin_burst(tsc());
            }
            match self.dir {
                Dir::Egress => {
                    self.egress
                        .process(burst, self.sender, &mut ctx, clock, &mut self.meters)
                }
                Dir::Ingress => {
                    self.ingress.process(
                        burst,
                        &self.ports,
                        &mut ctx,
                        &mut extra,
                        clock,
                        &mut self.meters,
                    )
                }
            }
        }
    }

    /// Untimed: the TX side takes the buffers back.
    fn drain(&mut self) {
        let pool = &mut self.pool;
        for burst in &mut self.bursts {
            burst.drain(&mut self.meters.counters, |b, _| pool.push(b));
        }
    }

    /// One round; returns the TSC cycles of the timed part.
    fn round<C: Clock, const SAMPLED: bool>(&mut self, clock: &C) -> u64 {
        self.refill();
        let t0 = tsc();
        self.process::<C, SAMPLED>(black_box(clock));
        let t = tsc() - t0;
        self.drain();
        t
    }

    fn check(&self) {
        // (Nothing ran when criterion's filter skipped the function.)
        let c = &self.meters.counters;
        assert_eq!(
            c.total_drops(),
            0,
            "every packet forwarded ({:?})",
            DropReason::ALL.map(|r| c.drops(r))
        );
    }
}

fn world() -> (&'static Tables, &'static [u32]) {
    use std::sync::OnceLock;
    static WORLD: OnceLock<(Tables, Vec<u32>)> = OnceLock::new();
    let (t, p) = WORLD.get_or_init(|| {
        let t0 = Instant::now();
        let t = tables();
        eprintln!(
            "nitro bench: built {} mappings in {:.1?}",
            t.mappings().len(),
            t0.elapsed()
        );
        (t, permutation())
    });
    (t, p)
}

/// Time `b`'s stages with `clock` (refill and drain outside the timed part), then check
/// what they did.
fn measure<C: Clock>(g: &mut BenchmarkGroup<'_, WallTime>, id: &str, mut b: Bench, clock: &C) {
    g.bench_function(id, |bench| {
        bench.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                b.refill();
                let t0 = Instant::now();
                b.process::<C, false>(black_box(clock));
                total += t0.elapsed();
                b.drain();
            }
            total
        })
    });
    b.check();
}

fn bench_nitro(c: &mut Criterion) {
    let (tables, perm) = world();
    let mut g = c.benchmark_group("nitro-burst32-64B-1M-mappings");
    g.throughput(Throughput::Elements(ROUND as u64));
    for (dir, name) in [(Dir::Egress, "egress"), (Dir::Ingress, "ingress")] {
        measure(&mut g, &format!("{name}/null-clock"), Bench::new(dir, tables, perm), &NullClock);
        measure(&mut g, &format!("{name}/rdtsc"), Bench::new(dir, tables, perm), &Rdtsc);
    }
    g.finish();
}


fn summary(_c: &mut Criterion) {
    let (tables, perm) = world();
    let t0 = (Instant::now(), tsc());
    std::thread::sleep(Duration::from_millis(200));
    let hz = (tsc() - t0.1) as f64 / t0.0.elapsed().as_secs_f64();
    const ROUNDS: usize = 400;
    println!();
    println!(
        "nitro-summary (burst {BURST}, {INNER_LEN}-byte inner packets, {} mappings, {} active \
         peers, TSC {:.2} GHz, median of {ROUNDS} rounds of {ROUND} packets):",
        tables.mappings().len(),
        perm.len(),
        hz / 1e9
    );
    // The mapping lookups alone, as route does them: bursts of 32 keys from the same 64k
    // active destinations.
    let mut keys = [(0u32, Ipv4Addr::UNSPECIFIED); BURST];
    let mut out = [None; BURST];
    let mut look = Vec::new();
    let mut next = 0usize;
    for round in 0..ROUNDS + 32 {
        let t0 = tsc();
        for _ in 0..BURSTS {
            for k in keys.iter_mut() {
                *k = (1, addr(1, perm[next % perm.len()]));
                next += 1;
            }
            tables.lookup_burst(black_box(&keys), &mut out);
            black_box(&out);
        }
        if round >= 32 {
            look.push((tsc() - t0) as f64 / ROUND as f64);
        }
    }
    println!(
        "  lookup_burst alone: {:6.1} cycles/key (32 keys a call)",
        median(&mut look)
    );
    for (dir, name, stages) in [
        (
            Dir::Egress,
            "egress ",
            &[
                StageId::Classify,
                StageId::VerifySend,
                StageId::Route,
                StageId::Encap,
            ][..],
        ),
        (
            Dir::Ingress,
            "ingress",
            &[StageId::VerifyRecv, StageId::Decap][..],
        ),
    ] {
        let (mut off, mut on, mut some) =
            (Bench::new(dir, tables, perm), Bench::new(dir, tables, perm), Bench::new(dir, tables, perm));
        // A third of the working set apart, so none finds the table lines another just loaded.
        on.next = perm.len() / 3;
        some.next = 2 * perm.len() / 3;
        // As `vpcemu run` samples by default: a burst per 20 us at most.
        let sampled = Sampled::new(Rdtsc, (hz * 20e-6) as u64);
        // Warm up: every destination / source once.
        for _ in 0..(perm.len() / ROUND).max(4) {
            off.round::<_, false>(&NullClock);
            on.round::<_, false>(&Rdtsc);
            some.round::<_, true>(&sampled);
        }
        let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            a.push(off.round::<_, false>(&NullClock) as f64 / ROUND as f64);
            b.push(on.round::<_, false>(&Rdtsc) as f64 / ROUND as f64);
            c.push(some.round::<_, true>(&sampled) as f64 / ROUND as f64);
        }
        off.check();
        on.check();
        some.check();
        let (a, b, c) = (median(&mut a), median(&mut b), median(&mut c));
        let timed = |s: StageId| some.meters.timing.current().get(s).len() as f64;
        let share = timed(stages[0]) / some.meters.counters.stage_packets(stages[0]).max(1) as f64;
        let per_stage: Vec<String> = stages
            .iter()
            .map(|s| {
                format!(
                    "{} p50 {}",
                    s,
                    on.meters.timing.current().get(*s).value_at_quantile(0.5)
                )
            })
            .collect();
        println!(
            "  {name}: timing off {a:6.1} cycles/packet, every burst {b:6.1} ({:+.1}%), sampled \
             {c:6.1} ({:+.1}%, {:.0}% of packets timed); stages (cycles/packet): {}",
            (b - a) / a * 100.0,
            (c - a) / a * 100.0,
            share * 100.0,
            per_stage.join(", ")
        );
    }
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = bench_nitro, summary
}
criterion_main!(benches);
