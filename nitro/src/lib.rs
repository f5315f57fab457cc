//! The Nitro card's data plane: the stages a host's card runs on the packets of its
//! instances and on the encapsulated packets of the underlay, sans-I/O over
//! [`wire::PacketBuf`] (the DPDK mbuf in the runtime, [`wire::TestBuffer`] in tests and
//! benchmarks).
//!
//! # The two pipelines
//!
//! The runtime calls one of two entry points per received burst; every packet of the burst
//! leaves it decided (forwarded to an [`Output`](pipeline::Output) or dropped with a named
//! [`DropReason`](pipeline::DropReason)), each stage a named struct implementing [`pipeline::Stage`], run through [`pipeline::run_timed_chained`]
//! (one TSC stamp per stage per burst, a stage's end being the next one's start, compiled
//! out with [`pipeline::NullClock`]).
//!
//! **From the instance** — [`FromInstance::process`], for a burst received on the vNIC port of one
//! ENI (the runtime passes its [`EniId`](mapping_client::EniId)):
//!
//! | stage | what it does | forwards to | drops |
//! | --- | --- | --- | --- |
//! | `classify` | Ethernet II only. ARP requests are answered by the card, the reply written in place into the same buffer. IPv4 header checked (version, IHL, total length within the frame, header checksum). | `reply` (ARP) | `malformed`, `not_ipv4`, `arp_ignored`, `unsupported` |
//! | `verify-send` | The attached ENI owns the frame's source MAC (always) and the packet's source IP, primary or secondary (unless its source/dest check is off). | | `spoofed_source`* |
//! | `route` | Longest prefix in the sender VPC's route table, else its internet gateway. Own or peered VPC: each packet's (VNI, destination) key is hashed as soon as it is routed ([`Tables::mapping_home`](mapping_client::Tables::mapping_home)) and its slot prefetched while the next packets are routed, then each is probed from that home once the burst is routed ([`Tables::mapping_pa_homed`](mapping_client::Tables::mapping_pa_homed)). VPN, DX, endpoint or internet: the edge's PA. | | `no_route`*, `not_peered`*, `no_mapping` |
//! | `encap` | Strip Ethernet (and any padding), prepend the 58-byte outer header of ARCHITECTURE section 3: a [`wire::vpc::OuterTemplate`] written once per burst, then per packet a copy with the per-packet fields patched on their named offsets. | `underlay` | `mtu_exceeded`, `no_room`, `malformed`, `unsupported` |
//!
//! **From the underlay** — [`FromUnderlay::process`], for a burst of Geneve frames from the fabric or
//! an underlay port (what decap makes beyond the burst — later fragments, ICMP answers —
//! goes out through the worker's [`Extra`](pipeline::Extra)):
//!
//! | stage | what it does | forwards to | drops |
//! | --- | --- | --- | --- |
//! | `verify-recv` | The front end both cards share, [`pipeline::underlay::receive`]: the outer header ([`wire::vpc::parse_outer`]), then the outer destination must be this card's PA, then the inner IPv4 header (version, IHL, lengths equal to the Geneve payload's, header checksum), then the VPC MTU. Then the lookups of (source VPC, inner source) and (VNI, inner destination), each key hashed and its slot prefetched as soon as its frame is parsed, unless it is the previous frame's same key (so that the misses overlap the parsing of the next frames, and a burst to one ENI hashes its destination once) and probed in place in a second pass ([`Tables::mapping_homed`](mapping_client::Tables::mapping_homed)): the source must live behind the outer source PA (or the outer source is an edge serving the source VPC), the VNI must be the source VPC or peered with it; the destination must be mapped to this card's PA (which makes it a local ENI, see below) and have a port in the runtime's [`EniPorts`], whose MTU the inner length is compared with. | | `malformed`, `unsupported`, `unknown_destination`, `unknown_sender`*, `mtu_exceeded` |
//! | `decap` | Remove the outer header (and any padding), write Ethernet: destination the ENI's MAC; source the sender's MAC when it is in the same subnet, else the subnet router MAC; type IPv4. An inner packet longer than the port's MTU: without DF, cut into fragments of the MTU ([`pipeline::frag`]), each with that Ethernet header; with DF, dropped and answered with ICMP fragmentation-needed (see *Packets longer than the instance's port carries*). | the ENI's port; answers: the underlay | `mtu_exceeded`, `no_buffer`, `no_room`, `malformed`, `unknown_destination` |
//!
//! \* security reasons: the drop also raises an [`AlertEvent`](pipeline::AlertEvent) (card,
//! ENI, VPCs, inner addresses) through the worker's [`AlertProducer`](pipeline::AlertProducer)
//! ([`CardCtx::alert`](pipeline::CardCtx::alert)); a full alert queue loses the event
//! (counted there), never blocks.
//!
//! The drops column is what each stage declares ([`pipeline::StageInfo::DROPS`],
//! [`FromInstance::DROPS`], [`FromUnderlay::DROPS`]): a test (`tests/drop_tables.rs`)
//! checks these tables against the declarations, and debug builds check every drop
//! against its stage's declaration when the stage runs. Both pipelines take the card
//! context both cards share, [`pipeline::CardCtx`] over the card's
//! [`Tables`](mapping_client::Tables).
//!
//! # Drop reasons, one by one
//!
//! * `malformed` — classify: a runt (< 14 bytes), an IPv4 header that is truncated, not
//!   version 4, IHL < 5, total length shorter than the header or longer than the frame, a bad
//!   header checksum; an ARP packet shorter than it declares or with wrong address lengths.
//!   verify-recv: [`wire::vpc::parse_outer`] refused the frame as truncated, inconsistent or
//!   with a bad checksum (bad Geneve option lengths, missing source-VPC option, inner not
//!   IPv4, ...), or the inner IPv4 header is not sound (version, IHL, a total length other
//!   than the Geneve payload's, a bad header checksum). A frame both damaged and too long
//!   is `malformed`.
//! * `not_ipv4` — classify: an EtherType other than IPv4 and ARP (IPv6, VLAN tags, ...).
//! * `arp_ignored` — classify: an ARP reply, a request for an address outside the sender's
//!   VPC, a request for the requester's own address (duplicate address detection, gratuitous
//!   ARP), ARP for another hardware or protocol type, or ARP from a port whose ENI is not
//!   registered on this card.
//! * `unsupported` — classify: an IPv4 destination that is multicast or the limited
//!   broadcast (a VPC carries neither). encap: a VNI over 24 bits (no loaded topology has
//!   one). verify-recv: a well-formed frame that is not
//!   vpcemu's encapsulation ([`wire::Error::Unsupported`] from `parse_outer`: another
//!   EtherType, IP options, a fragment, not UDP, not port 6081, Geneve version, OAM, another
//!   protocol, an unknown critical option).
//! * `spoofed_source` — verify-send: the frame's source MAC is not the ENI's, or its source
//!   IP is none of the ENI's addresses while source/dest check is on, or the port's ENI is
//!   not registered on this card at all (nobody may send from it).
//! * `no_route` — route: the sender's VPC has no matching prefix and no internet gateway;
//!   or the route is the internet gateway but the destination lies in the CIDR of another VPC
//!   this card knows which is neither the sender's nor peered with it (story 3: green ->
//!   yellow); or the route names an edge the model does not have.
//! * `not_peered` — route: a VPC route towards a VNI that is not peered with the sender's
//!   (a route left over while a peering is being removed).
//! * `no_mapping` — route: the mapping cache has no (VNI, destination) entry; there is no
//!   miss path.
//! * `mtu_exceeded` — encap: the inner IPv4 packet is longer than the VPC MTU, 9001 bytes.
//!   verify-recv: the same for a received inner packet whose headers are sound. decap: the
//!   inner packet is longer than the destination's port carries and has DF set (answered
//!   with fragmentation-needed unless the card's rate limit or RFC 1122's rules forbid), or
//!   cannot be cut (more than 64 fragments: an MTU below 164 for a 9001-byte packet).
//! * `no_buffer` — decap: no buffer for the later fragments of a packet to cut (then none
//!   is sent).
//! * `no_room` — encap: the buffer lacks the 44 bytes of headroom the outer header needs.
//!   decap: a buffer for a fragment lacks the room for it or its Ethernet header.
//! * `unknown_destination` — verify-recv: the outer destination is not this card's PA
//!   (checked right after the outer header, before anything inside it), or
//!   the inner destination is not mapped to this card, or its ENI has no port in
//!   `eni_ports`. decap: a packet verify-recv gave no port (none is).
//! * `unknown_sender` — verify-recv: the mapping does not place (source VPC, inner source)
//!   behind the outer source PA and that PA is not an edge serving the source VPC; or the
//!   destination VNI is neither the source VPC nor peered with it.
//!
//! # Choices
//!
//! * **Subnet router MAC** ([`wire::vpc::subnet_router_mac`]): `02:00:00:ff:` + the 16-bit subnet id,
//!   big-endian. Locally administered, unique per subnet, stable across table versions, and
//!   never an ENI's derived MAC (those are `02:00:` + an instance address, never `0.x.x.x`).
//!   ARP for `.1`, `.2` and any address of the VPC outside the requester's subnet is
//!   answered with it; decap uses it as the source of packets from outside the subnet.
//! * **ARP proxy** (the responder both cards run, [`pipeline::arp::respond`], with the
//!   card's answer): a request whose target is in the requester's subnet and mapped gets the
//!   peer ENI's MAC (wherever the peer runs); any other address in the sender VPC's CIDR
//!   gets the subnet router MAC; everything else is not answered. The reply is a 42-byte
//!   frame (the NIC pads it) to the requester's hardware address, out of `reply`.
//! * **Card MAC** ([`wire::vpc::card_mac`], the edge's too): `02:00:` + the card's PA
//!   (198.18.0.1 -> `02:00:c6:12:00:01`), the outer Ethernet source. **Underlay next hop**
//!   ([`wire::vpc::UNDERLAY_ROUTER_MAC`],
//!   `02:00:00:fe:00:01`): the outer Ethernet destination, as if every card's underlay port
//!   were routed by one top-of-rack router; the in-process fabric switches on the outer
//!   destination PA and ignores it. [`FromInstance::with_next_hop_mac`] changes it.
//! * **verify-recv's front end is the edge's**: the checks of a received frame before any
//!   lookup, their order (outer header, destination PA, inner header, MTU) and their drop
//!   reasons are [`pipeline::underlay::receive`], which the Blackfoot edge runs too, so one
//!   frame gets one answer from either card. The inner header checksum is checked, as a
//!   router validates a header before acting on it (RFC 1812 section 5.2.2): the sending
//!   card checked it too, but a receiver trusts no sender, and a corrupted inner header is
//!   never delivered.
//! * **TTL**: not decremented, on the way out or in. AWS VPC does not decrement the TTL of
//!   traffic within a VPC or across a peering (a traceroute shows the destination as the
//!   first hop); the card is not a router hop to the instance. Edge traffic (IGW, VPN, DX) is
//!   the edge's business.
//! * **Outer header**: ARCHITECTURE section 3 exactly: IPv4 ident 0, DF, TTL 64, DSCP 0;
//!   UDP source port 49152 + [`inner_flow_hash`](wire::vpc::inner_flow_hash) % 16384 (so
//!   every fragment of a datagram takes the same path), UDP checksum 0; Geneve VNI = the
//!   destination VPC (the sender's own VPC for edge routes), source-VPC option = the
//!   sender's VPC.
//! * **Routing** uses the sender VPC's [`VpcEntry`](mapping_client::VpcEntry) (looked up
//!   once per burst) with exactly the rule of [`Tables::route`](mapping_client::Tables::route):
//!   longest prefix, else the internet gateway.
//! * **Local ENI = mapped to this card's PA.** verify-recv does not look the destination up
//!   a second time in the local-ENI table: by the tables contract (every version equals the
//!   tables built from a model, deltas included) a card's mapping names its own PA exactly
//!   for its local ENIs, so the mapping answer already says it; the runtime's port table
//!   then says whether this process has the ENI's port. (A per-packet `local_eni` probe cost
//!   ~20 cycles a packet for nothing.)
//! * **Same-host traffic** is encapsulated towards this card's own PA and comes back
//!   through the fabric like any other.
//! * **Broadcast inside a subnet** (x.x.x.255) has no mapping and is dropped as
//!   `no_mapping`, as a VPC does.
//!
//! # Packets longer than the instance's port carries
//!
//! The VPC MTU is 9001 bytes, but an instance's port may carry less (DPDK 22.11's net_tap:
//! 1500-byte IP packets). The card then acts as the router in front of that link would:
//!
//! * **Where**: the runtime's ENI -> port table ([`EniPorts`]) gives each port's MTU with
//!   its output ([`EniPort`]); verify-recv, which looks the port up anyway, compares the
//!   inner length with it (one compare a packet) and marks the longer ones; decap takes
//!   them on a cold path. So the loss has a stage and a counted reason, instead of the
//!   device refusing the frame at TX (net_tap leaves it, and every packet after it in the
//!   burst, unsent: `tx_full`).
//! * **Without DF**: fragmented as a router would (RFC 791: offsets, MF, copied options),
//!   the first fragment in the packet's own buffer, the others in buffers from the worker's
//!   pool (at most 64, on the stack, no heap allocation), all out of the instance's port.
//! * **With DF**: dropped as `mtu_exceeded`, and answered with ICMP destination
//!   unreachable, fragmentation needed (type 3, code 4, RFC 1191: the port's MTU as
//!   next-hop MTU; the offender's IP header and first 8 payload bytes quoted), so that the
//!   sender's path MTU discovery shrinks its packets (Linux: the route's PMTU exception,
//!   TCP's MSS). No answer about an ICMP error, a later fragment, a multicast, broadcast or
//!   non-unicast source (RFC 1122 3.2.2, RFC 1812 4.3.2.7).
//! * **Who answers, from where**: the answer must reach the sender through the underlay
//!   and pass the sender card's verify-recv, which only takes (source VPC, inner source)
//!   from the PA the mapping places it behind, or from an edge serving that VPC: an ICMP
//!   from a router address (the subnet's `.1`) would be dropped there as `unknown_sender`.
//!   So the card answers on behalf of the destination vNIC's link: the ICMP's source is
//!   the destination instance's address (the one the sender used, secondary or primary),
//!   encapsulated from this card's PA to the offender's outer source PA, VNI = the
//!   offender's source VPC, source-VPC option = its VNI. The sender's card sees a packet
//!   from the destination instance where the mapping puts it, across the same peering, and
//!   delivers it; the edge does the same for internet, VPN or DX senders (and NATs or
//!   encrypts it back out like the instance's own traffic). Linux accepts
//!   fragmentation-needed from any source that quotes one of its packets. This is honest
//!   about what happened — the packet was too long for that instance's link — but the
//!   answer is not the instance's own: a traceroute-style tool would see the destination
//!   say it, not a router.
//! * **Rate limit**: at most [`ICMP_RATE_PER_SEC`] answers a second and [`ICMP_BURST`] at
//!   once per card (Linux's defaults for `icmp_msgs_per_sec` / `icmp_msgs_burst`), shared
//!   by every worker through a lock-free [`RateLimit`](pipeline::RateLimit)
//!   ([`CardCtx::icmp_limit`](pipeline::CardCtx::icmp_limit), time in
//!   [`CardCtx::now`](pipeline::CardCtx::now)). The limit is checked after the cheap checks and before a buffer is
//!   taken; the answer is built in a fresh buffer from the worker's pool (the only
//!   allocation: a pool mbuf), and nothing waits. Over the limit, or without a buffer, the
//!   packet is still dropped `mtu_exceeded`, unanswered.
//! * **Counting**: the offender is one `mtu_exceeded` drop at decap whether answered or
//!   not; the answer is one more packet out of the underlay output; fragments are outputs
//!   of the instance port.
//!
//! # Limits
//!
//! * An ENI with source/dest check off may send foreign sources, and the sending card lets
//!   them through; a receiving card or edge still checks the inner source against the
//!   mapping, so such traffic reaches neither other instances nor the outside. Letting it
//!   through would need the mapping to carry the sender's source/dest check flag.
//! * No DHCP, no DNS at `.2`, no instance metadata: those are dropped (`unsupported` for
//!   broadcast DHCP, `no_mapping` for `.2`).
//! * Only the destination instance's port is checked against its MTU here. A packet too
//!   long for another port on its way (an underlay port between processes below the
//!   underlay's jumbo MTU) is dropped `mtu_exceeded` by the runtime before TX, without an
//!   answer: the underlay of the contract runs jumbo frames, and `vpcemu run` warns at
//!   start about a port below what may leave by it. A packet from an instance longer than
//!   the VPC MTU is `mtu_exceeded` at encap, also without an answer (an instance's interface
//!   MTU is the VPC MTU at most).
//!
//! # Cost
//!
//! Per-packet work is done on fixed offsets with the parse results kept in a per-burst
//! scratch (nothing is parsed twice); the route and the mapping lookups of a burst are one
//! pass each (hash every key, then probe), and a packet whose key equals the previous
//! packet's (a burst of one flow) shares its lookup; per-burst state (the sender ENI, its
//! VPC entry, the outer header template, the last peering answer) is looked up once per
//! burst. Nothing allocates, locks, logs or makes a syscall: the scratch lives in the
//! [`FromInstance`] / [`FromUnderlay`] value the worker owns; the only buffers taken are pool buffers
//! through the worker's [`Extra`](pipeline::Extra), for packets longer than their port
//! carries (fragments, ICMP answers), off the fast path, which pays one compare a packet.
//!
//! No per-packet step walks the world: every table is probed by key, and the one question
//! about all the VPCs the card knows (is an internet-bound destination in the CIDR of
//! another VPC, `no_route`?) is answered by the tables' index of the VPC CIDRs
//! ([`Tables::other_vpc_holding`](mapping_client::Tables::other_vpc_holding): one hash probe
//! per prefix length in use), built on the control core with the tables. A host holding
//! 1000 VPCs pays per packet what a host holding one pays (`vpcemu-bench scale-nitro`).
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use mapping_client::MacAddr;
use wire::EthernetAddress;

mod from_instance;
mod from_underlay;

pub use from_instance::{FromInstance, FromInstanceOutputs};
pub use from_underlay::{EniPort, EniPorts, FromUnderlay};

/// How many ICMP errors (fragmentation-needed) a card sends a second on average, all its
/// workers together ([`CardCtx::icmp_limit`](pipeline::CardCtx::icmp_limit)); Linux's default `icmp_msgs_per_sec`.
pub const ICMP_RATE_PER_SEC: u32 = 1000;

/// How many ICMP errors a card may send at once after a quiet time; Linux's default
/// `icmp_msgs_burst`.
pub const ICMP_BURST: u32 = 50;

/// A mapping-client MAC as a wire MAC.
#[inline(always)]
pub const fn eth(mac: MacAddr) -> EthernetAddress {
    EthernetAddress(mac.0)
}

