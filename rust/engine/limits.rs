//! What a caller may ask of the engine: sizes checked before anything is allocated, so that no
//! argument a Python caller can pass makes the process abort (a failed allocation) or panic.
//!
//! Every buffer whose size comes from an argument (a kernel's output, a copy of an input row, a
//! waveform matrix) is allocated here: the size is computed with checked arithmetic, compared
//! with the machine's physical memory (an output larger than RAM could only swap or be killed),
//! and allocated fallibly; each failure is an [`EngineError::Value`] naming the argument.

use crate::error::{EngineError, Result};

/// Largest sample magnitude (after any scale) the kernels accept: far beyond any recording
/// (Intan int16 samples are below 7e3 uV), and far enough below float32's 3.4e38 that filtering,
/// referencing and interpolation into float32 stay finite. Larger finite values are refused.
pub const MAX_ABS_SAMPLE: f64 = 1e30;

/// Most samples a waveform snippet may have on either side of the extremum (2^20: 35 s at
/// 30 kHz, a thousand times any spike).
pub const MAX_SNIPPET_SAMPLES: usize = 1 << 20;

/// Bytes of physical memory, when the system says (Linux).
pub fn physical_memory() -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: sysconf only reads system configuration.
        let (pages, size) = unsafe {
            (
                libc::sysconf(libc::_SC_PHYS_PAGES),
                libc::sysconf(libc::_SC_PAGESIZE),
            )
        };
        if pages > 0 && size > 0 {
            return Some((pages as u64).saturating_mul(size as u64));
        }
    }
    None
}

/// The product of `dims` (an element count), or an error naming `what` on overflow.
pub fn count(dims: &[usize], what: &str) -> Result<usize> {
    dims.iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| too_big(what, None))
}

fn too_big(what: &str, bytes: Option<u128>) -> EngineError {
    let size = match bytes {
        Some(b) => format!(" ({:.3} GB)", b as f64 / 1e9),
        None => String::new(),
    };
    EngineError::Value(format!(
        "{what} is too large: its result{size} would not fit in this machine's memory"
    ))
}

/// Check that `n` values of `T` can be allocated (no overflow, at most physical memory).
pub fn check<T>(n: usize, what: &str) -> Result<std::alloc::Layout> {
    let layout = std::alloc::Layout::array::<T>(n).map_err(|_| too_big(what, None))?;
    if let Some(mem) = physical_memory() {
        if layout.size() as u64 > mem {
            return Err(too_big(what, Some(layout.size() as u128)));
        }
    }
    Ok(layout)
}

/// An empty vector with room for `n` values (for a result sized by the argument `what`).
pub fn with_capacity<T>(n: usize, what: &str) -> Result<Vec<T>> {
    let layout = check::<T>(n, what)?;
    let mut v = Vec::new();
    v.try_reserve_exact(n)
        .map_err(|_| too_big(what, Some(layout.size() as u128)))?;
    Ok(v)
}

/// Sample types whose all-zero bit pattern is the value 0.
pub trait Zeroed: Copy {}
impl Zeroed for f32 {}
impl Zeroed for f64 {}
impl Zeroed for i16 {}
impl Zeroed for i64 {}

/// `vec![0; n]` (zeroed memory from the allocator, as `vec!` gets it: no pages touched) that
/// fails with an error naming `what` instead of aborting.
pub fn zeroed<T: Zeroed>(n: usize, what: &str) -> Result<Vec<T>> {
    let layout = check::<T>(n, what)?;
    if layout.size() == 0 {
        return Ok(vec![]);
    }
    // SAFETY: the layout has a non-zero size; the memory is zeroed, and zero is a valid `T`.
    let p = unsafe { std::alloc::alloc_zeroed(layout) } as *mut T;
    if p.is_null() {
        return Err(too_big(what, Some(layout.size() as u128)));
    }
    // SAFETY: `p` comes from the global allocator with the layout of `n` values of `T`, all
    // initialised (zero), so the vector owns exactly that allocation.
    Ok(unsafe { Vec::from_raw_parts(p, n, n) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_checked() {
        assert_eq!(zeroed::<f32>(5, "x").unwrap(), vec![0.0; 5]);
        assert!(zeroed::<f32>(0, "x").unwrap().is_empty());
        let e = zeroed::<f32>(usize::MAX / 2, "x").unwrap_err().to_string();
        assert!(e.starts_with("x is too large"), "{e}");
        assert!(with_capacity::<f64>(1 << 60, "times").is_err());
        assert!(count(&[1 << 40, 1 << 40], "x").is_err());
        assert_eq!(count(&[3, 0], "x").unwrap(), 0);
    }
}
