//! Q4_0: 32 elements as one f16 scale `d` and 32 4-bit codes; x = (q - 8) * d. Byte j holds element j in its
//! low nibble and element j + 16 in its high nibble.
//! Layout and rules: ggml-common.h `block_q4_0`, ggml-quants.c `quantize_row_q4_0_ref` / `dequantize_row_q4_0`.

use super::f16::{fp16_to_fp32, fp32_to_fp16};
use super::{map_blocks, signed_absmax};

/// Elements per block (ggml `QK4_0`).
pub const QK4_0: usize = 32;

/// ggml's `block_q4_0`, little-endian on disk.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockQ4_0 {
    /// Scale, f16 bits.
    pub d: u16,
    pub qs: [u8; QK4_0 / 2],
}

const _: () = assert!(std::mem::size_of::<BlockQ4_0>() == 2 + QK4_0 / 2);

impl BlockQ4_0 {
    pub const SIZE: usize = 2 + QK4_0 / 2;

    pub fn from_bytes(b: &[u8; Self::SIZE]) -> Self {
        let mut qs = [0u8; QK4_0 / 2];
        qs.copy_from_slice(&b[2..]);
        Self {
            d: u16::from_le_bytes([b[0], b[1]]),
            qs,
        }
    }

    pub fn to_bytes(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[..2].copy_from_slice(&self.d.to_le_bytes());
        b[2..].copy_from_slice(&self.qs);
        b
    }

    /// ggml's reference rule: d = max / -8 where max is the signed value of largest magnitude (the first one on
    /// ties), q = min(15, trunc(x / d + 8.5)).
    pub fn quantize_ref(x: &[f32; QK4_0]) -> Self {
        let max = signed_absmax(x);
        let d = max / -8.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let code = |v: f32| ((v * id + 8.5) as i8).min(15) as u8;
        let mut qs = [0u8; QK4_0 / 2];
        for (j, q) in qs.iter_mut().enumerate() {
            *q = code(x[j]) | (code(x[j + QK4_0 / 2]) << 4);
        }
        Self {
            d: fp32_to_fp16(d),
            qs,
        }
    }

    pub fn dequantize(&self, out: &mut [f32; QK4_0]) {
        let d = fp16_to_fp32(self.d);
        for (j, &q) in self.qs.iter().enumerate() {
            out[j] = (i32::from(q & 0x0F) - 8) as f32 * d;
            out[j + QK4_0 / 2] = (i32::from(q >> 4) - 8) as f32 * d;
        }
    }
}

/// Encodes whole blocks: `src.len()` a multiple of 32, `dst.len()` = 18 bytes per block.
pub fn quantize_row_q4_0_ref(src: &[f32], dst: &mut [u8]) {
    debug_assert_eq!(src.len() / QK4_0 * BlockQ4_0::SIZE, dst.len());
    map_blocks(src, dst, |x, o: &mut [u8; BlockQ4_0::SIZE]| {
        *o = BlockQ4_0::quantize_ref(x).to_bytes()
    });
}

/// Decodes whole blocks: `src.len()` = 18 bytes per block, `dst.len()` 32 elements per block.
pub fn dequantize_row_q4_0(src: &[u8], dst: &mut [f32]) {
    debug_assert_eq!(src.len() / BlockQ4_0::SIZE * QK4_0, dst.len());
    map_blocks(src, dst, |b, o| BlockQ4_0::from_bytes(b).dequantize(o));
}
