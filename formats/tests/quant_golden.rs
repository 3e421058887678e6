//! Our encoders and decoders against vectors made by ggml's C reference and gguf-py (golden/quant/, see its
//! README and make_vectors.py). Encoders must match byte for byte, decoders bit for bit.

use std::path::PathBuf;

use ossify_formats::quant::{
    self, dequantize_row, dequantize_row_mxfp4_hf, quantize_row, repack_ggml_to_hf,
    repack_hf_to_ggml,
};
use ossify_formats::DType;

const TYPES: &[(&str, DType)] = &[
    ("q4_0", DType::Q4_0),
    ("q4_1", DType::Q4_1),
    ("q5_0", DType::Q5_0),
    ("q5_1", DType::Q5_1),
    ("q8_0", DType::Q8_0),
    ("mxfp4", DType::Mxfp4),
    ("f16", DType::F16),
    ("bf16", DType::BF16),
];

fn golden(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../golden/quant")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// Bit equality, except that any NaN equals any NaN (NaN payloads and signs are the hardware's business).
fn assert_same_floats(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()),
            "{what}: element {i} (row {}, block {}): got {g:e} ({:#010x}), want {w:e} ({:#010x})",
            i / 256,
            i % 256 / 32,
            g.to_bits(),
            w.to_bits()
        );
    }
}

fn row_names() -> Vec<String> {
    String::from_utf8(golden("inputs.txt"))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

#[test]
fn encoders_match_ggml_byte_for_byte() {
    let input = f32s(&golden("inputs.f32"));
    let names = row_names();
    assert_eq!(names.len() * 256, input.len());
    for &(name, dtype) in TYPES {
        let want = golden(&format!("{name}.quant.bin"));
        let mut got = vec![0u8; dtype.nbytes(input.len()).unwrap()];
        quantize_row(dtype, &input, &mut got).unwrap();
        assert_eq!(got.len(), want.len(), "{name}: size");
        let row_bytes = got.len() / names.len();
        for (r, (g, w)) in got
            .chunks(row_bytes)
            .zip(want.chunks(row_bytes))
            .enumerate()
        {
            assert!(
                g == w,
                "{name}: row '{}' differs from ggml's reference",
                names[r]
            );
        }
    }
}

#[test]
fn decoders_match_ggml_exactly() {
    for &(name, dtype) in TYPES {
        for (src, want) in [
            (format!("{name}.quant.bin"), format!("{name}.dequant.f32")),
            (format!("{name}.random.bin"), format!("{name}.random.f32")),
        ] {
            let bytes = golden(&src);
            let want = f32s(&golden(&want));
            let mut got = vec![0f32; want.len()];
            dequantize_row(dtype, &bytes, &mut got).unwrap();
            assert_same_floats(&src, &got, &want);
        }
    }
}

#[test]
fn f16_bf16_specials_match_ggml() {
    let input = f32s(&golden("specials.f32"));
    for (name, dtype) in [("f16", DType::F16), ("bf16", DType::BF16)] {
        let want = golden(&format!("{name}.specials.bin"));
        let mut got = vec![0u8; input.len() * 2];
        quantize_row(dtype, &input, &mut got).unwrap();
        for (i, (g, w)) in got.chunks(2).zip(want.chunks(2)).enumerate() {
            assert_eq!(
                g,
                w,
                "{name}: input {:e} ({:#010x})",
                input[i],
                input[i].to_bits()
            );
        }
    }
}

#[test]
fn mxfp4_below_2_pow_minus_125_matches_ggml_x86() {
    let input = f32s(&golden("mxfp4_tiny.f32"));
    let mut got = vec![0u8; DType::Mxfp4.nbytes(input.len()).unwrap()];
    quantize_row(DType::Mxfp4, &input, &mut got).unwrap();
    assert_eq!(got, golden("mxfp4_tiny.quant.bin"));
}

/// llama.cpp's converter (conversion/gpt_oss.py transform_nibble_layout) pins the HF -> ggml nibble order.
#[test]
fn mxfp4_hf_repack_matches_llama_cpp_converter() {
    let blocks = golden("mxfp4_hf.blocks.bin");
    let scales = golden("mxfp4_hf.scales.bin");
    let want = golden("mxfp4_hf.ggml.bin");
    let mut ggml = vec![0u8; want.len()];
    repack_hf_to_ggml(&blocks, &scales, &mut ggml).unwrap();
    assert_eq!(ggml, want);

    let (mut b2, mut s2) = (vec![0u8; blocks.len()], vec![0u8; scales.len()]);
    repack_ggml_to_hf(&ggml, &mut b2, &mut s2).unwrap();
    assert_eq!((b2, s2), (blocks.clone(), scales.clone()));

    let want = f32s(&golden("mxfp4_hf.dequant.f32"));
    let mut got = vec![0f32; want.len()];
    dequantize_row_mxfp4_hf(&blocks, &scales, &mut got).unwrap();
    assert_same_floats("mxfp4_hf", &got, &want);
}

/// HF/OpenAI semantics pinned by transformers' own dequantizer (FP4 table, then ldexp by scale - 127). It writes
/// code 8 as -0.0 where ggml writes +0.0, so compare as numbers; every other value must be bit-identical.
#[test]
fn mxfp4_hf_decoder_matches_transformers() {
    let blocks = golden("mxfp4_hf.blocks.bin");
    let scales = golden("mxfp4_hf.scales.bin");
    let want = f32s(&golden("mxfp4_hf.transformers.f32"));
    let mut got = vec![0f32; want.len()];
    dequantize_row_mxfp4_hf(&blocks, &scales, &mut got).unwrap();
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(
            g == w && (g.to_bits() == w.to_bits() || *g == 0.0),
            "element {i}: got {g:e}, transformers {w:e}"
        );
    }
}

#[test]
fn kvalues_match_gguf_py() {
    // gguf-py quants.py MXFP4.kvalues
    assert_eq!(
        quant::KVALUES_MXFP4,
        [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12]
    );
}
