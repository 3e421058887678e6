//! Element and block types shared by safetensors and GGUF.
//!
//! Block sizes and byte sizes must agree with gguf-py's `GGML_QUANT_SIZES` and ggml's `type_traits`
//! (ggml/src/ggml.c); type ids with `GGMLQuantizationType` (gguf-py/gguf/constants.py).

use std::fmt;

use crate::quant as q;

/// The type of a tensor's elements: a plain scalar (one element per "block") or a ggml block format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    F64,
    F32,
    F16,
    BF16,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Mxfp4,
}

/// (dtype, ggml type id, elements per block, bytes per block, name as ggml prints it). Block formats take their
/// sizes from their block structs in [`crate::quant`].
const TABLE: &[(DType, Option<u32>, usize, usize, &str)] = &[
    (DType::F64, Some(28), 1, 8, "F64"),
    (DType::F32, Some(0), 1, 4, "F32"),
    (DType::F16, Some(1), 1, 2, "F16"),
    (DType::BF16, Some(30), 1, 2, "BF16"),
    (DType::I64, Some(27), 1, 8, "I64"),
    (DType::I32, Some(26), 1, 4, "I32"),
    (DType::I16, Some(25), 1, 2, "I16"),
    (DType::I8, Some(24), 1, 1, "I8"),
    (DType::U8, None, 1, 1, "U8"),
    (DType::Bool, None, 1, 1, "BOOL"),
    (DType::Q4_0, Some(2), q::QK4_0, q::BlockQ4_0::SIZE, "Q4_0"),
    (DType::Q4_1, Some(3), q::QK4_1, q::BlockQ4_1::SIZE, "Q4_1"),
    (DType::Q5_0, Some(6), q::QK5_0, q::BlockQ5_0::SIZE, "Q5_0"),
    (DType::Q5_1, Some(7), q::QK5_1, q::BlockQ5_1::SIZE, "Q5_1"),
    (DType::Q8_0, Some(8), q::QK8_0, q::BlockQ8_0::SIZE, "Q8_0"),
    (
        DType::Mxfp4,
        Some(39),
        q::QK_MXFP4,
        q::BlockMxfp4::SIZE,
        "MXFP4",
    ),
];

impl DType {
    fn row(self) -> &'static (DType, Option<u32>, usize, usize, &'static str) {
        // The table lists every variant; a missing one is caught by the `table_is_complete` test.
        TABLE.iter().find(|r| r.0 == self).unwrap_or(&TABLE[0])
    }

    /// Elements per block: 1 for scalar types, 32 for the ggml block formats we support.
    pub fn block_size(self) -> usize {
        self.row().2
    }

    /// Bytes per block.
    pub fn type_size(self) -> usize {
        self.row().3
    }

    /// ggml's type id, as stored in a GGUF tensor info; `None` for types GGUF cannot hold.
    pub fn ggml_type(self) -> Option<u32> {
        self.row().1
    }

    pub fn from_ggml_type(id: u32) -> Option<DType> {
        TABLE.iter().find(|r| r.1 == Some(id)).map(|r| r.0)
    }

    /// Name as ggml and gguf-py print it ("F32", "BF16", "Q8_0", "MXFP4", ...).
    pub fn name(self) -> &'static str {
        self.row().4
    }

    /// Parses a name as printed by [`DType::name`] (case-insensitive).
    pub fn from_name(name: &str) -> Option<DType> {
        TABLE
            .iter()
            .find(|r| r.4.eq_ignore_ascii_case(name))
            .map(|r| r.0)
    }

    pub fn is_quantized(self) -> bool {
        self.block_size() > 1
    }

    /// Bytes that `n_elements` elements take, or `None` when `n_elements` is not a whole number of blocks or the
    /// size overflows.
    pub fn nbytes(self, n_elements: usize) -> Option<usize> {
        let bs = self.block_size();
        if n_elements % bs != 0 {
            return None;
        }
        (n_elements / bs).checked_mul(self.type_size())
    }

    pub fn from_safetensors(d: ::safetensors::Dtype) -> Option<DType> {
        use ::safetensors::Dtype as S;
        Some(match d {
            S::F64 => DType::F64,
            S::F32 => DType::F32,
            S::F16 => DType::F16,
            S::BF16 => DType::BF16,
            S::I64 => DType::I64,
            S::I32 => DType::I32,
            S::I16 => DType::I16,
            S::I8 => DType::I8,
            S::U8 => DType::U8,
            S::BOOL => DType::Bool,
            _ => return None,
        })
    }

    pub fn to_safetensors(self) -> Option<::safetensors::Dtype> {
        use ::safetensors::Dtype as S;
        Some(match self {
            DType::F64 => S::F64,
            DType::F32 => S::F32,
            DType::F16 => S::F16,
            DType::BF16 => S::BF16,
            DType::I64 => S::I64,
            DType::I32 => S::I32,
            DType::I16 => S::I16,
            DType::I8 => S::I8,
            DType::U8 => S::U8,
            DType::Bool => S::BOOL,
            _ => return None,
        })
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_complete() {
        for d in [
            DType::F64,
            DType::F32,
            DType::F16,
            DType::BF16,
            DType::I64,
            DType::I32,
            DType::I16,
            DType::I8,
            DType::U8,
            DType::Bool,
            DType::Q4_0,
            DType::Q4_1,
            DType::Q5_0,
            DType::Q5_1,
            DType::Q8_0,
            DType::Mxfp4,
        ] {
            assert_eq!(d.row().0, d);
            assert_eq!(DType::from_name(d.name()), Some(d));
            if let Some(id) = d.ggml_type() {
                assert_eq!(DType::from_ggml_type(id), Some(d));
            }
        }
    }

    #[test]
    fn sizes_match_gguf_py() {
        // GGML_QUANT_SIZES in gguf-py/gguf/constants.py
        assert_eq!(
            (DType::Mxfp4.block_size(), DType::Mxfp4.type_size()),
            (32, 17)
        );
        assert_eq!(
            (DType::Q8_0.block_size(), DType::Q8_0.type_size()),
            (32, 34)
        );
        assert_eq!(DType::Mxfp4.nbytes(64), Some(34));
        assert_eq!(DType::Mxfp4.nbytes(33), None);
        assert_eq!(DType::BF16.nbytes(3), Some(6));
    }
}
