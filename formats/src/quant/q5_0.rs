//! Q5_0: 32 elements as one f16 scale `d`, 32 high bits `qh` (bit j belongs to element j) and 32 low nibbles
//! (byte j: element j low, element j + 16 high); x = (q - 16) * d.
//! Layout and rules: ggml-common.h `block_q5_0`, ggml-quants.c `quantize_row_q5_0_ref` / `dequantize_row_q5_0`.

use super::f16::{fp16_to_fp32, fp32_to_fp16};
use super::{map_blocks, signed_absmax};

/// Elements per block (ggml `QK5_0`).
pub const QK5_0: usize = 32;

/// ggml's `block_q5_0`, little-endian on disk (`qh` is a little-endian u32 stored as 4 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockQ5_0 {
    /// Scale, f16 bits.
    pub d: u16,
    pub qh: [u8; 4],
    pub qs: [u8; QK5_0 / 2],
}

const _: () = assert!(std::mem::size_of::<BlockQ5_0>() == 2 + 4 + QK5_0 / 2);

impl BlockQ5_0 {
    pub const SIZE: usize = 2 + 4 + QK5_0 / 2;

    pub fn from_bytes(b: &[u8; Self::SIZE]) -> Self {
        let mut qs = [0u8; QK5_0 / 2];
        qs.copy_from_slice(&b[6..]);
        Self {
            d: u16::from_le_bytes([b[0], b[1]]),
            qh: [b[2], b[3], b[4], b[5]],
            qs,
        }
    }

    pub fn to_bytes(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[..2].copy_from_slice(&self.d.to_le_bytes());
        b[2..6].copy_from_slice(&self.qh);
        b[6..].copy_from_slice(&self.qs);
        b
    }

    /// ggml's reference rule: d = max / -16 where max is the signed value of largest magnitude (the first one on
    /// ties), q = min(31, trunc(x / d + 16.5)).
    pub fn quantize_ref(x: &[f32; QK5_0]) -> Self {
        let max = signed_absmax(x);
        let d = max / -16.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let code = |v: f32| ((v * id + 16.5) as i8).min(31) as u8;
        let mut codes = [0u8; QK5_0];
        for (c, &v) in codes.iter_mut().zip(x) {
            *c = code(v);
        }
        let (qh, qs) = pack5(&codes);
        Self {
            d: fp32_to_fp16(d),
            qh,
            qs,
        }
    }

    pub fn dequantize(&self, out: &mut [f32; QK5_0]) {
        let d = fp16_to_fp32(self.d);
        for (o, q) in out.iter_mut().zip(unpack5(&self.qh, &self.qs)) {
            *o = (i32::from(q) - 16) as f32 * d;
        }
    }
}

/// Splits 32 five-bit codes into ggml's `qh` (bit i = bit 4 of code i) and `qs` (byte j = code j low nibble,
/// code j + 16 high nibble). Shared with Q5_1.
pub(crate) fn pack5(codes: &[u8; 32]) -> ([u8; 4], [u8; 16]) {
    let mut qh = 0u32;
    let mut qs = [0u8; 16];
    for (j, q) in qs.iter_mut().enumerate() {
        let (c0, c1) = (codes[j], codes[j + 16]);
        *q = (c0 & 0x0F) | ((c1 & 0x0F) << 4);
        qh |= u32::from((c0 & 0x10) >> 4) << j;
        qh |= u32::from((c1 & 0x10) >> 4) << (j + 16);
    }
    (qh.to_le_bytes(), qs)
}

/// Inverse of [`pack5`].
pub(crate) fn unpack5(qh: &[u8; 4], qs: &[u8; 16]) -> [u8; 32] {
    let qh = u32::from_le_bytes(*qh);
    let mut codes = [0u8; 32];
    for (j, &q) in qs.iter().enumerate() {
        let h0 = ((qh >> j) & 1) as u8;
        let h1 = ((qh >> (j + 16)) & 1) as u8;
        codes[j] = (q & 0x0F) | (h0 << 4);
        codes[j + 16] = (q >> 4) | (h1 << 4);
    }
    codes
}

/// Encodes whole blocks: `src.len()` a multiple of 32, `dst.len()` = 22 bytes per block.
pub fn quantize_row_q5_0_ref(src: &[f32], dst: &mut [u8]) {
    debug_assert_eq!(src.len() / QK5_0 * BlockQ5_0::SIZE, dst.len());
    map_blocks(src, dst, |x, o: &mut [u8; BlockQ5_0::SIZE]| {
        *o = BlockQ5_0::quantize_ref(x).to_bytes()
    });
}

/// Decodes whole blocks: `src.len()` = 22 bytes per block, `dst.len()` 32 elements per block.
pub fn dequantize_row_q5_0(src: &[u8], dst: &mut [f32]) {
    debug_assert_eq!(src.len() / BlockQ5_0::SIZE * QK5_0, dst.len());
    map_blocks(src, dst, |b, o| BlockQ5_0::from_bytes(b).dequantize(o));
}
