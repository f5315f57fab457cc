//! The Blackfoot edge's data plane: what an edge does with the VPC traffic that leaves a
//! VPC and with what comes back, sans-I/O over [`wire::PacketBuf`] (the DPDK mbuf in the
//! runtime, [`wire::TestBuffer`] in tests and benchmarks).
//!
//! # The pipelines
//!
//! Each pipeline runs named stages (structs implementing [`pipeline::Stage`], through
//! [`pipeline::run_timed`]) over the card context both cards share, [`pipeline::CardCtx`]
//! over the edge's [`Tables`](mapping_client::Tables). The drops column of each table is
//! what the stages declare ([`pipeline::StageInfo::DROPS`], [`FromUnderlay::DROPS`],
//! [`FromOutside::DROPS`]): `tests/drop_tables.rs` checks the tables against the
//! declarations, and debug builds check every drop against its stage's declaration.
//!
//! **From the underlay** — [`FromUnderlay::process`], for Geneve frames hosts send to the edge (through the fabric or the edge's underlay port):
//!
//! | stage | what it does | forwards to | drops |
//! | --- | --- | --- | --- |
//! | `verify-recv` | The front end both cards share, [`pipeline::underlay::receive`]: the outer header ([`wire::vpc::parse_outer`]), then outer destination = this edge's PA, then the inner IPv4 header (version, IHL, lengths equal to the Geneve payload's, header checksum), then the VPC MTU (a frame both damaged and too long is `malformed`). Then the edge's own rules: VNI = source VPC (edge routes carry the sender's own VPC: a peer may not use this VPC's gateways); one burst lookup of (source VPC, inner source): it must live behind the outer source PA, in a VPC this edge serves. Then the sender VPC's route for the inner destination, longest prefix first, picks the way out. | | `malformed`, `unsupported`, `unknown_destination`, `mtu_exceeded`, `unknown_sender`*, `no_route`* |
//! | `decap` | Outer header and padding off: the buffer is the inner IPv4 packet. | | `malformed` (none is: verify-recv measured the frame) |
//! | `esp-encrypt` | VPN prefixes: ESP tunnel mode with the VPN's outbound SA ([`esp`]). A tunnel packet over the 1500-byte internet MTU: the inner packet is fragmented first and each fragment encrypted, or, with DF, answered with ICMP fragmentation-needed (the MTU that fits) back to the sender. Ethernet to the internet next hop. The burst's packets that fit are sealed by one cipher call per SA ([`aead::Aead::seal_burst`]), their sequence numbers taken by one atomic add when one SA has them all. | internet | `esp_seq_exhausted`, `mtu_exceeded`, `malformed`, `no_room`, `no_buffer`, `unknown_destination`† |
//! | `vlan` | DX prefixes: Ethernet to the VIF's router MAC with the VIF's 802.1Q tag. | dx | `no_room`, `unknown_destination`† |
//! | `endpoint` | Endpoint prefixes: Geneve towards the endpoint's S3 front end, VNI = source VPC = the sender's VPC, plus the 64-bit VPC endpoint ID option (class 0x0108, type 1); inner packet unchanged. | services | `mtu_exceeded`, `no_room`, `unknown_destination`†, `unsupported` (a VNI over 24 bits: none is) |
//! | `nat` | Everything else (the VPC's internet gateway on this edge): the source must own an Elastic IP; SNAT ([`nat`]: IPv4, TCP/UDP checksums incremental, ICMP errors' quoted header too); over 1500 bytes: fragmented ([`pipeline::frag`]), or fragmentation-needed back with DF. Ethernet to the internet next hop. | internet | `no_elastic_ip`, `malformed`, `mtu_exceeded` (no fragmentation-needed may answer an ICMP error or a later fragment), `no_room`, `no_buffer`, `unknown_destination`† |
//! | `encap` | Fragmentation-needed answers: back to the sender's host like traffic from outside. | fabric | `no_mapping`, `mtu_exceeded`, `no_room`, `unsupported` |
//!
//! **From outside** — [`FromOutside::process`], per side:
//!
//! | side | stage | what it does | drops |
//! | --- | --- | --- | --- |
//! | internet | `classify` | ARP requests for the edge's addresses answered (out of the internet port); Ethernet/IPv4 only, header sound; ESP to a tunnel address of this edge -> `esp-decrypt`; destination an Elastic IP -> `nat`. | `arp_ignored`, `malformed`, `not_ipv4`, `no_elastic_ip`, `unknown_destination`† (ARP) |
//! | internet | `esp-decrypt` | Outer IPv4 off; SA by SPI (and tunnel address); anti-replay window of 1024; AES-GCM open (the burst's packets by one cipher call per SA, [`aead::Aead::open_burst`], the window checked again after it); trailer; the inner source must be in the VPN's remote prefixes and the destination in the VPC. | `unsupported` (outer fragments, next header not IPv4), `malformed`, `unknown_spi`, `esp_replay`, `esp_auth_failed`*, `vpn_policy`* |
//! | internet | `nat` | DNAT the Elastic IP to the private address (ICMP errors: the quoted header too). | `malformed`, `no_elastic_ip` (the quote of an ICMP error for another address) |
//! | dx | `vlan` | The 802.1Q VLAN names the VIF, whose VPC the packet enters; tag and Ethernet off. | `unknown_vlan`, `not_ipv4`, `malformed` |
//! | services | `endpoint` | Geneve to this edge with an endpoint ID option naming one of its endpoints, from that endpoint's front end, VNI = source VPC = the endpoint's VPC; outer header off. | `unknown_endpoint`, `endpoint_mismatch`*, `malformed`, `unsupported`, `unknown_destination` (not this edge's PA) |
//! | all | `encap` | One burst lookup of (VPC, inner destination); the VPC encapsulation from this edge (VNI = source VPC) to the host's PA. | `no_mapping`, `mtu_exceeded`, `no_room`, `unsupported` |
//!
//! \* security reasons: the drop also raises an alert (edge, VPC, addresses).
//! † the edge has no port of that side in this process ([`EdgeOutputs`]).
//!
//! # Choices
//!
//! * **MACs.** The edge's own MAC on every side is [`wire::vpc::card_mac`] of its PA (as
//!   a Nitro card's). Frames
//!   to the internet go to [`INTERNET_NEXT_HOP_MAC`] (`02:00:00:fe:00:02`), as if one
//!   upstream router took them; DX frames to the VIF's `router_mac`; Geneve to the
//!   underlay next hop [`wire::vpc::UNDERLAY_ROUTER_MAC`].
//! * **verify-recv's front end is the Nitro card's**: [`pipeline::underlay::receive`], the
//!   same checks in the same order with the same drop reasons on both cards (outer header:
//!   `unsupported` or `malformed`; not this edge's PA: `unknown_destination`; inner IPv4
//!   header, checksum included: `malformed`; over 9001 bytes: `mtu_exceeded`). The inner
//!   header is validated before its length is judged, as a router validates a header
//!   before acting on it (RFC 1812 section 5.2.2).
//! * **TTL** is not decremented (as on the Nitro card): the edge is the VPC's gateway,
//!   not a hop the instance sees.
//! * **Fragmentation-needed** answers come from the VPC router address (the VPC CIDR's
//!   first address + 1) and quote the offending inner packet; they reach the sender
//!   through its host like any packet from outside.
//! * **SA state.** Outbound SAs ([`EdgeSas`]) are shared by all workers through an `Arc`:
//!   the sequence number is an atomic counter, so no number is used twice. Inbound SAs
//!   ([`InboundSas`]) are owned by the pipeline: the anti-replay window is the state of
//!   the worker polling the edge's internet port (one RX queue per port).
//! * **ARP** on the internet side ([`pipeline::arp::respond`], the responder both cards
//!   run): requests for an Elastic IP or a tunnel address of the
//!   edge are answered with its MAC (out of the internet port); any other ARP is
//!   `arp_ignored`. The edge sends to fixed next-hop MACs (it does not resolve them) and
//!   takes any destination MAC, as a router port in promiscuous mode.
//!
//! # Limits
//!
//! * Direct Connect traffic coming in is not checked against the VIF's remote prefixes
//!   (there is no drop reason for it in the contract): the DX router is trusted as AWS
//!   trusts a BGP peer's routes; the mapping lookup still confines it to the VIF's VPC.
//! * Fragments of ESP tunnel packets (outer IPv4 fragments) are not reassembled:
//!   `unsupported`. The edge fragments inner packets before encryption, so its own peer
//!   never needs to.
//! * No IKE: SAs come from the topology file; no ESN (32-bit sequence numbers).
//!
//! # Cost
//!
//! Table slots are prefetched as soon as their key is known ([`pipeline::prefetch`]):
//! `verify-recv` hashes each packet's (VPC, inner source) key as soon as it has parsed it,
//! prefetches its mapping slot while it parses the rest of the burst, and probes from that
//! home in its second pass, keeping only the PA
//! ([`mapping_client::Tables::mapping_pa_homed`]); for internet-bound packets it hashes
//! the Elastic IP key and prefetches the slot `nat` then probes
//! ([`mapping_client::Tables::elastic_ip_homed`]); the return path to
//! the hosts looks its burst up together ([`mapping_client::Tables::lookup_burst`]);
//! nothing allocates, locks or logs on the packet path except the buffers fragmentation
//! takes from the pool through [`Extra`].
//!
//! Each thing is worked out once a burst where the burst's packets share it: `verify-recv`
//! parses vpcemu's own frame on a fast path ([`wire::vpc::parse_outer`]), matches the
//! route by reference and works out the way out (VPN, VIF, endpoint or internet gateway,
//! with its table lookups) once per VPC and route, handing it on per packet as a one-byte
//! index; `endpoint` keeps one [`wire::vpc::FixedTemplate`] (destination and VNI
//! written in) across bursts, made again only when the endpoint, its front end, the VPC
//! or the edge's PA changes, and patches a copy's length, checksum and source port per
//! packet; `nat` translates the common packet (20-byte header, TCP or UDP, not a later
//! fragment) straight through ([`nat`]).
//!
//! Nothing on the packet path walks the edge's VPNs or VPCs: `classify` asks the tables'
//! set of tunnel addresses ([`mapping_client::Tables::is_tunnel_address`]), `esp-decrypt`
//! finds its SA by SPI and `esp-encrypt` by VPN in hash maps ([`InboundSas`],
//! [`EdgeSas`]), and ARP answers use the same set. An edge with 100 VPNs pays per packet
//! what an edge with one pays (`vpcemu-bench scale-blackfoot`).
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod aead;
#[macro_use]
mod common;
pub mod esp;
mod from_outside;
mod from_underlay;
pub mod nat;
mod sa;

pub use common::{EdgeOutputs, INTERNET_MTU, INTERNET_NEXT_HOP_MAC};
/// Where the edge's stages get and send the packets they make beyond a burst (fragments);
/// shared with the Nitro card, defined in `pipeline`.
pub use pipeline::{Extra, VecExtra};
pub use from_outside::{FromOutside, Side};
pub use from_underlay::FromUnderlay;
pub use sa::{EdgeSas, InboundSas};
