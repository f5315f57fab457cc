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

    // No world: dump and ctl say so.
    let empty = TestEtcd::start().unwrap();
    let line = refused(&["mapping", "dump", "--etcd", &empty.url()]);
    assert!(line.contains("no world in etcd") && line.contains("mapping load"), "{line}");
    let line = refused(&["ctl", "--etcd", &empty.url(), "move", "red-1", "host-b"]);
    assert!(line.contains("no world in etcd"), "{line}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ctl_changes_are_guarded_transactions() {
    let etcd = TestEtcd::start().unwrap();
    let dir = scratch("etcd-ctl");
    load_story(&etcd, &dir);
    let url = etcd.url();
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
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn concurrent_ctl_changes_never_break_the_world() {
    let etcd = TestEtcd::start().unwrap();
    let dir = scratch("etcd-concurrent");
    load_story(&etcd, &dir);
    let url = etcd.url();
    // Rounds of two changes at once that cannot both hold: the same address for two new
    // instances, and a move racing a deregister.
    let mut outcomes = Vec::new();
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
        outcomes.push((t1, t2));
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
    let _ = outcomes;
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
    let commands: [&[&str]; 4] = [
        &["mapping", "load", f, "--etcd", &url],
        &["mapping", "dump", "--etcd", &url],
        &["ctl", "--etcd", &url, "move", "red-1", "host-b"],
        &["ctl", "--etcd", &url, "list"],
    ];
    for args in commands {
        let start = Instant::now();
        let line = refused(args);
        assert!(start.elapsed() < Duration::from_secs(10), "{args:?} took {:?}", start.elapsed());
        assert!(line.contains("unreachable") && line.contains(&url), "{args:?}: {line}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
