//! A private etcd for tests and benchmarks: Debian's `etcd` (3.4) on 127.0.0.1 with free
//! ports and a data directory in a temporary directory. It is stopped when the
//! [`TestEtcd`] is dropped, and a watchdog (a shell loop) kills it if this process dies
//! first or after a maximum lifetime, so that no test leaves an etcd behind.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The etcd binary (Debian's `etcd-server`).
pub const ETCD: &str = "/usr/bin/etcd";
/// etcd's Go garbage collector target (`GOGC`) for the etcds started here, unless `GOGC`
/// is set in the environment: 400 instead of Go's 100 cut etcd's CPU per change by about
/// 12% in `mapping-convergence` (1,000 hosts, 500 changes/s) for about twice its memory
/// (0.5-0.6 GB -> 1.1-1.3 GB). An operator's knob, for any etcd that serves the cards.
pub const GOGC: &str = "400";
/// The longest a test etcd lives.
pub const MAX_LIFETIME: Duration = Duration::from_secs(900);

/// A running private etcd.
#[derive(Debug)]
pub struct TestEtcd {
    dir: PathBuf,
    client_port: u16,
    peer_port: u16,
    child: Option<Child>,
    watchdog: Option<Child>,
}

/// A port on 127.0.0.1 free when asked, never the same twice in this process, and from
/// below the kernel's ephemeral range. A port taken with `bind(0)` and let go for etcd to
/// bind later is drawn from the range that other `bind(0)` calls and outgoing connections
/// of the parallel tests also draw from: one of them could hold it by the time etcd binds
/// (and an etcd that cannot bind its port exits, or a client asks someone else's etcd).
fn free_port() -> std::io::Result<u16> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    const BASE: u32 = 10_000;
    if low > BASE + 1_000 {
        let span = low - BASE;
        // Processes started together (test binaries, benchmarks) begin apart.
        let start = std::process::id().wrapping_mul(7_919) % span;
        for _ in 0..span.min(2_000) {
            let port = BASE + (start + NEXT.fetch_add(1, Ordering::Relaxed)) % span;
            if TcpListener::bind(("127.0.0.1", port as u16)).is_ok() {
                return Ok(port as u16);
            }
        }
    }
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl TestEtcd {
    /// Starts an etcd and waits (at most 20 s) until it answers.
    pub fn start() -> Result<TestEtcd, String> {
        if !Path::new(ETCD).exists() {
            return Err(format!("{ETCD} is missing: run scripts/setup.sh (Debian package etcd-server)"));
        }
        let dir = std::env::temp_dir().join(format!("vpcemu-etcd-{}-{}", std::process::id(), super::unix_nanos()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let client_port = free_port().map_err(|e| e.to_string())?;
        let peer_port = free_port().map_err(|e| e.to_string())?;
        let mut etcd = TestEtcd { dir, client_port, peer_port, child: None, watchdog: None };
        etcd.resume()?;
        Ok(etcd)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// The etcd server's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Stops the server (SIGKILL), keeping its data: [`TestEtcd::resume`] starts it again
    /// on the same ports and data.
    pub fn stop(&mut self) {
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server (again) and waits until it answers.
    pub fn resume(&mut self) -> Result<(), String> {
        if self.child.is_some() {
            return Ok(());
        }
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let log = std::fs::File::create(self.dir.join("etcd.log")).map_err(|e| e.to_string())?;
        let mut cmd = Command::new(ETCD);
        cmd
            .args(["--name", "vpcemu-test"])
            .arg("--data-dir")
            .arg(self.dir.join("data"))
            .args(["--listen-client-urls", &self.url(), "--advertise-client-urls", &self.url()])
            .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("vpcemu-test={peer}")])
            .args(["--logger", "zap", "--log-level", "warn"]);
        if std::env::var_os("GOGC").is_none() {
            cmd.env("GOGC", GOGC);
        }
        let child = spawn_logged(cmd, log, "")?;
        let watchdog = spawn_watchdog(child.id())?;
        self.child = Some(child);
        self.watchdog = Some(watchdog);
        let url = self.url();
        wait_until_answers("etcd", &url, self.child.as_mut(), &self.dir.join("etcd.log"), |_| Ok(()))
    }
}

impl Drop for TestEtcd {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An `etcd grpc-proxy` (Debian's etcd 3.4 binary) on 127.0.0.1 with a free port in front
/// of an etcd: it merges identical watches of its clients into one watch on the server, as
/// in a deployment where every host talks to a proxy. Stopped (SIGKILL) when dropped; the
/// same watchdog as [`TestEtcd`]'s kills it if this process dies first.
#[derive(Debug)]
pub struct GrpcProxy {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
    watchdog: Option<Child>,
}

impl GrpcProxy {
    /// Starts `etcd grpc-proxy start` for `endpoint` (`http://127.0.0.1:PORT`) and waits (at
    /// most 20 s) until it answers.
    pub fn start(endpoint: &str) -> Result<GrpcProxy, String> {
        let dir = std::env::temp_dir().join(format!("vpcemu-grpc-proxy-{}-{}", std::process::id(), super::unix_nanos()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let port = free_port().map_err(|e| e.to_string())?;
        let log = std::fs::File::create(dir.join("proxy.log")).map_err(|e| e.to_string())?;
        let listen = format!("127.0.0.1:{port}");
        let mut cmd = Command::new(ETCD);
        cmd
            .args(["grpc-proxy", "start", "--endpoints", endpoint.trim_start_matches("http://")])
            .args(["--listen-addr", &listen, "--advertise-client-url", &listen])
            .arg("--data-dir")
            .arg(dir.join("data"));
        let child = spawn_logged(cmd, log, " grpc-proxy")?;
        let watchdog = spawn_watchdog(child.id())?;
        let mut proxy = GrpcProxy { dir, port, child: Some(child), watchdog: Some(watchdog) };
        let (url, log) = (proxy.url(), proxy.dir.join("proxy.log"));
        // The proxy accepts connections before it reaches etcd: ask it something.
        wait_until_answers("etcd grpc-proxy", &url, proxy.child.as_mut(), &log, |s| s.server_version().map(drop))?;
        Ok(proxy)
    }

    /// `http://127.0.0.1:PORT` of the proxy.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The proxy's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }
}

impl Drop for GrpcProxy {
    fn drop(&mut self) {
        for c in [self.watchdog.take(), self.child.take()].into_iter().flatten() {
            let mut c = c;
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Waits (at most 20 s) until `ask` succeeds on a connection to `url`; an error with the
/// tail of `log` if `child` exits first.
fn wait_until_answers(
    what: &str,
    url: &str,
    mut child: Option<&mut Child>,
    log: &Path,
    ask: impl Fn(super::Store) -> Result<(), String>,
) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if super::Store::connect(url).and_then(&ask).is_ok() {
            return Ok(());
        }
        if let Some(Ok(Some(status))) = child.as_mut().map(|c| c.try_wait()) {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(3).collect();
            return Err(format!("{what} exited ({status}): {}", tail.join(" | ")));
        }
        if Instant::now() > deadline {
            return Err(format!("{what} did not answer within 20 s"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Spawns `etcd{what}` with its standard error to `log`.
fn spawn_logged(mut cmd: Command, log: std::fs::File, what: &str) -> Result<Child, String> {
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log).spawn().map_err(|e| format!("starting {ETCD}{what}: {e}"))
}

/// A shell loop that kills `pid` (SIGKILL) when this process dies or after
/// [`MAX_LIFETIME`].
fn spawn_watchdog(pid: u32) -> Result<Child, String> {
    let script = format!(
        "i=0; while kill -0 {me} 2>/dev/null && kill -0 {pid} 2>/dev/null && [ $i -lt {max} ]; \
         do sleep 1; i=$((i+1)); done; kill -9 {pid} 2>/dev/null",
        me = std::process::id(),
        max = MAX_LIFETIME.as_secs()
    );
    Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting the watchdog: {e}"))
}

/// A TCP proxy on 127.0.0.1 in front of a [`TestEtcd`] that a test can cut: while it is
/// down, every connection through it is closed and new ones are dropped, as when the
/// network between a card and etcd fails while etcd itself goes on.
#[derive(Debug)]
pub struct Proxy {
    port: u16,
    down: Arc<AtomicBool>,
    generation: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

impl Proxy {
    /// A proxy to `127.0.0.1:target_port`.
    pub fn start(target: &str) -> Result<Proxy, String> {
        let target = target.trim_start_matches("http://").to_string();
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let down = Arc::new(AtomicBool::new(false));
        let generation = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (d, g, s) = (down.clone(), generation.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        if d.load(Ordering::Relaxed) {
                            continue;
                        }
                        let Ok(server) = TcpStream::connect(&target) else { continue };
                        let gen = g.load(Ordering::Relaxed);
                        for (from, to) in [(client.try_clone(), server.try_clone()), (server.try_clone(), client.try_clone())] {
                            let (Ok(from), Ok(to)) = (from, to) else { continue };
                            let (g2, s2) = (g.clone(), s.clone());
                            std::thread::spawn(move || pipe(from, to, gen, g2, s2));
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Ok(Proxy { port, down, generation, stop })
    }

    /// `http://127.0.0.1:PORT` of the proxy.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Cuts every connection and refuses new ones (`true`), or lets them through again.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::Relaxed);
        if down {
            self.generation.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream, gen: u64, current: Arc<AtomicU64>, stop: Arc<AtomicBool>) {
    let _ = from.set_read_timeout(Some(Duration::from_millis(50)));
    let mut buf = [0u8; 16384];
    loop {
        if current.load(Ordering::Relaxed) != gen || stop.load(Ordering::Relaxed) {
            break;
        }
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.generation.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_distinct_bindable_and_below_the_ephemeral_range() {
        let low: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let ports: Vec<u16> = (0..50).map(|_| free_port().unwrap()).collect();
        let mut sorted = ports.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), ports.len(), "{ports:?}");
        for p in ports {
            assert!(p < low, "{p} in the ephemeral range from {low}");
            TcpListener::bind(("127.0.0.1", p)).unwrap();
        }
    }
}
