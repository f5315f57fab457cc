//! [`StageId`]: the stable names of the stages (a leaf of the crate's vocabulary).

macro_rules! stage_ids {
    ($($variant:ident = $idx:literal, $name:literal, $desc:literal;)*) => {
        /// A named, timed stage. Names are stable (stats keys, alert `stage` field).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum StageId {
            $(#[doc = concat!("`", $name, "`: ", $desc, ".")] $variant = $idx,)*
        }

        impl StageId {
            /// Every stage, in pipeline order (`ALL[s as usize] == s`).
            pub const ALL: [StageId; StageId::COUNT] = [$(StageId::$variant,)*];

            /// The stable kebab-case name.
            #[inline]
            pub const fn name(self) -> &'static str {
                match self { $(StageId::$variant => $name,)* }
            }

            /// What the stage does, in one line.
            pub const fn description(self) -> &'static str {
                match self { $(StageId::$variant => $desc,)* }
            }
        }
    };
}

stage_ids! {
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

impl StageId {
    /// Number of stages.
    pub const COUNT: usize = 11;

    /// Index into per-stage arrays (the discriminant).
    #[inline]
    pub const fn index(self) -> usize {
        self as usize
    }
}

named_enum!(StageId, UnknownStage, "unknown stage {0:?}");

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
