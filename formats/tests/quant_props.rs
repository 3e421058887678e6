//! Properties of the number formats that need no golden file: decode(encode(x)) stays within each type's error
//! bound, the MXFP4 repacks are lossless and agree with the HF decoder, and the MSE MXFP4 rule is never worse
//! than ggml's reference rule on any block.

use ossify_formats::quant::{
    dequantize_row, dequantize_row_mxfp4, dequantize_row_mxfp4_hf, quantize_row,
    quantize_row_mxfp4_mse, quantize_row_mxfp4_ref, repack_ggml_to_hf, repack_hf_to_ggml,
};
use ossify_formats::DType;

/// splitmix64: reproducible inputs without a dependency.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// uniform in [0, 1)
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform().max(1e-300), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

/// Blocks of 32 drawn from several shapes and scales (each block gets its own scale in [1e-2, 1e2)).
fn test_data(rng: &mut Rng, n_blocks: usize) -> Vec<f32> {
    let mut x = Vec::with_capacity(n_blocks * 32);
    for b in 0..n_blocks {
        let scale = 10f64.powf(rng.uniform() * 4.0 - 2.0);
        for _ in 0..32 {
            let v = match b % 4 {
                0 => rng.normal(),
                1 => rng.uniform() * 2.0 - 1.0,
                2 => rng.uniform() * 3.0 + 0.5, // one-signed, offset
                _ => rng.normal() / (rng.uniform() + 0.05), // heavy tails
            };
            x.push((v * scale) as f32);
        }
    }
    x
}

fn round_trip(dtype: DType, x: &[f32]) -> Vec<f32> {
    let mut q = vec![0u8; dtype.nbytes(x.len()).unwrap()];
    quantize_row(dtype, x, &mut q).unwrap();
    let mut y = vec![0f32; x.len()];
    dequantize_row(dtype, &q, &mut y).unwrap();
    y
}

/// f16 rounds a scale by at most 2^-11 relative; the f32 arithmetic adds a few ulps.
const F16_REL: f64 = 1.0 / 2048.0;
const F32_SLACK: f64 = 1e-6;

#[test]
fn block_types_stay_within_their_error_bounds() {
    let mut rng = Rng(1);
    let x = test_data(&mut rng, 4000);
    for dtype in [
        DType::Q8_0,
        DType::Q4_0,
        DType::Q4_1,
        DType::Q5_0,
        DType::Q5_1,
        DType::Mxfp4,
    ] {
        let y = round_trip(dtype, &x);
        for (b, (xb, yb)) in x.chunks(32).zip(y.chunks(32)).enumerate() {
            let amax = xb.iter().fold(0f64, |m, v| m.max(f64::from(v.abs())));
            let min = xb.iter().fold(f64::MAX, |m, &v| m.min(f64::from(v)));
            let max = xb.iter().fold(f64::MIN, |m, &v| m.max(f64::from(v)));
            let range = max - min;
            for (&xi, &yi) in xb.iter().zip(yb) {
                let (xi, yi) = (f64::from(xi), f64::from(yi));
                let bound = match dtype {
                    // half a step of amax/127, plus 127 steps of scale rounding
                    DType::Q8_0 => amax / 127.0 * 0.5 + amax * F16_REL,
                    // a full step at the clipped end (codes reach -8d but only +7d), else half a step
                    DType::Q4_0 => amax / 8.0 + amax * F16_REL,
                    DType::Q5_0 => amax / 16.0 + amax * F16_REL,
                    // half a step of range/15 (or /31), scale and minimum each rounded to f16
                    DType::Q4_1 => range / 15.0 * 0.5 + (range + min.abs()) * F16_REL,
                    DType::Q5_1 => range / 31.0 * 0.5 + (range + min.abs()) * F16_REL,
                    DType::Mxfp4 => {
                        // scale s = 2^(floor(log2 amax) - 2): values s*{0,.5,1,1.5,2,3,4,6}, so the gap is at
                        // most 2s below 6s (error <= s) and anything above 6s is clipped to 6s
                        let s = 2f64.powi(amax.log2().floor() as i32 - 2);
                        s.max(xi.abs() - 6.0 * s)
                    }
                    _ => unreachable!(),
                } + amax * F32_SLACK;
                assert!(
                    (xi - yi).abs() <= bound,
                    "{dtype}: block {b}: x={xi:e} decoded {yi:e}, error {:e} > bound {bound:e}",
                    (xi - yi).abs()
                );
            }
        }
    }
}

#[test]
fn float_types_round_to_their_precision() {
    let mut rng = Rng(2);
    let x = test_data(&mut rng, 1000);
    for (dtype, rel) in [
        (DType::F32, 0.0),
        (DType::F16, 1.0 / 2048.0),
        (DType::BF16, 1.0 / 256.0),
    ] {
        let y = round_trip(dtype, &x);
        for (&xi, &yi) in x.iter().zip(&y) {
            let (xi, yi) = (f64::from(xi), f64::from(yi));
            // f16 keeps ~5.96e-8 absolute below its normal range
            let abs = if dtype == DType::F16 { 2.99e-8 } else { 0.0 };
            assert!(
                (xi - yi).abs() <= xi.abs() * rel + abs,
                "{dtype}: {xi:e} -> {yi:e}"
            );
        }
    }
}

#[test]
fn mxfp4_repacks_are_lossless_and_agree_with_the_hf_decoder() {
    let mut rng = Rng(3);
    for n_blocks in [1usize, 2, 90, 256] {
        let blocks = rng.bytes(n_blocks * 16);
        let mut scales = rng.bytes(n_blocks);
        scales[0] = 0; // subnormal scales too
        let mut ggml = vec![0u8; n_blocks * 17];
        repack_hf_to_ggml(&blocks, &scales, &mut ggml).unwrap();

        let (mut b2, mut s2) = (vec![0u8; blocks.len()], vec![0u8; scales.len()]);
        repack_ggml_to_hf(&ggml, &mut b2, &mut s2).unwrap();
        assert_eq!(b2, blocks);
        assert_eq!(s2, scales);

        let ggml_src = rng.bytes(n_blocks * 17);
        repack_ggml_to_hf(&ggml_src, &mut b2, &mut s2).unwrap();
        let mut back = vec![0u8; ggml_src.len()];
        repack_hf_to_ggml(&b2, &s2, &mut back).unwrap();
        assert_eq!(back, ggml_src);

        let mut via_ggml = vec![0f32; n_blocks * 32];
        dequantize_row_mxfp4(&ggml, &mut via_ggml);
        let mut via_hf = vec![0f32; n_blocks * 32];
        dequantize_row_mxfp4_hf(&blocks, &scales, &mut via_hf).unwrap();
        for (a, b) in via_ggml.iter().zip(&via_hf) {
            assert!(a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()));
        }
    }
}

#[test]
fn mxfp4_repack_rejects_mismatched_lengths() {
    let mut dst = [0u8; 17];
    assert!(repack_hf_to_ggml(&[0u8; 15], &[0u8; 1], &mut dst).is_err());
    assert!(repack_hf_to_ggml(&[0u8; 16], &[0u8; 1], &mut [0u8; 18]).is_err());
    assert!(repack_ggml_to_hf(&[0u8; 17], &mut [0u8; 16], &mut [0u8; 2]).is_err());
    assert!(dequantize_row_mxfp4_hf(&[0u8; 16], &[0u8; 1], &mut [0f32; 31]).is_err());
}

fn block_sq_errors(x: &[f32], q: &[u8], w: Option<&[f32]>) -> Vec<f64> {
    let mut y = vec![0f32; x.len()];
    dequantize_row_mxfp4(q, &mut y);
    x.chunks(32)
        .zip(y.chunks(32))
        .enumerate()
        .map(|(b, (xb, yb))| {
            xb.iter()
                .zip(yb)
                .enumerate()
                .map(|(i, (&a, &c))| {
                    let wi = w.map_or(1.0, |w| f64::from(w[b * 32 + i]));
                    wi * (f64::from(a) - f64::from(c)).powi(2)
                })
                .sum()
        })
        .collect()
}

#[test]
fn mxfp4_mse_is_never_worse_than_ref_on_any_block() {
    let mut rng = Rng(4);
    let x = test_data(&mut rng, 8000);
    let n = x.len() / 32 * 17;
    let (mut q_ref, mut q_mse) = (vec![0u8; n], vec![0u8; n]);
    quantize_row_mxfp4_ref(&x, &mut q_ref);
    quantize_row_mxfp4_mse(&x, None, &mut q_mse);
    let e_ref = block_sq_errors(&x, &q_ref, None);
    let e_mse = block_sq_errors(&x, &q_mse, None);
    for (b, (r, m)) in e_ref.iter().zip(&e_mse).enumerate() {
        assert!(m <= r, "block {b}: mse rule error {m:e} > ref rule {r:e}");
    }
    let (tr, tm): (f64, f64) = (e_ref.iter().sum(), e_mse.iter().sum());
    let improved = e_ref.iter().zip(&e_mse).filter(|(r, m)| m < r).count();
    eprintln!(
        "mxfp4 squared error: ref {tr:e}, mse {tm:e} ({:.1}%), {improved}/{} blocks improved",
        100.0 * tm / tr,
        e_ref.len()
    );
    // the point of the rule: clearly better in total, not just never worse
    assert!(tm < 0.95 * tr, "mse total {tm:e} vs ref {tr:e}");

    // with importance weights: never worse than ref nor than the unweighted rule, by the weighted measure
    let w: Vec<f32> = (0..x.len())
        .map(|_| (rng.uniform() * rng.uniform() * 10.0) as f32)
        .collect();
    let mut q_w = vec![0u8; n];
    quantize_row_mxfp4_mse(&x, Some(&w), &mut q_w);
    let ew_ref = block_sq_errors(&x, &q_ref, Some(&w));
    let ew_mse = block_sq_errors(&x, &q_mse, Some(&w));
    let ew_w = block_sq_errors(&x, &q_w, Some(&w));
    for b in 0..ew_w.len() {
        let tol = 1e-12 * ew_ref[b];
        assert!(ew_w[b] <= ew_ref[b] + tol, "block {b}: weighted vs ref");
        assert!(
            ew_w[b] <= ew_mse[b] + tol,
            "block {b}: weighted vs unweighted mse"
        );
    }
    let (twr, tww): (f64, f64) = (ew_mse.iter().sum(), ew_w.iter().sum());
    assert!(tww < twr, "weighted rule {tww:e} vs unweighted {twr:e}");
}

#[test]
fn mxfp4_mse_keeps_exactly_representable_blocks() {
    // values already on the MXFP4 grid of their block come back unchanged (bit-identical to ref)
    let mut rng = Rng(5);
    let q = {
        let mut b = rng.bytes(64 * 17);
        for blk in b.chunks_mut(17) {
            blk[0] = 100 + (blk[0] % 50);
        }
        b
    };
    let mut x = vec![0f32; 64 * 32];
    dequantize_row_mxfp4(&q, &mut x);
    let (mut q_ref, mut q_mse) = (vec![0u8; q.len()], vec![0u8; q.len()]);
    quantize_row_mxfp4_ref(&x, &mut q_ref);
    quantize_row_mxfp4_mse(&x, None, &mut q_mse);
    assert_eq!(q_mse, q_ref);
    let mut y = vec![0f32; x.len()];
    dequantize_row_mxfp4(&q_mse, &mut y);
    assert_eq!(x, y);
}

#[test]
fn mxfp4_mse_importance_repeats_per_row() {
    // one row's importance applied to 3 rows at once == each row quantized with it separately
    let mut rng = Rng(6);
    let cols = 128;
    let x = test_data(&mut rng, 3 * cols / 32);
    let w: Vec<f32> = (0..cols).map(|_| rng.uniform() as f32 * 4.0).collect();
    let mut all = vec![0u8; x.len() / 32 * 17];
    quantize_row_mxfp4_mse(&x, Some(&w), &mut all);
    for (r, row) in x.chunks(cols).enumerate() {
        let mut one = vec![0u8; cols / 32 * 17];
        quantize_row_mxfp4_mse(row, Some(&w), &mut one);
        assert_eq!(one, all[r * one.len()..(r + 1) * one.len()]);
    }
}
