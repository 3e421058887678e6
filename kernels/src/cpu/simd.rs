//! AVX2 + FMA fast paths for the matvec inner loops, chosen at run time; every one has a scalar twin
//! (the decoders of [`super::decode`] followed by [`super::matmul::dot_scalar`]) and a test that they agree.
//!
//! All `unsafe` of the kernels lives here. Each function is `#[target_feature(enable = "avx2,fma")]` and is only
//! called through [`Avx2`], a token that exists only when the CPU reports both features. Loads are unaligned
//! (`loadu`) and stay inside slices whose lengths are checked before the loop.

/// Proof that AVX2 and FMA are available on this CPU.
#[derive(Clone, Copy, Debug)]
pub struct Avx2(());

impl Avx2 {
    /// `Some` when the CPU supports AVX2 and FMA (and the `OSSIFY_NO_SIMD` environment variable is unset).
    pub fn detect() -> Option<Avx2> {
        #[cfg(target_arch = "x86_64")]
        {
            use std::sync::OnceLock;
            static HAS: OnceLock<bool> = OnceLock::new();
            let has = *HAS.get_or_init(|| {
                std::env::var_os("OSSIFY_NO_SIMD").is_none()
                    && std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            });
            if has {
                return Some(Avx2(()));
            }
        }
        None
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::super::decode::{e8m0_to_fp32_half, KVALUES_MXFP4};

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn hsum(v: __m256) -> f32 {
        let lo = _mm256_castps256_ps128(v);
        let hi = _mm256_extractf128_ps(v, 1);
        let s = _mm_add_ps(lo, hi);
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
        _mm_cvtss_f32(s)
    }

    /// Σ a·b over `min(a.len(), b.len())` elements.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        // SAFETY (all loads below): i + 32 <= n, or i + 8 <= n, so every 8-float load is inside both slices.
        while i + 32 <= n {
            for (k, acc_k) in acc.iter_mut().enumerate() {
                let x = _mm256_loadu_ps(pa.add(i + 8 * k));
                let y = _mm256_loadu_ps(pb.add(i + 8 * k));
                *acc_k = _mm256_fmadd_ps(x, y, *acc_k);
            }
            i += 32;
        }
        while i + 8 <= n {
            acc[0] = _mm256_fmadd_ps(
                _mm256_loadu_ps(pa.add(i)),
                _mm256_loadu_ps(pb.add(i)),
                acc[0],
            );
            i += 8;
        }
        let s = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
        let mut total = hsum(s);
        while i < n {
            total += a[i] * b[i];
            i += 1;
        }
        total
    }

    /// Four dots sharing one activation: `[r0·x, r1·x, r2·x, r3·x]` over `n` elements, each `x` load reused
    /// four times (the prefill micro-kernel). Every `r` and `x` must hold at least `n` values.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot4(r: [&[f32]; 4], x: &[f32], n: usize) -> [f32; 4] {
        let n = r.iter().fold(n.min(x.len()), |m, ri| m.min(ri.len()));
        let p = [r[0].as_ptr(), r[1].as_ptr(), r[2].as_ptr(), r[3].as_ptr()];
        let px = x.as_ptr();
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        // SAFETY: i + 8 <= n <= every slice's length.
        while i + 8 <= n {
            let xv = _mm256_loadu_ps(px.add(i));
            for k in 0..4 {
                acc[k] = _mm256_fmadd_ps(_mm256_loadu_ps(p[k].add(i)), xv, acc[k]);
            }
            i += 8;
        }
        let mut out = [hsum(acc[0]), hsum(acc[1]), hsum(acc[2]), hsum(acc[3])];
        while i < n {
            for k in 0..4 {
                out[k] += r[k][i] * x[i];
            }
            i += 1;
        }
        out
    }

    /// Four rows against two activations: `out[j][k] = r[k] · x[j]` over `n` elements; 8 independent
    /// accumulators, and 6 loads per 8 FMAs (the prefill micro-kernel when two or more tokens share the rows).
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot4x2(r: [&[f32]; 4], x: [&[f32]; 2], n: usize) -> [[f32; 4]; 2] {
        let n = r.iter().chain(x.iter()).fold(n, |m, s| m.min(s.len()));
        let p = [r[0].as_ptr(), r[1].as_ptr(), r[2].as_ptr(), r[3].as_ptr()];
        let (px0, px1) = (x[0].as_ptr(), x[1].as_ptr());
        let mut a0 = [_mm256_setzero_ps(); 4];
        let mut a1 = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        // SAFETY: i + 8 <= n <= every slice's length.
        while i + 8 <= n {
            let x0 = _mm256_loadu_ps(px0.add(i));
            let x1 = _mm256_loadu_ps(px1.add(i));
            for k in 0..4 {
                let w = _mm256_loadu_ps(p[k].add(i));
                a0[k] = _mm256_fmadd_ps(w, x0, a0[k]);
                a1[k] = _mm256_fmadd_ps(w, x1, a1[k]);
            }
            i += 8;
        }
        let mut out = [
            [hsum(a0[0]), hsum(a0[1]), hsum(a0[2]), hsum(a0[3])],
            [hsum(a1[0]), hsum(a1[1]), hsum(a1[2]), hsum(a1[3])],
        ];
        while i < n {
            for k in 0..4 {
                out[0][k] += r[k][i] * x[0][i];
                out[1][k] += r[k][i] * x[1][i];
            }
            i += 1;
        }
        out
    }

    /// 16 bytes of nibbles -> (low-nibble values, high-nibble values) as FP4 codes doubled (i8).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn fp4_pairs(q: *const u8) -> (__m128i, __m128i) {
        let lut = _mm_loadu_si128(KVALUES_MXFP4.as_ptr() as *const __m128i);
        let m4 = _mm_set1_epi8(0x0f);
        let b = _mm_loadu_si128(q as *const __m128i);
        let lo = _mm_shuffle_epi8(lut, _mm_and_si128(b, m4));
        let hi = _mm_shuffle_epi8(lut, _mm_and_si128(_mm_srli_epi16(b, 4), m4));
        (lo, hi)
    }

    /// Σ v·x for 32 i8 values (two 16-byte registers in element order) and 32 floats at `x`; two
    /// independent FMA chains.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn block_dot(v0: __m128i, v1: __m128i, x: *const f32) -> __m256 {
        let f = |v: __m128i| _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v));
        let a = _mm256_mul_ps(f(v0), _mm256_loadu_ps(x));
        let b = _mm256_mul_ps(f(_mm_srli_si128(v0, 8)), _mm256_loadu_ps(x.add(8)));
        let a = _mm256_fmadd_ps(f(v1), _mm256_loadu_ps(x.add(16)), a);
        let b = _mm256_fmadd_ps(f(_mm_srli_si128(v1, 8)), _mm256_loadu_ps(x.add(24)), b);
        _mm256_add_ps(a, b)
    }

    /// Stores 32 i8 values (element order) times `d` as f32 at `dst`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn block_store(v0: __m128i, v1: __m128i, d: f32, dst: *mut f32) {
        let dv = _mm256_set1_ps(d);
        let f = |v: __m128i| _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v)), dv);
        _mm256_storeu_ps(dst, f(v0));
        _mm256_storeu_ps(dst.add(8), f(_mm_srli_si128(v0, 8)));
        _mm256_storeu_ps(dst.add(16), f(v1));
        _mm256_storeu_ps(dst.add(24), f(_mm_srli_si128(v1, 8)));
    }

    /// Decodes a row of the HF / OpenAI MXFP4 pair into `dst` (32 values per scale byte).
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn decode_mxfp4_hf(blocks: &[u8], scales: &[u8], dst: &mut [f32]) {
        let nb = scales.len().min(blocks.len() / 16).min(dst.len() / 32);
        for (ib, &e) in scales.iter().enumerate().take(nb) {
            // SAFETY: ib < nb keeps 16 bytes of blocks and 32 floats of dst in bounds.
            let (lo, hi) = fp4_pairs(blocks.as_ptr().add(16 * ib));
            block_store(
                _mm_unpacklo_epi8(lo, hi),
                _mm_unpackhi_epi8(lo, hi),
                e8m0_to_fp32_half(e),
                dst.as_mut_ptr().add(32 * ib),
            );
        }
    }

    /// Decodes a row of ggml MXFP4 blocks into `dst`.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn decode_mxfp4_ggml(row: &[u8], dst: &mut [f32]) {
        let nb = (row.len() / 17).min(dst.len() / 32);
        for (ib, blk) in row.chunks_exact(17).enumerate().take(nb) {
            // SAFETY: blk has 17 bytes; ib < nb keeps 32 floats of dst in bounds.
            let (lo, hi) = fp4_pairs(blk.as_ptr().add(1));
            block_store(
                lo,
                hi,
                e8m0_to_fp32_half(blk[0]),
                dst.as_mut_ptr().add(32 * ib),
            );
        }
    }

    /// One row of the HF / OpenAI MXFP4 pair dotted with x: decode (2j low nibble, 2j+1 high) fused with the
    /// dot. Requires `blocks.len() == 16 * scales.len()` and `x.len() == 32 * scales.len()`.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_mxfp4_hf(blocks: &[u8], scales: &[u8], x: &[f32]) -> f32 {
        let nb = scales.len().min(blocks.len() / 16).min(x.len() / 32);
        let mut acc = [_mm256_setzero_ps(); 2];
        for (ib, &e) in scales.iter().enumerate().take(nb) {
            // SAFETY: ib < nb, so bytes [16 ib, 16 ib + 16) and floats [32 ib, 32 ib + 32) are in bounds.
            let (lo, hi) = fp4_pairs(blocks.as_ptr().add(16 * ib));
            // Element order: lo0 hi0 lo1 hi1 ...
            let v0 = _mm_unpacklo_epi8(lo, hi);
            let v1 = _mm_unpackhi_epi8(lo, hi);
            let s = block_dot(v0, v1, x.as_ptr().add(32 * ib));
            // The scale is a power of two: scaling the block sum equals scaling each value.
            acc[ib & 1] = _mm256_fmadd_ps(_mm256_set1_ps(e8m0_to_fp32_half(e)), s, acc[ib & 1]);
        }
        hsum(_mm256_add_ps(acc[0], acc[1]))
    }

    /// One row of ggml MXFP4 blocks (e, qs[16]: j low nibble, j+16 high) dotted with x.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_mxfp4_ggml(row: &[u8], x: &[f32]) -> f32 {
        let nb = (row.len() / 17).min(x.len() / 32);
        let mut acc = [_mm256_setzero_ps(); 2];
        for (ib, blk) in row.chunks_exact(17).enumerate().take(nb) {
            // SAFETY: blk has 17 bytes (qs at 1..17); ib < nb keeps the 32 floats in bounds.
            let (lo, hi) = fp4_pairs(blk.as_ptr().add(1));
            let s = block_dot(lo, hi, x.as_ptr().add(32 * ib));
            acc[ib & 1] =
                _mm256_fmadd_ps(_mm256_set1_ps(e8m0_to_fp32_half(blk[0])), s, acc[ib & 1]);
        }
        hsum(_mm256_add_ps(acc[0], acc[1]))
    }

    /// One BF16 row (little-endian u16) dotted with x: decode by shift, fused with the dot.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_bf16(row: &[u8], x: &[f32]) -> f32 {
        let n = (row.len() / 2).min(x.len());
        let (pr, px) = (row.as_ptr(), x.as_ptr());
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        let load = |p: *const u8| {
            _mm256_castsi256_ps(_mm256_slli_epi32(
                _mm256_cvtepu16_epi32(_mm_loadu_si128(p as *const __m128i)),
                16,
            ))
        };
        // SAFETY: i + 32 <= n (or i + 8 <= n): 32 (8) u16 = 64 (16) bytes inside row, 32 (8) floats inside x.
        while i + 32 <= n {
            for (k, a) in acc.iter_mut().enumerate() {
                let j = i + 8 * k;
                *a = _mm256_fmadd_ps(load(pr.add(2 * j)), _mm256_loadu_ps(px.add(j)), *a);
            }
            i += 32;
        }
        while i + 8 <= n {
            acc[0] = _mm256_fmadd_ps(load(pr.add(2 * i)), _mm256_loadu_ps(px.add(i)), acc[0]);
            i += 8;
        }
        let mut total = hsum(_mm256_add_ps(
            _mm256_add_ps(acc[0], acc[1]),
            _mm256_add_ps(acc[2], acc[3]),
        ));
        while i < n {
            total +=
                f32::from_bits(u32::from(u16::from_le_bytes([row[2 * i], row[2 * i + 1]])) << 16)
                    * x[i];
            i += 1;
        }
        total
    }
}

impl Avx2 {
    #[inline]
    pub fn dot(self, a: &[f32], b: &[f32]) -> f32 {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: an `Avx2` exists only when the CPU has AVX2 and FMA; the function checks its own bounds.
        unsafe {
            x86::dot(a, b)
        }
        #[cfg(not(target_arch = "x86_64"))]
        super::matmul::dot_scalar(a, b)
    }

    /// `[r0·x, r1·x, r2·x, r3·x]` over `n` elements.
    #[inline]
    pub fn dot4(self, r: [&[f32]; 4], x: &[f32], n: usize) -> [f32; 4] {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `dot`.
        unsafe {
            x86::dot4(r, x, n)
        }
        #[cfg(not(target_arch = "x86_64"))]
        r.map(|ri| super::matmul::dot_scalar(&ri[..n], &x[..n]))
    }

    /// `out[j][k] = r[k] · x[j]` over `n` elements.
    #[inline]
    pub fn dot4x2(self, r: [&[f32]; 4], x: [&[f32]; 2], n: usize) -> [[f32; 4]; 2] {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `dot`.
        unsafe {
            x86::dot4x2(r, x, n)
        }
        #[cfg(not(target_arch = "x86_64"))]
        x.map(|xj| r.map(|ri| super::matmul::dot_scalar(&ri[..n], &xj[..n])))
    }

    /// HF / OpenAI MXFP4 row · x. Lengths: `blocks` 16 per block, `scales` 1 per block, `x` 32 per block.
    #[inline]
    pub fn dot_mxfp4_hf(self, blocks: &[u8], scales: &[u8], x: &[f32]) -> f32 {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `dot`.
        unsafe {
            x86::dot_mxfp4_hf(blocks, scales, x)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (blocks, scales, x);
            f32::NAN
        }
    }

    /// ggml MXFP4 row · x.
    #[inline]
    pub fn dot_mxfp4_ggml(self, row: &[u8], x: &[f32]) -> f32 {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `dot`.
        unsafe {
            x86::dot_mxfp4_ggml(row, x)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (row, x);
            f32::NAN
        }
    }

    /// Decodes a row of the HF / OpenAI MXFP4 pair (exactly: the values are small integers times a power of two).
    #[inline]
    pub fn decode_mxfp4_hf(self, blocks: &[u8], scales: &[u8], dst: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `dot`.
        unsafe {
            x86::decode_mxfp4_hf(blocks, scales, dst)
        }
        #[cfg(not(target_arch = "x86_64"))]
        super::decode::decode_row_mxfp4_hf(blocks, scales, dst)
    }

    /// Decodes a row of ggml MXFP4 blocks.
    #[inline]
    pub fn decode_mxfp4_ggml(self, row: &[u8], dst: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `dot`.
        unsafe {
            x86::decode_mxfp4_ggml(row, dst)
        }
        #[cfg(not(target_arch = "x86_64"))]
        super::decode::decode_row(ossify_formats::DType::Mxfp4, row, dst)
    }

    /// BF16 row · x.
    #[inline]
    pub fn dot_bf16(self, row: &[u8], x: &[f32]) -> f32 {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `dot`.
        unsafe {
            x86::dot_bf16(row, x)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (row, x);
            f32::NAN
        }
    }
}
