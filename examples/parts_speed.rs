use blechrs::signal::detect::{Detector, Polarity};
use blechrs::signal::filter::BandPass;
use blechrs::signal::threshold::{median_mad, MedianScratch};
use std::time::Instant;
fn main() {
    let n = 1_800_000;
    let x: Vec<i16> = (0..n).map(|i| ((i * 7919) % 1000) as i16 - 500).collect();
    let f = BandPass::new(2, 300.0, 3000.0, 30000.0).unwrap();
    let mut out = vec![0.0; n];
    f.filtfilt(&x, 0.195, &mut out, &mut Vec::new()).unwrap();
    let y: Vec<f32> = out.iter().map(|&v| v as f32).collect();
    let mut s = MedianScratch::default();
    for _ in 0..2 {
        let t = Instant::now();
        let mut acc = 0.0;
        for c in y.chunks(150000) {
            acc += median_mad(c, &mut s).1;
        }
        println!(
            "median_mad {:.2} ns/sample ({acc})",
            t.elapsed().as_secs_f64() * 1e9 / n as f64
        );
        let t = Instant::now();
        let mut d = Detector::new(Polarity::Both, 15);
        let mut ev = Vec::new();
        d.push(0, &y, 0.0, 300.0, &mut ev);
        println!(
            "detect {:.2} ns/sample ({})",
            t.elapsed().as_secs_f64() * 1e9 / n as f64,
            ev.len()
        );
    }
}
