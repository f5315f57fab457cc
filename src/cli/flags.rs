//! The options of `vpcemu run`, also taken by `vpcemu lab`: a file of their own, so that
//! the lab takes them without depending on the command line that names the lab.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

/// The options of `vpcemu run` (also taken by `vpcemu lab`).
#[derive(Debug, Args)]
pub struct RunFlags {
    /// Exit once the inputs are exhausted and nothing has moved for MS milliseconds (at
    /// least 2 s before the first packet has moved).
    #[arg(long, value_name = "MS", value_parser = parse_ms)]
    pub until_idle: Option<Duration>,
    /// Exit after S seconds.
    #[arg(long, value_name = "S", value_parser = parse_secs)]
    pub duration: Option<Duration>,
    /// Write the stats JSON (ports, drops, stages) to PATH at exit.
    #[arg(long, value_name = "PATH")]
    pub stats_json: Option<PathBuf>,
    /// Write security alerts, one JSON object a line, to PATH.
    #[arg(long, value_name = "PATH")]
    pub alerts: Option<PathBuf>,
    /// Print the stats table every S seconds.
    #[arg(long, value_name = "S", value_parser = parse_secs)]
    pub report_interval: Option<Duration>,
    /// Serve live changes (`vpcemu ctl`) on this Unix socket.
    #[arg(long, value_name = "PATH")]
    pub control: Option<PathBuf>,
    /// Do not time the stages (to measure what timing costs).
    #[arg(long)]
    pub no_stage_timing: bool,
    /// Time a worker's burst when at least US microseconds have passed since it last
    /// timed one: every burst at low rates, one in four to ten at line rate; the stage
    /// figures' `timed` says how many packets were. 0 times every burst.
    #[arg(long, value_name = "US", default_value_t = crate::runtime::engine::DEFAULT_STAGE_TIMING_SAMPLE_US)]
    pub stage_timing_sample_us: u64,
    /// EAL file prefix (default: unique); `dpdk-telemetry.py -f PREFIX` connects to it.
    #[arg(long, value_name = "PREFIX")]
    pub file_prefix: Option<String>,
    /// Run only these hosts and edges (comma-separated names); the others are taken to be
    /// in other processes, reached through the `underlay:` ports.
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    pub cards: Option<Vec<String>>,
    /// The edges' AES-128-GCM for ESP: `aesni-gcm` (the library of DPDK's ipsec_mb
    /// crypto_aesni_gcm driver, intel-ipsec-mb, called directly), `ring`,
    /// `aesni-gcm+ring:N` (aesni-gcm for less than N bytes of data, ring's from N), or
    /// `auto`: aesni-gcm if it starts (else ring, with a warning), and ring's from the
    /// length where it measured faster at start, if any (printed).
    #[arg(long, value_name = "CIPHER", default_value = "auto")]
    pub esp_cipher: crate::runtime::cipher::EspCipher,
    /// Serve the run's figures in the Prometheus text format on `http://ADDR:PORT/metrics`
    /// (ports, drops and alerts by reason, stage latency histograms by card kind, mapping
    /// versions and their age).
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics: Option<std::net::SocketAddr>,
    /// Write dropped packets to PATH as pcapng: each with the comment `reason=R stage=S
    /// card=C`, the port it came in by as its interface (`fabric` for the in-process
    /// fabric).
    #[arg(long, value_name = "PATH")]
    pub trash: Option<PathBuf>,
    /// With --trash: keep at most N packets per drop reason per second (the rest are only
    /// counted) [default: 100].
    #[arg(long, value_name = "N")]
    pub trash_limit: Option<u32>,
    /// At exit, write each stage's latency histogram (ns per packet) in HdrHistogram's
    /// percentile-distribution format to DIR/KIND-STAGE.hgrm (KIND: host or edge), for the
    /// stages that ran.
    #[arg(long, value_name = "DIR")]
    pub hgrm: Option<PathBuf>,
    /// Let `dpdk-dumpcap --file-prefix=PREFIX -i PORT` capture any port while the run goes
    /// on: the EAL runs with hugepages from a hugetlbfs mount and a shared configuration
    /// (not --in-memory or --no-huge --no-shconf), and initialises pdump. Needs free
    /// hugepages for dataplane.memory_mb and a mounted hugetlbfs.
    #[arg(long)]
    pub pdump: bool,
    /// The world is in this etcd (`http://127.0.0.1:2379`, written by `vpcemu mapping
    /// load`); TOPOLOGY then holds only [dataplane] and [[port]]s, and changes go through
    /// `vpcemu ctl --etcd URL`.
    #[arg(long, value_name = "URL")]
    pub etcd: Option<String>,
}

impl RunFlags {
    /// The run's options, on `topology`.
    pub fn options(self, topology: PathBuf) -> crate::runtime::run::RunOptions {
        crate::runtime::run::RunOptions {
            topology,
            until_idle: self.until_idle,
            duration: self.duration,
            stats_json: self.stats_json,
            alerts: self.alerts,
            report_interval: self.report_interval,
            control: self.control,
            no_stage_timing: self.no_stage_timing,
            stage_timing_sample_us: self.stage_timing_sample_us,
            file_prefix: self.file_prefix,
            cards: self.cards,
            esp_cipher: self.esp_cipher,
            metrics: self.metrics,
            trash: self.trash,
            trash_limit: self.trash_limit.unwrap_or(crate::runtime::trash::DEFAULT_LIMIT),
            hgrm: self.hgrm,
            pdump: self.pdump,
            etcd: self.etcd,
        }
    }
}

pub(super) fn parse_ms(s: &str) -> Result<Duration, String> {
    s.parse::<u64>().map(Duration::from_millis).map_err(|_| format!("{s:?} is not a number of milliseconds"))
}

pub(super) fn parse_secs(s: &str) -> Result<Duration, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(Duration::from_secs_f64(v)),
        _ => Err(format!("{s:?} is not a positive number of seconds")),
    }
}
