//! The ARP responder both cards run: a Nitro card for its instances (the ARP proxy of
//! classify), an edge on its internet side (its Elastic IPs and tunnel addresses). The
//! card says whom it answers and with which MAC; the parsing, the reasons and the reply
//! written in place are here, once.

use wire::{arp, EthernetAddress, PacketBuf};

use crate::drop::DropReason;

const ETH_LEN: usize = 14;

/// Answer the ARP request in the Ethernet frame `p` in place (the reply goes back out of
/// the port it came in on), with the MAC `answer` gives for the parsed request; `answer`
/// returns `arp_ignored` for a request the card does not answer.
///
/// Reasons: `malformed` for ARP shorter than it declares or with wrong address lengths;
/// `arp_ignored` for another hardware or protocol type, a reply, or what `answer`
/// refuses. Never panics.
#[cold]
#[inline(never)]
pub fn respond<B, F>(p: &mut B, answer: F) -> Result<(), DropReason>
where
    B: PacketBuf,
    F: FnOnce(&arp::Repr) -> Result<EthernetAddress, DropReason>,
{
    let ignored = |e: wire::Error| match DropReason::from(e) {
        DropReason::Unsupported => DropReason::ArpIgnored,
        r => r,
    };
    let payload = p.data().get(ETH_LEN..).unwrap_or(&[]);
    let request = arp::Packet::new_checked(payload).and_then(|pkt| arp::Repr::parse(&pkt)).map_err(ignored)?;
    let mac = answer(&request)?;
    arp::reply_in_place(p, &request, mac).map_err(ignored)
}
