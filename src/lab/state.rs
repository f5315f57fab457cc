//! What a lab made, on disk, so that the lab removes exactly that at exit and
//! `vpcemu lab --cleanup` removes what a killed lab left behind.
//!
//! Each lab writes `/run/vpcemu-lab/PID.json`: its pid and start time (so that a pid reused
//! by another process is not taken for the lab), every namespace it made with the
//! identity of its nsfs file (device and inode, which a namespace of the same name made
//! later by someone else does not have), and its taps, which also carry the interface
//! alias `vpcemu-lab:PID`. Nothing whose identity or alias does not match is touched.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::netns;

/// Where labs record what they made.
pub const STATE_DIR: &str = "/run/vpcemu-lab";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MadeNs {
    pub name: String,
    pub dev: u64,
    pub ino: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub pid: u32,
    /// The process's start time (`/proc/PID/stat`, clock ticks since boot).
    pub start_time: u64,
    pub namespaces: Vec<MadeNs>,
    pub taps: Vec<String>,
}

/// The start time of process `pid`, if it runs.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command name in parentheses: state is field 3, starttime field 22.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// The alias that marks a lab's taps.
pub fn tap_alias(pid: u32) -> String {
    format!("vpcemu-lab:{pid}")
}

impl State {
    fn alive(&self) -> bool {
        start_time(self.pid) == Some(self.start_time)
    }

    /// Remove what this state lists and still is what the lab made: the namespaces
    /// removed, and one line for every namespace or interface of that name that is not.
    fn remove(&self) -> (Vec<String>, Vec<String>) {
        let (mut removed, mut refused) = (Vec::new(), Vec::new());
        for t in &self.taps {
            if !netns::iface_exists(t) {
                continue;
            }
            if netns::iface_alias(t).as_deref() == Some(tap_alias(self.pid).as_str()) {
                if let Err(e) = netns::ip(&["link", "del", t]) {
                    refused.push(e);
                }
            } else {
                refused.push(format!("interface {t} was not made by lab {}: left alone", self.pid));
            }
        }
        for ns in &self.namespaces {
            match netns::ns_id(&ns.name) {
                None => {}
                Some(id) if id == (ns.dev, ns.ino) => match netns::del_ns(&ns.name) {
                    Ok(()) => removed.push(ns.name.clone()),
                    Err(e) => refused.push(e),
                },
                Some(_) => refused.push(format!("namespace {} was not made by lab {}: left alone", ns.name, self.pid)),
            }
        }
        (removed, refused)
    }
}

/// The running lab's record; dropping it removes what it lists (see [`Lab::teardown`]).
#[derive(Debug)]
pub struct Lab {
    path: PathBuf,
    state: State,
    done: bool,
}

impl Lab {
    /// Record a new lab (this process) that will make `taps`.
    pub fn create(taps: Vec<String>) -> Result<Lab, String> {
        std::fs::create_dir_all(STATE_DIR).map_err(|e| format!("creating {STATE_DIR}: {e}"))?;
        let pid = std::process::id();
        let start_time = start_time(pid).ok_or("cannot read /proc/self/stat")?;
        let lab = Lab {
            path: Path::new(STATE_DIR).join(format!("{pid}.json")),
            state: State { pid, start_time, namespaces: Vec::new(), taps },
            done: false,
        };
        lab.save()?;
        Ok(lab)
    }

    fn save(&self) -> Result<(), String> {
        let text = serde_json::to_string_pretty(&self.state).map_err(|e| e.to_string())?;
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, text + "\n")
            .and_then(|_| std::fs::rename(&tmp, &self.path))
            .map_err(|e| format!("writing {}: {e}", self.path.display()))
    }

    /// Make namespace `name` and record it.
    pub fn add_ns(&mut self, name: &str) -> Result<(), String> {
        let (dev, ino) = netns::add_ns(name)?;
        self.state.namespaces.push(MadeNs { name: name.to_string(), dev, ino });
        self.save()
    }

    /// Mark tap `iface` as this lab's (its alias).
    pub fn mark_tap(&self, iface: &str) -> Result<(), String> {
        netns::ip(&["link", "set", "dev", iface, "alias", &tap_alias(self.state.pid)])
    }

    /// Remove every namespace and tap the lab made, then its record. Returns what could not
    /// be removed.
    pub fn teardown(&mut self) -> Vec<String> {
        if self.done {
            return Vec::new();
        }
        self.done = true;
        let (_, problems) = self.state.remove();
        let _ = std::fs::remove_file(&self.path);
        problems
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for p in self.teardown() {
            eprintln!("vpcemu: lab: {p}");
        }
    }
}

/// The records of labs in [`STATE_DIR`] (unreadable ones are skipped, with their path).
fn records() -> Vec<(PathBuf, Result<State, String>)> {
    let Ok(dir) = std::fs::read_dir(STATE_DIR) else { return Vec::new() };
    let mut out: Vec<_> = dir
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let s = std::fs::read_to_string(&p)
                .map_err(|e| e.to_string())
                .and_then(|t| serde_json::from_str::<State>(&t).map_err(|e| e.to_string()));
            (p, s)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Before a lab starts: every namespace and tap it would make must not exist yet.
pub fn preflight(namespaces: &[&str], taps: &[&str]) -> Result<(), String> {
    let labs: Vec<State> = records().into_iter().filter_map(|(_, s)| s.ok()).collect();
    for ns in namespaces {
        if !netns::ns_exists(ns) {
            continue;
        }
        let id = netns::ns_id(ns);
        if let Some(s) = labs.iter().find(|s| s.namespaces.iter().any(|m| &m.name == ns && Some((m.dev, m.ino)) == id)) {
            return Err(if s.alive() {
                format!("namespace {ns} belongs to lab {}, which is running: nothing touched (see --ns-prefix)", s.pid)
            } else {
                format!("namespace {ns} was left by lab {} which is no longer running: `vpcemu lab --cleanup` removes it", s.pid)
            });
        }
        return Err(format!(
            "namespace {ns} already exists and vpcemu lab did not make it: nothing touched (remove it, or choose --instances or --ns-prefix)"
        ));
    }
    for t in taps {
        if netns::iface_exists(t) {
            return Err(format!("interface {t} already exists: nothing touched"));
        }
    }
    Ok(())
}

/// `vpcemu lab --cleanup`: remove what labs that no longer run left behind. Returns the
/// lines to print; an error if anything was refused.
pub fn cleanup() -> Result<Vec<String>, String> {
    let mut said = Vec::new();
    let mut refused = Vec::new();
    for (path, state) in records() {
        let state = match state {
            Ok(s) => s,
            Err(e) => {
                refused.push(format!("{}: not a lab record ({e}): left alone", path.display()));
                continue;
            }
        };
        if state.alive() {
            said.push(format!("lab {} is running: left alone (stop it with kill {})", state.pid, state.pid));
            continue;
        }
        let (removed, problems) = state.remove();
        let _ = std::fs::remove_file(&path);
        said.push(format!("lab {} (no longer running): removed namespaces [{}]", state.pid, removed.join(", ")));
        refused.extend(problems);
    }
    if said.is_empty() && refused.is_empty() {
        said.push(format!("nothing to clean up ({STATE_DIR} lists no lab)"));
    }
    if refused.is_empty() {
        Ok(said)
    } else {
        for l in &said {
            println!("{l}");
        }
        Err(refused.join("; "))
    }
}
