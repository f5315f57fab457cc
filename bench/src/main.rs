//! `vpcemu-bench`: vpcemu's line-rate scenarios, each measured beside a baseline from
//! DPDK's own tools in the same run. Prints a table; `--json PATH` writes the report of
//! ARCHITECTURE section 10.

#![forbid(unsafe_code)]

mod blackfoot;
mod convergence;
mod dpdk_tools;
mod nitro;
mod ovs;
mod passthrough;
mod plot;
mod profile;
mod rate_matched;
mod report;
mod scale;
mod tables;
mod traffic;

use std::path::PathBuf;

use clap::Parser;

use report::{Report, Row};

/// The scenarios this build knows, in the order they run.
fn scenarios() -> Vec<&'static str> {
    let own = ["passthrough", "nitro-egress", "nitro-ingress", "tables-lookup", "tables-update"];
    own.into_iter()
        .chain(blackfoot::NAMES.iter().copied())
        .chain(scale::NAMES.iter().copied())
        .chain(["mapping-convergence", ovs::NAME])
        .collect()
}

/// vpcemu benchmarks: Mpps and cycles per packet beside DPDK's own tools.
#[derive(Debug, Parser)]
#[command(name = "vpcemu-bench", version, about)]
struct Args {
    /// Scenarios to run (default: all). Known: passthrough, nitro-egress, nitro-ingress, tables-lookup,
    /// tables-update, blackfoot-nat, blackfoot-vlan, blackfoot-endpoint, blackfoot-esp-64,
    /// blackfoot-esp-512, blackfoot-esp-1400, blackfoot-esp-imix, scale (or one of its parts:
    /// scale-nitro, scale-blackfoot, scale-fabric), mapping-convergence and ovs-geneve-egress (only
    /// when named; the latter needs Open vSwitch with DPDK and root).
    scenarios: Vec<String>,
    /// Write the JSON report to PATH ("-" for stdout).
    #[arg(long, value_name = "PATH")]
    json: Option<String>,
    /// Seconds each tool runs per measurement.
    #[arg(long, default_value_t = 4.0)]
    seconds: f64,
    /// Measurements per tool (alternating); the median is reported.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// The vpcemu binary (default: next to this one).
    #[arg(long)]
    vpcemu: Option<PathBuf>,
    /// Table sizes (mappings) for tables-lookup and tables-update, comma-separated
    /// (default 1000,100000,1000000,10000000).
    #[arg(long, value_delimiter = ',')]
    sizes: Vec<usize>,
    /// Mappings in the nitro scenarios' world.
    #[arg(long, default_value_t = 1_000_000)]
    mappings: u32,
    /// Instances, each with an Elastic IP, in the blackfoot scenarios' world; each sends
    /// one flow through the edge (at most 65531).
    #[arg(long, default_value_t = 16_384)]
    edge_instances: u32,
    /// Draw SVG charts of the report into DIR: Mpps (or Gbit/s) beside the baseline's per
    /// scenario, and the stages' latency percentile curves.
    #[arg(long, value_name = "DIR")]
    plot: Option<PathBuf>,
    /// With --plot: draw the report saved at PATH (by --json) instead of running scenarios.
    #[arg(long, value_name = "PATH")]
    from_json: Option<PathBuf>,
    /// mapping-convergence: simulated hosts.
    #[arg(long, default_value_t = 1000)]
    hosts: usize,
    /// mapping-convergence: instances (in VPCs of 100).
    #[arg(long, default_value_t = 100_000)]
    instances: usize,
    /// mapping-convergence: changes to apply.
    #[arg(long, default_value_t = 10_000)]
    changes: usize,
    /// mapping-convergence: changes per second.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// mapping-convergence: the simulated hosts reach etcd through an `etcd grpc-proxy`
    /// (it merges identical watches); loads and changes still go to etcd.
    #[arg(long)]
    proxy: bool,
    /// mapping-convergence: hosts started per second (they boot into a running fleet;
    /// each host's first sync is timed from its own start); 0: all at once.
    #[arg(long, default_value_t = 0.0)]
    start_rate: f64,
    /// mapping-convergence: watcher threads the simulated hosts are spread over.
    #[arg(long, default_value_t = 1)]
    watch_threads: usize,
    /// Scratch directory for generated traffic.
    #[arg(long, default_value = "target/bench-work")]
    work: PathBuf,
    /// nitro-* and blackfoot-* rows: record the forwarding thread of vpcemu's default runs
    /// and of testpmd's with `perf record -e cpu-clock` and add the cycles per packet spent
    /// in each shared object (the drivers, vpcemu's own code, ...) to the row. Needs perf.
    #[arg(long)]
    profile: bool,
    /// nitro-* and blackfoot-* rows but ESP: measure the baseline again at the vpcemu
    /// default run's own packet rate (`vpcemu passthrough --work-cycles W` on the same
    /// vdevs, W searched so it takes as many CPU cycles a packet) and add the drivers' cost
    /// there and the own cycles against it (`rate_matched_*`; one to four passthrough runs a row).
    #[arg(long)]
    rate_matched: bool,
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run(&args) {
        eprintln!("vpcemu-bench: error: {e}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<(), String> {
    if args.from_json.is_some() && args.plot.is_none() {
        return Err("--from-json needs --plot DIR".into());
    }
    if let (Some(dir), Some(saved)) = (&args.plot, &args.from_json) {
        let text = std::fs::read_to_string(saved).map_err(|e| format!("--from-json {}: {e}", saved.display()))?;
        let report = serde_json::from_str(&text).map_err(|e| format!("--from-json {}: {e}", saved.display()))?;
        return draw(&report, dir);
    }
    // By default every scenario once: `scale` without its parts run again on their own.
    let names: Vec<String> = if args.scenarios.is_empty() {
        // mapping-convergence (etcd, minutes at its default sizes) and ovs-geneve-egress
        // (Open vSwitch, not part of what vpcemu's setup requires) run when named.
        scenarios()
            .into_iter()
            .filter(|s| !s.starts_with("scale-") && *s != "mapping-convergence" && *s != ovs::NAME)
            .map(|s| s.to_string())
            .collect()
    } else {
        args.scenarios.clone()
    };
    for n in &names {
        if !scenarios().contains(&n.as_str()) {
            return Err(format!("unknown scenario {n:?}; known: {}", scenarios().join(", ")));
        }
    }
    let vpcemu = match &args.vpcemu {
        Some(p) => p.clone(),
        None => std::env::current_exe()
            .map_err(|e| e.to_string())?
            .with_file_name("vpcemu"),
    };
    if !vpcemu.exists() {
        return Err(format!("{} not found: build it (cargo build --release) or pass --vpcemu", vpcemu.display()));
    }
    std::fs::create_dir_all(&args.work).map_err(|e| format!("{}: {e}", args.work.display()))?;
    if args.profile {
        profile::enable()?;
    }
    if args.rate_matched {
        rate_matched::enable();
    }
    let mut report = Report { scenarios: Vec::new() };
    let setup = || report::Setup { vpcemu: &vpcemu, work: &args.work, seconds: args.seconds, repeat: args.repeat };
    for n in &names {
        eprintln!("vpcemu-bench: running {n} ...");
        match n.as_str() {
            "passthrough" => report.scenarios.push(passthrough::run(&setup())?),
            "nitro-egress" | "nitro-ingress" => report.scenarios.extend(nitro::run(
                &nitro::Setup { run: setup(), mappings: args.mappings },
                n == "nitro-ingress",
            )?),
            n if blackfoot::NAMES.contains(&n) => report
                .scenarios
                .extend(blackfoot::run(&blackfoot::Setup { run: setup(), instances: args.edge_instances }, n)?),
            n if scale::NAMES.contains(&n) => report.scenarios.extend(scale::run(
                &setup(),
                n,
            )?),
            ovs::NAME => report.scenarios.extend(ovs::run(&nitro::Setup { run: setup(), mappings: args.mappings })?),
            "mapping-convergence" => {
                let setup = convergence::Setup::new(args.hosts, args.instances, args.changes, args.rate, args.proxy, args.start_rate, args.watch_threads);
                report.scenarios.push(Row::from_value(convergence::run(&setup)?));
            }
            "tables-lookup" => report.scenarios.extend(tables::tables_lookup(&args.sizes).into_iter().map(Row::from_value)),
            "tables-update" => report.scenarios.extend(tables::tables_update(&args.sizes).into_iter().map(Row::from_value)),
            _ => return Err(format!("unknown scenario {n:?}")),
        }
    }
    ovs::compare(&mut report.scenarios);
    print!("{}", report.table());
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())? + "\n";
        if path == "-" {
            print!("{text}");
        } else {
            std::fs::write(path, text).map_err(|e| format!("{path}: {e}"))?;
        }
    }
    if let Some(dir) = &args.plot {
        draw(&serde_json::to_value(&report).map_err(|e| e.to_string())?, dir)?;
    }
    Ok(())
}

/// The charts of `report` into `dir`, named on stderr.
fn draw(report: &serde_json::Value, dir: &std::path::Path) -> Result<(), String> {
    for f in plot::plot(report, dir)? {
        eprintln!("vpcemu-bench: wrote {}", f.display());
    }
    Ok(())
}
