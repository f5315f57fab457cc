//! ESP interoperability with scapy (Debian's `python3-scapy`, run by `/usr/bin/python3`)
//! and, for the plaintext layout, Python's `cryptography` (OpenSSL): implementations
//! nobody here wrote.
//!
//! 1. scapy's `SecurityAssociation(ESP, crypt_algo='AES-GCM', tunnel_header=...)`
//!    encrypts inner IPv4/UDP packets (random IVs, chosen sequence numbers); our
//!    [`decrypt`] must give back the exact inner bytes.
//! 2. Our [`encrypt`] output goes back to Python, which checks the outer header field by
//!    field, decrypts with `cryptography` to check padding and trailer byte for byte, and
//!    has scapy's `sa.decrypt` return the same inner packet.
//!
//! Skipped, with the reason printed, only when `/usr/bin/python3` cannot import scapy's
//! IPsec layer with AES-GCM.

use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use blackfoot::esp::{decrypt, encrypt, parse_spi, tunnel_len, InboundSa, OutboundSa, HEAD_LEN};
use mapping_client::topology::SaConfig;
use wire::{PacketBuf, TestBuffer};

const PYTHON: &str = "/usr/bin/python3";

const PROBE: &str = "\
import cryptography
from scapy.layers.ipsec import CRYPT_ALGOS
assert 'AES-GCM' in CRYPT_ALGOS, 'scapy has no AES-GCM'
";

/// argv: mode spi key_hex salt_hex local remote; cases on stdin, read whole before any
/// output (so neither side can block on a full pipe).
const SCRIPT: &str = r#"
import sys
from scapy.compat import raw
from scapy.layers.inet import IP, UDP
from scapy.layers.ipsec import SecurityAssociation, ESP
from scapy.packet import Raw
from scapy.utils import checksum
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

mode, spi, key, salt, local, remote = sys.argv[1:7]
spi = int(spi, 0)
key = bytes.fromhex(key)
salt = bytes.fromhex(salt)
lines = [l.split() for l in sys.stdin.read().splitlines() if l.strip()]

def sa():
    return SecurityAssociation(ESP, spi=spi, crypt_algo='AES-GCM', crypt_key=key + salt,
                               tunnel_header=IP(src=local, dst=remote))

if mode == 'gen':
    # stdin: n seq tos df -> stdout: CASE inner_hex outer_hex
    s = sa()
    for n, seq, tos, df in ([int(x) for x in l] for l in lines):
        inner = raw(IP(src='10.1.2.3', dst='172.31.0.9', id=(seq * 7) & 0xffff, tos=tos,
                       flags='DF' if df else 0, ttl=61)
                    / UDP(sport=40000 + n % 1000, dport=53)
                    / Raw(bytes((i * 13 + n) & 0xff for i in range(n))))
        outer = raw(s.encrypt(IP(inner), seq_num=seq))
        print('CASE', inner.hex(), outer.hex())
    sys.exit(0)

# check: stdin: seq inner_hex outer_hex -> stdout: OK count, or FAIL lines and exit 1
bad = 0
for seq, inner, outer in lines:
    seq, inner, outer = int(seq), bytes.fromhex(inner), bytes.fromhex(outer)
    errs = []
    p, i = IP(outer), IP(inner)
    want = dict(version=4, ihl=5, len=len(outer), proto=50, ttl=64, src=local, dst=remote,
                frag=0, id=seq & 0xffff)
    for f, v in want.items():
        if getattr(p, f) != v:
            errs.append('%s=%r want %r' % (f, getattr(p, f), v))
    if checksum(outer[:20]) != 0:
        errs.append('outer header checksum')
    if p.flags.MF or p.flags.evil:
        errs.append('flags %r' % p.flags)
    if bool(p.flags.DF) != bool(i.flags.DF):
        errs.append('DF not copied')
    if p.tos != (i.tos & 0xfc):
        errs.append('tos %#x for inner %#x' % (p.tos, i.tos))
    if p[ESP].spi != spi or p[ESP].seq != seq:
        errs.append('esp header %#x %d' % (p[ESP].spi, p[ESP].seq))
    esp = outer[20:]
    iv, body = esp[8:16], esp[16:]
    if iv != seq.to_bytes(8, 'big'):
        errs.append('iv %s' % iv.hex())
    try:
        plain = AESGCM(key).decrypt(salt + iv, body, esp[:8])
        padlen = (-(len(inner) + 2)) % 4
        if plain != inner + bytes(range(1, padlen + 1)) + bytes([padlen, 4]):
            errs.append('plaintext %s' % plain.hex())
    except Exception as e:
        errs.append('cryptography: %r' % e)
    try:
        res = raw(sa().decrypt(IP(outer)))
        if res != inner:
            errs.append('scapy decrypt gave %s' % res.hex())
    except Exception as e:
        errs.append('scapy decrypt: %r' % e)
    if errs:
        bad += 1
        print('FAIL seq', seq, '; '.join(errs))
if bad:
    sys.exit(1)
print('OK', len(lines))
"#;

const SPI: u32 = 0xC0DE_0042;
const KEY: [u8; 16] = [
    0x4c, 0x80, 0xcd, 0xef, 0xbb, 0x5d, 0x10, 0xda, 0x90, 0x6a, 0xc7, 0x3c, 0x36, 0x13, 0xa6, 0x34,
];
const SALT: [u8; 4] = [0x2e, 0x44, 0x3b, 0x68];
const LOCAL: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
const REMOTE: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 77);

fn config() -> SaConfig {
    SaConfig { spi: SPI, key: KEY, salt: SALT }
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0, "odd hex length");
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

fn scapy_available() -> Result<(), String> {
    let out = Command::new(PYTHON)
        .args(["-c", PROBE])
        .output()
        .map_err(|e| format!("cannot run {PYTHON}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{PYTHON} cannot import scapy's IPsec layer with AES-GCM: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Run the script in `mode` with `input` on stdin; panic with its output on failure.
fn run_python(mode: &str, input: &str) -> String {
    let mut child = Command::new(PYTHON)
        .args(["-c", SCRIPT, mode, &format!("{SPI:#x}"), &to_hex(&KEY), &to_hex(&SALT)])
        .args([LOCAL.to_string(), REMOTE.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn python");
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "python {mode} failed: {}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// (UDP payload length, sequence number, TOS, DF) of every case: every padding residue
/// several times, MTU-sized and jumbo packets, the last sequence number.
fn cases() -> Vec<(usize, u32, u8, bool)> {
    let mut v = Vec::new();
    let mut seq = 1u32;
    for n in (0..=40).chain([100, 511, 1000, 1418, 1419, 8973]) {
        let tos = [0x00, 0xb8, 0x2a, 0x03][n % 4];
        v.push((n, seq, tos, n % 3 == 0));
        seq += 1 + (n as u32 % 5) * 300; // gaps, some beyond the window
    }
    v.push((64, 0xFFFF_FFFE, 0x10, true));
    v.push((65, u32::MAX, 0x00, false));
    v
}

#[test]
fn esp_interoperates_with_scapy() {
    if let Err(reason) = scapy_available() {
        println!("skipping esp_interoperates_with_scapy: {reason}");
        eprintln!("skipping esp_interoperates_with_scapy: {reason}");
        return;
    }
    let cases = cases();

    // 1. scapy encrypts, we decrypt.
    let input: String = cases
        .iter()
        .map(|(n, seq, tos, df)| format!("{n} {seq} {tos} {}\n", u8::from(*df)))
        .collect();
    let out = run_python("gen", &input);
    let generated: Vec<(Vec<u8>, Vec<u8>)> = out
        .lines()
        .filter_map(|l| l.strip_prefix("CASE "))
        .map(|l| {
            let (inner, outer) = l.split_once(' ').unwrap();
            (from_hex(inner), from_hex(outer))
        })
        .collect();
    assert_eq!(generated.len(), cases.len(), "scapy output:\n{out}");

    let mut rx = InboundSa::with_ring(&config()).unwrap();
    for ((n, seq, _, _), (inner, outer)) in cases.iter().zip(&generated) {
        assert_eq!(inner.len(), 20 + 8 + n);
        assert_eq!(outer.len(), tunnel_len(inner.len()), "scapy pads as we do");
        let esp = &outer[20..];
        assert_eq!(parse_spi(esp), Some(SPI));
        let mut b = TestBuffer::from_slice_with_room(esp, 128, 64);
        assert_eq!(decrypt(&mut b, &mut rx), Ok(()), "seq {seq}");
        assert_eq!(b.data(), &inner[..], "seq {seq}");
        // And once is enough.
        let mut again = TestBuffer::from_slice_with_room(esp, 128, 64);
        assert_eq!(decrypt(&mut again, &mut rx), Err(pipeline::DropReason::EspReplay));
    }
    assert_eq!(rx.replay().top(), u32::MAX);

    // 2. We encrypt the same inner packets, scapy (and cryptography) decrypt.
    let tx = OutboundSa::with_ring(&config(), LOCAL, REMOTE).unwrap().with_next_seq(70_000);
    let last =
        OutboundSa::with_ring(&config(), LOCAL, REMOTE).unwrap().with_next_seq(u64::from(u32::MAX));
    let mut input = String::new();
    for (k, (inner, _)) in generated.iter().enumerate() {
        let sa = if k + 1 == generated.len() { &last } else { &tx };
        let seq = sa.next_seq();
        let mut b = TestBuffer::with_room(HEAD_LEN, inner.len() + 64);
        b.append(inner.len()).unwrap().copy_from_slice(inner);
        encrypt(&mut b, sa).unwrap();
        input += &format!("{seq} {} {}\n", to_hex(inner), to_hex(b.data()));
    }
    let out = run_python("check", &input);
    assert_eq!(out.trim(), format!("OK {}", generated.len()), "python check output:\n{out}");
}
