//! [`StageId`]: the stable names of the stages (a leaf of the crate's vocabulary).

named_enum! {
    /// A named, timed stage. Names are stable (stats keys, alert `stage` field).
    pub enum StageId, error UnknownStage "unknown stage {0:?}";

    Classify = 0, "classify", "sort received frames: ARP to the proxy, IPv4 on, the rest dropped";
    VerifySend = 1, "verify-send", "the sending ENI owns the source MAC and IP";
    Route = 2, "route", "longest-prefix route of the sender's VPC, then mapping lookup";
    Encap = 3, "encap", "wrap in Geneve towards the destination PA";
    VerifyRecv = 4, "verify-recv", "the mapping places the inner source behind the outer source";
    Decap = 5, "decap", "strip Geneve and rebuild Ethernet for the destination";
    Nat = 6, "nat", "1:1 Elastic IP NAT with incremental checksums";
    EspEncrypt = 7, "esp-encrypt", "ESP tunnel-mode AES-GCM encrypt towards a customer gateway";
    EspDecrypt = 8, "esp-decrypt", "ESP SA lookup, anti-replay, decrypt and policy check";
    Vlan = 9, "vlan", "802.1Q tag or untag for Direct Connect";
    Endpoint = 10, "endpoint", "VPC endpoint ID re-encap and check";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable() {
        let names: Vec<&str> = StageId::ALL.iter().map(|s| s.name()).collect();
        assert_eq!(
            names,
            [
                "classify",
                "verify-send",
                "route",
                "encap",
                "verify-recv",
                "decap",
                "nat",
                "esp-encrypt",
                "esp-decrypt",
                "vlan",
                "endpoint"
            ]
        );
        for (i, s) in StageId::ALL.iter().enumerate() {
            assert_eq!(s.index(), i);
            assert_eq!(s.name().parse::<StageId>(), Ok(*s));
        }
        assert!("verify_send".parse::<StageId>().is_err());
    }
}
