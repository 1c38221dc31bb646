//! The CPU features the kernels use, detected at run time: the engine is compiled for baseline
//! x86-64 (SSE2; no `target-cpu=native`), and its AVX/AVX2/FMA loops are separate functions
//! chosen here, so one wheel runs on any x86-64 CPU and is fast on a recent one.
//!
//! `BLECHRS_SIMD` (read once per process; for tests) narrows the choice: `off` takes the
//! baseline loops every CPU runs, `nofma` allows AVX/AVX2 but not FMA. AVX2 without FMA is the
//! baseline arithmetic to the last bit; FMA rounds once instead of twice in the band-pass
//! recursions, so the filtered samples differ from the baseline's in the last bits
//! (`tests/engine/test_cpu_paths.py` compares the paths).

use std::sync::OnceLock;

#[derive(Clone, Copy)]
struct Features {
    avx: bool,
    avx2: bool,
    fma: bool,
}

fn features() -> Features {
    static F: OnceLock<Features> = OnceLock::new();
    *F.get_or_init(|| {
        let limit = std::env::var("BLECHRS_SIMD").unwrap_or_default();
        let (vector, fused) = match limit.as_str() {
            "off" => (false, false),
            "nofma" => (true, false),
            _ => (true, true),
        };
        #[cfg(target_arch = "x86_64")]
        {
            Features {
                avx: vector && std::is_x86_feature_detected!("avx"),
                avx2: vector && std::is_x86_feature_detected!("avx2"),
                fma: fused && std::is_x86_feature_detected!("fma"),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (vector, fused);
            Features {
                avx: false,
                avx2: false,
                fma: false,
            }
        }
    })
}

/// The CPU has AVX (and it is allowed).
pub fn avx() -> bool {
    features().avx
}

/// The CPU has AVX2 (and it is allowed).
pub fn avx2() -> bool {
    features().avx2
}

/// The CPU has AVX2 and FMA (and both are allowed).
pub fn avx2_fma() -> bool {
    let f = features();
    f.avx2 && f.fma
}

/// Which loops the kernels take here: "avx2+fma", "avx2", "avx" or "baseline".
pub fn simd_level() -> &'static str {
    let f = features();
    match (f.avx2, f.fma, f.avx) {
        (true, true, _) => "avx2+fma",
        (true, false, _) => "avx2",
        (false, _, true) => "avx",
        _ => "baseline",
    }
}
