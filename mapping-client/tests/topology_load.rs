//! The topology loader: the ARCHITECTURE example loads with the documented defaults, and
//! every kind of bad file is rejected with its own message, on the right line and field.

use std::net::Ipv4Addr;

use mapping_client::topology::{Attach, Hugepages};
use mapping_client::{CardId, LoadError, MacAddr, Topology};

const EXAMPLE: &str = include_str!("data/architecture.toml");

/// A small valid world that the negative tests extend.
const BASE: &str = include_str!("data/small-world.toml");

const KEY: &str = "000102030405060708090a0b0c0d0e0f10111213";

fn with(extra: &str) -> String {
    format!("{BASE}\n{extra}")
}

/// The 1-based line of the last occurrence of `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    let at = text
        .rfind(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in text"));
    text[..at].matches('\n').count() + 1
}

/// Loading `text` fails on the line holding `needle`, in `field`, with a message
/// containing `message`.
#[track_caller]
fn rejects(text: &str, needle: &str, field: &str, message: &str) -> LoadError {
    let err = match Topology::from_str(text, "topology.toml") {
        Ok(_) => panic!("accepted, expected {field}: {message}"),
        Err(e) => e,
    };
    assert_eq!(err.field, field, "{err}");
    assert!(
        err.message.contains(message),
        "message {:?} lacks {message:?}",
        err.message
    );
    assert_eq!(err.line, line_of(text, needle), "{err}");
    assert_eq!(
        err.to_string(),
        format!("topology.toml:{}: {field}: {}", err.line, err.message)
    );
    err
}

#[test]
fn architecture_example_loads() {
    let t = Topology::from_str(EXAMPLE, "topology.toml").unwrap();
    assert_eq!(t.dataplane().lcores, vec![0, 1]);
    assert_eq!(t.dataplane().control_lcore(), 0);
    assert_eq!(t.dataplane().worker_lcores(), &[1]);
    assert_eq!(t.dataplane().memory_mb, 1024);
    assert_eq!(t.dataplane().hugepages, Hugepages::Auto);
    assert_eq!(t.hosts().len(), 2);
    let red = t.vpc_by_name("red").unwrap();
    let yellow = t.vpc_by_name("yellow").unwrap();
    assert!(t.peered(red, yellow));
    let edge = match t.card_by_name("blackfoot-1") {
        Some(CardId::Edge(e)) => e,
        other => panic!("{other:?}"),
    };
    // Explicit, and (yellow) by default: the file's only edge.
    assert_eq!(t.vpc(red).unwrap().internet_gateway, Some(edge));
    assert_eq!(t.vpc(yellow).unwrap().internet_gateway, Some(edge));
    let red1 = t.instance_by_name("red-1").unwrap();
    assert_eq!(red1.mac, "02:00:0a:00:01:0a".parse::<MacAddr>().unwrap());
    let yellow1 = t.instance_by_name("yellow-1").unwrap();
    assert_eq!(yellow1.mac, MacAddr::from_ip(Ipv4Addr::new(10, 1, 1, 10)));
    assert!(yellow1.secondary_ips.is_empty());
    assert!(yellow1.source_dest_check);
    assert_eq!(
        t.elastic_ip_of(red1.eni),
        Some(Ipv4Addr::new(203, 0, 113, 10))
    );
    let vpn = &t.vpns()[0];
    assert_eq!(vpn.outbound.spi, 4097);
    assert_eq!(vpn.outbound.key[..4], [0, 1, 2, 3]);
    assert_eq!(vpn.outbound.salt, [0x10, 0x11, 0x12, 0x13]);
    assert_eq!(t.dxs()[0].vlan, 101);
    assert_eq!(t.endpoints()[0].id.0, 0x0a1b_2c3d_4e5f_6a7b);
    assert_eq!(t.endpoints()[0].id.to_string(), "vpce-0a1b2c3d4e5f6a7b");
    assert_eq!(t.ports()[0].attach, Attach::Instance("red-1".into()));
    assert_eq!(t.edge_vpcs(edge).count(), 2);
}

#[test]
fn load_reads_a_file_and_names_it_in_errors() {
    let dir = std::env::temp_dir().join(format!("mapping-client-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("world.toml");
    std::fs::write(&path, EXAMPLE).unwrap();
    assert!(Topology::load(&path).is_ok());
    let missing = Topology::load(dir.join("nope.toml")).unwrap_err();
    assert_eq!(missing.line, 0);
    assert!(
        missing.to_string().contains("nope.toml: cannot read"),
        "{missing}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn defaults_internet_gateway_none_when_empty_or_ambiguous() {
    let t = Topology::from_str(&with("[[vpc]]\nname = \"green\"\nvni = 103\ncidr = \"10.2.0.0/16\"\ninternet_gateway = \"\"\n"), "t").unwrap();
    assert_eq!(
        t.vpc(t.vpc_by_name("green").unwrap())
            .unwrap()
            .internet_gateway,
        None
    );
    let two_edges = with("[[edge]]\nname = \"blackfoot-2\"\npa = \"198.18.255.2\"\n");
    let t = Topology::from_str(&two_edges, "t").unwrap();
    assert_eq!(
        t.vpc(t.vpc_by_name("red").unwrap())
            .unwrap()
            .internet_gateway,
        None
    );
}

#[test]
fn same_addresses_in_unpeered_vpcs_on_different_hosts_are_fine() {
    let text = with(
        "[[vpc]]\nname = \"green\"\nvni = 103\ncidr = \"10.0.0.0/16\"\n\
         [[subnet]]\nname = \"green-a\"\nvpc = \"green\"\ncidr = \"10.0.1.0/24\"\n\
         [[instance]]\nname = \"green-1\"\nsubnet = \"green-a\"\nhost = \"host-b\"\nip = \"10.0.1.10\"\n",
    );
    Topology::from_str(&text, "t").unwrap();
}

// ----- syntax and shape ---------------------------------------------------------------------

#[test]
fn rejects_unknown_field() {
    rejects(
        &with("[[host]]\nname = \"h\"\npa = \"198.18.0.9\"\ncolour = \"blue\"\n"),
        "colour",
        "host.colour",
        "unknown field `colour`",
    );
}

#[test]
fn rejects_unknown_section() {
    rejects(
        &with("[[hosts]]\nname = \"h\"\n"),
        "[[hosts]]",
        "hosts",
        "unknown field `hosts`",
    );
}

#[test]
fn rejects_missing_field() {
    // Reported on the table's header.
    rejects(
        &with("[[host]]\nname = \"host-c\"\n"),
        "[[host]]",
        "host.pa",
        "missing field `pa`",
    );
}

#[test]
fn rejects_wrong_type() {
    rejects(
        &with("[[edge]]\nname = \"e\"\npa = 7\n"),
        "pa = 7",
        "edge.pa",
        "invalid type",
    );
}

#[test]
fn rejects_unknown_field_in_inline_table() {
    let text = with(&vpn(
        "vpn-x",
        "spi = 4097, key = \"K\", life = 3",
        "spi = 8193, key = \"K\"",
    ));
    rejects(
        &text,
        "life = 3",
        "vpn.outbound.life",
        "unknown field `life`",
    );
}

#[test]
fn rejects_syntax_error() {
    rejects(
        &with("[[host]]\nname = \"h\npa = \"198.18.0.9\"\n"),
        "name = \"h",
        "host.name",
        "",
    );
}

#[test]
fn rejects_missing_dataplane() {
    let err = Topology::from_str(
        "[[host]]\nname = \"a\"\npa = \"198.18.0.1\"\n",
        "topology.toml",
    )
    .unwrap_err();
    assert_eq!((err.line, err.field.as_str()), (1, "dataplane"));
    assert!(err.message.contains("missing [dataplane]"));
}

// ----- dataplane ----------------------------------------------------------------------------

#[test]
fn rejects_bad_lcores() {
    let text = BASE.replace("lcores = \"0-1\"", "lcores = \"1-0\"");
    rejects(&text, "lcores", "dataplane.lcores", "reversed");
    let text = BASE.replace("lcores = \"0-1\"", "lcores = \"0\"");
    rejects(&text, "lcores", "dataplane.lcores", "at least two lcores");
    let text = BASE.replace("lcores = \"0-1\"", "lcores = \"0-2,1\"");
    rejects(&text, "lcores", "dataplane.lcores", "listed twice");
    let text = BASE.replace("lcores = \"0-1\"", "lcores = \"zero\"");
    rejects(&text, "lcores", "dataplane.lcores", "not an lcore number");
}

#[test]
fn rejects_bad_memory() {
    let text = BASE.replace("memory_mb = 1024", "memory_mb = 0");
    rejects(
        &text,
        "memory_mb",
        "dataplane.memory_mb",
        "not a size in MiB",
    );
}

#[test]
fn rejects_bad_hugepages() {
    let text = BASE.replace("hugepages = \"auto\"", "hugepages = \"maybe\"");
    rejects(
        &text,
        "hugepages",
        "dataplane.hugepages",
        "not one of auto, on, off",
    );
}

// ----- names and references -----------------------------------------------------------------

#[test]
fn rejects_duplicate_host_name() {
    rejects(
        &with("[[host]]\nname = \"host-a\"\npa = \"198.18.0.9\"\n"),
        "name = \"host-a\"",
        "host.name",
        "duplicate name \"host-a\"",
    );
}

#[test]
fn rejects_edge_named_like_a_host() {
    rejects(
        &with("[[edge]]\nname = \"host-b\"\npa = \"198.18.0.9\"\n"),
        "name = \"host-b\"",
        "edge.name",
        "hosts and edges share names",
    );
}

#[test]
fn rejects_duplicate_vpc_name() {
    rejects(
        &with("[[vpc]]\nname = \"red\"\nvni = 9\ncidr = \"10.9.0.0/16\"\n"),
        "name = \"red\"",
        "vpc.name",
        "duplicate vpc name",
    );
}

#[test]
fn rejects_duplicate_instance_name() {
    let text = with("[[instance]]\nname = \"red-1\"\nsubnet = \"red-a\"\nhost = \"host-a\"\nip = \"10.0.1.11\"\n");
    rejects(
        &text,
        "name = \"red-1\"",
        "instance.name",
        "duplicate instance name",
    );
}

#[test]
fn rejects_duplicate_pa() {
    rejects(
        &with("[[edge]]\nname = \"e2\"\npa = \"198.18.0.1\"\n"),
        "pa = \"198.18.0.1\"",
        "edge.pa",
        "already used by host-a",
    );
}

#[test]
fn rejects_unknown_vpc_reference() {
    rejects(
        &with("[[subnet]]\nname = \"blue-a\"\nvpc = \"blue\"\ncidr = \"10.5.1.0/24\"\n"),
        "vpc = \"blue\"",
        "subnet.vpc",
        "unknown vpc \"blue\"",
    );
}

#[test]
fn rejects_unknown_subnet_reference() {
    let text = with(
        "[[instance]]\nname = \"x\"\nsubnet = \"nowhere\"\nhost = \"host-a\"\nip = \"10.0.1.11\"\n",
    );
    rejects(
        &text,
        "subnet = \"nowhere\"",
        "instance.subnet",
        "unknown subnet",
    );
}

#[test]
fn rejects_instance_on_an_edge() {
    let text = with("[[instance]]\nname = \"x\"\nsubnet = \"red-a\"\nhost = \"blackfoot-1\"\nip = \"10.0.1.11\"\n");
    rejects(
        &text,
        "host = \"blackfoot-1\"",
        "instance.host",
        "is an edge, not a host",
    );
}

#[test]
fn rejects_unknown_internet_gateway() {
    let text = with("[[vpc]]\nname = \"green\"\nvni = 103\ncidr = \"10.2.0.0/16\"\ninternet_gateway = \"nope\"\n");
    rejects(
        &text,
        "internet_gateway",
        "vpc.internet_gateway",
        "unknown edge \"nope\"",
    );
}

#[test]
fn rejects_unknown_instance_for_elastic_ip() {
    rejects(
        &with("[[elastic_ip]]\nip = \"203.0.113.10\"\ninstance = \"ghost\"\n"),
        "ghost",
        "elastic_ip.instance",
        "unknown instance",
    );
}

// ----- VNIs and CIDRs -----------------------------------------------------------------------

#[test]
fn rejects_vni_zero() {
    rejects(
        &with("[[vpc]]\nname = \"g\"\nvni = 0\ncidr = \"10.2.0.0/16\"\n"),
        "vni = 0",
        "vpc.vni",
        "out of range 1..=16777215",
    );
}

#[test]
fn rejects_vni_too_large() {
    rejects(
        &with("[[vpc]]\nname = \"g\"\nvni = 16777216\ncidr = \"10.2.0.0/16\"\n"),
        "vni = 16777216",
        "vpc.vni",
        "out of range",
    );
}

#[test]
fn rejects_vni_reused() {
    rejects(
        &with("[[vpc]]\nname = \"g\"\nvni = 101\ncidr = \"10.2.0.0/16\"\n"),
        "vni = 101",
        "vpc.vni",
        "already used by vpc red",
    );
}

#[test]
fn rejects_malformed_cidr() {
    rejects(
        &with("[[vpc]]\nname = \"g\"\nvni = 7\ncidr = \"10.2.0.1/16\"\n"),
        "10.2.0.1/16",
        "vpc.cidr",
        "host bits are set",
    );
    rejects(
        &with("[[vpc]]\nname = \"g\"\nvni = 7\ncidr = \"10.2.0.0\"\n"),
        "cidr = \"10.2.0.0\"",
        "vpc.cidr",
        "not a CIDR",
    );
}

#[test]
fn rejects_vpc_cidr_size() {
    rejects(
        &with("[[vpc]]\nname = \"g\"\nvni = 7\ncidr = \"10.0.0.0/8\"\n"),
        "10.0.0.0/8",
        "vpc.cidr",
        "/16 to /28",
    );
}

#[test]
fn rejects_subnet_outside_vpc() {
    rejects(
        &with("[[subnet]]\nname = \"red-z\"\nvpc = \"red\"\ncidr = \"10.9.1.0/24\"\n"),
        "10.9.1.0/24",
        "subnet.cidr",
        "outside vpc red",
    );
}

#[test]
fn rejects_overlapping_subnets() {
    rejects(
        &with("[[subnet]]\nname = \"red-b\"\nvpc = \"red\"\ncidr = \"10.0.1.128/25\"\n"),
        "10.0.1.128/25",
        "subnet.cidr",
        "overlaps subnet red-a",
    );
}

// ----- instances ----------------------------------------------------------------------------

fn instance(name: &str, ip: &str, rest: &str) -> String {
    with(&format!("[[instance]]\nname = \"{name}\"\nsubnet = \"red-a\"\nhost = \"host-a\"\nip = \"{ip}\"\n{rest}"))
}

#[test]
fn rejects_malformed_ip() {
    rejects(
        &instance("x", "10.0.1.300", ""),
        "10.0.1.300",
        "instance.ip",
        "not an IPv4 address",
    );
}

#[test]
fn rejects_instance_ip_outside_subnet() {
    rejects(
        &instance("x", "10.0.2.5", ""),
        "10.0.2.5",
        "instance.ip",
        "outside subnet red-a",
    );
}

#[test]
fn rejects_reserved_instance_ips() {
    for (ip, why) in [
        ("10.0.1.0", "network address"),
        ("10.0.1.1", "subnet router"),
        ("10.0.1.2", "DNS server"),
        ("10.0.1.3", "future use"),
        ("10.0.1.255", "broadcast address"),
    ] {
        let err = rejects(
            &instance("x", ip, ""),
            &format!("ip = \"{ip}\""),
            "instance.ip",
            "reserved",
        );
        assert!(err.message.contains(why), "{err}");
    }
}

#[test]
fn rejects_reserved_secondary_ip() {
    rejects(
        &instance(
            "x",
            "10.0.1.20",
            "secondary_ips = [\"10.0.1.21\", \"10.0.1.1\"]\n",
        ),
        "secondary_ips",
        "instance.secondary_ips",
        "reserved",
    );
}

#[test]
fn rejects_duplicate_primary_ip_in_vpc() {
    rejects(
        &instance("x", "10.0.1.10", "mac = \"02:00:00:00:00:99\"\n"),
        "ip = \"10.0.1.10\"",
        "instance.ip",
        "already used in VPC red by instance red-1",
    );
}

#[test]
fn rejects_duplicate_secondary_ip_in_vpc() {
    rejects(
        &instance("x", "10.0.1.20", "secondary_ips = [\"10.0.1.10\"]\n"),
        "secondary_ips",
        "instance.secondary_ips",
        "already used in VPC red by instance red-1",
    );
}

#[test]
fn rejects_secondary_ip_listed_twice() {
    rejects(
        &instance(
            "x",
            "10.0.1.20",
            "secondary_ips = [\"10.0.1.21\", \"10.0.1.21\"]\n",
        ),
        "secondary_ips",
        "instance.secondary_ips",
        "listed twice",
    );
}

#[test]
fn rejects_malformed_mac() {
    rejects(
        &instance("x", "10.0.1.20", "mac = \"02:00:0a:00:01\"\n"),
        "mac =",
        "instance.mac",
        "not a MAC address",
    );
}

#[test]
fn rejects_multicast_mac() {
    rejects(
        &instance("x", "10.0.1.20", "mac = \"01:00:5e:00:00:01\"\n"),
        "mac =",
        "instance.mac",
        "not a unicast address",
    );
}

#[test]
fn rejects_mac_used_twice_in_a_vpc() {
    // red-1 (host-a) has 02:00:0a:00:01:0a; another red ENI may not, on any host.
    let text = with(
        "[[instance]]\nname = \"x\"\nsubnet = \"red-a\"\nhost = \"host-b\"\nip = \"10.0.1.20\"\nmac = \"02:00:0a:00:01:0a\"\n",
    );
    let err = rejects(
        &text,
        "mac = \"02:00:0a:00:01:0a\"",
        "instance.mac",
        "02:00:0a:00:01:0a is already used in VPC red by instance red-1",
    );
    assert!(!err.to_string().contains('\n'), "one line: {err}");
}

/// Every AWS account's default VPC is 172.31.0.0/16: two of them on one host, with an
/// instance at the same address in each, load with the derived MAC (equal in both).
#[test]
fn accepts_overlapping_vpcs_sharing_addresses_and_macs_on_one_host() {
    let text = with(
        "[[vpc]]\nname = \"blue\"\nvni = 201\ncidr = \"172.31.0.0/16\"\n\
         [[vpc]]\nname = \"green\"\nvni = 202\ncidr = \"172.31.0.0/16\"\n\
         [[subnet]]\nname = \"blue-a\"\nvpc = \"blue\"\ncidr = \"172.31.1.0/24\"\n\
         [[subnet]]\nname = \"green-a\"\nvpc = \"green\"\ncidr = \"172.31.1.0/24\"\n\
         [[instance]]\nname = \"blue-1\"\nsubnet = \"blue-a\"\nhost = \"host-a\"\nip = \"172.31.1.10\"\n\
         [[instance]]\nname = \"green-1\"\nsubnet = \"green-a\"\nhost = \"host-a\"\nip = \"172.31.1.10\"\n\
         [[instance]]\nname = \"green-2\"\nsubnet = \"green-a\"\nhost = \"host-a\"\nip = \"172.31.1.20\"\nmac = \"02:00:0a:00:01:0a\"\n",
    );
    let t = Topology::from_str(&text, "topology.toml").unwrap_or_else(|e| panic!("{e}"));
    let (b, g) = (t.instance_by_name("blue-1").unwrap(), t.instance_by_name("green-1").unwrap());
    let derived: MacAddr = "02:00:ac:1f:01:0a".parse().unwrap();
    assert_eq!((b.mac, g.mac, b.host, b.ip), (derived, derived, g.host, g.ip));
    assert_ne!(b.vpc, g.vpc);
    // An explicit MAC equal to red-1's, in another VPC on red-1's host: fine too.
    assert_eq!(t.instance_by_name("green-2").unwrap().mac, t.instance_by_name("red-1").unwrap().mac);
}

// ----- peering and Elastic IPs --------------------------------------------------------------

#[test]
fn rejects_peering_of_overlapping_vpcs() {
    let text = with("[[vpc]]\nname = \"green\"\nvni = 103\ncidr = \"10.0.0.0/20\"\n[[peering]]\nvpcs = [\"red\", \"green\"]\n");
    rejects(
        &text,
        "vpcs = [\"red\", \"green\"]",
        "peering.vpcs",
        "CIDRs of peered VPCs overlap",
    );
}

#[test]
fn rejects_second_peering_of_a_pair() {
    let text = with(
        "[[peering]]\nvpcs = [\"red\", \"yellow\"]\n[[peering]]\nvpcs = [\"yellow\", \"red\"]\n",
    );
    rejects(
        &text,
        "vpcs = [\"yellow\", \"red\"]",
        "peering.vpcs",
        "already peered",
    );
}

#[test]
fn rejects_peering_with_itself_or_one_vpc() {
    rejects(
        &with("[[peering]]\nvpcs = [\"red\", \"red\"]\n"),
        "vpcs = [",
        "peering.vpcs",
        "cannot peer with itself",
    );
    rejects(
        &with("[[peering]]\nvpcs = [\"red\"]\n"),
        "vpcs = [",
        "peering.vpcs",
        "expected two VPC names",
    );
}

#[test]
fn rejects_elastic_ip_used_twice() {
    let text = with("[[elastic_ip]]\nip = \"203.0.113.10\"\ninstance = \"red-1\"\n[[elastic_ip]]\nip = \"203.0.113.10\"\ninstance = \"yellow-1\"\n");
    rejects(
        &text,
        "ip = \"203.0.113.10\"",
        "elastic_ip.ip",
        "already associated with instance red-1",
    );
}

#[test]
fn rejects_second_elastic_ip_for_an_instance() {
    let text = with("[[elastic_ip]]\nip = \"203.0.113.10\"\ninstance = \"red-1\"\n[[elastic_ip]]\nip = \"203.0.113.11\"\ninstance = \"red-1\"\n");
    rejects(
        &text,
        "instance = \"red-1\"",
        "elastic_ip.instance",
        "already has Elastic IP 203.0.113.10",
    );
}

#[test]
fn rejects_elastic_ip_without_internet_gateway() {
    let text = BASE.replace(
        "cidr = \"10.0.0.0/16\"",
        "cidr = \"10.0.0.0/16\"\ninternet_gateway = \"\"",
    ) + "[[elastic_ip]]\nip = \"203.0.113.10\"\ninstance = \"red-1\"\n";
    rejects(
        &text,
        "instance = \"red-1\"",
        "elastic_ip.instance",
        "has no internet gateway",
    );
}

// ----- VPN, DX, endpoints -------------------------------------------------------------------

fn vpn(name: &str, outbound: &str, inbound: &str) -> String {
    format!(
        "[[vpn]]\nname = \"{name}\"\nvpc = \"red\"\nedge = \"blackfoot-1\"\nlocal = \"203.0.113.1\"\n\
         customer_gateway = \"198.51.100.1\"\nremote_prefixes = [\"172.16.0.0/16\"]\n\
         outbound = {{ {outbound} }}\ninbound = {{ {inbound} }}\n"
    )
    .replace("\"K\"", &format!("\"{KEY}\""))
}

#[test]
fn vpn_loads() {
    Topology::from_str(
        &with(&vpn(
            "v",
            "spi = 4097, key = \"K\"",
            "spi = 8193, key = \"K\"",
        )),
        "t",
    )
    .unwrap();
}

#[test]
fn rejects_spi_zero() {
    let text = with(&vpn("v", "spi = 0, key = \"K\"", "spi = 8193, key = \"K\""));
    rejects(&text, "spi = 0", "vpn.outbound.spi", "SPI 0 is reserved");
}

#[test]
fn rejects_reserved_spi() {
    let text = with(&vpn(
        "v",
        "spi = 4097, key = \"K\"",
        "spi = 255, key = \"K\"",
    ));
    rejects(&text, "spi = 255", "vpn.inbound.spi", "reserved by IANA");
}

#[test]
fn rejects_malformed_key() {
    let text = with(&vpn(
        "v",
        "spi = 4097, key = \"00112233\"",
        "spi = 8193, key = \"K\"",
    ));
    rejects(
        &text,
        "00112233",
        "vpn.outbound.key",
        "expected 40 hex digits",
    );
    let bad = "g".repeat(40);
    let text = with(&vpn(
        "v",
        "spi = 4097, key = \"K\"",
        &format!("spi = 8193, key = \"{bad}\""),
    ));
    rejects(&text, &bad, "vpn.inbound.key", "expected 40 hex digits");
}

#[test]
fn rejects_inbound_spi_reused_on_an_edge() {
    let text = with(
        &(vpn("v1", "spi = 4097, key = \"K\"", "spi = 8193, key = \"K\"")
            + &vpn("v2", "spi = 4098, key = \"K\"", "spi = 8193, key = \"K\"")
                .replace("172.16.", "172.17.")),
    );
    rejects(
        &text,
        "spi = 8193",
        "vpn.inbound.spi",
        "already used on this edge by vpn v1",
    );
}

#[test]
fn rejects_remote_prefix_inside_the_vpc() {
    let text = with(
        &vpn("v", "spi = 4097, key = \"K\"", "spi = 8193, key = \"K\"")
            .replace("172.16.0.0/16", "10.0.128.0/17"),
    );
    rejects(
        &text,
        "remote_prefixes",
        "vpn.remote_prefixes",
        "overlaps the CIDR of vpc red",
    );
}

fn dx(name: &str, vlan: &str, prefix: &str) -> String {
    format!(
        "[[dx]]\nname = \"{name}\"\nvpc = \"yellow\"\nedge = \"blackfoot-1\"\nvlan = {vlan}\n\
         remote_prefixes = [\"{prefix}\"]\nrouter_mac = \"02:dc:00:00:00:01\"\n"
    )
}

#[test]
fn rejects_vlan_out_of_range() {
    rejects(
        &with(&dx("d", "0", "192.168.0.0/16")),
        "vlan = 0",
        "dx.vlan",
        "out of range 1..=4094",
    );
    rejects(
        &with(&dx("d", "4095", "192.168.0.0/16")),
        "vlan = 4095",
        "dx.vlan",
        "out of range 1..=4094",
    );
}

#[test]
fn rejects_vlan_reused_on_an_edge() {
    let text = with(&(dx("d1", "101", "192.168.0.0/16") + &dx("d2", "101", "192.169.0.0/16")));
    rejects(
        &text,
        "vlan = 101",
        "dx.vlan",
        "already used on this edge by dx d1",
    );
}

#[test]
fn rejects_prefix_routed_twice_in_a_vpc() {
    let text = with(&(dx("d1", "101", "192.168.0.0/16") + &dx("d2", "102", "192.168.0.0/16")));
    rejects(
        &text,
        "remote_prefixes = [\"192.168.0.0/16\"]",
        "dx.remote_prefixes",
        "already routed to dx d1",
    );
}

#[test]
fn rejects_dx_on_a_host() {
    let text = with(
        &dx("d", "101", "192.168.0.0/16").replace("edge = \"blackfoot-1\"", "edge = \"host-a\""),
    );
    rejects(
        &text,
        "edge = \"host-a\"",
        "dx.edge",
        "is a host, not an edge",
    );
}

fn endpoint(id: &str) -> String {
    format!(
        "[[endpoint]]\nid = \"{id}\"\nvpc = \"red\"\nedge = \"blackfoot-1\"\nservice = \"s3\"\n\
         prefixes = [\"198.51.100.128/25\"]\nfront_end_pa = \"198.18.254.1\"\n"
    )
}

#[test]
fn rejects_malformed_endpoint_id() {
    rejects(
        &with(&endpoint("vpce-0a1b2c3d")),
        "vpce-0a1b2c3d",
        "endpoint.id",
        "expected \"vpce-\" and 16 hex digits",
    );
    rejects(
        &with(&endpoint("vpc-0a1b2c3d4e5f6a7b")),
        "vpc-0a1b",
        "endpoint.id",
        "not an endpoint ID",
    );
}

#[test]
fn rejects_duplicate_endpoint_id() {
    let text = with(&(endpoint("vpce-0a1b2c3d4e5f6a7b") + &endpoint("vpce-0A1B2C3D4E5F6A7B")));
    rejects(
        &text,
        "vpce-0A1B",
        "endpoint.id",
        "duplicate endpoint ID vpce-0a1b2c3d4e5f6a7b",
    );
}

// ----- ports --------------------------------------------------------------------------------

fn port(name: &str, attach: &str) -> String {
    format!("[[port]]\nname = \"{name}\"\nvdev = \"net_null0\"\nattach = \"{attach}\"\n")
}

#[test]
fn ports_attach_everything() {
    let text = with(
        &[
            port("p1", "instance:red-1"),
            port("p2", "underlay:host-a"),
            port("p3", "underlay:blackfoot-1"),
            port("p4", "edge:blackfoot-1:internet"),
            port("p5", "edge:blackfoot-1:dx"),
            port("p6", "edge:blackfoot-1:services"),
            port("p7", "fabric"),
            port("p8", "fabric"),
        ]
        .concat(),
    );
    let t = Topology::from_str(&text, "t").unwrap();
    assert_eq!(t.ports().len(), 8);
    assert_eq!(
        t.ports()[3].attach,
        Attach::EdgeInternet(mapping_client::EdgeId(0))
    );
}

#[test]
fn rejects_bad_attach() {
    for (attach, message) in [
        ("instance", "expected instance:NAME"),
        ("edge:blackfoot-1:sideways", "unknown edge side"),
        ("edge:host-a:internet", "is a host, not an edge"),
        ("instance:ghost", "unknown instance \"ghost\""),
        ("underlay:nowhere", "unknown host or edge"),
    ] {
        rejects(&with(&port("p", attach)), "attach", "port.attach", message);
    }
}

#[test]
fn rejects_port_attached_twice() {
    let text = with(&(port("p1", "instance:red-1") + &port("p2", "instance:red-1")));
    rejects(
        &text,
        "attach = \"instance:red-1\"",
        "port.attach",
        "already attached to port p1",
    );
}

#[test]
fn rejects_duplicate_port_name() {
    let text = with(&(port("p1", "fabric") + &port("p1", "underlay:host-a")));
    rejects(&text, "name = \"p1\"", "port.name", "duplicate port name");
}
