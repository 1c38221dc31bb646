//! Per-sample signal processing: filtering, referencing, thresholds, detection, waveforms.
pub mod cutoff;
pub mod detect;
pub mod filter;
pub mod reference;
pub mod sos32;
pub mod source;
pub mod stream;
pub mod threshold;
pub mod waveforms;

use std::sync::{Arc, Mutex};

/// Worker threads for a call: `requested` if > 0, else `BLECHRS_THREADS` if set and > 0, else all
/// cores. Read on every call so one process can compare thread counts (the benchmark does).
pub fn thread_count(requested: usize) -> usize {
    if requested > 0 {
        return requested;
    }
    if let Some(n) = std::env::var("BLECHRS_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
    {
        if n > 0 {
            return n;
        }
    }
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

static POOLS: Mutex<Vec<(usize, Arc<rayon::ThreadPool>)>> = Mutex::new(Vec::new());

/// Run `f` inside a rayon pool of `thread_count(requested)` threads (pools are cached per size).
pub fn with_threads<R: Send>(requested: usize, f: impl FnOnce() -> R + Send) -> R {
    let n = thread_count(requested);
    let pool = {
        let mut pools = POOLS.lock().unwrap_or_else(|e| e.into_inner());
        match pools.iter().find(|(k, _)| *k == n) {
            Some((_, p)) => p.clone(),
            None => match rayon::ThreadPoolBuilder::new().num_threads(n).build() {
                Ok(p) => {
                    let p = Arc::new(p);
                    pools.push((n, p.clone()));
                    p
                }
                // Could not start threads: run on the caller's thread.
                Err(_) => return f(),
            },
        }
    };
    pool.install(f)
}
