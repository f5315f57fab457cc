//! Running closures on worker lcores. The main lcore stays the control core.

use std::ffi::{c_int, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};

use super::error::{DpdkError, Result, strerror};
use super::ffi;

type Job = Box<dyn FnOnce() -> i32 + Send + 'static>;

extern "C" fn trampoline(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the Box<Job> leaked by `launch` for exactly this call; we take it
    // back once.
    let job: Box<Job> = unsafe { Box::from_raw(arg.cast::<Job>()) };
    // A panic must not unwind into C: report it as a failed worker instead.
    catch_unwind(AssertUnwindSafe(job)).unwrap_or(-1)
}

/// A closure running on a worker lcore; `join` waits for its return value.
#[derive(Debug)]
#[must_use = "join the worker before the EAL goes away"]
pub struct WorkerHandle {
    lcore: u32,
    joined: bool,
}

/// Run `f` on worker lcore `lcore` (pinned by the EAL). Fails if the lcore is not an idle
/// worker.
pub fn launch<F>(lcore: u32, f: F) -> Result<WorkerHandle>
where
    F: FnOnce() -> i32 + Send + 'static,
{
    let job: Box<Job> = Box::new(Box::new(f));
    let arg = Box::into_raw(job).cast::<c_void>();
    // SAFETY: trampoline has the lcore_function_t signature; arg stays valid until the
    // trampoline reclaims it. On failure the worker never runs, so we reclaim it here.
    let rc = unsafe { ffi::rte_eal_remote_launch(Some(trampoline), arg, lcore) };
    if rc != 0 {
        // SAFETY: the launch failed, so the trampoline will never see arg.
        drop(unsafe { Box::from_raw(arg.cast::<Job>()) });
        return Err(DpdkError::Lcore { lcore, message: strerror(-rc) });
    }
    Ok(WorkerHandle { lcore, joined: false })
}

impl WorkerHandle {
    pub fn lcore(&self) -> u32 {
        self.lcore
    }

    /// Wait for the worker to return; its return value (-1 if it panicked).
    pub fn join(mut self) -> i32 {
        self.joined = true;
        // SAFETY: waits on an lcore we launched; blocks until it finishes.
        unsafe { ffi::rte_eal_wait_lcore(self.lcore) }
    }
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        if !self.joined {
            // Never leave a worker running behind the EAL's back.
            // SAFETY: as in join.
            unsafe {
                ffi::rte_eal_wait_lcore(self.lcore);
            }
        }
    }
}
