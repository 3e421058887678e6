//! Quantization presets, as data: the subset of llama-quantize's `--ftype` list that ossify writes.
//!
//! `ftype` is llama.cpp's `llama_ftype` (include/llama.h), written to `general.file_type`; `default` is
//! `llama_ftype_get_default_type` (src/llama-quant.cpp).

use ossify_formats::gguf::constants::LlamaFileType;
use ossify_formats::quant::CODECS;
use ossify_formats::DType;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Preset {
    /// Name on the command line (llama-quantize's spelling, lower case).
    pub name: &'static str,
    /// llama.cpp's `llama_ftype` (gguf-py `LlamaFileType`).
    pub ftype: LlamaFileType,
    /// The type most tensors that may be quantized get.
    pub default: DType,
    pub about: &'static str,
}

pub const PRESETS: &[Preset] = &[
    Preset {
        name: "mxfp4_moe",
        ftype: LlamaFileType::MostlyMxfp4Moe,
        default: DType::Mxfp4,
        about: "3-D expert tensors MXFP4, other matrices (token_embd and output included) Q8_0",
    },
    Preset {
        name: "q8_0",
        ftype: LlamaFileType::MostlyQ8_0,
        default: DType::Q8_0,
        about: "matrices Q8_0",
    },
    Preset {
        name: "q4_0",
        ftype: LlamaFileType::MostlyQ4_0,
        default: DType::Q4_0,
        about: "matrices Q4_0, output Q8_0 (llama.cpp: Q6_K, which ossify does not write)",
    },
    Preset {
        name: "q4_1",
        ftype: LlamaFileType::MostlyQ4_1,
        default: DType::Q4_1,
        about: "matrices Q4_1, output Q8_0 (llama.cpp: Q6_K, which ossify does not write)",
    },
    Preset {
        name: "q5_0",
        ftype: LlamaFileType::MostlyQ5_0,
        default: DType::Q5_0,
        about: "matrices Q5_0, output Q8_0 (llama.cpp: Q6_K, which ossify does not write)",
    },
    Preset {
        name: "q5_1",
        ftype: LlamaFileType::MostlyQ5_1,
        default: DType::Q5_1,
        about: "matrices Q5_1, output Q8_0 (llama.cpp: Q6_K, which ossify does not write)",
    },
    Preset {
        name: "f16",
        ftype: LlamaFileType::MostlyF16,
        default: DType::F16,
        about: "matrices F16",
    },
    Preset {
        name: "bf16",
        ftype: LlamaFileType::MostlyBF16,
        default: DType::BF16,
        about: "matrices BF16",
    },
    Preset {
        name: "f32",
        ftype: LlamaFileType::AllF32,
        default: DType::F32,
        about: "everything F32",
    },
];

impl Preset {
    /// Looks a preset up by name (case-insensitive); the error lists the known names.
    pub fn by_name(name: &str) -> Result<&'static Preset, String> {
        PRESETS
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                format!(
                    "unknown quantization type '{name}'; known: {}",
                    PRESETS
                        .iter()
                        .map(|p| p.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
    }
}

/// The element types ossify can write into a GGUF tensor, for `--tensor-type`, `--output-tensor-type` and
/// `--token-embedding-type` (llama.cpp's names, case-insensitive).
pub fn parse_tensor_type(name: &str) -> Result<DType, String> {
    DType::from_name(name)
        .filter(|d| CODECS.iter().any(|c| c.dtype == *d))
        .ok_or_else(|| {
            format!(
                "unknown tensor type '{name}'; known: {}",
                CODECS
                    .iter()
                    .map(|c| c.dtype.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ftype_values_match_llama_h() {
        // include/llama.h: LLAMA_FTYPE_MOSTLY_Q8_0 = 7, LLAMA_FTYPE_MOSTLY_MXFP4_MOE = 38, BF16 = 32
        assert_eq!(Preset::by_name("Q8_0").map(|p| p.ftype.id()), Ok(7));
        assert_eq!(Preset::by_name("mxfp4_moe").map(|p| p.ftype.id()), Ok(38));
        assert_eq!(Preset::by_name("bf16").map(|p| p.ftype.id()), Ok(32));
        assert!(Preset::by_name("q4_k_m").unwrap_err().contains("mxfp4_moe"));
    }

    #[test]
    fn tensor_types_parse_like_llama_cpp() {
        assert_eq!(parse_tensor_type("mxfp4"), Ok(DType::Mxfp4));
        assert_eq!(parse_tensor_type("Q5_1"), Ok(DType::Q5_1));
        assert!(parse_tensor_type("i32").is_err());
        assert!(parse_tensor_type("q6_k").is_err());
    }
}
