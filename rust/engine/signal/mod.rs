//! Per-sample signal processing: filtering, referencing, thresholds, detection, waveforms.

/// `fn $name(args) -> R` running `$imp` (an `#[inline(always)]` fn taking the same arguments)
/// compiled for AVX2 when the CPU has it, else as built: the runtime dispatch written once.
macro_rules! avx2_dispatch {
    ($(#[$m:meta])* fn $name:ident($($a:ident: $t:ty),* $(,)?) $(-> $r:ty)? => $imp:ident) => {
        $(#[$m])*
        fn $name($($a: $t),*) $(-> $r)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2")]
                unsafe fn avx2($($a: $t),*) $(-> $r)? {
                    $imp($($a),*)
                }
                if crate::cpu::avx2() {
                    // SAFETY: the CPU supports AVX2 (checked just above).
                    return unsafe { avx2($($a),*) };
                }
            }
            $imp($($a),*)
        }
    };
}

pub mod cutoff;
pub mod detect;
pub mod filter;
pub mod kernels;
pub mod matched_filter;
pub mod params;
pub mod reference;
pub mod sos32;
pub mod source;
pub mod spill;
pub mod stream;
pub mod threshold;
pub mod waveforms;

use std::sync::{Arc, Mutex};

/// The tests' pseudo-random numbers: one step of Knuth's MMIX linear congruential generator
/// (each test takes the bits it needs from the new state).
#[cfg(test)]
pub(crate) fn lcg(state: &mut u64) {
    *state = state
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
}

/// Most worker threads a call may ask for (a pool is started per size).
pub const MAX_THREADS: usize = 1024;

/// Worker threads for a call: `requested` if > 0, else `BLECHRS_THREADS` if set and > 0, else all
/// cores; at most [`MAX_THREADS`]. Read on every call so one process can compare thread counts
/// (the benchmark does).
pub fn thread_count(requested: usize) -> usize {
    if requested > 0 {
        return requested.min(MAX_THREADS);
    }
    if let Some(n) = std::env::var("BLECHRS_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
    {
        if n > 0 {
            return n.min(MAX_THREADS);
        }
    }
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

static POOLS: Mutex<Vec<(usize, Arc<rayon::ThreadPool>)>> = Mutex::new(Vec::new());

/// The rayon pool of `thread_count(requested)` threads (pools are cached per size); None when
/// its threads could not be started.
pub fn pool(requested: usize) -> Option<Arc<rayon::ThreadPool>> {
    let n = thread_count(requested);
    let mut pools = POOLS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, p)) = pools.iter().find(|(k, _)| *k == n) {
        return Some(p.clone());
    }
    let p = Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .ok()?,
    );
    pools.push((n, p.clone()));
    Some(p)
}

/// Run `f` inside [`pool`]`(requested)` (on the caller's thread when there is none).
pub fn with_threads<R: Send>(requested: usize, f: impl FnOnce() -> R + Send) -> R {
    match pool(requested) {
        Some(p) => p.install(f),
        None => f(),
    }
}
