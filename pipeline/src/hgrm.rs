//! A histogram in HdrHistogram's percentile-distribution format (`.hgrm`): what
//! `Histogram.outputPercentileDistribution` of the Java library writes and HdrHistogram's
//! plotters read.
//!
//! ```text
//!        Value     Percentile TotalCount 1/(1-Percentile)
//!
//!       20.000 0.000000000000         59           1.00
//!       ...
//!       80.000 1.000000000000        100
//! #[Mean    =       20.600, StdDeviation   =        5.970]
//! #[Max     =       80.000, Total count    =          100]
//! #[Buckets =           22, SubBuckets     =          256]
//! ```
//!
//! Rows step through the percentiles 5 ticks per half distance to 100% (the Java
//! default), each with the highest value equivalent to it, the percentile as a fraction,
//! the count of values up to it and `1/(1-percentile)`; the last row (100%) has no fourth
//! column. Values are divided by `scale` (e.g. TSC cycles per nanosecond), written with 3
//! decimals. An empty histogram is the header and a footer of zeros.

use core::fmt::Write as _;

use hdrhistogram::Histogram;

/// Percentile ticks per half distance, as the Java library's default.
pub const TICKS_PER_HALF_DISTANCE: u32 = 5;

/// The `.hgrm` text of `h`, its values divided by `scale`.
pub fn percentile_distribution(h: &Histogram<u64>, scale: f64) -> String {
    let scale = if scale > 0.0 { scale } else { 1.0 };
    let v = |x: f64| x / scale;
    let mut o = String::new();
    let _ = write!(o, "{:>12} {:>14} {:>10} {:>14}\n\n", "Value", "Percentile", "TotalCount", "1/(1-Percentile)");
    let mut total = 0u64;
    if !h.is_empty() {
        for it in h.iter_quantiles(TICKS_PER_HALF_DISTANCE) {
            total += it.count_since_last_iteration();
            let q = it.quantile_iterated_to();
            let value = v(h.highest_equivalent(it.value_iterated_to()) as f64);
            if q < 1.0 {
                let _ = writeln!(o, "{value:12.3} {q:2.12} {total:10} {:14.2}", 1.0 / (1.0 - q));
            } else {
                let _ = writeln!(o, "{value:12.3} {q:2.12} {total:10}");
            }
        }
    }
    let (mean, stdev, max) = if h.is_empty() { (0.0, 0.0, 0.0) } else { (v(h.mean()), v(h.stdev()), v(h.max() as f64)) };
    let sub_buckets = 1u64 << (2.0 * 10f64.powi(i32::from(h.sigfig()))).log2().ceil() as u32;
    let _ = writeln!(o, "#[Mean    = {mean:12.3}, StdDeviation   = {stdev:12.3}]");
    let _ = writeln!(o, "#[Max     = {max:12.3}, Total count    = {:12}]", h.len());
    let _ = writeln!(o, "#[Buckets = {:12}, SubBuckets     = {sub_buckets:12}]", h.buckets());
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rows of an `.hgrm` text: (value, percentile, total count, 1/(1-p) if given).
    fn rows(text: &str) -> Vec<(f64, f64, u64, Option<f64>)> {
        text.lines()
            .skip(2)
            .filter(|l| !l.starts_with('#'))
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f[0].parse().unwrap(), f[1].parse().unwrap(), f[2].parse().unwrap(), f.get(3).map(|x| x.parse().unwrap()))
            })
            .collect()
    }

    #[test]
    fn a_known_histogram_in_the_java_layout() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 1 << 32, 2).unwrap();
        // 2 cycles per ns: 900 at 50 ns, 90 at 500 ns, 10 at 5 µs.
        h.record_n(100, 900).unwrap();
        h.record_n(1000, 90).unwrap();
        h.record_n(10_000, 10).unwrap();
        let t = percentile_distribution(&h, 2.0);
        let mut lines = t.lines();
        assert_eq!(lines.next(), Some("       Value     Percentile TotalCount 1/(1-Percentile)"));
        assert_eq!(lines.next(), Some(""));
        let r = rows(&t);
        assert_eq!(r[0], (50.0, 0.0, 900, Some(1.0)));
        assert!(r.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1 && w[0].2 <= w[1].2), "{t}");
        let last = r.last().unwrap();
        assert_eq!((last.1, last.2, last.3), (1.0, 1000, None));
        assert!((last.0 - 5000.0).abs() <= 50.0, "{t}");
        // Every row: at least that fraction of the values is at or below its value, and
        // the last column is 1/(1-percentile).
        for (value, p, total, inv) in &r {
            assert!(*total as f64 / 1000.0 >= *p, "{value} {p} {total}");
            if let Some(inv) = inv {
                assert!((inv - 1.0 / (1.0 - p)).abs() < 0.01, "{inv} {p}");
            }
        }
        assert!(r.iter().any(|x| x.1 == 0.9 && x.3 == Some(10.0)), "{t}");
        assert!(r.iter().filter(|x| x.0 == 50.0).all(|x| x.2 == 900), "{t}");
        let footer: Vec<&str> = t.lines().filter(|l| l.starts_with("#[")).collect();
        assert_eq!(footer.len(), 3);
        assert!(footer[0].starts_with("#[Mean    =") && footer[0].contains(", StdDeviation   ="), "{t}");
        assert!(footer[1].ends_with(&format!("Total count    = {:12}]", 1000)), "{t}");
        assert!(footer[2].ends_with(&format!("SubBuckets     = {:12}]", 256)), "{t}");
        let mean: f64 = footer[0].split('=').nth(1).unwrap().split(',').next().unwrap().trim().parse().unwrap();
        assert!((mean - (900.0 * 50.0 + 90.0 * 500.0 + 10.0 * 5000.0) / 1000.0).abs() < 2.0, "{mean}");
    }

    #[test]
    fn an_empty_histogram_is_a_header_and_zeros() {
        let h = Histogram::<u64>::new_with_bounds(1, 1000, 2).unwrap();
        let t = percentile_distribution(&h, 0.0);
        assert!(rows(&t).is_empty());
        assert!(t.contains("#[Max     =        0.000, Total count    =            0]"), "{t}");
    }
}
