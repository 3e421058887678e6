//! Q8_0: 32 elements as one f16 scale `d` and 32 signed bytes; x = q * d.
//! Layout and rules: ggml-common.h `block_q8_0`, ggml-quants.c `quantize_row_q8_0_ref` / `dequantize_row_q8_0`.

use super::f16::{fp16_to_fp32, fp32_to_fp16};
use super::map_blocks;

/// Elements per block (ggml `QK8_0`).
pub const QK8_0: usize = 32;

/// ggml's `block_q8_0`, little-endian on disk.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockQ8_0 {
    /// Scale, f16 bits.
    pub d: u16,
    pub qs: [i8; QK8_0],
}

const _: () = assert!(std::mem::size_of::<BlockQ8_0>() == 2 + QK8_0);

impl BlockQ8_0 {
    pub const SIZE: usize = 2 + QK8_0;

    pub fn from_bytes(b: &[u8; Self::SIZE]) -> Self {
        let mut qs = [0i8; QK8_0];
        for (q, &x) in qs.iter_mut().zip(&b[2..]) {
            *q = x as i8;
        }
        Self {
            d: u16::from_le_bytes([b[0], b[1]]),
            qs,
        }
    }

    pub fn to_bytes(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[..2].copy_from_slice(&self.d.to_le_bytes());
        for (o, &q) in b[2..].iter_mut().zip(&self.qs) {
            *o = q as u8;
        }
        b
    }

    /// ggml's reference rule: d = amax / 127, q = round(x / d) with halves away from zero.
    pub fn quantize_ref(x: &[f32; QK8_0]) -> Self {
        let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let mut qs = [0i8; QK8_0];
        for (q, v) in qs.iter_mut().zip(x) {
            // f32::round is C's roundf (halves away from zero); the value is within [-127, 127]
            *q = (v * id).round() as i8;
        }
        Self {
            d: fp32_to_fp16(d),
            qs,
        }
    }

    pub fn dequantize(&self, out: &mut [f32; QK8_0]) {
        let d = fp16_to_fp32(self.d);
        for (o, &q) in out.iter_mut().zip(&self.qs) {
            *o = f32::from(q) * d;
        }
    }
}

/// Encodes whole blocks: `src.len()` a multiple of 32, `dst.len()` = 34 bytes per block.
pub fn quantize_row_q8_0_ref(src: &[f32], dst: &mut [u8]) {
    debug_assert_eq!(src.len() / QK8_0 * BlockQ8_0::SIZE, dst.len());
    map_blocks(src, dst, |x, o: &mut [u8; BlockQ8_0::SIZE]| {
        *o = BlockQ8_0::quantize_ref(x).to_bytes()
    });
}

/// Decodes whole blocks: `src.len()` = 34 bytes per block, `dst.len()` 32 elements per block.
pub fn dequantize_row_q8_0(src: &[u8], dst: &mut [f32]) {
    debug_assert_eq!(src.len() / BlockQ8_0::SIZE * QK8_0, dst.len());
    map_blocks(src, dst, |b, o| BlockQ8_0::from_bytes(b).dequantize(o));
}
