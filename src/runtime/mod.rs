//! The runtime: what runs on the lcores. The main lcore is the control core (stats,
//! signals, stop conditions); every other lcore is a pinned, polling worker.

pub mod control;
pub mod ctl;
pub mod engine;
pub mod fabric;
pub mod passthrough;
pub mod run;
pub mod shutdown;
pub mod softport;
pub mod stages;
pub mod telemetry;
pub mod worker;
pub mod worker_stats;

use crate::dpdk::{DpdkError, Eal, Port};

/// Find a port by its vdev (or PCI) name and say why it is missing: a vdev that fails to
/// probe leaves the EAL up with no port, and DPDK logged the reason.
pub fn find_port(eal: &Eal, name: &str) -> Result<Port, DpdkError> {
    Port::by_name(name).map_err(|e| match e {
        DpdkError::NoSuchPort { name, .. } => {
            let detail = eal.logged_cause(&[&name]).map(|c| format!(": {c}")).unwrap_or_else(|| {
                format!(": the device did not probe ({} port(s) available)", eal.port_count())
            });
            DpdkError::NoSuchPort { name, detail }
        }
        other => other,
    })
}
