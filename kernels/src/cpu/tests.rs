//! Fast kernels against their scalar twins, and the decoders against hand-worked ggml blocks.

use half::{bf16, f16};
use ossify_formats::DType;

use super::decode::decode_row;
use super::*;

/// A small deterministic generator (no `rand` dependency): xorshift64*.
struct Rng(u64);
impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

/// Random bytes for `rows x cols` of `dtype`, with every f16 scale/min and E8M0 exponent set to a sane value.
fn random_matrix(rng: &mut Rng, dtype: DType, rows: usize, cols: usize) -> Vec<u8> {
    let n = rows * cols;
    match dtype {
        DType::F32 => (0..n).flat_map(|_| rng.f32().to_le_bytes()).collect(),
        DType::F16 => (0..n)
            .flat_map(|_| f16::from_f32(rng.f32()).to_le_bytes())
            .collect(),
        DType::BF16 => (0..n)
            .flat_map(|_| bf16::from_f32(rng.f32()).to_le_bytes())
            .collect(),
        _ => {
            let (bs, ts) = (dtype.block_size(), dtype.type_size());
            let mut b = rng.bytes(n / bs * ts);
            for blk in b.chunks_exact_mut(ts) {
                if dtype == DType::Mxfp4 {
                    blk[0] = 120 + (blk[0] % 12);
                } else {
                    blk[..2].copy_from_slice(&f16::from_f32(rng.f32() * 0.1).to_le_bytes());
                    if matches!(dtype, DType::Q4_1 | DType::Q5_1) {
                        blk[2..4].copy_from_slice(&f16::from_f32(rng.f32() * 0.1).to_le_bytes());
                    }
                }
            }
            b
        }
    }
}

fn assert_close(a: &[f32], b: &[f32], tol: f32, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    // Sums in a different order differ by rounding relative to the terms, so scale by the largest result.
    let scale = b.iter().fold(1f32, |m, v| m.max(v.abs()));
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= tol * scale,
            "{what}: element {i}: {x} vs {y}"
        );
    }
}

const ALL: [DType; 9] = [
    DType::F32,
    DType::F16,
    DType::BF16,
    DType::Q8_0,
    DType::Q4_0,
    DType::Q4_1,
    DType::Q5_0,
    DType::Q5_1,
    DType::Mxfp4,
];

#[test]
fn matmul_agrees_with_scalar_twin_for_every_type() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (rows, cols) = (37, 96);
    for dtype in ALL {
        let bytes = random_matrix(&mut rng, dtype, rows, cols);
        let w = WeightMatrix::new(dtype, &bytes, rows, cols).unwrap();
        for n_tokens in [1, 3, 17, 150] {
            let x: Vec<f32> = (0..n_tokens * cols).map(|_| rng.f32()).collect();
            let mut y_ref = vec![0f32; n_tokens * rows];
            matmul_ref(&w, &x, n_tokens, &mut y_ref).unwrap();
            assert!(y_ref.iter().any(|v| *v != 0.0));
            for isa in Isa::available() {
                let mut y = vec![0f32; n_tokens * rows];
                matmul_with(isa, &w, &x, n_tokens, &mut y).unwrap();
                assert_close(&y, &y_ref, 1e-5, &format!("{dtype} T={n_tokens} {isa:?}"));
            }
        }
    }
}

/// Exact mode's prefill gives the same bits on AVX-512 (4 × 4 tiles) as on AVX2 (4 × 2 tiles): each dot is summed in
/// one order whichever tile runs it, so the reference does not move with the CPU's vector width. Token counts
/// that leave 1, 2 and 3 tokens after the 4-token tiles, rows that leave a partial group of 4, a column count
/// with a tail.
#[test]
fn exact_prefill_tiles_give_the_same_bits_on_every_avx_path() {
    let mut rng = Rng(0x4444_2222);
    let (rows, cols) = (23, 2880 + 4);
    let paths: Vec<Isa> = Isa::available()
        .into_iter()
        .filter(|i| i.avx2().is_some())
        .collect();
    for dtype in [DType::F32, DType::BF16, DType::Mxfp4] {
        let cols = if dtype == DType::F32 { cols } else { 2880 };
        let bytes = random_matrix(&mut rng, dtype, rows, cols);
        let w = WeightMatrix::new(dtype, &bytes, rows, cols).unwrap();
        for n in [2usize, 4, 5, 6, 7, 9, 70] {
            let x: Vec<f32> = (0..n * cols).map(|_| rng.f32()).collect();
            let mut first: Option<(Isa, Vec<u32>)> = None;
            for &isa in &paths {
                let mut y = vec![0f32; n * rows];
                matmul_with(isa, &w, &x, n, &mut y).unwrap();
                let bits: Vec<u32> = y.iter().map(|v| v.to_bits()).collect();
                match &first {
                    None => first = Some((isa, bits)),
                    Some((i0, b0)) => {
                        assert!(b0 == &bits, "{dtype} n={n}: {isa:?} differs from {i0:?}")
                    }
                }
            }
        }
    }
}

#[test]
fn selected_rows_are_the_rows_of_the_whole_matrix() {
    // Interleaved gate/up: even rows = gate, odd rows = up; a selection computes the same rows as the whole
    // (up to summation order: rows may go through the 4-row micro-kernel or alone).
    let mut rng = Rng(7);
    let (rows, cols) = (24, 64);
    let blocks = rng.bytes(rows * cols / 2);
    let scales: Vec<u8> = (0..rows * cols / 32)
        .map(|_| 120 + (rng.next_u64() % 10) as u8)
        .collect();
    let w = WeightMatrix::mxfp4_pair(&blocks, &scales, rows, cols).unwrap();
    let x: Vec<f32> = (0..2 * cols).map(|_| rng.f32()).collect();
    let mut whole = vec![0f32; 2 * rows];
    matmul(&w, &x, 2, &mut whole).unwrap();
    for (first, step, n) in [(0, 2, 12), (1, 2, 12), (5, 1, 7), (3, 3, 7)] {
        let sel = w.select_rows(first, step, n).unwrap();
        let mut y = vec![0f32; 2 * n];
        let mut y_ref = vec![0f32; 2 * n];
        matmul(&sel, &x, 2, &mut y).unwrap();
        matmul_ref(&sel, &x, 2, &mut y_ref).unwrap();
        assert_close(&y, &y_ref, 1e-5, "selection vs twin");
        for t in 0..2 {
            for k in 0..n {
                let (a, b) = (y[t * n + k], whole[t * rows + first + k * step]);
                assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "{a} vs {b}");
            }
        }
        // A selection of a selection composes.
        let sub = sel.select_rows(1, 2, n / 2).unwrap();
        let mut ys = vec![0f32; 2 * (n / 2)];
        matmul(&sub, &x, 2, &mut ys).unwrap();
        for t in 0..2 {
            for k in 0..n / 2 {
                let (a, b) = (ys[t * (n / 2) + k], y[t * n + 1 + 2 * k]);
                assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "{a} vs {b}");
            }
        }
    }
    assert!(w.select_rows(1, 2, 13).is_err());
}

#[test]
fn transposed_matrix_computes_x_times_w() {
    // Stored (in, out) BF16, as fine-tunes store experts; compare with the same numbers stored (out, in).
    let mut rng = Rng(11);
    let (inp, out) = (70, 150);
    let vals: Vec<bf16> = (0..inp * out).map(|_| bf16::from_f32(rng.f32())).collect();
    let stored: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut normal = Vec::with_capacity(stored.len());
    for o in 0..out {
        for i in 0..inp {
            normal.extend_from_slice(&vals[i * out + o].to_le_bytes());
        }
    }
    let wt = WeightMatrix::transposed(DType::BF16, &stored, inp, out).unwrap();
    let wn = WeightMatrix::new(DType::BF16, &normal, out, inp).unwrap();
    for n_tokens in [1, 5] {
        let x: Vec<f32> = (0..n_tokens * inp).map(|_| rng.f32()).collect();
        for (first, step, n) in [(0, 1, out), (0, 2, out / 2), (1, 2, out / 2)] {
            let (st, sn) = (
                wt.select_rows(first, step, n).unwrap(),
                wn.select_rows(first, step, n).unwrap(),
            );
            let mut a = vec![0f32; n_tokens * n];
            let mut b = vec![0f32; n_tokens * n];
            let mut c = vec![0f32; n_tokens * n];
            matmul(&st, &x, n_tokens, &mut a).unwrap();
            matmul_ref(&st, &x, n_tokens, &mut b).unwrap();
            matmul(&sn, &x, n_tokens, &mut c).unwrap();
            assert_close(&a, &b, 1e-5, "transposed vs twin");
            assert_close(&a, &c, 1e-5, "transposed vs normal");
        }
    }
    assert!(WeightMatrix::transposed(DType::Q8_0, &stored, inp, out).is_err());
}

#[test]
fn matmul_rejects_wrong_sizes() {
    let bytes = vec![0u8; 4 * 8 * 4];
    assert!(WeightMatrix::new(DType::F32, &bytes, 4, 9).is_err());
    assert!(WeightMatrix::new(DType::Q8_0, &bytes, 1, 33).is_err());
    assert!(WeightMatrix::new(DType::I32, &bytes, 4, 8).is_err());
    let w = WeightMatrix::new(DType::F32, &bytes, 4, 8).unwrap();
    let mut y = vec![0f32; 4];
    assert!(matmul(&w, &[0f32; 7], 1, &mut y).is_err());
}

/// Blocks worked by hand from ggml's `dequantize_row_*` formulas (ggml-quants.c).
#[test]
fn decoders_follow_ggml_formulas() {
    let half = f16::from_f32(0.5).to_le_bytes();
    let quarter = f16::from_f32(0.25).to_le_bytes();
    let mut y = [0f32; 32];

    // Q8_0: d * q
    let mut b = vec![half[0], half[1]];
    b.extend((0..32).map(|i| (i as i8 - 16) as u8));
    decode_row(DType::Q8_0, &b, &mut y);
    assert_eq!((y[0], y[31]), (-8.0, 7.5));

    // Q4_0: (nibble - 8) * d, element j low nibble, j+16 high nibble
    let mut b = vec![half[0], half[1]];
    b.extend([0x1Fu8; 16]);
    decode_row(DType::Q4_0, &b, &mut y);
    assert_eq!((y[0], y[16]), (3.5, -3.5));

    // Q4_1: nibble * d + m
    let mut b = vec![half[0], half[1], quarter[0], quarter[1]];
    b.extend([0x2Fu8; 16]);
    decode_row(DType::Q4_1, &b, &mut y);
    assert_eq!((y[0], y[16]), (7.75, 1.25));

    // Q5_0: ((nibble | high bit << 4) - 16) * d; bit j of qh is element j's fifth bit, bit j+16 element j+16's.
    let mut b = vec![half[0], half[1]];
    b.extend(((1u32 << 0) | (1u32 << 17)).to_le_bytes());
    b.extend([0x33u8; 16]);
    decode_row(DType::Q5_0, &b, &mut y);
    assert_eq!((y[0], y[1], y[16], y[17]), (1.5, -6.5, -6.5, 1.5));

    // Q5_1: (nibble | high bit << 4) * d + m
    let mut b = vec![half[0], half[1], quarter[0], quarter[1]];
    b.extend((1u32 << 31).to_le_bytes());
    b.extend([0xF0u8; 16]);
    decode_row(DType::Q5_1, &b, &mut y);
    assert_eq!((y[0], y[15], y[31]), (0.25, 0.25, 15.75));
}

/// Every SIMD implementation this CPU has, and the portable dot, against f64 sums / the scalar decoders.
#[test]
fn dots_and_decoders_agree_with_scalar_twins_on_every_path() {
    use super::decode::decode_row_mxfp4_hf;
    use super::matmul::dot_with;
    let mut rng = Rng(99);
    let isas = Isa::available();
    println!("implementations under test: {isas:?}");
    for n in [0usize, 1, 7, 8, 31, 32, 33, 100, 2880] {
        let a: Vec<f32> = (0..n).map(|_| rng.f32()).collect();
        let b: Vec<f32> = (0..n).map(|_| rng.f32()).collect();
        let exact: f64 = a
            .iter()
            .zip(&b)
            .map(|(x, y)| f64::from(*x) * f64::from(*y))
            .sum();
        let bound = 1e-6
            * a.iter()
                .zip(&b)
                .map(|(x, y)| f64::from((x * y).abs()))
                .sum::<f64>();
        for isa in &isas {
            let got = dot_with(isa.avx2(), &a, &b);
            assert!(
                (f64::from(got) - exact).abs() <= bound + 1e-30,
                "dot n={n} {isa:?}: {got} vs {exact}"
            );
        }
    }
    for s in isas.iter().filter_map(|i| i.avx2()) {
        for n in [0usize, 1, 7, 8, 31, 32, 33, 100, 2880] {
            let a: Vec<f32> = (0..n).map(|_| rng.f32()).collect();
            let b: Vec<f32> = (0..n).map(|_| rng.f32()).collect();
            let bf: Vec<u8> = a
                .iter()
                .flat_map(|v| bf16::from_f32(*v).to_le_bytes())
                .collect();
            let mut dec = vec![0f32; n];
            decode_row(DType::BF16, &bf, &mut dec);
            assert_close(
                &[s.dot_bf16(&bf, &b)],
                &[dot_scalar(&dec, &b)],
                1e-5,
                &format!("bf16 n={n}"),
            );
        }
        for cols in [32usize, 64, 2880] {
            let x: Vec<f32> = (0..cols).map(|_| rng.f32()).collect();
            let mut dec = vec![0f32; cols];
            // HF pair
            let blocks = rng.bytes(cols / 2);
            let scales: Vec<u8> = (0..cols / 32)
                .map(|_| 118 + (rng.next_u64() % 16) as u8)
                .collect();
            decode_row_mxfp4_hf(&blocks, &scales, &mut dec);
            assert_close(
                &[s.dot_mxfp4_hf(&blocks, &scales, &x)],
                &[dot_scalar(&dec, &x)],
                1e-5,
                &format!("mxfp4 hf cols={cols}"),
            );
            let mut fast = vec![0f32; cols];
            s.decode_mxfp4_hf(&blocks, &scales, &mut fast);
            assert_eq!(fast, dec, "mxfp4 hf decode cols={cols}");
            // ggml blocks
            let row = random_matrix(&mut rng, DType::Mxfp4, 1, cols);
            decode_row(DType::Mxfp4, &row, &mut dec);
            assert_close(
                &[s.dot_mxfp4_ggml(&row, &x)],
                &[dot_scalar(&dec, &x)],
                1e-5,
                &format!("mxfp4 ggml cols={cols}"),
            );
            s.decode_mxfp4_ggml(&row, &mut fast);
            assert_eq!(fast, dec, "mxfp4 ggml decode cols={cols}");
        }
    }
}

/// The integer dots give the scalar twin's floats bit for bit on every implementation (AVX2 `maddubs`, AVX-VNNI,
/// AVX-512 VNNI at 256 and 512 bits), for one token and for batches, odd block counts included.
#[test]
fn integer_dots_are_bit_exact_on_every_path() {
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let rows = 13;
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    for cols in [32usize, 96, 2880] {
        let mxfp4 = random_matrix(&mut rng, DType::Mxfp4, rows, cols);
        let q8 = random_matrix(&mut rng, DType::Q8_0, rows, cols);
        let (blocks, mut scales) = (rng.bytes(rows * cols / 2), rng.bytes(rows * cols / 32));
        for s in scales.iter_mut() {
            *s = 118 + (*s % 16);
        }
        let mats = [
            (
                "mxfp4",
                WeightMatrix::new(DType::Mxfp4, &mxfp4, rows, cols).unwrap(),
            ),
            (
                "q8_0",
                WeightMatrix::new(DType::Q8_0, &q8, rows, cols).unwrap(),
            ),
            (
                "mxfp4 pair",
                WeightMatrix::mxfp4_pair(&blocks, &scales, rows, cols).unwrap(),
            ),
        ];
        for (what, m) in mats {
            for n in [1usize, 3, 6] {
                let x: Vec<f32> = (0..n * cols).map(|_| rng.f32() * 2.0).collect();
                let mut want = vec![0f32; n * rows];
                matmul_prec_ref(&m, &x, n, &mut want, Precision::Q8Activations).unwrap();
                for isa in Isa::available() {
                    let mut got = vec![0f32; n * rows];
                    matmul_prec_with(isa, &m, &x, n, &mut got, Precision::Q8Activations).unwrap();
                    assert_eq!(bits(&got), bits(&want), "{what} cols={cols} n={n} {isa:?}");
                }
            }
        }
    }
}

#[test]
fn q8_quantization_follows_ggml() {
    // amax 127 -> d = 1, multiplier 1: halves round to even (roundf would give 63 for 62.5), -0.5 -> 0.
    let mut x = vec![0f32; 32];
    x[0] = 127.0;
    x[1] = 63.5;
    x[2] = 62.5;
    x[3] = -0.5;
    x[4] = -127.0;
    let (mut d, mut k, mut qs) = ([0f32; 1], [0i32; 8], [0i8; 32]);
    q8::quantize_row_q8(&x, &mut d, &mut k, &mut qs);
    assert_eq!(d[0], 1.0);
    assert_eq!(&qs[..6], &[127, 64, 62, 0, -127, 0]);
    assert_eq!(&k[..2], &[-12 * (127 + 64 + 62), 12 * 127]);
    let (mut d0, mut k0, mut q0) = ([1f32; 1], [1i32; 8], [1i8; 32]);
    q8::quantize_row_q8(&[0f32; 32], &mut d0, &mut k0, &mut q0);
    assert_eq!((d0[0], q0), (0.0, [0i8; 32]));
}

#[test]
fn q8_activation_matmul_agrees_with_scalar_twin() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (rows, cols) = (37, 256);
    for dtype in ALL {
        let w = random_matrix(&mut rng, dtype, rows, cols);
        let m = WeightMatrix::new(dtype, &w, rows, cols).unwrap();
        for n in [1usize, 3, 70] {
            let x: Vec<f32> = (0..n * cols).map(|_| rng.f32() * 3.0).collect();
            let (mut y, mut r) = (vec![0f32; n * rows], vec![0f32; n * rows]);
            matmul_prec_ref(&m, &x, n, &mut r, Precision::Q8Activations).unwrap();
            for isa in Isa::available() {
                matmul_prec_with(isa, &m, &x, n, &mut y, Precision::Q8Activations).unwrap();
                assert_close(&y, &r, 1e-5, &format!("{dtype} q8 n={n} {isa:?}"));
            }
            // and it is an approximation of the exact product, not something else
            let mut e = vec![0f32; n * rows];
            matmul_ref(&m, &x, n, &mut e).unwrap();
            assert_close(&y, &e, 2e-2, &format!("{dtype} q8 vs exact n={n}"));
        }
    }
    // The HF / OpenAI MXFP4 pair, plain and with interleaved rows selected.
    let (blocks, mut scales) = (rng.bytes(rows * cols / 2), rng.bytes(rows * cols / 32));
    for s in scales.iter_mut() {
        *s = 120 + (*s % 12);
    }
    let m = WeightMatrix::mxfp4_pair(&blocks, &scales, rows, cols).unwrap();
    for m in [m, m.select_rows(1, 2, 18).unwrap()] {
        for n in [1usize, 5] {
            let x: Vec<f32> = (0..n * cols).map(|_| rng.f32()).collect();
            let (mut y, mut r) = (vec![0f32; n * m.rows()], vec![0f32; n * m.rows()]);
            matmul_prec(&m, &x, n, &mut y, Precision::Q8Activations).unwrap();
            matmul_prec_ref(&m, &x, n, &mut r, Precision::Q8Activations).unwrap();
            assert_close(&y, &r, 1e-5, &format!("mxfp4 pair q8 n={n}"));
            let mut e = vec![0f32; n * m.rows()];
            matmul_ref(&m, &x, n, &mut e).unwrap();
            assert_close(&y, &e, 2e-2, &format!("mxfp4 pair q8 vs exact n={n}"));
        }
    }
}

#[test]
fn q8_scalar_twin_rounds_activations_as_ggml() {
    // Independent of q8.rs's dot: dequantize the Q8_0 activations by hand and dot in f64 with decoded weights.
    let mut rng = Rng(7);
    let (rows, cols) = (4, 64);
    let w = random_matrix(&mut rng, DType::Mxfp4, rows, cols);
    let m = WeightMatrix::new(DType::Mxfp4, &w, rows, cols).unwrap();
    let x: Vec<f32> = (0..cols).map(|_| rng.f32()).collect();
    let mut y = vec![0f32; rows];
    matmul_prec_ref(&m, &x, 1, &mut y, Precision::Q8Activations).unwrap();
    let mut xq = vec![0f32; cols];
    for (b, xb) in x.chunks_exact(32).enumerate() {
        let amax = xb.iter().fold(0f32, |a, v| a.max(v.abs()));
        let d = f16::from_f32(amax / 127.0).to_f32();
        for j in 0..32 {
            xq[b * 32 + j] = (xb[j] * (127.0 / amax)).round_ties_even() * d;
        }
    }
    let mut row = vec![0f32; cols];
    for r in 0..rows {
        decode_row(DType::Mxfp4, &w[r * 34..][..34], &mut row);
        let want: f64 = row
            .iter()
            .zip(&xq)
            .map(|(a, b)| f64::from(*a) * f64::from(*b))
            .sum();
        assert!(
            (f64::from(y[r]) - want).abs() <= 1e-5 * want.abs().max(1.0),
            "row {r}: {} vs {want}",
            y[r]
        );
    }
}

#[test]
fn q8_batched_rows_equal_one_token_rows_bit_for_bit() {
    // The pre-decoded prefill path and the fused decode path sum the same integers in the same order.
    let mut rng = Rng(99);
    let (rows, cols, n) = (19, 128, 6);
    // (Not BF16: there llama.cpp itself sums one token in another order than a batch, and so does q8 mode;
    // `q8_bf16_one_token_is_ggml_vec_dot_bf16` pins that order.)
    for dtype in [DType::Mxfp4, DType::Q8_0] {
        let w = random_matrix(&mut rng, dtype, rows, cols);
        let m = WeightMatrix::new(dtype, &w, rows, cols).unwrap();
        let x: Vec<f32> = (0..n * cols).map(|_| rng.f32()).collect();
        let mut all = vec![0f32; n * rows];
        matmul_prec(&m, &x, n, &mut all, Precision::Q8Activations).unwrap();
        for t in 0..n {
            let mut one = vec![0f32; rows];
            matmul_prec(
                &m,
                &x[t * cols..(t + 1) * cols],
                1,
                &mut one,
                Precision::Q8Activations,
            )
            .unwrap();
            assert_eq!(
                &all[t * rows..(t + 1) * rows],
                &one[..],
                "{dtype} token {t}"
            );
        }
    }
    // And the AVX2 code decoder is the scalar one, for both MXFP4 layouts.
    for s in Isa::available().into_iter().filter_map(|i| i.avx2()) {
        let w = random_matrix(&mut rng, DType::Mxfp4, rows, cols);
        let (blocks, scales) = (rng.bytes(rows * cols / 2), rng.bytes(rows * cols / 32));
        for m in [
            WeightMatrix::new(DType::Mxfp4, &w, rows, cols).unwrap(),
            WeightMatrix::mxfp4_pair(&blocks, &scales, rows, cols).unwrap(),
        ] {
            let (mut a, mut ad) = (vec![0u8; cols], vec![0f32; cols / 32]);
            let (mut b, mut bd) = (vec![0u8; cols], vec![0f32; cols / 32]);
            for line in 0..rows {
                assert!(q8::decode_row_u12(Some(s), &m, line, &mut a, &mut ad).is_some());
                assert!(q8::decode_row_u12(None, &m, line, &mut b, &mut bd).is_some());
                assert_eq!(a, b);
                assert_eq!(
                    ad.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    bd.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
                );
            }
        }
    }
}

/// `ggml_vec_dot_bf16` under AVX-512 BF16 (ggml-cpu/vec.cpp, llama.cpp 0c1e570), written from its source and the
/// `vdpbf16ps` definition (Intel SDM: per f32 lane, the odd BF16 pair's product is added first, then the even
/// one's, each rounded to nearest even; denormals flushed, which these inputs never reach): two 16-lane
/// accumulators over alternate 32-element halves of each 64, each reduced as `_mm512_reduce_add_ps` does
/// (halves of 8, 4, 2, 1 added), both sums and the `n % 64` tail products added in f64, rounded once.
fn ggml_vec_dot_bf16_model(w: &[u16], x: &[u16]) -> f32 {
    let f = |v: u16| f32::from_bits(u32::from(v) << 16);
    let reduce = |mut a: Vec<f32>| {
        while a.len() > 1 {
            let h = a.len() / 2;
            a = (0..h).map(|j| a[j] + a[j + h]).collect();
        }
        a[0]
    };
    let n = w.len();
    let (mut c1, mut c2) = (vec![0f32; 16], vec![0f32; 16]);
    let mut i = 0;
    while i + 64 <= n {
        for (c, o) in [(&mut c1, i), (&mut c2, i + 32)] {
            for (j, cj) in c.iter_mut().enumerate() {
                let (e, d) = (o + 2 * j, o + 2 * j + 1);
                *cj += f(w[d]) * f(x[d]);
                *cj += f(w[e]) * f(x[e]);
            }
        }
        i += 64;
    }
    let mut sum = f64::from(reduce(c1));
    sum += f64::from(reduce(c2));
    for j in i..n {
        sum += f64::from(f(w[j]) * f(x[j]));
    }
    sum as f32
}

/// q8 mode sums a one-token BF16 row as llama.cpp's CPU backend does for one token (`ggml_vec_dot_bf16`; its
/// tinyBLAS takes batches of 2 or more only), bit for bit, at gpt-oss's widths and with a tail.
#[test]
fn q8_bf16_one_token_is_ggml_vec_dot_bf16() {
    if !Isa::detect().avx512().is_some_and(|s| s.has_bf16()) {
        eprintln!("skipped: no AVX-512 BF16 here (q8 mode's BF16 is exact mode's)");
        return;
    }
    let mut rng = Rng(0xbf16_0001);
    for cols in [2880usize, 4096, 64 * 3 + 40] {
        let rows = 7;
        let w = random_matrix(&mut rng, DType::BF16, rows, cols);
        let m = WeightMatrix::new(DType::BF16, &w, rows, cols).unwrap();
        // Mixed signs and magnitudes, so that the order of the sums shows in the last bits.
        let x: Vec<f32> = (0..cols).map(|_| (rng.f32() - 0.5) * 8.0).collect();
        let mut y = vec![0f32; rows];
        matmul_prec(&m, &x, 1, &mut y, Precision::Q8Activations).unwrap();
        let xb: Vec<u16> = x.iter().map(|&v| bf16::from_f32(v).to_bits()).collect();
        for (r, &got) in y.iter().enumerate() {
            let wr: Vec<u16> = w[r * cols * 2..(r + 1) * cols * 2]
                .chunks_exact(2)
                .map(|b| u16::from_le_bytes([b[0], b[1]]))
                .collect();
            let want = ggml_vec_dot_bf16_model(&wr, &xb);
            assert_eq!(
                got.to_bits(),
                want.to_bits(),
                "cols={cols} row {r}: {got} vs {want}"
            );
        }
    }
}

/// The fused Q8_0 dot of exact mode (decode in registers) is decode + the AVX2 dot bit for bit, on every path,
/// and a one-token Q8_0 matmul equals the scalar twin to rounding.
#[test]
fn q8_0_fused_dot_is_decode_then_dot_bit_for_bit() {
    let mut rng = Rng(0x0808_2880);
    for s in Isa::available().into_iter().filter_map(|i| i.avx2()) {
        for cols in [32usize, 96, 2880] {
            let row = random_matrix(&mut rng, DType::Q8_0, 1, cols);
            let x: Vec<f32> = (0..cols).map(|_| rng.f32() * 4.0).collect();
            let mut dec = vec![0f32; cols];
            decode_row(DType::Q8_0, &row, &mut dec);
            assert_eq!(
                s.dot_q8_0(&row, &x).to_bits(),
                s.dot(&dec, &x).to_bits(),
                "cols={cols}"
            );
        }
    }
    let (rows, cols) = (11, 2880);
    let w = random_matrix(&mut rng, DType::Q8_0, rows, cols);
    let m = WeightMatrix::new(DType::Q8_0, &w, rows, cols).unwrap();
    let x: Vec<f32> = (0..cols).map(|_| rng.f32()).collect();
    let mut want = vec![0f32; rows];
    matmul_ref(&m, &x, 1, &mut want).unwrap();
    for isa in Isa::available() {
        let mut got = vec![0f32; rows];
        matmul_with(isa, &m, &x, 1, &mut got).unwrap();
        assert_close(&got, &want, 1e-5, &format!("q8_0 one token {isa:?}"));
    }
}
