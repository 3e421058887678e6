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

    /// Σ v·x for 32 i8 values (two 16-byte registers in element order) and 32 floats at `x`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn block_dot(v0: __m128i, v1: __m128i, x: *const f32) -> __m256 {
        let f = |v: __m128i| _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v));
        let mut s = _mm256_mul_ps(f(v0), _mm256_loadu_ps(x));
        s = _mm256_fmadd_ps(f(_mm_srli_si128(v0, 8)), _mm256_loadu_ps(x.add(8)), s);
        s = _mm256_fmadd_ps(f(v1), _mm256_loadu_ps(x.add(16)), s);
        _mm256_fmadd_ps(f(_mm_srli_si128(v1, 8)), _mm256_loadu_ps(x.add(24)), s)
    }

    /// One row of the HF / OpenAI MXFP4 pair dotted with x: decode (2j low nibble, 2j+1 high) fused with the
    /// dot. Requires `blocks.len() == 16 * scales.len()` and `x.len() == 32 * scales.len()`.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_mxfp4_hf(blocks: &[u8], scales: &[u8], x: &[f32]) -> f32 {
        let nb = scales.len().min(blocks.len() / 16).min(x.len() / 32);
        let mut acc = _mm256_setzero_ps();
        for (ib, &e) in scales.iter().enumerate().take(nb) {
            // SAFETY: ib < nb, so bytes [16 ib, 16 ib + 16) and floats [32 ib, 32 ib + 32) are in bounds.
            let (lo, hi) = fp4_pairs(blocks.as_ptr().add(16 * ib));
            // Element order: lo0 hi0 lo1 hi1 ...
            let v0 = _mm_unpacklo_epi8(lo, hi);
            let v1 = _mm_unpackhi_epi8(lo, hi);
            let s = block_dot(v0, v1, x.as_ptr().add(32 * ib));
            // The scale is a power of two: scaling the block sum equals scaling each value.
            acc = _mm256_fmadd_ps(_mm256_set1_ps(e8m0_to_fp32_half(e)), s, acc);
        }
        hsum(acc)
    }

    /// One row of ggml MXFP4 blocks (e, qs[16]: j low nibble, j+16 high) dotted with x.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_mxfp4_ggml(row: &[u8], x: &[f32]) -> f32 {
        let nb = (row.len() / 17).min(x.len() / 32);
        let mut acc = _mm256_setzero_ps();
        for (ib, blk) in row.chunks_exact(17).enumerate().take(nb) {
            // SAFETY: blk has 17 bytes (qs at 1..17); ib < nb keeps the 32 floats in bounds.
            let (lo, hi) = fp4_pairs(blk.as_ptr().add(1));
            let s = block_dot(lo, hi, x.as_ptr().add(32 * ib));
            acc = _mm256_fmadd_ps(_mm256_set1_ps(e8m0_to_fp32_half(blk[0])), s, acc);
        }
        hsum(acc)
    }

    /// One BF16 row (little-endian u16) dotted with x: decode by shift, fused with the dot.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_bf16(row: &[u8], x: &[f32]) -> f32 {
        let n = (row.len() / 2).min(x.len());
        let (pr, px) = (row.as_ptr(), x.as_ptr());
        let mut acc = [_mm256_setzero_ps(); 2];
        let mut i = 0;
        let load = |p: *const u8| {
            _mm256_castsi256_ps(_mm256_slli_epi32(
                _mm256_cvtepu16_epi32(_mm_loadu_si128(p as *const __m128i)),
                16,
            ))
        };
        // SAFETY: i + 16 <= n (or i + 8 <= n): 16 (8) u16 = 32 (16) bytes inside row, 16 (8) floats inside x.
        while i + 16 <= n {
            acc[0] = _mm256_fmadd_ps(load(pr.add(2 * i)), _mm256_loadu_ps(px.add(i)), acc[0]);
            acc[1] = _mm256_fmadd_ps(
                load(pr.add(2 * i + 16)),
                _mm256_loadu_ps(px.add(i + 8)),
                acc[1],
            );
            i += 16;
        }
        while i + 8 <= n {
            acc[0] = _mm256_fmadd_ps(load(pr.add(2 * i)), _mm256_loadu_ps(px.add(i)), acc[0]);
            i += 8;
        }
        let mut total = hsum(_mm256_add_ps(acc[0], acc[1]));
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
