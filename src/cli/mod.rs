//! The `vpcemu` command line.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::dpdk::Hugepages;
use crate::runtime::passthrough;

pub mod flags;
pub use flags::RunFlags;
use flags::{parse_ms, parse_secs};

/// vpcemu: the AWS VPC data plane (Nitro card, Blackfoot edge, mapping service) on DPDK.
#[derive(Debug, Parser)]
#[command(name = "vpcemu", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the hosts and edges of a topology file on its ports.
    Run(RunArgs),
    /// Validate a topology file: prints OK or the error, and sets the exit status.
    Check {
        /// The topology file (TOML).
        topology: PathBuf,
    },
    /// Send a live change (or `list`, `stats`) to a running `vpcemu run --control PATH`,
    /// or apply a change (or `list`) to the world in etcd (`--etcd URL`).
    Ctl {
        /// The control socket of the run.
        #[arg(long, value_name = "PATH", required_unless_present = "etcd", conflicts_with = "etcd")]
        control: Option<PathBuf>,
        /// The etcd holding the world (`http://127.0.0.1:2379`): the change is one guarded
        /// transaction.
        #[arg(long, value_name = "URL")]
        etcd: Option<String>,
        /// The command: list | stats | register NAME subnet=S host=H ip=IP [mac=M]
        /// [secondary=IP,IP] [source_dest_check=false] | deregister NAME | move NAME HOST |
        /// peer add|remove VPC VPC | eip associate IP NAME | eip disassociate IP
        #[arg(required = true, num_args = 1.., trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// The world in etcd: `load FILE --etcd URL [--replace]`, `dump --etcd URL`.
    #[command(subcommand)]
    Mapping(MappingCommand),
    /// The story of the AWS VPC data plane on a built-in world, narrated and checked.
    Demo,
    /// Forward packets from one port to another, unchanged, on one worker lcore.
    Passthrough(PassthroughArgs),
    /// Run a topology with every instance as a Linux host in a network namespace of its
    /// own (net_tap), and an internet host behind every edge with an internet gateway.
    Lab(crate::lab::LabArgs),
}

#[derive(Debug, Subcommand)]
pub enum MappingCommand {
    /// Validate the world sections of FILE as `vpcemu check` does (its [dataplane] and
    /// [[port]]s are ignored; a file without [dataplane] is fine) and write the world to
    /// etcd; prints the revision written.
    Load {
        /// The topology file (TOML).
        file: PathBuf,
        /// The etcd to write to (`http://127.0.0.1:2379`).
        #[arg(long, value_name = "URL")]
        etcd: String,
        /// Overwrite a world already in etcd.
        #[arg(long)]
        replace: bool,
    },
    /// Print the world in etcd as a topology file (`vpcemu check` accepts it, `mapping
    /// load` loads it back).
    Dump {
        /// The etcd to read from.
        #[arg(long, value_name = "URL")]
        etcd: String,
    },
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The topology file (TOML).
    pub topology: PathBuf,
    #[command(flatten)]
    pub flags: RunFlags,
}


#[derive(Debug, Args)]
pub struct PassthroughArgs {
    /// A device: a DPDK vdev string (e.g. "net_pcap0,rx_pcap=in.pcap") or a PCI address.
    /// Give it twice: input first, then output.
    #[arg(long = "vdev", value_name = "DEV", num_args = 1, required = true)]
    pub vdevs: Vec<String>,
    /// Exit once the inputs are exhausted and nothing has moved for MS milliseconds (at
    /// least 2 s before the first packet has moved).
    #[arg(long, value_name = "MS", value_parser = parse_ms)]
    pub until_idle: Option<Duration>,
    /// Exit after S seconds.
    #[arg(long, value_name = "S", value_parser = parse_secs)]
    pub duration: Option<Duration>,
    /// EAL lcore list; the first is the control core, the next one runs the forwarding.
    #[arg(long, default_value = "0-1")]
    pub lcores: String,
    /// DPDK memory in MiB.
    #[arg(long, default_value_t = 512)]
    pub memory_mb: u32,
    /// Hugepages: auto, on or off.
    #[arg(long, default_value = "auto")]
    pub hugepages: Hugepages,
    /// Packets per RX/TX burst (1..=64).
    #[arg(long, default_value_t = 32)]
    pub burst: usize,
    /// Mbufs in the RX pool (2 KiB data room; longer frames arrive and leave chained).
    /// Devices that can neither fit nor chain a jumbo frame use a pool of up to 4096
    /// jumbo mbufs instead.
    #[arg(long, default_value_t = 8191)]
    pub mbufs: u32,
    /// Write the final figures as JSON to PATH.
    #[arg(long, value_name = "PATH")]
    pub stats_json: Option<PathBuf>,
    /// EAL file prefix (default: unique per process); `dpdk-telemetry.py -f PREFIX`
    /// connects to the run, whose `/vpcemu/passthrough` command shows the counters.
    #[arg(long, value_name = "PREFIX")]
    pub file_prefix: Option<String>,
    /// Busy-wait N TSC cycles per packet received before sending it, touching no memory: a
    /// stand-in for a pipeline's work, to measure what the devices' RX and TX cost at the
    /// packet rate of a pipeline that takes that long (what `vpcemu-bench --rate-matched`
    /// does).
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub work_cycles: u32,
}

/// Run the command line; errors come back as one line for stderr.
pub fn main_with(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Run(a) if a.flags.trash_limit.is_some() && a.flags.trash.is_none() => {
            Err("--trash-limit needs --trash PATH".into())
        }
        Command::Run(a) => crate::runtime::run::run(&a.flags.options(a.topology)),
        Command::Lab(a) => crate::lab::main(a),
        Command::Demo => {
            let mut stdout = std::io::stdout();
            match crate::demo::run(&mut stdout)? {
                true => Ok(()),
                false => Err("the demo misbehaved (see the failed checks above)".into()),
            }
        }
        Command::Check { topology } => {
            mapping_client::topology::Topology::load(&topology).map_err(|e| e.to_string())?;
            println!("{}: OK", topology.display());
            Ok(())
        }
        Command::Mapping(m) => mapping(m),
        Command::Ctl { control: None, etcd: Some(url), command } => ctl_etcd(&url, &command.join(" ")),
        Command::Ctl { control, etcd: _, command } => {
            let control = control.ok_or("ctl needs --control PATH or --etcd URL")?;
            let v = crate::runtime::control::request(&control, &command.join(" "))?;
            match v {
                serde_json::Value::String(s) => println!("{s}"),
                other => println!("{}", serde_json::to_string_pretty(&other).unwrap_or_default()),
            }
            Ok(())
        }
        Command::Passthrough(a) => {
            if a.vdevs.len() != 2 {
                return Err(format!("passthrough needs exactly two --vdev (input, output), got {}", a.vdevs.len()));
            }
            if !(1..=64).contains(&a.burst) {
                return Err(format!("--burst must be 1..=64, not {}", a.burst));
            }
            let opts = passthrough::Options {
                input: a.vdevs[0].clone(),
                output: a.vdevs[1].clone(),
                until_idle: a.until_idle,
                duration: a.duration,
                lcores: a.lcores,
                memory_mb: a.memory_mb,
                hugepages: a.hugepages,
                burst: a.burst,
                mbufs: a.mbufs,
                stats_json: a.stats_json,
                file_prefix: a.file_prefix,
                work_cycles: a.work_cycles,
            };
            if opts.until_idle.is_none() && opts.duration.is_none() {
                eprintln!("vpcemu: forwarding until SIGINT/SIGTERM (see --until-idle, --duration)");
            }
            let mut stdout = std::io::stdout();
            passthrough::run(&opts, &mut stdout).map(|_| ()).map_err(|e| e.to_string())
        }
    }
}

/// `vpcemu mapping load|dump`.
fn mapping(m: MappingCommand) -> Result<(), String> {
    use mapping_client::etcd::{layout, Store};
    match m {
        MappingCommand::Load { file, etcd, replace } => {
            // A file of world sections alone (as examples/story-world.toml) has no
            // [dataplane]: it is not part of the world.
            let topo = mapping_client::topology::Topology::load_world(&file, layout::DUMP_DATAPLANE).map_err(|e| e.to_string())?;
            let store = Store::connect(&etcd)?;
            let revision = store.load(&topo, replace)?;
            println!("{}: loaded into {etcd} at revision {revision}", file.display());
            Ok(())
        }
        MappingCommand::Dump { etcd } => {
            let store = Store::connect(&etcd)?;
            let (_, snap) = store.read_world(layout::DUMP_DATAPLANE)?;
            print!("{}", layout::to_toml(&snap.records, layout::DUMP_DATAPLANE)?);
            Ok(())
        }
    }
}

/// `vpcemu ctl --etcd URL COMMAND`: the control socket's parser, the embedded service's
/// checks, one guarded transaction.
fn ctl_etcd(url: &str, line: &str) -> Result<(), String> {
    use crate::runtime::ctl::{self, Request};
    let request = ctl::parse(line)?;
    let store = mapping_client::etcd::Store::connect(url)?;
    match request {
        Request::List => {
            let (topo, _) = store.read_world(mapping_client::etcd::layout::DUMP_DATAPLANE)?;
            println!("{}", serde_json::to_string_pretty(&ctl::list(&topo)).unwrap_or_default());
            Ok(())
        }
        Request::Stats => Err("stats: ask a running vpcemu (ctl --control PATH stats)".into()),
        Request::Change(cmd) => {
            let revision = store.execute(&cmd).map_err(|e| format!("{line}: {e}"))?;
            println!("{line}: done at revision {revision}");
            Ok(())
        }
    }
}
