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

/// Whether the CPU has AVX-VNNI (CPUID leaf 7 sub-leaf 1, EAX bit 4) and `OSSIFY_NO_VNNI` is unset: the
/// integer dots then use `vpdpbusd` (same integers, fewer instructions).
#[cfg(target_arch = "x86_64")]
fn has_avx_vnni() -> bool {
    use std::sync::OnceLock;
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        // SAFETY: CPUID is available on every x86_64 CPU (the intrinsic is safe from Rust 1.87 on, unsafe at the
        // 1.85 MSRV, hence the allow).
        #[allow(unused_unsafe)]
        let r = unsafe { std::arch::x86_64::__cpuid_count(7, 1) };
        std::env::var_os("OSSIFY_NO_VNNI").is_none() && (r.eax >> 4) & 1 == 1
    })
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::super::decode::{e8m0_to_fp32_half, KVALUES_MXFP4};

    /// `KVALUES_MXFP4` + 12: the FP4 codes made unsigned for `maddubs`.
    const KVALUES_MXFP4_U12: [u8; 16] = {
        let mut u = [0u8; 16];
        let mut i = 0;
        while i < 16 {
            u[i] = (KVALUES_MXFP4[i] + 12) as u8;
            i += 1;
        }
        u
    };

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
    /// Σ over 32 lanes of `a · b` (i8 × i8) as 8 i32 partial sums, as ggml's `mul_add_epi8` + `madd(1)`:
    /// |a| ≤ 128 and |b| ≤ 127 keep every i16 pair sum in range.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn i8_dot32(a: __m256i, b: __m256i) -> __m256 {
        let ax = _mm256_sign_epi8(a, a);
        let sy = _mm256_sign_epi8(b, a);
        let p16 = _mm256_maddubs_epi16(ax, sy);
        _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, _mm256_set1_epi16(1)))
    }

    /// FP4 codes plus 12 (so unsigned, 0..=24) for 16 bytes of nibbles: (low nibbles, high nibbles).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn fp4_pairs_u(q: *const u8) -> (__m128i, __m128i) {
        let lut = _mm_loadu_si128(KVALUES_MXFP4_U12.as_ptr() as *const __m128i);
        let m4 = _mm_set1_epi8(0x0f);
        let b = _mm_loadu_si128(q as *const __m128i);
        let lo = _mm_shuffle_epi8(lut, _mm_and_si128(b, m4));
        let hi = _mm_shuffle_epi8(lut, _mm_and_si128(_mm_srli_epi16(b, 4), m4));
        (lo, hi)
    }

    /// Lane sums (4 bytes each) of 32 unsigned weight codes · 32 signed activations, plus `nk` (minus the same
    /// lane sums of 12 · x): exactly the signed products' lane sums, as f32. AVX2: `maddubs` (cannot saturate:
    /// 24 · 127 · 2 < 32767) and `madd`; `VNNI`: one AVX-VNNI `vpdpbusd` accumulating into `nk`. Same integers.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn u12_dot32<const VNNI: bool>(w: __m256i, x: __m256i, nk: __m256i) -> __m256 {
        let p = if VNNI {
            let mut r = nk;
            // SAFETY: only reached when CPUID reports AVX-VNNI (see `has_avx_vnni`); registers only.
            std::arch::asm!(
                "{{vex}} vpdpbusd {r}, {w}, {x}",
                r = inout(ymm_reg) r,
                w = in(ymm_reg) w,
                x = in(ymm_reg) x,
                options(pure, nomem, nostack, preserves_flags)
            );
            r
        } else {
            let p = _mm256_madd_epi16(_mm256_maddubs_epi16(w, x), _mm256_set1_epi16(1));
            _mm256_add_epi32(p, nk)
        };
        _mm256_cvtepi32_ps(p)
    }

    /// One MXFP4 row · Q8_0 activations with the weights as codes + 12 (no sign fix-ups in the loop); `k` holds
    /// per block the 8 lane sums of −12 · x. `hf`: the HF / OpenAI pair (`blocks` 16 bytes and `scales` 1 byte
    /// per block), else ggml blocks (17 bytes) in `blocks`. Even blocks accumulate apart from odd ones.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_mxfp4_q8<const VNNI: bool>(
        hf: bool,
        blocks: &[u8],
        scales: &[u8],
        d: &[f32],
        k: &[i32],
        qs: &[i8],
    ) -> f32 {
        let nb = if hf {
            scales.len().min(blocks.len() / 16)
        } else {
            blocks.len() / 17
        }
        .min(d.len())
        .min(k.len() / 8)
        .min(qs.len() / 32);
        let mut acc = [_mm256_setzero_ps(); 2];
        for ib in 0..nb {
            // SAFETY: ib < nb keeps the source block, 32 bytes of qs and 8 i32 of k in bounds.
            let (w, e) = if hf {
                let (lo, hi) = fp4_pairs_u(blocks.as_ptr().add(16 * ib));
                (
                    _mm256_set_m128i(_mm_unpackhi_epi8(lo, hi), _mm_unpacklo_epi8(lo, hi)),
                    scales[ib],
                )
            } else {
                let blk = blocks.as_ptr().add(17 * ib);
                let (lo, hi) = fp4_pairs_u(blk.add(1));
                (_mm256_set_m128i(hi, lo), *blk)
            };
            let x = _mm256_loadu_si256(qs.as_ptr().add(32 * ib) as *const __m256i);
            let kk = _mm256_loadu_si256(k.as_ptr().add(8 * ib) as *const __m256i);
            let sc = _mm256_set1_ps(e8m0_to_fp32_half(e) * d[ib]);
            if ib & 1 == 0 {
                acc[0] = _mm256_fmadd_ps(sc, u12_dot32::<VNNI>(w, x, kk), acc[0]);
            } else {
                acc[1] = _mm256_fmadd_ps(sc, u12_dot32::<VNNI>(w, x, kk), acc[1]);
            }
        }
        hsum(_mm256_add_ps(acc[0], acc[1]))
    }

    /// Decodes an MXFP4 row into codes + 12 (u8, element order, 32 per block) and block scales (E8M0 halved).
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn decode_mxfp4_u12(
        hf: bool,
        blocks: &[u8],
        scales: &[u8],
        wq: &mut [u8],
        wd: &mut [f32],
    ) {
        let nb = if hf {
            scales.len().min(blocks.len() / 16)
        } else {
            blocks.len() / 17
        }
        .min(wd.len())
        .min(wq.len() / 32);
        for ib in 0..nb {
            // SAFETY: ib < nb keeps the source block and 32 bytes of wq in bounds.
            let dst = wq.as_mut_ptr().add(32 * ib) as *mut __m128i;
            if hf {
                let (lo, hi) = fp4_pairs_u(blocks.as_ptr().add(16 * ib));
                _mm_storeu_si128(dst, _mm_unpacklo_epi8(lo, hi));
                _mm_storeu_si128(dst.add(1), _mm_unpackhi_epi8(lo, hi));
                wd[ib] = e8m0_to_fp32_half(scales[ib]);
            } else {
                let blk = blocks.as_ptr().add(17 * ib);
                let (lo, hi) = fp4_pairs_u(blk.add(1));
                _mm_storeu_si128(dst, lo);
                _mm_storeu_si128(dst.add(1), hi);
                wd[ib] = e8m0_to_fp32_half(*blk);
            }
        }
    }

    /// One pre-decoded MXFP4 row (codes + 12, [`decode_mxfp4_u12`]) against four tokens: the weights are loaded
    /// once per block for all four. Per token the same operations in the same order as [`dot_mxfp4_q8`], so the
    /// results are bit-identical to it.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_u12_q8_x4<const VNNI: bool>(
        wq: &[u8],
        wd: &[f32],
        d: [&[f32]; 4],
        k: [&[i32]; 4],
        qs: [&[i8]; 4],
    ) -> [f32; 4] {
        let mut nb = wd.len().min(wq.len() / 32);
        for t in 0..4 {
            nb = nb.min(d[t].len()).min(k[t].len() / 8).min(qs[t].len() / 32);
        }
        let mut a0 = [_mm256_setzero_ps(); 4];
        let mut a1 = [_mm256_setzero_ps(); 4];
        macro_rules! block {
            ($ib:expr, $acc:ident) => {{
                let ib = $ib;
                let w = _mm256_loadu_si256(wq.as_ptr().add(32 * ib) as *const __m256i);
                // Broadcast loads and a vector multiply: the same product as `wd · d` in scalar.
                let s = _mm256_broadcast_ss(&*wd.as_ptr().add(ib));
                for t in 0..4 {
                    let x = _mm256_loadu_si256(qs[t].as_ptr().add(32 * ib) as *const __m256i);
                    let kk = _mm256_loadu_si256(k[t].as_ptr().add(8 * ib) as *const __m256i);
                    let sc = _mm256_mul_ps(s, _mm256_broadcast_ss(&*d[t].as_ptr().add(ib)));
                    $acc[t] = _mm256_fmadd_ps(sc, u12_dot32::<VNNI>(w, x, kk), $acc[t]);
                }
            }};
        }
        let mut ib = 0;
        // SAFETY (both blocks): ib + 1 < nb (or ib < nb) keeps 32 bytes of wq and qs[t], 8 i32 of k[t] in bounds.
        while ib + 2 <= nb {
            block!(ib, a0);
            block!(ib + 1, a1);
            ib += 2;
        }
        if ib < nb {
            block!(ib, a0);
        }
        [0, 1, 2, 3].map(|t| hsum(_mm256_add_ps(a0[t], a1[t])))
    }

    /// One row of ggml Q8_0 blocks · Q8_0 activations.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_q8_0_q8(row: &[u8], d: &[f32], qs: &[i8]) -> f32 {
        let nb = (row.len() / 34).min(d.len()).min(qs.len() / 32);
        let mut acc = [_mm256_setzero_ps(); 2];
        for ib in 0..nb {
            // SAFETY: ib < nb keeps the 34-byte block and 32 bytes of qs in bounds.
            let blk = row.as_ptr().add(34 * ib);
            let dw = ossify_formats::quant::fp16_to_fp32(u16::from_le_bytes([*blk, *blk.add(1)]));
            let w = _mm256_loadu_si256(blk.add(2) as *const __m256i);
            let x = _mm256_loadu_si256(qs.as_ptr().add(32 * ib) as *const __m256i);
            let sc = _mm256_set1_ps(dw * d[ib]);
            acc[ib & 1] = _mm256_fmadd_ps(sc, i8_dot32(w, x), acc[ib & 1]);
        }
        hsum(_mm256_add_ps(acc[0], acc[1]))
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
    /// MXFP4 row · Q8_0 activations (`d` scales, `k` 8 lane sums of 12 · x per block, `qs` codes); `hf` picks
    /// the layout.
    #[inline]
    pub fn dot_mxfp4_q8(
        self,
        hf: bool,
        blocks: &[u8],
        scales: &[u8],
        d: &[f32],
        k: &[i32],
        qs: &[i8],
    ) -> f32 {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `dot`.
        unsafe {
            if has_avx_vnni() {
                x86::dot_mxfp4_q8::<true>(hf, blocks, scales, d, k, qs)
            } else {
                x86::dot_mxfp4_q8::<false>(hf, blocks, scales, d, k, qs)
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (hf, blocks, scales, d, k, qs);
            f32::NAN
        }
    }

    /// MXFP4 row -> codes + 12 and block scales.
    #[inline]
    pub fn decode_mxfp4_u12(
        self,
        hf: bool,
        blocks: &[u8],
        scales: &[u8],
        wq: &mut [u8],
        wd: &mut [f32],
    ) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `dot`.
        unsafe {
            x86::decode_mxfp4_u12(hf, blocks, scales, wq, wd)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (hf, blocks, scales, wq, wd);
        }
    }

    /// A pre-decoded MXFP4 row (codes + 12) against four tokens.
    #[inline]
    pub fn dot_u12_q8_x4(
        self,
        wq: &[u8],
        wd: &[f32],
        d: [&[f32]; 4],
        k: [&[i32]; 4],
        qs: [&[i8]; 4],
    ) -> [f32; 4] {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `dot`.
        unsafe {
            if has_avx_vnni() {
                x86::dot_u12_q8_x4::<true>(wq, wd, d, k, qs)
            } else {
                x86::dot_u12_q8_x4::<false>(wq, wd, d, k, qs)
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (wq, wd, d, k, qs);
            [f32::NAN; 4]
        }
    }

    /// ggml Q8_0 row · Q8_0 activations.
    #[inline]
    pub fn dot_q8_0_q8(self, row: &[u8], d: &[f32], qs: &[i8]) -> f32 {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `dot`.
        unsafe {
            x86::dot_q8_0_q8(row, d, qs)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (row, d, qs);
            f32::NAN
        }
    }
}
