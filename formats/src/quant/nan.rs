//! The NaN scan: which pieces of float bytes hold a NaN, the one value the encoders change (gguf-py quiets NaNs in
//! `__compute_fp32_to_bf16`), so a converter knows which pieces it may copy unchanged.

use crate::DType;

/// True when a piece of `dtype` values holds a NaN, which the encoders would canonicalise (gguf-py quiets NaNs
/// in `__compute_fp32_to_bf16`), so the piece cannot be copied unchanged. Branch-free per block so it
/// vectorises: it runs over every unchanged byte.
pub fn has_nan(dtype: DType, bytes: &[u8]) -> bool {
    // NaN <=> the magnitude bits exceed infinity's. Eight bytes at a time: per lane, magnitude + (sign bit -
    // (inf + 1)) carries into the lane's sign bit exactly when magnitude > inf, and never into the next lane.
    match dtype {
        DType::BF16 => any_lane_carries(bytes, 0x7FFF, 0x8000 - 0x7F81, 16),
        DType::F16 => any_lane_carries(bytes, 0x7FFF, 0x8000 - 0x7C01, 16),
        DType::F32 => any_lane_carries(bytes, 0x7FFF_FFFF, 0x8000_0000 - 0x7F80_0001, 32),
        _ => true,
    }
}

/// For little-endian lanes of `bits` bits: is `(lane & mask) + add` at or above the lane's top bit for any
/// lane? (`mask + add` stays below twice the top bit, so lanes never carry into each other.) Branch-free
/// over u64 words, so it compiles to SIMD.
fn any_lane_carries(bytes: &[u8], mask: u64, add: u64, bits: u32) -> bool {
    let lanes = 64 / bits;
    let (mut m, mut a, top) = (0u64, 0u64, 1u64 << (bits - 1));
    let mut tops = 0u64;
    for k in 0..lanes {
        m |= mask << (k * bits);
        a |= add << (k * bits);
        tops |= top << (k * bits);
    }
    let mut words = bytes.chunks_exact(8);
    let mut acc = 0u64;
    for w in &mut words {
        let x = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        acc |= (x & m) + a;
    }
    // A partial word is padded with zeros, which are never NaN.
    let mut last = [0u8; 8];
    let rest = words.remainder();
    last[..rest.len()].copy_from_slice(rest);
    let x = u64::from_le_bytes(last);
    // Zero padding lanes: 0 + add stays below the top bit, so they flag nothing.
    acc |= (x & m) + a;
    acc & tops != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn has_nan_finds_exactly_the_values_the_encoders_change() {
        // Every bf16 / f16 bit pattern: has_nan must hold exactly where decode + encode does not give the
        // same bits back (NaNs), so a piece without one can be copied unchanged.
        for (dtype, decode, encode) in [
            (
                DType::BF16,
                super::super::bf16_to_fp32 as fn(u16) -> f32,
                super::super::fp32_to_bf16 as fn(f32) -> u16,
            ),
            (
                DType::F16,
                super::super::fp16_to_fp32,
                super::super::fp32_to_fp16,
            ),
        ] {
            for h in 0..=u16::MAX {
                let changed = encode(decode(h)) != h;
                // 13 values: three whole 8-byte words and a partial one; h lands in every lane of both.
                let mut bytes = [0u8; 26];
                let at = 2 * (h as usize % 13);
                bytes[at..at + 2].copy_from_slice(&h.to_le_bytes());
                assert_eq!(
                    has_nan(dtype, &bytes),
                    decode(h).is_nan(),
                    "{dtype} {h:#06x}"
                );
                if changed {
                    assert!(
                        has_nan(dtype, &bytes),
                        "{dtype} {h:#06x} changes but is not flagged"
                    );
                }
            }
        }
        for at in 0..5 {
            for (x, nan) in [
                (f32::NAN.to_bits(), true),
                (0xFF80_0001, true), // a signalling NaN, negative
                (f32::INFINITY.to_bits(), false),
                (f32::NEG_INFINITY.to_bits(), false),
                (f32::MAX.to_bits(), false),
            ] {
                let mut f32s = [0u8; 4 * 5];
                f32s[4 * at..4 * at + 4].copy_from_slice(&x.to_le_bytes());
                assert_eq!(has_nan(DType::F32, &f32s), nan, "{x:#010x} at {at}");
            }
        }
    }
}
