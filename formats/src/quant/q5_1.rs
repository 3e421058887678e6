//! Q5_1: 32 elements as f16 scale `d`, f16 minimum `m`, 32 high bits `qh` and 32 low nibbles, packed as in
//! Q5_0; x = q * d + m.
//! Layout and rules: ggml-common.h `block_q5_1`, ggml-quants.c `quantize_row_q5_1_ref` / `dequantize_row_q5_1`.

use super::f16::{fp16_to_fp32, fp32_to_fp16};
use super::q5_0::{pack5, unpack5};
use super::{map_blocks, min_max};

/// Elements per block (ggml `QK5_1`).
pub const QK5_1: usize = 32;

/// ggml's `block_q5_1`, little-endian on disk.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockQ5_1 {
    /// Scale, f16 bits.
    pub d: u16,
    /// Minimum, f16 bits.
    pub m: u16,
    pub qh: [u8; 4],
    pub qs: [u8; QK5_1 / 2],
}

const _: () = assert!(std::mem::size_of::<BlockQ5_1>() == 4 + 4 + QK5_1 / 2);

impl BlockQ5_1 {
    pub const SIZE: usize = 4 + 4 + QK5_1 / 2;

    pub fn from_bytes(b: &[u8; Self::SIZE]) -> Self {
        let mut qs = [0u8; QK5_1 / 2];
        qs.copy_from_slice(&b[8..]);
        Self {
            d: u16::from_le_bytes([b[0], b[1]]),
            m: u16::from_le_bytes([b[2], b[3]]),
            qh: [b[4], b[5], b[6], b[7]],
            qs,
        }
    }

    pub fn to_bytes(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[..2].copy_from_slice(&self.d.to_le_bytes());
        b[2..4].copy_from_slice(&self.m.to_le_bytes());
        b[4..8].copy_from_slice(&self.qh);
        b[8..].copy_from_slice(&self.qs);
        b
    }

    /// ggml's reference rule: d = (max - min) / 31, q = trunc((x - min) / d + 0.5) (no clamp, as in ggml).
    pub fn quantize_ref(x: &[f32; QK5_1]) -> Self {
        let (min, max) = min_max(x);
        let d = (max - min) / 31.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let mut codes = [0u8; QK5_1];
        for (c, &v) in codes.iter_mut().zip(x) {
            *c = ((v - min) * id + 0.5) as u8;
        }
        let (qh, qs) = pack5(&codes);
        Self {
            d: fp32_to_fp16(d),
            m: fp32_to_fp16(min),
            qh,
            qs,
        }
    }

    pub fn dequantize(&self, out: &mut [f32; QK5_1]) {
        let d = fp16_to_fp32(self.d);
        let m = fp16_to_fp32(self.m);
        for (o, q) in out.iter_mut().zip(unpack5(&self.qh, &self.qs)) {
            *o = f32::from(q) * d + m;
        }
    }
}

/// Encodes whole blocks: `src.len()` a multiple of 32, `dst.len()` = 24 bytes per block.
pub fn quantize_row_q5_1_ref(src: &[f32], dst: &mut [u8]) {
    debug_assert_eq!(src.len() / QK5_1 * BlockQ5_1::SIZE, dst.len());
    map_blocks(src, dst, |x, o: &mut [u8; BlockQ5_1::SIZE]| {
        *o = BlockQ5_1::quantize_ref(x).to_bytes()
    });
}

/// Decodes whole blocks: `src.len()` = 24 bytes per block, `dst.len()` 32 elements per block.
pub fn dequantize_row_q5_1(src: &[u8], dst: &mut [f32]) {
    debug_assert_eq!(src.len() / BlockQ5_1::SIZE * QK5_1, dst.len());
    map_blocks(src, dst, |b, o| BlockQ5_1::from_bytes(b).dequantize(o));
}
