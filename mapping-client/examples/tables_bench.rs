//! Runs the `tables-lookup` and `tables-update` measurements and prints one JSON object a
//! line, the same rows `vpcemu-bench` reports:
//!
//! ```text
//! cargo run --release -p mapping-client --features bench --example tables_bench [SIZES...]
//! ```
//!
//! SIZES default to 1000 100000 1000000 10000000.

use mapping_client::bench_support::{tables_lookup, tables_update};

fn main() {
    let mut sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.replace('_', "").parse().ok())
        .collect();
    if sizes.is_empty() {
        sizes = vec![1_000, 100_000, 1_000_000, 10_000_000];
    }
    for &n in &sizes {
        for r in tables_lookup(&[n]) {
            let rss = r
                .rss_bytes_per_mapping
                .map_or("null".to_string(), |v| format!("{v:.1}"));
            let cpu = r
                .mlookups_per_cpu_s
                .map_or("null".to_string(), |v| format!("{v:.2}"));
            println!(
                "{{\"name\":\"tables-lookup\",\"mappings\":{},\"mlookups_per_s\":{:.2},\"mlookups_per_cpu_s\":{cpu},\"bytes_per_mapping\":{:.1},\"rss_bytes_per_mapping\":{rss},\"hit_ratio\":{:.3}}}",
                r.mappings, r.mlookups_per_s, r.bytes_per_mapping, r.hit_ratio
            );
        }
        for r in tables_update(&[n]) {
            let cpu = r
                .updates_per_cpu_s
                .map_or("null".to_string(), |v| format!("{v:.0}"));
            println!(
                "{{\"name\":\"tables-update\",\"mappings\":{},\"updates_per_s\":{:.0},\"updates_per_cpu_s\":{cpu},\"visible_p50_us\":{:.1},\"visible_p99_us\":{:.1},\"visible_max_us\":{:.1},\"failed_lookups\":{},\"publications\":{},\"reader_lookups\":{}}}",
                r.mappings, r.updates_per_s, r.visible_p50_us, r.visible_p99_us, r.visible_max_us, r.failed_lookups, r.publications, r.reader_lookups
            );
        }
    }
}
