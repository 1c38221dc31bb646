//! Waveform snippets around each event, with optional sub-sample alignment.
//!
//! Alignment fits a parabola through the extremum and its two neighbours; its vertex (within half
//! a sample) is the refined spike time, and the snippet is resampled on a grid through that
//! vertex with cubic (Catmull-Rom) interpolation, so every waveform has its extremum exactly at
//! index `before`. Events whose window (plus the interpolation margin) leaves the signal are
//! dropped and counted.

/// Extra samples needed on each side for alignment (cubic support around a +-0.5 sample shift).
pub const ALIGN_PAD: usize = 2;

/// Samples an event at `t` needs: `[t - before - pad, t + after + pad)`.
pub fn pad(align: bool) -> usize {
    if align {
        ALIGN_PAD
    } else {
        0
    }
}

/// Vertex offset of the parabola through (-1, a), (0, b), (1, c), clamped to [-0.5, 0.5].
#[inline]
pub fn parabolic_offset(a: f64, b: f64, c: f64) -> f64 {
    let d = a - 2.0 * b + c;
    if d == 0.0 || !d.is_finite() {
        return 0.0;
    }
    (0.5 * (a - c) / d).clamp(-0.5, 0.5)
}

#[inline(always)]
fn catmull_rom(p0: f64, p1: f64, p2: f64, p3: f64, f: f64) -> f64 {
    p1 + 0.5
        * f
        * (p2 - p0 + f * (2.0 * p0 - 5.0 * p1 + 4.0 * p2 - p3 + f * (3.0 * (p1 - p2) + p3 - p0)))
}

/// Cut the snippet of the event whose extremum is `x[t]` into `out` (`before + after` values).
/// Returns the refined time offset (0 without alignment), or None when the window leaves `x`.
pub fn cut(
    x: &[f32],
    t: i64,
    before: usize,
    after: usize,
    align: bool,
    out: &mut [f32],
) -> Option<f64> {
    // (in i128: no time or window length can overflow the test)
    let p = pad(align) as i128;
    let t128 = t as i128;
    if t128 - before as i128 - p < 0 || t128 + after as i128 + p > x.len() as i128 {
        return None;
    }
    let t = t as usize;
    if !align {
        out.copy_from_slice(&x[t - before..t + after]);
        return Some(0.0);
    }
    let delta = parabolic_offset(x[t - 1] as f64, x[t] as f64, x[t + 1] as f64);
    // Sample k of the snippet is at position t + delta + (k - before).
    let (base, f) = if delta >= 0.0 {
        (t as i64, delta)
    } else {
        (t as i64 - 1, 1.0 + delta)
    };
    for (k, o) in out.iter_mut().enumerate() {
        let i = (base + k as i64 - before as i64) as usize;
        *o = if f == 0.0 {
            x[i]
        } else {
            catmull_rom(
                x[i - 1] as f64,
                x[i] as f64,
                x[i + 1] as f64,
                x[i + 2] as f64,
                f,
            ) as f32
        };
    }
    Some(delta)
}

/// Snippets for many events: (waveforms n x (before+after), refined times, number dropped).
pub fn extract(
    x: &[f32],
    times: &[i64],
    before: usize,
    after: usize,
    align: bool,
) -> (Vec<f32>, Vec<f64>, usize) {
    let l = before + after;
    let mut wf = Vec::with_capacity(times.len() * l);
    let mut tt = Vec::with_capacity(times.len());
    let mut buf = vec![0f32; l];
    let mut dropped = 0;
    for &t in times {
        match cut(x, t, before, after, align, &mut buf) {
            Some(d) => {
                wf.extend_from_slice(&buf);
                tt.push(t as f64 + d);
            }
            None => dropped += 1,
        }
    }
    (wf, tt, dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parabola_vertex_and_alignment() {
        // samples of -(u - 10.3)^2 : vertex at 10.3
        let x: Vec<f32> = (0..30)
            .map(|u| -((u as f32 - 10.3) * (u as f32 - 10.3)))
            .collect();
        let (wf, tt, dropped) = extract(&x, &[10, 1, 28], 5, 6, true);
        assert_eq!(dropped, 2);
        assert!((tt[0] - 10.3).abs() < 1e-6);
        // extremum exactly at index `before`
        assert!(wf[5].abs() < 1e-4, "{}", wf[5]);
        let (wf, tt, _) = extract(&x, &[10], 5, 6, false);
        assert_eq!(tt[0], 10.0);
        assert_eq!(wf[5], x[10]);
    }
}
