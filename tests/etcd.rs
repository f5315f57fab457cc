//! The mapping service in etcd, through the `vpcemu` binary: each test starts its own etcd
//! (Debian's 3.4, `mapping_client::etcd::testing`) and stops it.

mod common;

use std::time::{Duration, Instant};

use common::{scratch, story_world, vpcemu};
use mapping_client::etcd::layout;
use mapping_client::etcd::testing::TestEtcd;
use mapping_client::etcd::Store;
use mapping_client::topology::Topology;

fn text(out: &std::process::Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn ok(args: &[&str]) -> String {
    let out = vpcemu(args);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "vpcemu {args:?} failed: {stderr}");
    stdout
}

/// Fails with exactly one line on stderr; returns it.
fn refused(args: &[&str]) -> String {
    let out = vpcemu(args);
    let (_, stderr) = text(&out);
    assert!(!out.status.success(), "vpcemu {args:?} should fail");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line, got {stderr:?}");
    lines[0].to_string()
}

fn load_story(etcd: &TestEtcd, dir: &std::path::Path) -> std::path::PathBuf {
    let file = dir.join("world.toml");
    std::fs::write(&file, story_world("[[port]]\nname = \"p\"\nvdev = \"net_null0\"\nattach = \"instance:red-1\"\n")).unwrap();
    let out = ok(&["mapping", "load", file.to_str().unwrap(), "--etcd", &etcd.url()]);
    assert!(out.contains("at revision "), "{out}");
    file
}

#[test]
fn load_dump_round_trip_and_refusals() {
    let etcd = TestEtcd::start().unwrap();
    let dir = scratch("etcd-roundtrip");
    let file = load_story(&etcd, &dir);
    let url = etcd.url();

    // The world read back is the file's world (ports aside).
    let store = Store::connect(&url).unwrap();
    let dataplane = "[dataplane]\nlcores = \"0-1\"\nmemory_mb = 512\nhugepages = \"off\"\n";
    let (back, snap) = store.read_world(dataplane).unwrap();
    let original = Topology::from_str(&common::story_world(""), "story").unwrap();
    assert_eq!(back, original);
    assert_eq!(snap.records, layout::records_of(&original).unwrap());

    // Dump: a file `check` accepts, that loads back to the same records.
    let dump = ok(&["mapping", "dump", "--etcd", &url]);
    let dumped = dir.join("dump.toml");
    std::fs::write(&dumped, &dump).unwrap();
    assert!(ok(&["check", dumped.to_str().unwrap()]).contains("OK"));
    let second = TestEtcd::start().unwrap();
    ok(&["mapping", "load", dumped.to_str().unwrap(), "--etcd", &second.url()]);
    let again = Store::connect(&second.url()).unwrap().snapshot().unwrap();
    assert_eq!(again.records, snap.records);

    // A world already there: refused, unless --replace.
    let line = refused(&["mapping", "load", file.to_str().unwrap(), "--etcd", &url]);
    assert!(line.contains("already in etcd") && line.contains("--replace"), "{line}");
    let before = store.revision().unwrap();
    let out = ok(&["mapping", "load", file.to_str().unwrap(), "--etcd", &url, "--replace"]);
    assert!(out.contains("at revision"));
    assert!(store.revision().unwrap() > before);
    assert_eq!(store.snapshot().unwrap().records, snap.records);

    // A bad file: the loader's line, nothing written.
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, story_world("[[instance]]\nname = \"x\"\nsubnet = \"red-a\"\nhost = \"host-a\"\nip = \"10.0.1.10\"\n")).unwrap();
    let line = refused(&["mapping", "load", bad.to_str().unwrap(), "--etcd", &url, "--replace"]);
    assert!(line.contains("bad.toml:") && line.contains("already used"), "{line}");
    assert_eq!(store.snapshot().unwrap().records, snap.records);

    // A file of world sections alone (no [dataplane], as examples/story-world.toml): the
    // same world.
    let third = TestEtcd::start().unwrap();
    ok(&["mapping", "load", "examples/story-world.toml", "--etcd", &third.url()]);
    let alone = Store::connect(&third.url()).unwrap().snapshot().unwrap();
    assert_eq!(alone.records, snap.records, "examples/story-world.toml is the story's world");
    drop(third);

    // No world: dump and ctl say so.
    let empty = TestEtcd::start().unwrap();
    let line = refused(&["mapping", "dump", "--etcd", &empty.url()]);
    assert!(line.contains("no world in etcd") && line.contains("mapping load"), "{line}");
    let line = refused(&["ctl", "--etcd", &empty.url(), "move", "red-1", "host-b"]);
    assert!(line.contains("no world in etcd"), "{line}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A private etcd holding the story's world, a scratch directory, the etcd's URL.
fn story_in_etcd(test: &str) -> (TestEtcd, std::path::PathBuf, String) {
    let etcd = TestEtcd::start().unwrap();
    let dir = scratch(test);
    load_story(&etcd, &dir);
    let url = etcd.url();
    (etcd, dir, url)
}

#[test]
fn ctl_changes_are_guarded_transactions() {
    let (_etcd, dir, url) = story_in_etcd("etcd-ctl");
    let store = Store::connect(&url).unwrap();
    let dp = layout::DUMP_DATAPLANE;

    let out = ok(&["ctl", "--etcd", &url, "move", "red-1", "host-b"]);
    assert!(out.contains("done at revision"), "{out}");
    let (t, snap) = store.read_world(dp).unwrap();
    assert_eq!(t.host(t.instance_by_name("red-1").unwrap().host).unwrap().name, "host-b");
    assert!(snap.records.contains_key("on/host-b/red-1") && !snap.records.contains_key("on/host-a/red-1"));

    ok(&["ctl", "--etcd", &url, "register", "red-3", "subnet=red-a", "host=host-a", "ip=10.0.1.30"]);
    ok(&["ctl", "--etcd", &url, "peer", "remove", "red", "yellow"]);
    ok(&["ctl", "--etcd", &url, "peer", "add", "red", "yellow"]);
    ok(&["ctl", "--etcd", &url, "eip", "disassociate", "203.0.113.10"]);
    ok(&["ctl", "--etcd", &url, "eip", "associate", "203.0.113.10", "red-3"]);
    ok(&["ctl", "--etcd", &url, "deregister", "red-3"]);
    let (t, snap) = store.read_world(dp).unwrap();
    assert!(t.instance_by_name("red-3").is_none());
    assert!(t.elastic_ip_instance("203.0.113.10".parse().unwrap()).is_none());
    assert!(!snap.records.keys().any(|k| k.contains("red-3")));
    let list = ok(&["ctl", "--etcd", &url, "list"]);
    assert!(list.contains("\"red-1\""), "{list}");

    // Bad commands: one line naming it, nothing changes.
    let rev = store.revision().unwrap();
    let cases: [(&[&str], &str); 5] = [
        (&["move", "nobody", "host-a"], "unknown instance \"nobody\""),
        (&["move", "red-1", "host-z"], "unknown host \"host-z\""),
        (&["register", "x", "subnet=red-a", "host=host-a", "ip=10.0.1.10"], "already used"),
        (&["peer", "add", "red", "yellow"], "already peered"),
        (&["teleport", "red-1"], "unknown command"),
    ];
    for (args, want) in cases {
        let mut all = vec!["ctl", "--etcd", url.as_str()];
        all.extend_from_slice(args);
        let line = refused(&all);
        assert!(line.contains(want), "{args:?}: {line}");
    }
    assert_eq!(store.revision().unwrap(), rev, "a refused command wrote nothing");

    // Each change also put its VPCs' guard keys (`ver/VPC`, the one key its transaction
    // compares per VPC); `dump` leaves them out, and a load with --replace deletes them.
    let guards: Vec<String> = store.list_raw(layout::GUARDS).unwrap().into_iter().map(|l| l.key).collect();
    assert_eq!(guards, ["ver/red", "ver/yellow"]);
    let dump = ok(&["mapping", "dump", "--etcd", &url]);
    assert!(!dump.contains("ver/") && dump.contains("red-1"), "{dump}");
    let file = dir.join("world.toml");
    ok(&["mapping", "load", file.to_str().unwrap(), "--etcd", &url, "--replace"]);
    assert!(store.list_raw(layout::GUARDS).unwrap().is_empty(), "--replace deletes the guard keys");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn concurrent_ctl_changes_never_break_the_world() {
    let (_etcd, dir, url) = story_in_etcd("etcd-concurrent");
    // Rounds of two changes at once that cannot both hold: the same address for two new
    // instances, and a move racing a deregister.
    for round in 0..4 {
        let (a, b) = (format!("race-a{round}"), format!("race-b{round}"));
        let ip = format!("ip=10.0.1.{}", 40 + round);
        let u1 = url.clone();
        let ip1 = ip.clone();
        let t1 = std::thread::spawn(move || {
            vpcemu(&["ctl", "--etcd", &u1, "register", &a, "subnet=red-a", "host=host-a", &ip1]).status.success()
        });
        let t2 = vpcemu(&["ctl", "--etcd", &url, "register", &b, "subnet=red-a", "host=host-b", &ip]).status.success();
        let t1 = t1.join().unwrap();
        assert!(t1 ^ t2, "round {round}: exactly one of two registrations of one address succeeds ({t1}, {t2})");
    }
    let u1 = url.clone();
    let mover = std::thread::spawn(move || vpcemu(&["ctl", "--etcd", &u1, "move", "green-1", "host-b"]));
    let dereg = vpcemu(&["ctl", "--etcd", &url, "deregister", "green-1"]);
    let moved = mover.join().unwrap();
    assert!(moved.status.success() || dereg.status.success());
    for o in [&moved, &dereg] {
        if !o.status.success() {
            let e = String::from_utf8_lossy(&o.stderr);
            assert!(e.contains("conflict") || e.contains("unknown instance"), "{e}");
        }
    }
    // Whatever happened, the world in etcd is valid and its indexes agree with it.
    let store = Store::connect(&url).unwrap();
    let (t, snap) = store.read_world(layout::DUMP_DATAPLANE).unwrap();
    assert_eq!(snap.records, layout::records_of(&t).unwrap(), "indexes and records agree");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unreachable_etcd_is_one_line_within_10_s() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let dir = scratch("etcd-unreachable");
    let file = dir.join("world.toml");
    std::fs::write(&file, story_world("")).unwrap();
    let f = file.to_str().unwrap();
    let run_file = dir.join("run.toml");
    std::fs::write(&run_file, "[dataplane]\nlcores = \"0-1\"\nmemory_mb = 256\nhugepages = \"off\"\n").unwrap();
    let r = run_file.to_str().unwrap();
    let mut commands: Vec<Vec<&str>> = vec![
        vec!["run", r, "--etcd", &url],
        vec!["mapping", "load", f, "--etcd", &url],
        vec!["mapping", "dump", "--etcd", &url],
        vec!["ctl", "--etcd", &url, "move", "red-1", "host-b"],
        vec!["ctl", "--etcd", &url, "list"],
    ];
    // `lab` needs root before it asks etcd anything.
    match common::netns::skip_reason() {
        None => commands.push(vec!["lab", r, "--etcd", &url, "--ns-prefix", "unreachable-"]),
        Some(why) => println!("etcd unreachable: lab --etcd not tried: {why}"),
    }
    for args in commands {
        let args = args.as_slice();
        let start = Instant::now();
        let line = refused(args);
        assert!(start.elapsed() < Duration::from_secs(10), "{args:?} took {:?}", start.elapsed());
        assert!(line.contains("unreachable") && line.contains(&url), "{args:?}: {line}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn ctl_control(sock: &std::path::Path, cmd: &[&str]) -> serde_json::Value {
    let mut args = vec!["ctl", "--control", sock.to_str().unwrap()];
    args.extend_from_slice(cmd);
    serde_json::from_slice(&vpcemu(&args).stdout).unwrap_or_default()
}

/// Polls `cond` every 20 ms for at most `secs` seconds.
fn wait_for(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn run_with_etcd_follows_moves_and_fails_static() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut etcd = TestEtcd::start().unwrap();
    let dir = scratch("etcd-run");
    let url = etcd.url();
    let world = dir.join("world.toml");
    std::fs::write(&world, story_world("")).unwrap();
    ok(&["mapping", "load", world.to_str().unwrap(), "--etcd", &url]);

    // World sections in the run file: refused, pointing at `mapping load`.
    let line = refused(&["run", world.to_str().unwrap(), "--etcd", &url]);
    assert!(line.contains("mapping load") && line.contains("[host]"), "{line}");

    let fifo = dir.join("yellow-1.fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let d = dir.display();
    let file = dir.join("run.toml");
    std::fs::write(
        &file,
        format!(
            "[dataplane]\nlcores = \"0-1\"\nmemory_mb = 512\nhugepages = \"off\"\n\n\
             [[port]]\nname = \"yellow-1\"\nvdev = \"net_pcap0,rx_pcap={d}/yellow-1.fifo\"\nattach = \"instance:yellow-1\"\n\
             [[port]]\nname = \"red-1\"\nvdev = \"net_pcap1,tx_pcap={d}/out-red-1.pcap\"\nattach = \"instance:red-1\"\n\
             [[port]]\nname = \"fabric\"\nvdev = \"net_pcap2,tx_pcap={d}/fabric.pcap\"\nattach = \"fabric\"\n"
        ),
    )
    .unwrap();
    let sock = dir.join("ctl.sock");
    let alerts = dir.join("alerts.jsonl");
    let stats = dir.join("stats.json");
    let run = Command::new(env!("CARGO_BIN_EXE_vpcemu"))
        .args(["run", file.to_str().unwrap(), "--etcd", &url, "--control", sock.to_str().unwrap()])
        .args(["--alerts", alerts.to_str().unwrap(), "--stats-json", stats.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut w = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    w.write_all(&common::pcap_header()).unwrap();
    let mut sent = 0u16;
    let mut burst = |w: &mut std::fs::File| {
        for _ in 0..32 {
            w.write_all(&common::pcap_record(&common::echo(sent))).unwrap();
            sent += 1;
        }
        w.flush().unwrap();
    };
    let tx = |sock: &std::path::Path| ctl_control(sock, &["stats"])["ports"]["red-1"]["tx"].as_u64().unwrap_or(0);
    let held = |sock: &std::path::Path, card: &str| {
        ctl_control(sock, &["stats"])["mapping"]["cards"][card]["events_held"].as_u64().unwrap_or(0)
    };

    burst(&mut w);
    wait_for(15, "the control socket", || sock.exists());
    wait_for(10, "the first burst at red-1", || tx(&sock) == 32);
    // `list` answers from etcd; a change on the socket points to ctl --etcd.
    let list = ctl_control(&sock, &["list"]);
    assert!(list["instances"].as_array().is_some_and(|a| a.len() == 3), "{list}");
    let refused_change = vpcemu(&["ctl", "--control", sock.to_str().unwrap(), "move", "red-1", "host-b"]);
    assert!(String::from_utf8_lossy(&refused_change.stderr).contains("ctl --etcd"));

    // A move through etcd reaches the process's cards; traffic follows.
    let before = held(&sock, "host-b");
    ok(&["ctl", "--etcd", &url, "move", "red-1", "host-b"]);
    wait_for(10, "host-b to hear of the move", || held(&sock, "host-b") > before);
    burst(&mut w);
    wait_for(10, "the second burst at red-1", || tx(&sock) == 64);

    // etcd stops: one alert line, and the cards keep forwarding on their tables.
    etcd.stop();
    let unreachable = || std::fs::read_to_string(&alerts).unwrap_or_default().matches("mapping_service_unreachable").count();
    wait_for(10, "the mapping_service_unreachable alert", || unreachable() == 1);
    burst(&mut w);
    wait_for(10, "the third burst at red-1 while etcd is down", || tx(&sock) == 96);
    assert_eq!(ctl_control(&sock, &["stats"])["mapping"]["reachable"], false);

    // etcd is back: the cards resync by themselves and follow the next move.
    etcd.resume().unwrap();
    wait_for(15, "the cards to resync", || ctl_control(&sock, &["stats"])["mapping"]["reachable"] == true);
    let before = held(&sock, "host-a");
    ok(&["ctl", "--etcd", &url, "move", "red-1", "host-a"]);
    wait_for(10, "host-a to hear of the move back", || held(&sock, "host-a") > before);
    burst(&mut w);
    wait_for(10, "the fourth burst at red-1", || tx(&sock) == 128);
    drop(w);
    assert!(Command::new("kill").args(["-TERM", &run.id().to_string()]).status().unwrap().success());
    let out = run.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(unreachable(), 1, "one alert line for the outage");

    // Bursts 1 and 4 crossed the fabric to host-a, 2 and 3 stayed on host-b with red-1.
    let fabric = common::read_pcap(&dir.join("fabric.pcap"));
    let dst: Vec<[u8; 4]> = fabric.iter().map(|f| f[30..34].try_into().unwrap()).collect();
    assert_eq!(dst.len(), 128);
    assert_eq!(dst[..32], [[198, 18, 0, 1]; 32]);
    assert_eq!(dst[32..96], [[198, 18, 0, 2]; 64]);
    assert_eq!(dst[96..], [[198, 18, 0, 1]; 32]);
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    assert!(v["mapping"]["cards"]["host-a"]["failures"].as_u64().unwrap() >= 1);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Two `vpcemu run --etcd` processes and what the test made for them (namespaces, a
/// bridge); dropping it stops the processes and removes them.
struct TwoProcesses {
    children: Vec<std::process::Child>,
    namespaces: Vec<String>,
    ifaces: Vec<String>,
}

impl Drop for TwoProcesses {
    fn drop(&mut self) {
        use common::netns::{iface_exists, wait_timeout};
        for c in &mut self.children {
            let _ = std::process::Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
            if wait_timeout(c, Duration::from_secs(15)).is_none() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        for ns in &self.namespaces {
            let _ = std::process::Command::new("ip").args(["netns", "del", ns]).stderr(std::process::Stdio::null()).status();
        }
        for i in &self.ifaces {
            if iface_exists(i) {
                let _ = std::process::Command::new("ip").args(["link", "del", i]).stderr(std::process::Stdio::null()).status();
            }
        }
    }
}

#[test]
fn two_processes_share_one_etcd_and_traffic_follows_a_move() {
    use common::netns::{in_ns, ip, iface_exists, skip_reason, text};
    use std::process::{Command, Stdio};
    if let Some(why) = skip_reason() {
        println!("etcd two processes: skipped: {why}");
        return;
    }
    // host-a runs in process A with red-1; host-b and host-c in process B with yellow-1.
    // Each card's underlay port is a net_tap; the test joins the taps on a Linux bridge in
    // a namespace of its own, so the underlay frames cross the kernel between processes.
    let etcd = TestEtcd::start().unwrap();
    let url = etcd.url();
    let dir = scratch("etcd-two");
    let world = dir.join("world.toml");
    std::fs::write(&world, story_world("[[host]]\nname = \"host-c\"\npa = \"198.18.0.3\"\n")).unwrap();
    ok(&["mapping", "load", world.to_str().unwrap(), "--etcd", &url]);
    let pid = std::process::id();
    let name = |s: &str| format!("vpcE{pid}{s}");
    let mut guard = TwoProcesses {
        children: Vec::new(),
        namespaces: ["red", "yel", "ul"].iter().map(|s| name(s)).collect(),
        ifaces: ["r", "y", "ua", "ub", "uc"].iter().map(|s| name(s)).collect(),
    };
    for i in &guard.ifaces {
        if iface_exists(i) {
            ip(&["link", "del", i]);
        }
    }
    let dataplane = "[dataplane]\nlcores = \"0-1\"\nmemory_mb = 256\nhugepages = \"off\"\n\n";
    let port = |n: usize, port: &str, iface: &str, attach: &str| {
        format!("[[port]]\nname = \"{port}\"\nvdev = \"net_tap{n},iface={}\"\nattach = \"{attach}\"\n\n", name(iface))
    };
    let files = [
        ("a", "host-a", format!("{dataplane}{}{}", port(0, "red-1", "r", "instance:red-1"), port(1, "ul-a", "ua", "underlay:host-a"))),
        (
            "b",
            "host-b,host-c",
            format!(
                "{dataplane}{}{}{}",
                port(0, "yellow-1", "y", "instance:yellow-1"),
                port(1, "ul-b", "ub", "underlay:host-b"),
                port(2, "ul-c", "uc", "underlay:host-c")
            ),
        ),
    ];
    let mut sockets = Vec::new();
    for (p, cards, text) in &files {
        let file = dir.join(format!("run-{p}.toml"));
        std::fs::write(&file, text).unwrap();
        let sock = dir.join(format!("ctl-{p}.sock"));
        let child = Command::new(env!("CARGO_BIN_EXE_vpcemu"))
            .args(["run", file.to_str().unwrap(), "--etcd", &url, "--cards", cards, "--duration", "150"])
            .args(["--control", sock.to_str().unwrap(), "--file-prefix", &name(p)])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.join(format!("stdout-{p}.txt"))).unwrap())
            .stderr(std::fs::File::create(dir.join(format!("stderr-{p}.txt"))).unwrap())
            .spawn()
            .unwrap();
        guard.children.push(child);
        sockets.push(sock);
    }
    let stderr = |p: &str| std::fs::read_to_string(dir.join(format!("stderr-{p}.txt"))).unwrap_or_default();
    for (sock, p) in sockets.iter().zip(["a", "b"]) {
        wait_for(40, &format!("process {p} to answer ({})", stderr(p)), || ctl_control(sock, &["stats"])["ports"].is_object());
    }
    // The namespaces: red-1, yellow-1, and the underlay bridge.
    let (ns_red, ns_yel, ns_ul) = (name("red"), name("yel"), name("ul"));
    for ns in [&ns_red, &ns_yel, &ns_ul] {
        ip(&["netns", "add", ns]);
        ip(&["-n", ns, "link", "set", "lo", "up"]);
    }
    let host = |ns: &str, iface: &str, mac: &str, addr: &str, gw: &str| {
        let dev = name(iface);
        ip(&["link", "set", &dev, "netns", ns]);
        ip(&["-n", ns, "link", "set", &dev, "address", mac]);
        ip(&["-n", ns, "addr", "add", addr, "dev", &dev]);
        ip(&["-n", ns, "link", "set", &dev, "up"]);
        ip(&["-n", ns, "route", "add", "default", "via", gw]);
    };
    host(&ns_red, "r", common::netns::RED_MAC, "10.0.1.10/24", "10.0.1.1");
    host(&ns_yel, "y", common::netns::YELLOW_MAC, "10.1.1.20/24", "10.1.1.1");
    ip(&["-n", &ns_ul, "link", "add", "br0", "type", "bridge"]);
    for u in ["ua", "ub", "uc"] {
        ip(&["link", "set", &name(u), "netns", &ns_ul]);
        ip(&["-n", &ns_ul, "link", "set", &name(u), "master", "br0"]);
        ip(&["-n", &ns_ul, "link", "set", &name(u), "up"]);
    }
    ip(&["-n", &ns_ul, "link", "set", "br0", "up"]);

    let ping = |what: &str| {
        let out = in_ns(&ns_red, 30, &["ping", "-n", "-c", "5", "-i", "0.3", "-W", "3", "10.1.1.20"]);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{what}: red-1 cannot reach yellow-1\n{}\nA: {}\nB: {}", text(&out), stderr("a"), stderr("b"));
        stdout
    };
    let port_tx = |sock: &std::path::Path, port: &str| ctl_control(sock, &["stats"])["ports"][port]["tx"].as_u64().unwrap_or(0);
    ping("across the two processes");
    assert!(port_tx(&sockets[0], "ul-a") > 0 && port_tx(&sockets[1], "ul-b") > 0, "the underlay carried it");
    let ul_c = port_tx(&sockets[1], "ul-c");

    // yellow-1 moves to host-c (process B) through etcd: process A's host-a learns its new
    // place, and the traffic follows it.
    // Under traffic: 80 echoes 50 ms apart, the move after about one second; the loss
    // during the move is measured (printed) and the last echoes are all answered.
    let held = |sock: &std::path::Path| ctl_control(sock, &["stats"])["mapping"]["cards"]["host-a"]["events_held"].as_u64().unwrap_or(0);
    let before = held(&sockets[0]);
    let ns = ns_red.clone();
    let flow = std::thread::spawn(move || in_ns(&ns, 30, &["ping", "-n", "-c", "80", "-i", "0.05", "-W", "2", "10.1.1.20"]));
    std::thread::sleep(Duration::from_millis(1000));
    let moved_at = Instant::now();
    ok(&["ctl", "--etcd", &url, "move", "yellow-1", "host-c"]);
    wait_for(10, "process A to hear of the move", || held(&sockets[0]) > before);
    let heard = moved_at.elapsed();
    let out = flow.join().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let answered: Vec<u32> = stdout
        .lines()
        .filter_map(|l| l.split("icmp_seq=").nth(1)?.split_whitespace().next()?.parse().ok())
        .collect();
    println!(
        "etcd two processes: move under traffic: {} of 80 echoes answered ({} lost), process A heard of the move {:.0} ms after ctl started",
        answered.len(),
        80 - answered.len(),
        heard.as_secs_f64() * 1000.0
    );
    assert!((71..=80).all(|seq| answered.contains(&seq)), "the last echoes follow yellow-1:\n{stdout}");
    let replies = stdout.lines().filter(|l| l.contains("bytes from")).count();
    let from_yellow = stdout.lines().filter(|l| l.contains("bytes from 10.1.1.20:")).count();
    assert_eq!(replies, from_yellow, "every answer came from yellow-1, wherever it was");
    ping("after the move");
    assert!(port_tx(&sockets[1], "ul-c") > ul_c, "yellow-1's answers now leave by host-c's underlay port");
    drop(guard);
    let _ = std::fs::remove_dir_all(&dir);
}
