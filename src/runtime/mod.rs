//! The runtime: what runs on the lcores. The main lcore is the control core (stats,
//! signals, stop conditions); every other lcore is a pinned, polling worker.
//!
//! - [`plan`]: which cards run, what each port is, which worker polls it (no DPDK);
//! - [`engine`]: the plan realised (EAL, pools, devices, mapping service, workers);
//! - [`worker`]: the worker loop; [`fabric`]: the in-process fabric's switch, generic
//!   over the packet buffer and the TX sink; [`stages`]: the cards' stages per port;
//! - [`card`], [`cipher`], [`devices`], [`stop`]: a card as the workers see it, the edges'
//!   AES-GCM, device helpers, the stop conditions and signals;
//! - [`run`], [`passthrough`], [`control`], [`ctl`], [`telemetry`], [`metrics`], [`trash`],
//!   [`hgrm`]:
//!   the commands, the control core's sockets and files;
//! - [`etcd`]: the mapping source of `run --etcd` (the cards' watchers over etcd).

pub mod card;
pub mod cipher;
pub mod control;
pub mod ctl;
pub mod devices;
pub mod engine;
pub mod etcd;
pub mod fabric;
pub mod hgrm;
pub mod metrics;
pub mod passthrough;
pub mod plan;
pub mod run;
pub mod softport;
pub mod stages;
pub mod stop;
pub mod telemetry;
pub mod trash;
pub mod worker;
pub mod worker_stats;
