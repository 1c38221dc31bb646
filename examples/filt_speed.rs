use blechrs::signal::filter::BandPass;
fn main() {
    let mode: usize = std::env::args().nth(1).unwrap().parse().unwrap();
    let n = 150_000;
    let total = 8 * 30_000 * 60; // 8 channels x 60 s
    let rows: Vec<Vec<i16>> = (0..8)
        .map(|r| {
            (0..n)
                .map(|i| (((i * (r + 3) * 7919) % 1000) as i16) - 500)
                .collect()
        })
        .collect();
    let refs: Vec<&[i16]> = rows.iter().map(|r| r.as_slice()).collect();
    let f = BandPass::new(2, 300.0, 3000.0, 30000.0).unwrap();
    let mut out = vec![0.0; n];
    let mut work = Vec::new();
    let mut outs = vec![vec![0f32; n]; 8];
    let mut o: Vec<&mut [f32]> = outs.iter_mut().map(|v| v.as_mut_slice()).collect();
    let mut done = 0;
    while done < total {
        if mode == 1 {
            f.filtfilt(&rows[0], 0.195, &mut out, &mut work).unwrap();
            done += n;
        } else {
            f.filtfilt_rows(&refs[..mode], 0.195, true, true, (0, n), &mut o[..mode]);
            done += n * mode;
        }
    }
    println!("{}", out[5] + outs[0][5] as f64);
}
