//! The control socket: a Unix stream socket on which `vpcemu ctl` sends one command line
//! and reads one reply line. Served from the control core's loop without blocking it:
//! the listener and every connection are non-blocking and polled once per tick.
//!
//! Protocol (line-oriented, UTF-8): the client writes one command terminated by `\n`;
//! the server answers one JSON object terminated by `\n`, either
//! `{"ok":true,"result":...}` or `{"ok":false,"error":"..."}`, then closes. A command
//! line longer than [`MAX_LINE`] or a client that sends nothing for [`CLIENT_TIMEOUT`] is
//! answered with an error and dropped.

use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Longest command line accepted.
pub const MAX_LINE: usize = 4096;
/// How long a connected client may take to send its line.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

struct Conn {
    stream: UnixStream,
    buf: Vec<u8>,
    since: Instant,
}

/// The server side, owned by the control core.
pub struct ControlSocket {
    path: PathBuf,
    listener: UnixListener,
    conns: Vec<Conn>,
}

impl std::fmt::Debug for ControlSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlSocket").field("path", &self.path).field("conns", &self.conns.len()).finish()
    }
}

fn reply(stream: &mut UnixStream, result: Result<serde_json::Value, String>) {
    let v = match result {
        Ok(r) => serde_json::json!({ "ok": true, "result": r }),
        Err(e) => serde_json::json!({ "ok": false, "error": e }),
    };
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_write_timeout(Some(Duration::from_millis(200)));
    let _ = stream.write_all(format!("{v}\n").as_bytes());
}

impl ControlSocket {
    /// Bind `path`. An existing socket file nobody answers on (left by a crashed run) is
    /// replaced; one that answers is an error.
    pub fn bind(path: &Path) -> io::Result<ControlSocket> {
        if path.exists() {
            if UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(ErrorKind::AddrInUse, format!("{} is in use by a running vpcemu", path.display())));
            }
            std::fs::remove_file(path)?;
        }
        let listener = UnixListener::bind(path)?;
        listener.set_nonblocking(true)?;
        Ok(ControlSocket { path: path.to_path_buf(), listener, conns: Vec::new() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Accept new clients, read what they sent, and answer complete lines with
    /// `handle`. Never blocks. Returns the number of commands handled.
    pub fn poll<F>(&mut self, mut handle: F) -> usize
    where
        F: FnMut(&str) -> Result<serde_json::Value, String>,
    {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if stream.set_nonblocking(true).is_ok() {
                        self.conns.push(Conn { stream, buf: Vec::new(), since: Instant::now() });
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => break,
            }
        }
        let mut handled = 0;
        let mut i = 0;
        while i < self.conns.len() {
            let c = &mut self.conns[i];
            let mut chunk = [0u8; 1024];
            let mut closed = false;
            loop {
                match c.stream.read(&mut chunk) {
                    Ok(0) => {
                        closed = true;
                        break;
                    }
                    Ok(n) => c.buf.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => {
                        closed = true;
                        break;
                    }
                }
                if c.buf.len() > MAX_LINE {
                    break;
                }
            }
            let done = if let Some(pos) = c.buf.iter().position(|&b| b == b'\n') {
                let line = String::from_utf8_lossy(&c.buf[..pos]).trim().to_string();
                let result = if line.is_empty() { Err("empty command".to_string()) } else { handle(&line) };
                reply(&mut c.stream, result);
                handled += 1;
                true
            } else if c.buf.len() > MAX_LINE {
                reply(&mut c.stream, Err(format!("command longer than {MAX_LINE} bytes")));
                true
            } else if closed {
                // The client closed without a newline: treat what it sent as the line.
                if !c.buf.is_empty() {
                    let line = String::from_utf8_lossy(&c.buf).trim().to_string();
                    reply(&mut c.stream, handle(&line));
                    handled += 1;
                }
                true
            } else if c.since.elapsed() > CLIENT_TIMEOUT {
                reply(&mut c.stream, Err("timed out waiting for a command line".into()));
                true
            } else {
                false
            };
            if done {
                self.conns.swap_remove(i);
            } else {
                i += 1;
            }
        }
        handled
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The client side (`vpcemu ctl`): send one line, return the reply's JSON value.
pub fn request(path: &Path, line: &str) -> Result<serde_json::Value, String> {
    let mut s = UnixStream::connect(path).map_err(|e| format!("cannot connect to {}: {e}", path.display()))?;
    s.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
    s.write_all(format!("{}\n", line.trim()).as_bytes()).map_err(|e| format!("sending the command: {e}"))?;
    let mut answer = String::new();
    BufReader::new(s).read_line(&mut answer).map_err(|e| format!("reading the reply: {e}"))?;
    let v: serde_json::Value =
        serde_json::from_str(answer.trim()).map_err(|e| format!("bad reply {:?}: {e}", answer.trim()))?;
    if v["ok"] == serde_json::Value::Bool(true) {
        Ok(v["result"].clone())
    } else {
        Err(v["error"].as_str().unwrap_or("the server refused the command").to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_reply_round_trip_and_errors() {
        let dir = std::env::temp_dir().join(format!("vpcemu-ctl-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ctl.sock");
        let mut server = ControlSocket::bind(&path).unwrap();
        // A second bind while the first answers is refused.
        assert!(ControlSocket::bind(&path).is_err());
        let p = path.clone();
        let client = std::thread::spawn(move || {
            let ok = request(&p, "echo hello");
            let bad = request(&p, "fail now");
            (ok, bad)
        });
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut seen = 0;
        while seen < 2 && Instant::now() < deadline {
            seen += server.poll(|line| {
                let mut words = line.split_whitespace();
                match words.next() {
                    Some("echo") => Ok(serde_json::json!(words.collect::<Vec<_>>().join(" "))),
                    _ => Err(format!("unknown command {line:?}")),
                }
            });
            std::thread::sleep(Duration::from_millis(2));
        }
        let (ok, bad) = client.join().unwrap();
        assert_eq!(ok.unwrap(), serde_json::json!("hello"));
        assert_eq!(bad.unwrap_err(), "unknown command \"fail now\"");
        drop(server);
        assert!(!path.exists());
        // Nobody listening: a clear error.
        assert!(request(&path, "echo").unwrap_err().contains("cannot connect"));
    }
}
