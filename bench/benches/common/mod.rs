//! What the criterion benches share.

use std::time::Duration;

use criterion::Criterion;

/// One second of warm-up, three of measurement.
pub fn config() -> Criterion {
    Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3))
}
