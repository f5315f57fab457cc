//! SIGINT/SIGTERM set a flag the control core polls; the workers see the stop flag.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A flag raised by SIGINT or SIGTERM.
#[derive(Debug, Clone)]
pub struct Signals {
    flag: Arc<AtomicBool>,
}

impl Signals {
    /// Register handlers for SIGINT and SIGTERM.
    pub fn install() -> std::io::Result<Signals> {
        let flag = Arc::new(AtomicBool::new(false));
        signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&flag))?;
        signal_hook::flag::register(signal_hook::consts::SIGTERM, Arc::clone(&flag))?;
        Ok(Signals { flag })
    }

    pub fn raised(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
    }
}
