//! `tables-lookup` and `tables-update`: the mapping tables a card reads on its packet path,
//! measured on synthetic worlds of 1 k .. 10 M mappings. The measuring code lives in
//! `mapping_client::bench_support` (feature `bench`), which documents exactly what is
//! measured; this module only shapes the JSON rows.

use mapping_client::bench_support;
use serde_json::{json, Value};

/// The sizes measured when the caller names none.
pub const DEFAULT_SIZES: [usize; 4] = [1_000, 100_000, 1_000_000, 10_000_000];

fn sizes_or_default(sizes: &[usize]) -> Vec<usize> {
    if sizes.is_empty() {
        DEFAULT_SIZES.to_vec()
    } else {
        sizes.to_vec()
    }
}

/// One row per size: `{"name":"tables-lookup","mappings":N,"mlookups_per_s":..,
/// "bytes_per_mapping":..}` plus `mlookups_per_cpu_s`, `rss_bytes_per_mapping` and
/// `hit_ratio`.
pub fn tables_lookup(sizes: &[usize]) -> Vec<Value> {
    sizes_or_default(sizes)
        .into_iter()
        .flat_map(|n| bench_support::tables_lookup(&[n]))
        .map(|r| {
            json!({
                "name": "tables-lookup",
                "mappings": r.mappings,
                "mlookups_per_s": r.mlookups_per_s,
                "mlookups_per_cpu_s": r.mlookups_per_cpu_s,
                "bytes_per_mapping": r.bytes_per_mapping,
                "rss_bytes_per_mapping": r.rss_bytes_per_mapping,
                "hit_ratio": r.hit_ratio,
            })
        })
        .collect()
}

/// One row per size: `{"name":"tables-update","mappings":N,"updates_per_s":..,
/// "visible_p99_us":..,"failed_lookups":0}` plus `updates_per_cpu_s`, p50, max,
/// publications and the reader's lookup count.
pub fn tables_update(sizes: &[usize]) -> Vec<Value> {
    sizes_or_default(sizes)
        .into_iter()
        .flat_map(|n| bench_support::tables_update(&[n]))
        .map(|r| {
            json!({
                "name": "tables-update",
                "mappings": r.mappings,
                "updates_per_s": r.updates_per_s,
                "updates_per_cpu_s": r.updates_per_cpu_s,
                "visible_p99_us": r.visible_p99_us,
                "visible_p50_us": r.visible_p50_us,
                "visible_max_us": r.visible_max_us,
                "failed_lookups": r.failed_lookups,
                "publications": r.publications,
                "reader_lookups": r.reader_lookups,
            })
        })
        .collect()
}
