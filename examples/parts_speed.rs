//! CPU-time (not wall-clock: the machine is shared) cost per sample of the engine's parts.
use blechrs::signal::detect::{Detector, Polarity};
use blechrs::signal::filter::BandPass;
use blechrs::signal::threshold::{median_mad, MedianScratch};

#[repr(C)]
struct Timespec {
    s: i64,
    ns: i64,
}
extern "C" {
    fn clock_gettime(clk: i32, tp: *mut Timespec) -> i32;
}
fn cpu() -> f64 {
    let mut t = Timespec { s: 0, ns: 0 };
    unsafe { clock_gettime(3, &mut t) };
    t.s as f64 + t.ns as f64 * 1e-9
}

fn main() {
    let n = 150_000;
    let reps = 40;
    let rows: Vec<Vec<i16>> = (0..8)
        .map(|r| {
            (0..n)
                .map(|i| (((i * (r + 3) * 7919) % 1000) as i16) - 500)
                .collect()
        })
        .collect();
    let refs: Vec<&[i16]> = rows.iter().map(|r| r.as_slice()).collect();
    let f = BandPass::new(2, 300.0, 3000.0, 30000.0).unwrap();
    let mut outs = vec![vec![0f32; n]; 8];
    let mut o: Vec<&mut [f32]> = outs.iter_mut().map(|v| v.as_mut_slice()).collect();
    let mut out = vec![0.0; n];
    let mut work = Vec::new();
    let t = cpu();
    for _ in 0..reps {
        f.filtfilt(&rows[0], 0.195, &mut out, &mut work).unwrap();
    }
    println!(
        "scalar filtfilt   {:.2} ns/sample",
        (cpu() - t) * 1e9 / (reps * n) as f64
    );
    let t = cpu();
    for _ in 0..reps {
        f.filtfilt_rows(&refs, 0.195, true, true, (0, n), &mut o);
    }
    println!(
        "8-lane filtfilt   {:.2} ns/sample",
        (cpu() - t) * 1e9 / (8 * reps * n) as f64
    );
    let y = &outs[0];
    let mut s = MedianScratch::default();
    let t = cpu();
    let mut acc = 0.0;
    for _ in 0..reps {
        acc += median_mad(y, &mut s).1;
    }
    println!(
        "median+MAD        {:.2} ns/sample ({acc:.1})",
        (cpu() - t) * 1e9 / (reps * n) as f64
    );
    let t = cpu();
    let mut ev = Vec::new();
    for _ in 0..reps {
        let mut d = Detector::new(Polarity::Both, 15);
        d.push(0, y, 0.0, 40.0, &mut ev);
    }
    println!(
        "detect            {:.2} ns/sample ({} events)",
        (cpu() - t) * 1e9 / (reps * n) as f64,
        ev.len()
    );
}
