//! SIMD fast paths for the matvec inner loops; every one has a scalar twin (the decoders of [`super::decode`]
//! followed by [`super::matmul::dot_scalar`], or [`super::q8::vec_dot_q8_ref`]) and a test that they agree.
//!
//! Which implementation runs is an [`Isa`]: decided once per process from the program's one SIMD decision
//! (`ossify_formats::cpu`, capped by `OSSIFY_SIMD`), or picked explicitly by tests among
//! [`Isa::available`], so every path this CPU supports is checked in one test run.
//!
//! All `unsafe` of the kernels lives here. The x86 functions carry `#[target_feature]` and are only called through
//! the tokens [`Avx2`] and [`Avx512`], which exist only when the CPU reports their features. Loads are unaligned
//! (`loadu`) and stay inside slices whose lengths are checked before the loop.
//!
//! The integer dots (MXFP4 × Q8_0, Q8_0 × Q8_0) give the same floats on every path: 8 lane sums of 4 products
//! per block, exact in i32 (`maddubs` + `madd`, or one `vpdpbusd`), scaled into even / odd block accumulators
//! by FMA, then summed as ggml's `hsum_float_8` does; the 512-bit kernels hold an even and an odd block in the
//! two halves of one register, which is the same arithmetic.

use ossify_formats::cpu::{cpu_features, detected, CpuFeatures};

/// Which encoding of `vpdpbusd` the 256-bit integer dots use, if any (same integers as `maddubs` + `madd`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Vnni {
    No,
    /// AVX-VNNI (VEX).
    Avx,
    /// AVX-512 VNNI with VL (EVEX, 256-bit).
    Avx512,
}

/// Proof that AVX2 and FMA are available on this CPU (and which `vpdpbusd`, if any).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Avx2 {
    vnni: Vnni,
}

/// Proof that AVX-512 F/BW/VL/DQ/VNNI are available (and whether AVX-512 BF16 is).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Avx512 {
    bf16: bool,
}

/// The implementation the kernels run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// Portable Rust only.
    Scalar,
    Avx2(Avx2),
    /// The 512-bit kernels where there are some, the AVX2 ones (with AVX-512 VNNI) elsewhere.
    Avx512(Avx512),
}

impl Isa {
    fn best(f: CpuFeatures) -> Isa {
        if f.avx512() {
            Isa::Avx512(Avx512 {
                bf16: f.avx512_bf16(),
            })
        } else if f.avx2() {
            Isa::Avx2(Avx2 {
                vnni: if f.avx_vnni() { Vnni::Avx } else { Vnni::No },
            })
        } else {
            Isa::Scalar
        }
    }

    /// The implementation of this process: the best this CPU has under the `OSSIFY_SIMD` cap.
    #[inline]
    pub fn detect() -> Isa {
        Isa::best(cpu_features())
    }

    /// Every distinct implementation this CPU can run (ignoring `OSSIFY_SIMD`), scalar first: what the tests
    /// compare with the scalar twins.
    pub fn available() -> Vec<Isa> {
        let f = detected();
        let mut v = vec![Isa::Scalar];
        if f.avx2() {
            v.push(Isa::Avx2(Avx2 { vnni: Vnni::No }));
            if f.avx_vnni() {
                v.push(Isa::Avx2(Avx2 { vnni: Vnni::Avx }));
            }
        }
        if f.avx512() {
            v.push(Isa::Avx2(Avx2 { vnni: Vnni::Avx512 }));
            v.push(Isa::Avx512(Avx512 { bf16: false }));
            if f.avx512_bf16() {
                v.push(Isa::Avx512(Avx512 { bf16: true }));
            }
        }
        v
    }

    /// The AVX2 kernels this implementation may use (with AVX-512 VNNI under an [`Isa::Avx512`]).
    #[inline]
    pub fn avx2(self) -> Option<Avx2> {
        match self {
            Isa::Scalar => None,
            Isa::Avx2(a) => Some(a),
            Isa::Avx512(_) => Some(Avx2 { vnni: Vnni::Avx512 }),
        }
    }

    /// The 512-bit kernels, if this implementation has them.
    #[inline]
    pub fn avx512(self) -> Option<Avx512> {
        match self {
            Isa::Avx512(a) => Some(a),
            _ => None,
        }
    }
}

impl Avx512 {
    /// Whether `vdpbf16ps` is there.
    pub fn has_bf16(self) -> bool {
        self.bf16
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use ossify_formats::quant::q8_0::QK8_0;
    use ossify_formats::quant::{fp16_to_fp32, BlockMxfp4, BlockQ8_0, QK_MXFP4};

    use super::super::decode::{e8m0_to_fp32_half, KVALUES_MXFP4};

    /// Elements per block (MXFP4 and Q8_0 alike), bytes of a ggml MXFP4 block, bytes of nibbles per MXFP4 block
    /// (the HF pair's `blocks`), bytes of a Q8_0 block: the block structs' sizes, not restated.
    const QK: usize = QK8_0;
    const BMX: usize = BlockMxfp4::SIZE;
    const NIB: usize = QK_MXFP4 / 2;
    const BQ8: usize = BlockQ8_0::SIZE;

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
    pub unsafe fn hsum(v: __m256) -> f32 {
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
        let nb = scales.len().min(blocks.len() / NIB).min(dst.len() / QK);
        for (ib, &e) in scales.iter().enumerate().take(nb) {
            // SAFETY: ib < nb keeps 16 bytes of blocks and 32 floats of dst in bounds.
            let (lo, hi) = fp4_pairs(blocks.as_ptr().add(NIB * ib));
            block_store(
                _mm_unpacklo_epi8(lo, hi),
                _mm_unpackhi_epi8(lo, hi),
                e8m0_to_fp32_half(e),
                dst.as_mut_ptr().add(QK * ib),
            );
        }
    }

    /// Decodes a row of ggml MXFP4 blocks into `dst`.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn decode_mxfp4_ggml(row: &[u8], dst: &mut [f32]) {
        let nb = (row.len() / BMX).min(dst.len() / QK);
        for (ib, blk) in row.chunks_exact(BMX).enumerate().take(nb) {
            // SAFETY: blk has BMX bytes; ib < nb keeps 32 floats of dst in bounds.
            let (lo, hi) = fp4_pairs(blk.as_ptr().add(1));
            block_store(
                lo,
                hi,
                e8m0_to_fp32_half(blk[0]),
                dst.as_mut_ptr().add(QK * ib),
            );
        }
    }

    /// One row of the HF / OpenAI MXFP4 pair dotted with x: decode (2j low nibble, 2j+1 high) fused with the
    /// dot. Requires `blocks.len() == 16 * scales.len()` and `x.len() == 32 * scales.len()`.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_mxfp4_hf(blocks: &[u8], scales: &[u8], x: &[f32]) -> f32 {
        let nb = scales.len().min(blocks.len() / NIB).min(x.len() / QK);
        let mut acc = [_mm256_setzero_ps(); 2];
        for (ib, &e) in scales.iter().enumerate().take(nb) {
            // SAFETY: ib < nb, so bytes [16 ib, 16 ib + 16) and floats [32 ib, 32 ib + 32) are in bounds.
            let (lo, hi) = fp4_pairs(blocks.as_ptr().add(NIB * ib));
            // Element order: lo0 hi0 lo1 hi1 ...
            let v0 = _mm_unpacklo_epi8(lo, hi);
            let v1 = _mm_unpackhi_epi8(lo, hi);
            let s = block_dot(v0, v1, x.as_ptr().add(QK * ib));
            // The scale is a power of two: scaling the block sum equals scaling each value.
            acc[ib & 1] = _mm256_fmadd_ps(_mm256_set1_ps(e8m0_to_fp32_half(e)), s, acc[ib & 1]);
        }
        hsum(_mm256_add_ps(acc[0], acc[1]))
    }

    /// One row of ggml MXFP4 blocks (e, qs[16]: j low nibble, j+16 high) dotted with x.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_mxfp4_ggml(row: &[u8], x: &[f32]) -> f32 {
        let nb = (row.len() / BMX).min(x.len() / QK);
        let mut acc = [_mm256_setzero_ps(); 2];
        for (ib, blk) in row.chunks_exact(BMX).enumerate().take(nb) {
            // SAFETY: blk has BMX bytes (qs after the scale byte); ib < nb keeps the 32 floats in bounds.
            let (lo, hi) = fp4_pairs(blk.as_ptr().add(1));
            let s = block_dot(lo, hi, x.as_ptr().add(QK * ib));
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
    /// Lane sums of 4 products (u8 × i8) added to `acc`: `maddubs` + `madd` (cannot saturate for the operands
    /// used here: codes + 12 ≤ 24, or |a| ≤ 128 against |b| ≤ 127, keep each i16 pair sum in range), or one
    /// `vpdpbusd`. The same integers either way.
    pub trait IDot {
        unsafe fn dp(acc: __m256i, a: __m256i, b: __m256i) -> __m256i;
    }

    /// AVX2: `maddubs` + `madd`.
    pub struct Madd;
    /// AVX-VNNI `vpdpbusd` (VEX).
    pub struct AvxVnni;
    /// AVX-512 VNNI `vpdpbusd` on 256-bit registers (EVEX, needs VL).
    pub struct Vnni512;

    impl IDot for Madd {
        #[inline(always)]
        unsafe fn dp(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
            let p = _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), _mm256_set1_epi16(1));
            _mm256_add_epi32(p, acc)
        }
    }

    impl IDot for AvxVnni {
        #[inline(always)]
        unsafe fn dp(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
            _mm256_dpbusd_avx_epi32(acc, a, b)
        }
    }

    impl IDot for Vnni512 {
        #[inline(always)]
        unsafe fn dp(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
            _mm256_dpbusd_epi32(acc, a, b)
        }
    }

    /// Σ over 32 lanes of `a · b` (i8 × i8) as 8 i32 partial sums, as ggml's `mul_sum_i8_pairs_float`.
    #[inline(always)]
    unsafe fn i8_dot32<D: IDot>(a: __m256i, b: __m256i) -> __m256 {
        let ax = _mm256_sign_epi8(a, a);
        let sy = _mm256_sign_epi8(b, a);
        _mm256_cvtepi32_ps(D::dp(_mm256_setzero_si256(), ax, sy))
    }

    /// FP4 codes plus 12 (so unsigned, 0..=24) for 16 bytes of nibbles: (low nibbles, high nibbles).
    #[inline(always)]
    unsafe fn fp4_pairs_u(q: *const u8) -> (__m128i, __m128i) {
        let lut = _mm_loadu_si128(KVALUES_MXFP4_U12.as_ptr() as *const __m128i);
        let m4 = _mm_set1_epi8(0x0f);
        let b = _mm_loadu_si128(q as *const __m128i);
        let lo = _mm_shuffle_epi8(lut, _mm_and_si128(b, m4));
        let hi = _mm_shuffle_epi8(lut, _mm_and_si128(_mm_srli_epi16(b, 4), m4));
        (lo, hi)
    }

    /// One MXFP4 block as 32 codes + 12 in element order, and its scale byte. `hf`: the HF / OpenAI pair
    /// (`blocks` 16 bytes and `scales` 1 byte per block), else ggml blocks (17 bytes) in `blocks`. The caller
    /// keeps `ib` inside both.
    #[inline(always)]
    pub unsafe fn mxfp4_block_u12(
        hf: bool,
        blocks: &[u8],
        scales: &[u8],
        ib: usize,
    ) -> (__m256i, u8) {
        if hf {
            let (lo, hi) = fp4_pairs_u(blocks.as_ptr().add(NIB * ib));
            (
                _mm256_set_m128i(_mm_unpackhi_epi8(lo, hi), _mm_unpacklo_epi8(lo, hi)),
                *scales.get_unchecked(ib),
            )
        } else {
            let blk = blocks.as_ptr().add(BMX * ib);
            let (lo, hi) = fp4_pairs_u(blk.add(1));
            (_mm256_set_m128i(hi, lo), *blk)
        }
    }

    /// Blocks both an MXFP4 row and its activations hold.
    #[inline(always)]
    pub fn mxfp4_q8_blocks(
        hf: bool,
        blocks: &[u8],
        scales: &[u8],
        d: &[f32],
        k: &[i32],
        qs: &[i8],
    ) -> usize {
        if hf {
            scales.len().min(blocks.len() / NIB)
        } else {
            blocks.len() / BMX
        }
        .min(d.len())
        .min(k.len() / 8)
        .min(qs.len() / QK)
    }

    /// One MXFP4 row · Q8_0 activations with the weights as codes + 12 (no sign fix-ups in the loop); `k` holds
    /// per block the 8 lane sums of −12 · x. Even blocks accumulate apart from odd ones.
    #[inline(always)]
    unsafe fn dot_mxfp4_q8_body<D: IDot>(
        hf: bool,
        blocks: &[u8],
        scales: &[u8],
        d: &[f32],
        k: &[i32],
        qs: &[i8],
    ) -> f32 {
        let nb = mxfp4_q8_blocks(hf, blocks, scales, d, k, qs);
        let mut acc = [_mm256_setzero_ps(); 2];
        for ib in 0..nb {
            // SAFETY: ib < nb keeps the source block, 32 bytes of qs and 8 i32 of k in bounds.
            let (w, e) = mxfp4_block_u12(hf, blocks, scales, ib);
            let x = _mm256_loadu_si256(qs.as_ptr().add(QK * ib) as *const __m256i);
            let kk = _mm256_loadu_si256(k.as_ptr().add(8 * ib) as *const __m256i);
            let sc = _mm256_set1_ps(e8m0_to_fp32_half(e) * d[ib]);
            let p = _mm256_cvtepi32_ps(D::dp(kk, w, x));
            acc[ib & 1] = _mm256_fmadd_ps(sc, p, acc[ib & 1]);
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
            scales.len().min(blocks.len() / NIB)
        } else {
            blocks.len() / BMX
        }
        .min(wd.len())
        .min(wq.len() / QK);
        for (ib, wdi) in wd.iter_mut().enumerate().take(nb) {
            // SAFETY: ib < nb keeps the source block and 32 bytes of wq in bounds.
            let (w, e) = mxfp4_block_u12(hf, blocks, scales, ib);
            _mm256_storeu_si256(wq.as_mut_ptr().add(QK * ib) as *mut __m256i, w);
            *wdi = e8m0_to_fp32_half(e);
        }
    }

    /// One pre-decoded MXFP4 row (codes + 12, [`decode_mxfp4_u12`]) against four tokens: the weights are loaded
    /// once per block for all four. Per token the same operations in the same order as [`dot_mxfp4_q8_body`], so
    /// the results are bit-identical to it.
    #[inline(always)]
    unsafe fn dot_u12_q8_x4_body<D: IDot>(
        wq: &[u8],
        wd: &[f32],
        d: [&[f32]; 4],
        k: [&[i32]; 4],
        qs: [&[i8]; 4],
    ) -> [f32; 4] {
        let mut nb = wd.len().min(wq.len() / QK);
        for t in 0..4 {
            nb = nb.min(d[t].len()).min(k[t].len() / 8).min(qs[t].len() / QK);
        }
        let mut a0 = [_mm256_setzero_ps(); 4];
        let mut a1 = [_mm256_setzero_ps(); 4];
        macro_rules! block {
            ($ib:expr, $acc:ident) => {{
                let ib = $ib;
                let w = _mm256_loadu_si256(wq.as_ptr().add(QK * ib) as *const __m256i);
                // Broadcast loads and a vector multiply: the same product as `wd · d` in scalar.
                let s = _mm256_broadcast_ss(&*wd.as_ptr().add(ib));
                for t in 0..4 {
                    let x = _mm256_loadu_si256(qs[t].as_ptr().add(QK * ib) as *const __m256i);
                    let kk = _mm256_loadu_si256(k[t].as_ptr().add(8 * ib) as *const __m256i);
                    let sc = _mm256_mul_ps(s, _mm256_broadcast_ss(&*d[t].as_ptr().add(ib)));
                    $acc[t] = _mm256_fmadd_ps(sc, _mm256_cvtepi32_ps(D::dp(kk, w, x)), $acc[t]);
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
    #[inline(always)]
    unsafe fn dot_q8_0_q8_body<D: IDot>(row: &[u8], d: &[f32], qs: &[i8]) -> f32 {
        let nb = (row.len() / BQ8).min(d.len()).min(qs.len() / QK);
        let mut acc = [_mm256_setzero_ps(); 2];
        for ib in 0..nb {
            // SAFETY: ib < nb keeps the block and 32 bytes of qs in bounds.
            let blk = row.as_ptr().add(BQ8 * ib);
            let dw = fp16_to_fp32(u16::from_le_bytes([*blk, *blk.add(1)]));
            let w = _mm256_loadu_si256(blk.add(2) as *const __m256i);
            let x = _mm256_loadu_si256(qs.as_ptr().add(QK * ib) as *const __m256i);
            let sc = _mm256_set1_ps(dw * d[ib]);
            acc[ib & 1] = _mm256_fmadd_ps(sc, i8_dot32::<D>(w, x), acc[ib & 1]);
        }
        hsum(_mm256_add_ps(acc[0], acc[1]))
    }

    /// The integer-dot kernels compiled once per `vpdpbusd` flavour, each with the features it needs.
    macro_rules! int_kernels {
        ($m:ident, $d:ty, $features:literal) => {
            pub mod $m {
                use super::*;

                #[target_feature(enable = $features)]
                pub unsafe fn dot_mxfp4_q8(
                    hf: bool,
                    blocks: &[u8],
                    scales: &[u8],
                    d: &[f32],
                    k: &[i32],
                    qs: &[i8],
                ) -> f32 {
                    dot_mxfp4_q8_body::<$d>(hf, blocks, scales, d, k, qs)
                }

                #[target_feature(enable = $features)]
                pub unsafe fn dot_u12_q8_x4(
                    wq: &[u8],
                    wd: &[f32],
                    d: [&[f32]; 4],
                    k: [&[i32]; 4],
                    qs: [&[i8]; 4],
                ) -> [f32; 4] {
                    dot_u12_q8_x4_body::<$d>(wq, wd, d, k, qs)
                }

                #[target_feature(enable = $features)]
                pub unsafe fn dot_q8_0_q8(row: &[u8], d: &[f32], qs: &[i8]) -> f32 {
                    dot_q8_0_q8_body::<$d>(row, d, qs)
                }
            }
        };
    }
    int_kernels!(madd, Madd, "avx2,fma");
    int_kernels!(avxvnni, AvxVnni, "avx2,fma,avxvnni");
    int_kernels!(
        vnni512,
        Vnni512,
        "avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni"
    );
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
            match self.vnni {
                Vnni::No => x86::madd::dot_mxfp4_q8(hf, blocks, scales, d, k, qs),
                Vnni::Avx => x86::avxvnni::dot_mxfp4_q8(hf, blocks, scales, d, k, qs),
                Vnni::Avx512 => x86::vnni512::dot_mxfp4_q8(hf, blocks, scales, d, k, qs),
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
            match self.vnni {
                Vnni::No => x86::madd::dot_u12_q8_x4(wq, wd, d, k, qs),
                Vnni::Avx => x86::avxvnni::dot_u12_q8_x4(wq, wd, d, k, qs),
                Vnni::Avx512 => x86::vnni512::dot_u12_q8_x4(wq, wd, d, k, qs),
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
            match self.vnni {
                Vnni::No => x86::madd::dot_q8_0_q8(row, d, qs),
                Vnni::Avx => x86::avxvnni::dot_q8_0_q8(row, d, qs),
                Vnni::Avx512 => x86::vnni512::dot_q8_0_q8(row, d, qs),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (row, d, qs);
            f32::NAN
        }
    }
}

/// The 512-bit kernels (AVX-512 F/BW/VL/DQ/VNNI, and BF16 for the `bf16` ones). The integer dots are
/// bit-identical to the AVX2 ones: the low half of an accumulator holds what AVX2 keeps for even blocks, the
/// high half what it keeps for odd blocks.
#[cfg(target_arch = "x86_64")]
mod x86_512 {
    use std::arch::x86_64::*;

    use ossify_formats::quant::q8_0::QK8_0;
    use ossify_formats::quant::{fp16_to_fp32, BlockQ8_0};

    use super::super::decode::e8m0_to_fp32_half;
    use super::x86::{hsum, mxfp4_block_u12, mxfp4_q8_blocks, IDot, Vnni512};

    const QK: usize = QK8_0;
    const BQ8: usize = BlockQ8_0::SIZE;

    /// `[a; 8] ++ [b; 8]`.
    #[inline(always)]
    unsafe fn pair(a: f32, b: f32) -> __m512 {
        _mm512_insertf32x8::<1>(_mm512_set1_ps(a), _mm256_set1_ps(b))
    }

    /// Adds the two halves (even blocks + odd blocks, as AVX2's `acc[0] + acc[1]`) and sums the 8 lanes.
    #[inline(always)]
    unsafe fn hsum_halves(acc: __m512) -> f32 {
        hsum(_mm256_add_ps(
            _mm512_castps512_ps256(acc),
            _mm512_extractf32x8_ps::<1>(acc),
        ))
    }

    /// Two MXFP4 blocks (ib, ib + 1) as 64 codes + 12 in element order, and their scale bytes.
    #[inline(always)]
    unsafe fn mxfp4_pair_u12(
        hf: bool,
        blocks: &[u8],
        scales: &[u8],
        ib: usize,
    ) -> (__m512i, u8, u8) {
        let (w0, e0) = mxfp4_block_u12(hf, blocks, scales, ib);
        let (w1, e1) = mxfp4_block_u12(hf, blocks, scales, ib + 1);
        (
            _mm512_inserti64x4::<1>(_mm512_castsi256_si512(w0), w1),
            e0,
            e1,
        )
    }

    #[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")]
    pub unsafe fn dot_mxfp4_q8(
        hf: bool,
        blocks: &[u8],
        scales: &[u8],
        d: &[f32],
        k: &[i32],
        qs: &[i8],
    ) -> f32 {
        let nb = mxfp4_q8_blocks(hf, blocks, scales, d, k, qs);
        let mut acc = _mm512_setzero_ps();
        let mut ib = 0;
        // SAFETY: ib + 1 < nb keeps both source blocks, 64 bytes of qs and 16 i32 of k in bounds.
        while ib + 2 <= nb {
            let (w, e0, e1) = mxfp4_pair_u12(hf, blocks, scales, ib);
            let x = _mm512_loadu_si512(qs.as_ptr().add(QK * ib) as *const __m512i);
            let kk = _mm512_loadu_si512(k.as_ptr().add(8 * ib) as *const __m512i);
            let sc = pair(
                e8m0_to_fp32_half(e0) * d[ib],
                e8m0_to_fp32_half(e1) * d[ib + 1],
            );
            acc = _mm512_fmadd_ps(sc, _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(kk, w, x)), acc);
            ib += 2;
        }
        if ib < nb {
            // An even last block: the low half, as AVX2 adds it to its even accumulator.
            let (w, e) = mxfp4_block_u12(hf, blocks, scales, ib);
            let x = _mm256_loadu_si256(qs.as_ptr().add(QK * ib) as *const __m256i);
            let kk = _mm256_loadu_si256(k.as_ptr().add(8 * ib) as *const __m256i);
            let sc = _mm256_set1_ps(e8m0_to_fp32_half(e) * d[ib]);
            let p = _mm256_cvtepi32_ps(Vnni512::dp(kk, w, x));
            let lo = _mm256_fmadd_ps(sc, p, _mm512_castps512_ps256(acc));
            acc = _mm512_insertf32x8::<0>(acc, lo);
        }
        hsum_halves(acc)
    }

    #[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")]
    pub unsafe fn dot_u12_q8_x4(
        wq: &[u8],
        wd: &[f32],
        d: [&[f32]; 4],
        k: [&[i32]; 4],
        qs: [&[i8]; 4],
    ) -> [f32; 4] {
        let mut nb = wd.len().min(wq.len() / QK);
        for t in 0..4 {
            nb = nb.min(d[t].len()).min(k[t].len() / 8).min(qs[t].len() / QK);
        }
        let mut acc = [_mm512_setzero_ps(); 4];
        let mut ib = 0;
        // SAFETY: ib + 1 < nb keeps 64 bytes of wq and qs[t], 16 i32 of k[t], 2 floats of wd and d[t] in bounds.
        while ib + 2 <= nb {
            let w = _mm512_loadu_si512(wq.as_ptr().add(QK * ib) as *const __m512i);
            let (s0, s1) = (*wd.get_unchecked(ib), *wd.get_unchecked(ib + 1));
            for t in 0..4 {
                let x = _mm512_loadu_si512(qs[t].as_ptr().add(QK * ib) as *const __m512i);
                let kk = _mm512_loadu_si512(k[t].as_ptr().add(8 * ib) as *const __m512i);
                let sc = _mm512_mul_ps(
                    pair(s0, s1),
                    pair(*d[t].get_unchecked(ib), *d[t].get_unchecked(ib + 1)),
                );
                acc[t] = _mm512_fmadd_ps(
                    sc,
                    _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(kk, w, x)),
                    acc[t],
                );
            }
            ib += 2;
        }
        if ib < nb {
            let w = _mm256_loadu_si256(wq.as_ptr().add(QK * ib) as *const __m256i);
            let s = _mm256_set1_ps(wd[ib]);
            for t in 0..4 {
                let x = _mm256_loadu_si256(qs[t].as_ptr().add(QK * ib) as *const __m256i);
                let kk = _mm256_loadu_si256(k[t].as_ptr().add(8 * ib) as *const __m256i);
                let sc = _mm256_mul_ps(s, _mm256_set1_ps(d[t][ib]));
                let p = _mm256_cvtepi32_ps(Vnni512::dp(kk, w, x));
                let lo = _mm256_fmadd_ps(sc, p, _mm512_castps512_ps256(acc[t]));
                acc[t] = _mm512_insertf32x8::<0>(acc[t], lo);
            }
        }
        acc.map(|a| hsum_halves(a))
    }

    #[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")]
    pub unsafe fn dot_q8_0_q8(row: &[u8], d: &[f32], qs: &[i8]) -> f32 {
        let nb = (row.len() / BQ8).min(d.len()).min(qs.len() / QK);
        let scale = |blk: *const u8, ib: usize| {
            fp16_to_fp32(u16::from_le_bytes([*blk, *blk.add(1)])) * d[ib]
        };
        let mut acc = _mm512_setzero_ps();
        let zero = _mm512_setzero_si512();
        let mut ib = 0;
        // SAFETY: ib + 1 < nb keeps both blocks and 64 bytes of qs in bounds.
        while ib + 2 <= nb {
            let (b0, b1) = (row.as_ptr().add(BQ8 * ib), row.as_ptr().add(BQ8 * (ib + 1)));
            let w = _mm512_inserti64x4::<1>(
                _mm512_castsi256_si512(_mm256_loadu_si256(b0.add(2) as *const __m256i)),
                _mm256_loadu_si256(b1.add(2) as *const __m256i),
            );
            let x = _mm512_loadu_si512(qs.as_ptr().add(QK * ib) as *const __m512i);
            // |w| against x with w's sign: the u8 × i8 form of w · x (ggml's `mul_sum_i8_pairs_acc_int32x16`).
            let sy = _mm512_mask_sub_epi8(x, _mm512_movepi8_mask(w), zero, x);
            let p = _mm512_dpbusd_epi32(zero, _mm512_abs_epi8(w), sy);
            let sc = pair(scale(b0, ib), scale(b1, ib + 1));
            acc = _mm512_fmadd_ps(sc, _mm512_cvtepi32_ps(p), acc);
            ib += 2;
        }
        if ib < nb {
            let b0 = row.as_ptr().add(BQ8 * ib);
            let w = _mm256_loadu_si256(b0.add(2) as *const __m256i);
            let x = _mm256_loadu_si256(qs.as_ptr().add(QK * ib) as *const __m256i);
            let p = Vnni512::dp(
                _mm256_setzero_si256(),
                _mm256_sign_epi8(w, w),
                _mm256_sign_epi8(x, w),
            );
            let sc = _mm256_set1_ps(scale(b0, ib));
            let lo = _mm256_fmadd_ps(sc, _mm256_cvtepi32_ps(p), _mm512_castps512_ps256(acc));
            acc = _mm512_insertf32x8::<0>(acc, lo);
        }
        hsum_halves(acc)
    }

    /// 32 BF16 values at `p` (`n` ≤ 32 of them; the rest read as zero).
    #[inline(always)]
    unsafe fn load_bf16(p: *const u16, n: usize) -> __m512bh {
        let v = if n >= 32 {
            _mm512_loadu_si512(p as *const __m512i)
        } else {
            _mm512_maskz_loadu_epi16(((1u64 << n) - 1) as u32, p as *const i16)
        };
        std::mem::transmute::<__m512i, __m512bh>(v)
    }

    /// `out[j][k] = r[k] · x[j]` over `n` BF16 elements (rows as little-endian bytes, activations as u16), with
    /// `vdpbf16ps` (products exact, f32 sums): the kernel of BF16 weights in the q8 precision, where the
    /// activations are rounded to BF16 as ggml's CPU backend rounds them.
    #[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")]
    pub unsafe fn dot4x2_bf16(r: [&[u8]; 4], x: [&[u16]; 2], n: usize) -> [[f32; 4]; 2] {
        let n = r
            .iter()
            .map(|s| s.len() / 2)
            .chain(x.iter().map(|s| s.len()))
            .fold(n, |m, l| m.min(l));
        let p = r.map(|s| s.as_ptr() as *const u16);
        let mut a0 = [_mm512_setzero_ps(); 4];
        let mut a1 = [_mm512_setzero_ps(); 4];
        let mut i = 0;
        // SAFETY: the loads cover [i, i + min(32, n - i)) with i < n <= every slice's length.
        while i < n {
            let m = (n - i).min(32);
            let x0 = load_bf16(x[0].as_ptr().add(i), m);
            let x1 = load_bf16(x[1].as_ptr().add(i), m);
            for k in 0..4 {
                let w = load_bf16(p[k].add(i), m);
                a0[k] = _mm512_dpbf16_ps(a0[k], w, x0);
                a1[k] = _mm512_dpbf16_ps(a1[k], w, x1);
            }
            i += 32;
        }
        [
            a0.map(|a| _mm512_reduce_add_ps(a)),
            a1.map(|a| _mm512_reduce_add_ps(a)),
        ]
    }

    /// One BF16 row · BF16 activations, as [`dot4x2_bf16`] for one pair.
    #[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")]
    pub unsafe fn dot_bf16_bf16(row: &[u8], x: &[u16]) -> f32 {
        let n = (row.len() / 2).min(x.len());
        let p = row.as_ptr() as *const u16;
        let mut acc = [_mm512_setzero_ps(); 4];
        let mut i = 0;
        // SAFETY: i + 128 <= n, then [i, i + min(32, n - i)) with i < n.
        while i + 128 <= n {
            for (k, a) in acc.iter_mut().enumerate() {
                let j = i + 32 * k;
                *a = _mm512_dpbf16_ps(
                    *a,
                    load_bf16(p.add(j), 32),
                    load_bf16(x.as_ptr().add(j), 32),
                );
            }
            i += 128;
        }
        while i < n {
            let m = (n - i).min(32);
            acc[0] = _mm512_dpbf16_ps(
                acc[0],
                load_bf16(p.add(i), m),
                load_bf16(x.as_ptr().add(i), m),
            );
            i += 32;
        }
        _mm512_reduce_add_ps(_mm512_add_ps(
            _mm512_add_ps(acc[0], acc[1]),
            _mm512_add_ps(acc[2], acc[3]),
        ))
    }
}

impl Avx512 {
    /// As [`Avx2::dot_mxfp4_q8`], bit-identical to it.
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
        // SAFETY: an `Avx512` exists only when the CPU has the features; the function checks its own bounds.
        unsafe {
            x86_512::dot_mxfp4_q8(hf, blocks, scales, d, k, qs)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (hf, blocks, scales, d, k, qs);
            f32::NAN
        }
    }

    /// As [`Avx2::dot_u12_q8_x4`], bit-identical to it.
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
        // SAFETY: as in `dot_mxfp4_q8`.
        unsafe {
            x86_512::dot_u12_q8_x4(wq, wd, d, k, qs)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (wq, wd, d, k, qs);
            [f32::NAN; 4]
        }
    }

    /// As [`Avx2::dot_q8_0_q8`], bit-identical to it.
    #[inline]
    pub fn dot_q8_0_q8(self, row: &[u8], d: &[f32], qs: &[i8]) -> f32 {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `dot_mxfp4_q8`.
        unsafe {
            x86_512::dot_q8_0_q8(row, d, qs)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (row, d, qs);
            f32::NAN
        }
    }

    /// BF16 rows · BF16 activations (`vdpbf16ps`), `out[j][k] = r[k] · x[j]`; `None` without AVX-512 BF16.
    #[inline]
    pub fn dot4x2_bf16(self, r: [&[u8]; 4], x: [&[u16]; 2], n: usize) -> Option<[[f32; 4]; 2]> {
        if !self.bf16 {
            return None;
        }
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `bf16` is set only when the CPU has AVX-512 BF16; the function checks its own bounds.
        unsafe {
            Some(x86_512::dot4x2_bf16(r, x, n))
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (r, x, n);
            None
        }
    }

    /// One BF16 row · BF16 activations; `None` without AVX-512 BF16.
    #[inline]
    pub fn dot_bf16_bf16(self, row: &[u8], x: &[u16]) -> Option<f32> {
        if !self.bf16 {
            return None;
        }
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `dot4x2_bf16`.
        unsafe {
            Some(x86_512::dot_bf16_bf16(row, x))
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (row, x);
            None
        }
    }
}
