//! Q4_1: 32 elements as f16 scale `d`, f16 minimum `m` and 32 4-bit codes; x = q * d + m. Byte j holds element j
//! in its low nibble and element j + 16 in its high nibble.
//! Layout and rules: ggml-common.h `block_q4_1`, ggml-quants.c `quantize_row_q4_1_ref` / `dequantize_row_q4_1`.

use super::f16::{fp16_to_fp32, fp32_to_fp16};
use super::{map_blocks, min_max};

/// Elements per block (ggml `QK4_1`).
pub const QK4_1: usize = 32;

/// ggml's `block_q4_1`, little-endian on disk.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockQ4_1 {
    /// Scale, f16 bits.
    pub d: u16,
    /// Minimum, f16 bits.
    pub m: u16,
    pub qs: [u8; QK4_1 / 2],
}

const _: () = assert!(std::mem::size_of::<BlockQ4_1>() == 4 + QK4_1 / 2);

impl BlockQ4_1 {
    pub const SIZE: usize = 4 + QK4_1 / 2;

    pub fn from_bytes(b: &[u8; Self::SIZE]) -> Self {
        let mut qs = [0u8; QK4_1 / 2];
        qs.copy_from_slice(&b[4..]);
        Self {
            d: u16::from_le_bytes([b[0], b[1]]),
            m: u16::from_le_bytes([b[2], b[3]]),
            qs,
        }
    }

    pub fn to_bytes(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[..2].copy_from_slice(&self.d.to_le_bytes());
        b[2..4].copy_from_slice(&self.m.to_le_bytes());
        b[4..].copy_from_slice(&self.qs);
        b
    }

    /// ggml's reference rule: d = (max - min) / 15, q = min(15, trunc((x - min) / d + 0.5)); `m` stores the f32
    /// minimum rounded to f16.
    pub fn quantize_ref(x: &[f32; QK4_1]) -> Self {
        let (min, max) = min_max(x);
        let d = (max - min) / 15.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let code = |v: f32| (((v - min) * id + 0.5) as i8).min(15) as u8;
        let mut qs = [0u8; QK4_1 / 2];
        for (j, q) in qs.iter_mut().enumerate() {
            *q = code(x[j]) | (code(x[j + QK4_1 / 2]) << 4);
        }
        Self {
            d: fp32_to_fp16(d),
            m: fp32_to_fp16(min),
            qs,
        }
    }

    pub fn dequantize(&self, out: &mut [f32; QK4_1]) {
        let d = fp16_to_fp32(self.d);
        let m = fp16_to_fp32(self.m);
        for (j, &q) in self.qs.iter().enumerate() {
            out[j] = f32::from(q & 0x0F) * d + m;
            out[j + QK4_1 / 2] = f32::from(q >> 4) * d + m;
        }
    }
}

/// Encodes whole blocks: `src.len()` a multiple of 32, `dst.len()` = 20 bytes per block.
pub fn quantize_row_q4_1_ref(src: &[f32], dst: &mut [u8]) {
    debug_assert_eq!(src.len() / QK4_1 * BlockQ4_1::SIZE, dst.len());
    map_blocks(src, dst, |x, o: &mut [u8; BlockQ4_1::SIZE]| {
        *o = BlockQ4_1::quantize_ref(x).to_bytes()
    });
}

/// Decodes whole blocks: `src.len()` = 20 bytes per block, `dst.len()` 32 elements per block.
pub fn dequantize_row_q4_1(src: &[u8], dst: &mut [f32]) {
    debug_assert_eq!(src.len() / BlockQ4_1::SIZE * QK4_1, dst.len());
    map_blocks(src, dst, |b, o| BlockQ4_1::from_bytes(b).dequantize(o));
}
