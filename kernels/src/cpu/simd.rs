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

/// Rows of an MXFP4 panel: one 32-bit lane per row of a 256-bit register, as ggml's `mxfp4_8x8` repack.
pub const PANEL_ROWS: usize = 8;
/// Bytes of one block of a panel: 8 registers (element groups 4g..4g+3) of 8 rows × 4 codes.
pub const PANEL_BLOCK: usize = 8 * 32;

/// Which encoding of `vpdpbusd` the 256-bit integer dots use, if any (same integers as `maddubs` + `madd`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Vnni {
    No,
    /// AVX-VNNI (VEX).
    Avx,
    /// AVX-512 VNNI with VL (EVEX, 256-bit).
    Avx512,
}

/// Proof that AVX2, FMA and F16C are available on this CPU (and which `vpdpbusd`, if any).
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
    /// Four f32 rows · four tokens, the same bits as two [`Avx2::dot4x2`] calls; `out[j][k] = r[k] · x[j]`.
    #[inline]
    pub fn dot4x4_f32(self, r: [&[f32]; 4], x: [&[f32]; 4], n: usize) -> [[f32; 4]; 4] {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: an `Avx512` exists only when the CPU has AVX-512 F/BW/VL/DQ (and AVX2 + FMA); the function
        // checks its own bounds.
        unsafe {
            x86_512::dot4x4_f32(r, x, n)
        }
        #[cfg(not(target_arch = "x86_64"))]
        x.map(|xj| r.map(|ri| super::matmul::dot_scalar(&ri[..n], &xj[..n])))
    }

    /// Whether `vdpbf16ps` is there.
    pub fn has_bf16(self) -> bool {
        self.bf16
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use ossify_formats::quant::q8_0::QK8_0;
    use ossify_formats::quant::{BlockMxfp4, BlockQ8_0, QK_MXFP4};

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
            // SAFETY: ib < nb, so bytes [16 ib, 16 ib + 16) and floats [32 ib, 32 ib + 32) are in bounds. The
            // prefetch (one per 64-byte line) may point past the row; a prefetch never faults.
            if ib % 4 == 0 {
                _mm_prefetch::<_MM_HINT_T0>(
                    blocks.as_ptr().wrapping_add(NIB * ib + PREFETCH_BYTES) as *const i8,
                );
            }
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
            // SAFETY: blk has BMX bytes (qs after the scale byte); ib < nb keeps the 32 floats in bounds. The
            // prefetch (about one per 64-byte line) may point past the row; a prefetch never faults.
            if ib % 4 == 0 {
                _mm_prefetch::<_MM_HINT_T0>(blk.as_ptr().wrapping_add(PREFETCH_BYTES) as *const i8);
            }
            let (lo, hi) = fp4_pairs(blk.as_ptr().add(1));
            let s = block_dot(lo, hi, x.as_ptr().add(QK * ib));
            acc[ib & 1] =
                _mm256_fmadd_ps(_mm256_set1_ps(e8m0_to_fp32_half(blk[0])), s, acc[ib & 1]);
        }
        hsum(_mm256_add_ps(acc[0], acc[1]))
    }

    /// One row of ggml Q8_0 blocks dotted with x, each weight decoded exactly (`q · d`, exact in f32) in registers:
    /// the same four accumulators over each block's 32 elements as [`dot`] over the decoded row, so the result is
    /// decode + [`dot`]'s bit for bit, without the round trip through a scratch row.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_q8_0(row: &[u8], x: &[f32]) -> f32 {
        let nb = (row.len() / BQ8).min(x.len() / QK);
        let px = x.as_ptr();
        let mut acc = [_mm256_setzero_ps(); 4];
        for (ib, blk) in row.chunks_exact(BQ8).enumerate().take(nb) {
            // SAFETY: blk has BQ8 bytes (f16 d, then 32 i8); ib < nb keeps floats [32 ib, 32 ib + 32) in x.
            if ib % 2 == 0 {
                _mm_prefetch::<_MM_HINT_T0>(blk.as_ptr().wrapping_add(PREFETCH_BYTES) as *const i8);
            }
            let dv = _mm256_set1_ps(fp16x4_to_fp32::<1>([blk.as_ptr()])[0]);
            let q = blk.as_ptr().add(2);
            for (k, a) in acc.iter_mut().enumerate() {
                let v = _mm_loadl_epi64(q.add(8 * k) as *const __m128i);
                let w = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v)), dv);
                *a = _mm256_fmadd_ps(w, _mm256_loadu_ps(px.add(QK * ib + 8 * k)), *a);
            }
        }
        hsum(_mm256_add_ps(
            _mm256_add_ps(acc[0], acc[1]),
            _mm256_add_ps(acc[2], acc[3]),
        ))
    }

    /// How far ahead of the weights being read a streaming dot prefetches: the hardware prefetcher stops at each
    /// 4 KiB page, so without this every new page of a memory-bound matvec starts with a full-latency miss.
    pub const PREFETCH_BYTES: usize = 2048;

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
        // The prefetch address may lie past the row (it is the next row in a matrix); a prefetch never faults.
        while i + 32 <= n {
            _mm_prefetch::<_MM_HINT_T0>(pr.wrapping_add(2 * i + PREFETCH_BYTES) as *const i8);
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

    /// The f16 scales at the start of `R` (at most 4) blocks, converted with F16C's `vcvtph2ps`: exact, the same
    /// values as [`ossify_formats::quant::fp16_to_fp32`] (NaN payloads included), in one instruction instead of one branchy
    /// conversion per row.
    /// The four halves are gathered in a general register and moved in whole with `vmovq`, which zeroes the rest
    /// of the vector register. Left to itself the compiler inserts them with `vpinsrw`, which merges with some
    /// register's old value: it chose the accumulator's, tying each block to the previous block's FMA (a
    /// 15-cycle chain per block instead of 4). The `asm!` keeps the move as written.
    #[inline(always)]
    unsafe fn fp16x4_to_fp32<const R: usize>(blk: [*const u8; R]) -> [f32; R] {
        let mut h = 0u64;
        for (r, b) in blk.iter().enumerate().take(4) {
            h |= u64::from((*b as *const u16).read_unaligned()) << (16 * r);
        }
        let x: __m128i;
        // SAFETY: a register-to-register move (AVX, implied by the callers' features); no memory, no flags.
        std::arch::asm!(
            "vmovq {x}, {h}",
            x = lateout(xmm_reg) x,
            h = in(reg) h,
            options(pure, nomem, nostack, preserves_flags)
        );
        let v = _mm_cvtph_ps(x);
        let mut f = [0f32; 4];
        _mm_storeu_ps(f.as_mut_ptr(), v);
        std::array::from_fn(|r| f[r])
    }

    /// `R` rows of ggml Q8_0 blocks × `N` tokens of Q8_0 activations with llama.cpp's `tinyBLAS_Q0_AVX`
    /// arithmetic (the path ggml's CPU backend takes for Q8_0 weights on x86): per (row, token) one 8-lane
    /// accumulator, `acc = fma(d_w · d_x, lane sums of 4 products, acc)` block after block, then `hsum`.
    #[inline(always)]
    unsafe fn q8_0_tile_body<D: IDot, const R: usize, const N: usize>(
        rows: [&[u8]; R],
        d: [&[f32]; N],
        qs: [&[i8]; N],
    ) -> [[f32; R]; N] {
        let mut nb = usize::MAX;
        for r in rows.iter() {
            nb = nb.min(r.len() / BQ8);
        }
        for t in 0..N {
            nb = nb.min(d[t].len()).min(qs[t].len() / QK);
        }
        let mut acc = [[_mm256_setzero_ps(); R]; N];
        for ib in 0..nb {
            // SAFETY: ib < nb keeps each row's block and each token's 32 codes and scale in bounds. A prefetch
            // address may lie past a row (it is the next row in a matrix); a prefetch never faults.
            let blk: [*const u8; R] = std::array::from_fn(|r| rows[r].as_ptr().add(BQ8 * ib));
            for b in blk {
                _mm_prefetch::<_MM_HINT_T0>(b.wrapping_add(PREFETCH_BYTES) as *const i8);
            }
            let w: [__m256i; R] =
                std::array::from_fn(|r| _mm256_loadu_si256(blk[r].add(2) as *const __m256i));
            let dw = fp16x4_to_fp32::<R>(blk);
            let aw: [__m256i; R] = std::array::from_fn(|r| _mm256_sign_epi8(w[r], w[r]));
            for t in 0..N {
                let x = _mm256_loadu_si256(qs[t].as_ptr().add(QK * ib) as *const __m256i);
                let dx = *d[t].get_unchecked(ib);
                for r in 0..R {
                    let p = D::dp(_mm256_setzero_si256(), aw[r], _mm256_sign_epi8(x, w[r]));
                    acc[t][r] = _mm256_fmadd_ps(
                        _mm256_set1_ps(dw[r] * dx),
                        _mm256_cvtepi32_ps(p),
                        acc[t][r],
                    );
                }
            }
        }
        acc.map(|a| a.map(|v| hsum(v)))
    }

    use super::{PANEL_BLOCK, PANEL_ROWS};

    /// The 8 × 8 transpose of 32-bit lanes: lane r of `out[g]` is lane g of `r[r]`.
    #[inline(always)]
    unsafe fn transpose8x8_epi32(r: [__m256i; 8]) -> [__m256i; 8] {
        let t0 = _mm256_unpacklo_epi32(r[0], r[1]);
        let t1 = _mm256_unpackhi_epi32(r[0], r[1]);
        let t2 = _mm256_unpacklo_epi32(r[2], r[3]);
        let t3 = _mm256_unpackhi_epi32(r[2], r[3]);
        let t4 = _mm256_unpacklo_epi32(r[4], r[5]);
        let t5 = _mm256_unpackhi_epi32(r[4], r[5]);
        let t6 = _mm256_unpacklo_epi32(r[6], r[7]);
        let t7 = _mm256_unpackhi_epi32(r[6], r[7]);
        let u0 = _mm256_unpacklo_epi64(t0, t2);
        let u1 = _mm256_unpackhi_epi64(t0, t2);
        let u2 = _mm256_unpacklo_epi64(t1, t3);
        let u3 = _mm256_unpackhi_epi64(t1, t3);
        let u4 = _mm256_unpacklo_epi64(t4, t6);
        let u5 = _mm256_unpackhi_epi64(t4, t6);
        let u6 = _mm256_unpacklo_epi64(t5, t7);
        let u7 = _mm256_unpackhi_epi64(t5, t7);
        [
            _mm256_permute2x128_si256::<0x20>(u0, u4),
            _mm256_permute2x128_si256::<0x20>(u1, u5),
            _mm256_permute2x128_si256::<0x20>(u2, u6),
            _mm256_permute2x128_si256::<0x20>(u3, u7),
            _mm256_permute2x128_si256::<0x31>(u0, u4),
            _mm256_permute2x128_si256::<0x31>(u1, u5),
            _mm256_permute2x128_si256::<0x31>(u2, u6),
            _mm256_permute2x128_si256::<0x31>(u3, u7),
        ]
    }

    /// Fills `panel` (`nb` blocks of [`PANEL_BLOCK`] bytes) from 8 rows of codes + 12 in element order
    /// (`rows`, 32 bytes per block): block ib's register g holds, in lane r, the codes of elements 4g..4g+3 of
    /// row r.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn build_panel(rows: &[u8], cols: usize, panel: &mut [u8]) {
        let whole = rows.len() >= PANEL_ROWS * cols;
        let nb = if whole { cols / QK } else { 0 }.min(panel.len() / PANEL_BLOCK);
        for ib in 0..nb {
            // SAFETY: ib < nb keeps 32 bytes of each of the 8 rows and PANEL_BLOCK bytes of panel in bounds.
            let r: [__m256i; 8] = std::array::from_fn(|i| {
                _mm256_loadu_si256(rows.as_ptr().add(i * cols + QK * ib) as *const __m256i)
            });
            let t = transpose8x8_epi32(r);
            for (g, v) in t.iter().enumerate() {
                _mm256_storeu_si256(
                    panel.as_mut_ptr().add(PANEL_BLOCK * ib + 32 * g) as *mut __m256i,
                    *v,
                );
            }
        }
    }

    /// One block of 8 ggml MXFP4 rows (`blk[r]` points at row r's block) as the panel's 8 registers of codes
    /// plus 12, register g for elements 4g..4g+3 of every row (low nibbles for g below 4, high ones above).
    /// Dword g of a block's 16 nibble bytes holds elements 4g..4g+3 (low) and 16+4g.. (high), so transposing
    /// the rows' dwords gives registers g and g + 4 at once.
    #[inline(always)]
    unsafe fn panel_block_ggml(blk: [*const u8; 8], lut: __m256i, m4: __m256i) -> [__m256i; 8] {
        let q = |r: usize| _mm_loadu_si128(blk[r].add(1) as *const __m128i);
        let m: [__m256i; 4] = std::array::from_fn(|i| _mm256_set_m128i(q(i + 4), q(i)));
        let u0 = _mm256_unpacklo_epi32(m[0], m[1]);
        let u1 = _mm256_unpackhi_epi32(m[0], m[1]);
        let u2 = _mm256_unpacklo_epi32(m[2], m[3]);
        let u3 = _mm256_unpackhi_epi32(m[2], m[3]);
        let qd = [
            _mm256_unpacklo_epi64(u0, u2),
            _mm256_unpackhi_epi64(u0, u2),
            _mm256_unpacklo_epi64(u1, u3),
            _mm256_unpackhi_epi64(u1, u3),
        ];
        let mut w = [_mm256_setzero_si256(); 8];
        for (g, v) in qd.iter().enumerate() {
            w[g] = _mm256_shuffle_epi8(lut, _mm256_and_si256(*v, m4));
            w[g + 4] = _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(*v, 4), m4));
        }
        w
    }

    /// Fills `panel` and its scales `ws` (8 per block) straight from 8 rows of ggml MXFP4 blocks (`rows[r]` the
    /// row's bytes): the same panel as decoding each row to codes + 12 and [`build_panel`], in half the work.
    /// Dword g of a block's 16 nibble bytes holds elements 4g..4g+3 (low nibbles) and 16+4g.. (high nibbles), so
    /// transposing the rows' dwords gives the panel's registers g and g + 4 at once.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn build_panel_ggml(rows: [&[u8]; 8], panel: &mut [u8], ws: &mut [f32]) {
        let mut nb = (panel.len() / PANEL_BLOCK).min(ws.len() / PANEL_ROWS);
        for r in rows.iter() {
            nb = nb.min(r.len() / BMX);
        }
        let lut = _mm256_broadcastsi128_si256(_mm_loadu_si128(
            KVALUES_MXFP4_U12.as_ptr() as *const __m128i
        ));
        let m4 = _mm256_set1_epi8(0x0f);
        for ib in 0..nb {
            // SAFETY: ib < nb keeps each row's block (BMX bytes), the panel block and 8 scales in bounds.
            let blk: [*const u8; 8] = std::array::from_fn(|r| rows[r].as_ptr().add(BMX * ib));
            let p = panel.as_mut_ptr().add(PANEL_BLOCK * ib);
            for (g, v) in panel_block_ggml(blk, lut, m4).iter().enumerate() {
                _mm256_storeu_si256(p.add(32 * g) as *mut __m256i, *v);
            }
            for (r, b) in blk.iter().enumerate() {
                *ws.get_unchecked_mut(PANEL_ROWS * ib + r) = e8m0_to_fp32_half(**b);
            }
        }
    }

    /// `init` plus, per row (lane), Σ of one block's 32 code · activation products: register `w[g]` against the
    /// token's 4 codes at `q[g]`. Four independent chains summed at the end: integer sums are exact in any order,
    /// and one chain of 8 `vpdpbusd` (about 4 cycles each) was the whole cost of a block.
    #[inline(always)]
    unsafe fn panel_block_dot<D: IDot>(init: __m256i, w: &[__m256i; 8], q: *const i32) -> __m256i {
        let x = |g: usize| _mm256_set1_epi32(q.add(g).read_unaligned());
        let a = D::dp(D::dp(init, w[0], x(0)), w[4], x(4));
        let b = D::dp(D::dp(_mm256_setzero_si256(), w[1], x(1)), w[5], x(5));
        let c = D::dp(D::dp(_mm256_setzero_si256(), w[2], x(2)), w[6], x(6));
        let d = D::dp(D::dp(_mm256_setzero_si256(), w[3], x(3)), w[7], x(7));
        _mm256_add_epi32(_mm256_add_epi32(a, b), _mm256_add_epi32(c, d))
    }

    /// 8 rows of ggml MXFP4 blocks · one token of Q8_0 activations without a panel: each block is decoded into
    /// registers exactly as [`build_panel_ggml`] stores it and used at once as [`panel_q8_body`] uses it (same
    /// integers, same float operations in the same order, so bit for bit the panel path's result). For one token
    /// the panel is pure overhead: building it cost four times the dot.
    #[inline(always)]
    unsafe fn mxfp4_ggml_q8_x1_body<D: IDot>(
        rows: [&[u8]; 8],
        d: &[f32],
        sx: &[i32],
        qs: &[i8],
    ) -> [f32; 8] {
        let mut nb = d.len().min(sx.len()).min(qs.len() / QK);
        for r in rows.iter() {
            nb = nb.min(r.len() / BMX);
        }
        let lut = _mm256_broadcastsi128_si256(_mm_loadu_si128(
            KVALUES_MXFP4_U12.as_ptr() as *const __m128i
        ));
        let m4 = _mm256_set1_epi8(0x0f);
        let mut acc = _mm256_setzero_ps();
        // The 8 rows are usually one contiguous span, and the next 8 (this thread's next task) follow it: each
        // step prefetches its share (8 blocks' bytes) of that next span into L2, so its 8 streams start warm
        // (into L1 instead was slower: 10 vs 14 GB/s on one Zen 4 core). The addresses may lie past the matrix;
        // a prefetch never faults.
        let next = rows[7].as_ptr().wrapping_add(rows[7].len());
        for ib in 0..nb {
            // SAFETY: ib < nb keeps each row's block (BMX bytes) and the token's block in bounds.
            let blk: [*const u8; 8] = std::array::from_fn(|r| rows[r].as_ptr().add(BMX * ib));
            let ahead = next.wrapping_add(PANEL_ROWS * BMX * ib);
            _mm_prefetch::<_MM_HINT_T1>(ahead as *const i8);
            _mm_prefetch::<_MM_HINT_T1>(ahead.wrapping_add(64) as *const i8);
            _mm_prefetch::<_MM_HINT_T1>(ahead.wrapping_add(128) as *const i8);
            let w = panel_block_ggml(blk, lut, m4);
            let es: [f32; 8] = std::array::from_fn(|r| e8m0_to_fp32_half(*blk[r]));
            let e = _mm256_loadu_ps(es.as_ptr());
            let qt = qs.as_ptr().add(QK * ib) as *const i32;
            let ia = panel_block_dot::<D>(_mm256_set1_epi32(*sx.get_unchecked(ib)), &w, qt);
            let sc = _mm256_mul_ps(e, _mm256_set1_ps(*d.get_unchecked(ib)));
            acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(ia), sc, acc);
        }
        let mut o = [0f32; 8];
        _mm256_storeu_ps(o.as_mut_ptr(), acc);
        o
    }

    /// A panel ([`build_panel`]) with per-block row scales `ws` (8 per block) against `N` tokens of Q8_0
    /// activations (`d` scales, `sx` −12 · Σ codes per block, `qs` codes): per row and token, ggml's repacked
    /// `gemv/gemm_mxfp4_8x8_q8_0` arithmetic, `acc = fma(float(Σ_block w·x), e · d, acc)` block after block.
    /// Returns, per token, the 8 rows' results as one register.
    #[inline(always)]
    unsafe fn panel_q8_body<D: IDot, const N: usize>(
        panel: &[u8],
        ws: &[f32],
        d: [&[f32]; N],
        sx: [&[i32]; N],
        qs: [&[i8]; N],
    ) -> [[f32; 8]; N] {
        let mut nb = (panel.len() / PANEL_BLOCK).min(ws.len() / PANEL_ROWS);
        for t in 0..N {
            nb = nb.min(d[t].len()).min(sx[t].len()).min(qs[t].len() / QK);
        }
        let mut acc = [_mm256_setzero_ps(); N];
        for ib in 0..nb {
            // SAFETY: ib < nb keeps the panel block, 8 scales, and each token's block in bounds.
            let p = panel.as_ptr().add(PANEL_BLOCK * ib);
            let w: [__m256i; 8] =
                std::array::from_fn(|g| _mm256_loadu_si256(p.add(32 * g) as *const __m256i));
            let e = _mm256_loadu_ps(ws.as_ptr().add(PANEL_ROWS * ib));
            for t in 0..N {
                let q = qs[t].as_ptr().add(QK * ib) as *const i32;
                let ia = panel_block_dot::<D>(_mm256_set1_epi32(*sx[t].get_unchecked(ib)), &w, q);
                let sc = _mm256_mul_ps(e, _mm256_set1_ps(*d[t].get_unchecked(ib)));
                acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(ia), sc, acc[t]);
            }
        }
        acc.map(|a| {
            let mut o = [0f32; 8];
            _mm256_storeu_ps(o.as_mut_ptr(), a);
            o
        })
    }

    /// The integer-dot kernels compiled once per `vpdpbusd` flavour, each with the features it needs.
    macro_rules! int_kernels {
        ($m:ident, $d:ty, $features:literal) => {
            pub mod $m {
                use super::*;

                #[target_feature(enable = $features)]
                pub unsafe fn q8_0_tile_4x1(rows: [&[u8]; 4], d: &[f32], qs: &[i8]) -> [f32; 4] {
                    q8_0_tile_body::<$d, 4, 1>(rows, [d], [qs])[0]
                }

                #[target_feature(enable = $features)]
                pub unsafe fn q8_0_tile_1x1(row: &[u8], d: &[f32], qs: &[i8]) -> f32 {
                    q8_0_tile_body::<$d, 1, 1>([row], [d], [qs])[0][0]
                }

                #[target_feature(enable = $features)]
                pub unsafe fn q8_0_tile_4x4(
                    rows: [&[u8]; 4],
                    d: [&[f32]; 4],
                    qs: [&[i8]; 4],
                ) -> [[f32; 4]; 4] {
                    q8_0_tile_body::<$d, 4, 4>(rows, d, qs)
                }

                #[target_feature(enable = $features)]
                pub unsafe fn mxfp4_ggml_q8_x1(
                    rows: [&[u8]; 8],
                    d: &[f32],
                    sx: &[i32],
                    qs: &[i8],
                ) -> [f32; 8] {
                    mxfp4_ggml_q8_x1_body::<$d>(rows, d, sx, qs)
                }

                #[target_feature(enable = $features)]
                pub unsafe fn panel_q8_x1(
                    panel: &[u8],
                    ws: &[f32],
                    d: &[f32],
                    sx: &[i32],
                    qs: &[i8],
                ) -> [f32; 8] {
                    panel_q8_body::<$d, 1>(panel, ws, [d], [sx], [qs])[0]
                }

                #[target_feature(enable = $features)]
                pub unsafe fn panel_q8_x4(
                    panel: &[u8],
                    ws: &[f32],
                    d: [&[f32]; 4],
                    sx: [&[i32]; 4],
                    qs: [&[i8]; 4],
                ) -> [[f32; 8]; 4] {
                    panel_q8_body::<$d, 4>(panel, ws, d, sx, qs)
                }
            }
        };
    }
    int_kernels!(madd, Madd, "avx2,fma,f16c");
    int_kernels!(avxvnni, AvxVnni, "avx2,fma,f16c,avxvnni");
    int_kernels!(
        vnni512,
        Vnni512,
        "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni"
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

    /// ggml Q8_0 row · x, bit for bit decode + [`Avx2::dot`] (rows of whole blocks).
    #[inline]
    pub fn dot_q8_0(self, row: &[u8], x: &[f32]) -> f32 {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `dot`.
        unsafe {
            x86::dot_q8_0(row, x)
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

    /// Fills an MXFP4 panel from 8 rows of codes + 12 (`rows`, `cols` bytes each; see `x86::build_panel`).
    #[inline]
    pub fn build_panel(self, rows: &[u8], cols: usize, panel: &mut [u8]) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `dot`.
        unsafe {
            x86::build_panel(rows, cols, panel)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (rows, cols, panel);
        }
    }

    /// Fills an MXFP4 panel and its scales straight from 8 rows of ggml MXFP4 blocks.
    #[inline]
    pub fn build_panel_ggml(self, rows: [&[u8]; 8], panel: &mut [u8], ws: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `dot`.
        unsafe {
            x86::build_panel_ggml(rows, panel, ws)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (rows, panel, ws);
        }
    }

    /// 8 rows of ggml MXFP4 blocks · one token, bit for bit [`Avx2::build_panel_ggml`] then
    /// [`Avx2::panel_q8_x1`], without the panel.
    #[inline]
    pub fn mxfp4_ggml_q8_x1(self, rows: [&[u8]; 8], d: &[f32], sx: &[i32], qs: &[i8]) -> [f32; 8] {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `dot`.
        unsafe {
            match self.vnni {
                Vnni::No => x86::madd::mxfp4_ggml_q8_x1(rows, d, sx, qs),
                Vnni::Avx => x86::avxvnni::mxfp4_ggml_q8_x1(rows, d, sx, qs),
                Vnni::Avx512 => x86::vnni512::mxfp4_ggml_q8_x1(rows, d, sx, qs),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (rows, d, sx, qs);
            [f32::NAN; 8]
        }
    }

    /// An MXFP4 panel · one token: the 8 rows' results, in ggml's repacked-MXFP4 order.
    #[inline]
    pub fn panel_q8_x1(
        self,
        panel: &[u8],
        ws: &[f32],
        d: &[f32],
        sx: &[i32],
        qs: &[i8],
    ) -> [f32; 8] {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `dot`.
        unsafe {
            match self.vnni {
                Vnni::No => x86::madd::panel_q8_x1(panel, ws, d, sx, qs),
                Vnni::Avx => x86::avxvnni::panel_q8_x1(panel, ws, d, sx, qs),
                Vnni::Avx512 => x86::vnni512::panel_q8_x1(panel, ws, d, sx, qs),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (panel, ws, d, sx, qs);
            [f32::NAN; 8]
        }
    }

    /// An MXFP4 panel · four tokens.
    #[inline]
    pub fn panel_q8_x4(
        self,
        panel: &[u8],
        ws: &[f32],
        d: [&[f32]; 4],
        sx: [&[i32]; 4],
        qs: [&[i8]; 4],
    ) -> [[f32; 8]; 4] {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `dot`.
        unsafe {
            match self.vnni {
                Vnni::No => x86::madd::panel_q8_x4(panel, ws, d, sx, qs),
                Vnni::Avx => x86::avxvnni::panel_q8_x4(panel, ws, d, sx, qs),
                Vnni::Avx512 => x86::vnni512::panel_q8_x4(panel, ws, d, sx, qs),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (panel, ws, d, sx, qs);
            [[f32::NAN; 8]; 4]
        }
    }

    /// One ggml Q8_0 row · one token's Q8_0 activations: ggml's `ggml_vec_dot_q8_0_q8_0`, the kernel ggml's CPU
    /// backend runs for one token, whose arithmetic is [`Avx2::q8_0_tile_4x1`]'s for one row.
    #[inline]
    pub fn q8_0_tile_1x1(self, row: &[u8], d: &[f32], qs: &[i8]) -> f32 {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `dot`.
        unsafe {
            match self.vnni {
                Vnni::No => x86::madd::q8_0_tile_1x1(row, d, qs),
                Vnni::Avx => x86::avxvnni::q8_0_tile_1x1(row, d, qs),
                Vnni::Avx512 => x86::vnni512::q8_0_tile_1x1(row, d, qs),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (row, d, qs);
            unreachable!("Avx2 is only constructed on x86_64")
        }
    }

    /// Four ggml Q8_0 rows · one token's Q8_0 activations (`tinyBLAS_Q0_AVX`'s arithmetic).
    #[inline]
    pub fn q8_0_tile_4x1(self, rows: [&[u8]; 4], d: &[f32], qs: &[i8]) -> [f32; 4] {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `dot`.
        unsafe {
            match self.vnni {
                Vnni::No => x86::madd::q8_0_tile_4x1(rows, d, qs),
                Vnni::Avx => x86::avxvnni::q8_0_tile_4x1(rows, d, qs),
                Vnni::Avx512 => x86::vnni512::q8_0_tile_4x1(rows, d, qs),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (rows, d, qs);
            [f32::NAN; 4]
        }
    }

    /// Four ggml Q8_0 rows · four tokens: `out[t][r]`, each as [`Avx2::q8_0_tile_4x1`] computes it.
    #[inline]
    pub fn q8_0_tile_4x4(self, rows: [&[u8]; 4], d: [&[f32]; 4], qs: [&[i8]; 4]) -> [[f32; 4]; 4] {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `dot`.
        unsafe {
            match self.vnni {
                Vnni::No => x86::madd::q8_0_tile_4x4(rows, d, qs),
                Vnni::Avx => x86::avxvnni::q8_0_tile_4x4(rows, d, qs),
                Vnni::Avx512 => x86::vnni512::q8_0_tile_4x4(rows, d, qs),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (rows, d, qs);
            [[f32::NAN; 4]; 4]
        }
    }
}

/// The 512-bit kernels: BF16 dots with `vdpbf16ps` (AVX-512 BF16).
#[cfg(target_arch = "x86_64")]
mod x86_512 {
    use std::arch::x86_64::*;

    use ossify_formats::quant::bf16_to_fp32;

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

    /// Four f32 rows against four tokens, `out[j][k] = r[k] · x[j]` over `n` elements, each dot summed exactly as
    /// [`super::x86::dot4x2`] sums it (one 8-lane chain, then its horizontal sum, then the tail element by
    /// element), so the same bits. AVX-512's 32 vector registers hold the 16 chains, and each row load serves four
    /// tokens instead of two (half a load per multiply-add instead of three quarters).
    #[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512vl,avx512dq")]
    pub unsafe fn dot4x4_f32(r: [&[f32]; 4], x: [&[f32]; 4], n: usize) -> [[f32; 4]; 4] {
        let n = r.iter().chain(x.iter()).fold(n, |m, s| m.min(s.len()));
        let p = r.map(|s| s.as_ptr());
        let px = x.map(|s| s.as_ptr());
        let mut a = [[_mm256_setzero_ps(); 4]; 4];
        let mut i = 0;
        // SAFETY: i + 8 <= n <= every slice's length.
        while i + 8 <= n {
            let xv = px.map(|q| _mm256_loadu_ps(q.add(i)));
            for k in 0..4 {
                let w = _mm256_loadu_ps(p[k].add(i));
                for j in 0..4 {
                    a[j][k] = _mm256_fmadd_ps(w, xv[j], a[j][k]);
                }
            }
            i += 8;
        }
        let mut out = a.map(|aj| aj.map(|v| super::x86::hsum(v)));
        while i < n {
            for (j, oj) in out.iter_mut().enumerate() {
                for k in 0..4 {
                    oj[k] += r[k][i] * x[j][i];
                }
            }
            i += 1;
        }
        out
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

    /// One BF16 row · one token as ggml's `ggml_vec_dot_bf16` computes it under AVX-512 BF16 (the kernel
    /// llama.cpp's CPU backend runs for one token: llamafile's tinyBLAS takes only batches of 2 or more): two
    /// `vdpbf16ps` chains over alternate 32-element halves of each 64, each reduced with `_mm512_reduce_add_ps`,
    /// the two sums and a tail of `n % 64` exact products added in f64, rounded once to f32. Read as one stream
    /// with a prefetch ahead.
    #[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")]
    pub unsafe fn vec_dot_bf16(r: &[u8], x: &[u16], n: usize) -> f32 {
        let n = n.min(x.len()).min(r.len() / 2);
        let p = r.as_ptr() as *const u16;
        let (mut c1, mut c2) = (_mm512_setzero_ps(), _mm512_setzero_ps());
        let mut i = 0;
        // SAFETY: the loads cover [i, i + 64) with i + 64 <= n <= both slices' lengths. The prefetch may point
        // past the row (it is the next row in a matrix); a prefetch never faults.
        while i + 64 <= n {
            _mm_prefetch::<_MM_HINT_T0>(
                (p as *const u8).wrapping_add(2 * i + super::x86::PREFETCH_BYTES) as *const i8,
            );
            let xp = x.as_ptr().add(i);
            c1 = _mm512_dpbf16_ps(c1, load_bf16(p.add(i), 32), load_bf16(xp, 32));
            c2 = _mm512_dpbf16_ps(c2, load_bf16(p.add(i + 32), 32), load_bf16(xp.add(32), 32));
            i += 64;
        }
        let mut sum = f64::from(_mm512_reduce_add_ps(c1));
        sum += f64::from(_mm512_reduce_add_ps(c2));
        for j in i..n {
            let w = u16::from_le_bytes([r[2 * j], r[2 * j + 1]]);
            sum += f64::from(bf16_to_fp32(w) * bf16_to_fp32(x[j]));
        }
        sum as f32
    }
}

impl Avx512 {
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

    /// One BF16 row · one token's BF16 activations, in `ggml_vec_dot_bf16`'s order; `None` without AVX-512 BF16.
    #[inline]
    pub fn vec_dot_bf16(self, r: &[u8], x: &[u16], n: usize) -> Option<f32> {
        if !self.bf16 {
            return None;
        }
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `dot4x2_bf16`.
        unsafe {
            Some(x86_512::vec_dot_bf16(r, x, n))
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (r, x, n);
            None
        }
    }
}
