//! Drop reasons: why a packet left the pipeline without being sent.
//!
//! Contract: every reason has a stable snake_case [`name`](DropReason::name) (used in the
//! stats JSON, the alerts file, the table and telemetry; never renamed, only added to), a
//! one-line [`description`](DropReason::description), a stable `u8` discriminant (its index
//! in [`DropReason::ALL`] and in the counter arrays) and a fixed answer to
//! [`is_security`](DropReason::is_security): whether dropping for this reason means someone
//! misbehaved, so the stage raises a security alert besides counting the drop.
//!
//! Security reasons (decided once, here):
//! - `spoofed_source`, `unknown_sender`: forged or misplaced source (story 4 and 2).
//! - `not_peered`, `no_route`: an instance reached for a VPC it may not. `no_route` is a
//!   security reason because in a VPC the only thing that has no route at all is an
//!   address outside the sender's VPC, its peers and its gateways (story 3: green to
//!   yellow). A VPC without internet gateway makes this noisy by design; the control core's
//!   rate limit keeps it bounded.
//! - `esp_auth_failed`, `vpn_policy`: tampered or out-of-policy VPN traffic.
//! - `endpoint_mismatch`: an endpoint answer carrying another VPC's endpoint ID.
//!
//! Not security: parse errors, cache misses, resource exhaustion, replays (ESP reordering
//! beyond the window looks the same), unknown SPIs (stale SAs after a rekey).

named_enum! {
    /// Why a packet was dropped. See the [module documentation](self).
    pub enum DropReason, error UnknownDropReason "unknown drop reason {0:?}";

    Malformed = 0, "malformed",
        "truncated or inconsistent headers (length, version, IHL, checksum, Geneve options)";
    NotIpv4 = 1, "not_ipv4",
        "neither IPv4 nor ARP where only those are carried";
    SpoofedSource = 2, "spoofed_source",
        "source MAC or IP not owned by the sending ENI while its source/dest check is on";
    NoRoute = 3, "no_route",
        "no route of the sender's VPC covers the destination";
    NotPeered = 4, "not_peered",
        "source and destination VPCs differ and are not peered";
    NoMapping = 5, "no_mapping",
        "the card's mapping cache has no entry for the destination (there is no miss path)";
    UnknownSender = 6, "unknown_sender",
        "the mapping does not place the inner source behind the outer source PA";
    UnknownDestination = 7, "unknown_destination",
        "no ENI or service on this host or edge for the destination";
    MtuExceeded = 8, "mtu_exceeded",
        "packet larger than the VPC MTU or the egress link allows";
    NoElasticIp = 9, "no_elastic_ip",
        "internet traffic from a source without an Elastic IP, or to an unassociated one";
    UnknownSpi = 10, "unknown_spi",
        "ESP packet whose SPI matches no inbound SA";
    EspAuthFailed = 11, "esp_auth_failed",
        "ESP integrity check (AES-GCM ICV) failed";
    EspReplay = 12, "esp_replay",
        "ESP sequence number already seen or left of the anti-replay window";
    VpnPolicy = 13, "vpn_policy",
        "decrypted packet's addresses are outside the VPN's prefixes";
    UnknownVlan = 14, "unknown_vlan",
        "802.1Q VLAN ID of no Direct Connect VIF, or untagged frame on the DX side";
    UnknownEndpoint = 15, "unknown_endpoint",
        "VPC endpoint ID of no endpoint served by this edge";
    EndpointMismatch = 16, "endpoint_mismatch",
        "endpoint answer whose endpoint ID does not belong to the VPC it is for";
    ArpIgnored = 17, "arp_ignored",
        "ARP not answered: not a request, or for an address the card does not answer for";
    TtlExpired = 18, "ttl_expired",
        "IPv4 TTL reached zero at a routing hop (no stage decrements a TTL today)";
    EspSeqExhausted = 19, "esp_seq_exhausted",
        "outbound SA ran out of sequence numbers and needs a rekey";
    Unsupported = 20, "unsupported",
        "well-formed but not carried here (underlay packet not Geneve, unknown critical option)";
    NoRoom = 21, "no_room",
        "buffer lacks the headroom or tailroom for the headers or trailer to add";
    NoBuffer = 22, "no_buffer",
        "mempool exhausted when a new buffer was needed";
    TxFull = 23, "tx_full",
        "the device TX queue did not take the packet";
    NoVerdict = 24, "no_verdict",
        "the pipeline ended without deciding the packet (a bug, counted rather than silent)";
    FabricLoop = 25, "fabric_loop",
        "crossed the in-process fabric more times than any path needs (a loop between cards)";
}

impl DropReason {
    /// True when a drop for this reason also raises a security alert (the reasons of the
    /// module documentation).
    #[inline]
    pub const fn is_security(self) -> bool {
        use DropReason::*;
        matches!(self, SpoofedSource | NoRoute | NotPeered | UnknownSender | EspAuthFailed | VpnPolicy | EndpointMismatch)
    }

    /// The reason with this discriminant.
    pub const fn from_index(index: usize) -> Option<DropReason> {
        if index < Self::COUNT {
            Some(Self::ALL[index])
        } else {
            None
        }
    }
}

/// The reason for a packet a `wire` parser or emitter refused: `unsupported` for what is
/// well formed but not carried here ([`wire::Error::Unsupported`]) or does not fit a field
/// ([`wire::Error::Overflow`]: a VNI over 24 bits, which no loaded topology has), else
/// `malformed` (truncated, inconsistent, a bad checksum). The one mapping for every
/// stage; a stage that means something else by a parse error (ARP: `arp_ignored` for what
/// the card does not answer) maps the result.
impl From<wire::Error> for DropReason {
    #[inline]
    fn from(e: wire::Error) -> Self {
        match e {
            wire::Error::Unsupported | wire::Error::Overflow => DropReason::Unsupported,
            wire::Error::Truncated | wire::Error::Malformed | wire::Error::Checksum => {
                DropReason::Malformed
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The contract: these names are what files and dashboards carry. Changing one is a
    /// breaking change; this list is only ever appended to.
    const STABLE: [&str; DropReason::COUNT] = [
        "malformed",
        "not_ipv4",
        "spoofed_source",
        "no_route",
        "not_peered",
        "no_mapping",
        "unknown_sender",
        "unknown_destination",
        "mtu_exceeded",
        "no_elastic_ip",
        "unknown_spi",
        "esp_auth_failed",
        "esp_replay",
        "vpn_policy",
        "unknown_vlan",
        "unknown_endpoint",
        "endpoint_mismatch",
        "arp_ignored",
        "ttl_expired",
        "esp_seq_exhausted",
        "unsupported",
        "no_room",
        "no_buffer",
        "tx_full",
        "no_verdict",
        "fabric_loop",
    ];

    #[test]
    fn names_are_stable_and_indexed() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
            assert_eq!(r.name(), STABLE[i]);
            assert_eq!(DropReason::from_index(i), Some(*r));
        }
        assert_eq!(DropReason::from_index(DropReason::COUNT), None);
    }

    #[test]
    fn round_trip_from_str() {
        for r in DropReason::ALL {
            assert_eq!(r.name().parse::<DropReason>(), Ok(r));
            assert_eq!(r.to_string(), r.name());
            assert!(!r.description().is_empty());
            assert!(!r.description().contains('\n'));
            assert!(r.name().bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'));
        }
        assert_eq!(
            "spoofed-source".parse::<DropReason>(),
            Err(UnknownDropReason("spoofed-source".into()))
        );
    }

    #[test]
    fn security_set() {
        let security: Vec<&str> =
            DropReason::ALL.iter().filter(|r| r.is_security()).map(|r| r.name()).collect();
        assert_eq!(
            security,
            [
                "spoofed_source",
                "no_route",
                "not_peered",
                "unknown_sender",
                "esp_auth_failed",
                "vpn_policy",
                "endpoint_mismatch"
            ]
        );
    }

    #[test]
    fn serializes_as_name() {
        assert_eq!(serde_json::to_string(&DropReason::NoRoute).ok().as_deref(), Some("\"no_route\""));
    }
}
