//! Turning one tensor's bytes into another type, row by row, in parallel.
//!
//! A row is ggml's row: the innermost dimension (`ne[0]`). Rows are decoded to f32 exactly (every source type
//! we read decodes exactly) and encoded with the `ossify_formats::quant` reference encoders, so for the ggml rule
//! the bytes are the ones llama-quantize writes. For a 3-D expert stack (E, rows, cols) the importance of expert
//! `e` applies to rows `e * rows .. (e + 1) * rows`, as in llama.cpp's `llama_tensor_quantize_impl`.

use anyhow::{bail, Context, Result};
use ossify_formats::quant::{dequantize_row, quantize_row, quantize_row_mxfp4_mse};
use ossify_formats::DType;
use rayon::prelude::*;

use super::imatrix::ImportanceMatrix;

/// How MXFP4 blocks choose their shared exponent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mxfp4Scale {
    /// ggml's rule, bit-exact with llama.cpp: floor(log2 amax) - 2 + 127.
    #[default]
    Ref,
    /// The exponent (among the reference one and its neighbours) and codes with the least squared error,
    /// weighted by the importance matrix when there is one.
    Mse,
}

/// Elements per parallel work item: big enough to amortise scheduling, small enough to spread a tensor over
/// every core.
const CHUNK_ELEMENTS: usize = 1 << 16;

/// Re-encodes `src` (`src_dtype`, row-major `shape`) as `dst_dtype`. A tensor already in `dst_dtype` is copied
/// unchanged. `importance` (mean x² per input channel, per expert) is used by the MXFP4 MSE rule only.
pub fn encode_tensor(
    name: &str,
    src: &[u8],
    src_dtype: DType,
    shape: &[usize],
    dst_dtype: DType,
    scale: Mxfp4Scale,
    importance: Option<&ImportanceMatrix>,
) -> Result<Vec<u8>> {
    check_source_len(name, src.len(), src_dtype, shape)?;
    if src_dtype == dst_dtype {
        return Ok(src.to_vec());
    }
    let enc = TensorEncoder::new(name, src_dtype, shape, dst_dtype, scale, importance)?;
    let mut dst = vec![0u8; enc.nrows * enc.dst_row];
    enc.encode_rows(src, 0, &mut dst)?;
    Ok(dst)
}

/// Checks that `len` bytes are exactly a `src_dtype` tensor of `shape`; the error names the tensor.
pub fn check_source_len(name: &str, len: usize, src_dtype: DType, shape: &[usize]) -> Result<()> {
    let n: usize = shape.iter().product();
    let want_src = src_dtype.nbytes(n);
    if want_src != Some(len) {
        bail!("tensor '{name}': {src_dtype} {shape:?} should be {want_src:?} bytes, found {len}");
    }
    Ok(())
}

/// Re-encodes one tensor's rows, any run of rows at a time (so a tensor can be streamed in pieces); the bytes
/// do not depend on how the rows are split.
pub struct TensorEncoder<'a> {
    name: &'a str,
    src_dtype: DType,
    dst_dtype: DType,
    ncols: usize,
    /// Bytes of one source row.
    pub src_row: usize,
    /// Bytes of one output row.
    pub dst_row: usize,
    /// Rows in the tensor.
    pub nrows: usize,
    rows_per_expert: usize,
    use_mse: bool,
    expert_importance: Vec<Option<Vec<f32>>>,
    allow_nonfinite: bool,
}

/// Refuses to quantize a NaN or ±Inf: the block's scale becomes NaN / Inf and takes its 31 neighbours with it, so
/// the output is a broken model that still loads. `allow` (`quantize --allow-nonfinite`) lets it through.
pub fn check_finite(x: &[f32], allow: bool) -> Result<()> {
    if allow {
        return Ok(());
    }
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        bail!(
            "value {} at column {i} is not finite; quantizing it breaks its whole block (--allow-nonfinite \
             quantizes it anyway)",
            x[i]
        );
    }
    Ok(())
}

impl<'a> TensorEncoder<'a> {
    /// Errors (naming the tensor) when rows are not whole blocks of either type.
    pub fn new(
        name: &'a str,
        src_dtype: DType,
        shape: &[usize],
        dst_dtype: DType,
        scale: Mxfp4Scale,
        importance: Option<&ImportanceMatrix>,
    ) -> Result<Self> {
        let ncols = shape.last().copied().unwrap_or(1).max(1);
        let n: usize = shape.iter().product();
        let (Some(src_row), Some(dst_row)) = (src_dtype.nbytes(ncols), dst_dtype.nbytes(ncols))
        else {
            bail!(
                "tensor '{name}' {shape:?}: rows of {ncols} are not whole blocks of {src_dtype} or {dst_dtype}"
            );
        };
        let nrows = n / ncols;
        let rows_per_expert = if shape.len() == 3 {
            shape[1].max(1)
        } else {
            nrows.max(1)
        };
        let n_experts = nrows.div_ceil(rows_per_expert);
        let use_mse = dst_dtype == DType::Mxfp4 && scale == Mxfp4Scale::Mse;
        let expert_importance: Vec<Option<Vec<f32>>> = (0..n_experts)
            .map(|e| {
                let v = importance.filter(|_| use_mse)?.expert(name, e)?;
                (v.len() == ncols).then_some(v)
            })
            .collect();
        Ok(Self {
            name,
            src_dtype,
            dst_dtype,
            ncols,
            src_row,
            dst_row,
            nrows,
            rows_per_expert,
            use_mse,
            expert_importance,
            allow_nonfinite: false,
        })
    }

    /// Quantize NaN / Inf values instead of refusing them ([`check_finite`]).
    pub fn allow_nonfinite(mut self, allow: bool) -> Self {
        self.allow_nonfinite = allow;
        self
    }

    /// Encodes the whole rows in `src` (rows `first_row..`) into `dst`, spread over all cores.
    pub fn encode_rows(&self, src: &[u8], first_row: usize, dst: &mut [u8]) -> Result<()> {
        let name = self.name;
        let (src_row, dst_row, ncols) = (self.src_row, self.dst_row, self.ncols);
        let rows = dst.len() / dst_row.max(1);
        if dst.len() != rows * dst_row
            || src.len() != rows * src_row
            || first_row + rows > self.nrows
        {
            bail!(
                "tensor '{name}': {} source bytes and {} output bytes from row {first_row} are not whole rows \
                 of {} rows",
                src.len(),
                dst.len(),
                self.nrows
            );
        }
        let rows_per_chunk = (CHUNK_ELEMENTS / ncols).max(1);
        dst.par_chunks_mut(rows_per_chunk * dst_row)
            .enumerate()
            .try_for_each(|(ci, out)| -> Result<()> {
                let mut f = vec![0f32; ncols];
                for (ri, o) in out.chunks_exact_mut(dst_row).enumerate() {
                    let local = ci * rows_per_chunk + ri;
                    let row = first_row + local;
                    let s = src
                        .get(local * src_row..(local + 1) * src_row)
                        .with_context(|| format!("tensor '{name}': row {row} out of range"))?;
                    dequantize_row(self.src_dtype, s, &mut f)
                        .with_context(|| format!("tensor '{name}': decoding row {row}"))?;
                    check_finite(&f, self.allow_nonfinite)
                        .with_context(|| format!("tensor '{name}': row {row}"))?;
                    if self.use_mse {
                        let w = self
                            .expert_importance
                            .get(row / self.rows_per_expert)
                            .and_then(|w| w.as_deref());
                        quantize_row_mxfp4_mse(&f, w, o);
                    } else {
                        quantize_row(self.dst_dtype, &f, o)
                            .with_context(|| format!("tensor '{name}': encoding row {row}"))?;
                    }
                }
                Ok(())
            })
    }
}

/// Decodes a whole tensor to f32.
pub fn decode_tensor(name: &str, src: &[u8], dtype: DType, n_elements: usize) -> Result<Vec<f32>> {
    let mut out = vec![0f32; n_elements];
    dequantize_row(dtype, src, &mut out).with_context(|| format!("tensor '{name}'"))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ossify_formats::quant::{quantize_row_mxfp4_ref, quantize_row_q8_0_ref};

    fn bf16_bytes(x: &[f32]) -> Vec<u8> {
        let mut b = vec![0u8; x.len() * 2];
        quantize_row(DType::BF16, x, &mut b).unwrap();
        b
    }

    fn sample(n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 7919 % 1013) as f32 - 506.0) / 97.0)
            .collect()
    }

    #[test]
    fn same_type_is_copied() {
        let x = sample(64);
        let b = bf16_bytes(&x);
        let out = encode_tensor(
            "t",
            &b,
            DType::BF16,
            &[2, 32],
            DType::BF16,
            Mxfp4Scale::Ref,
            None,
        )
        .unwrap();
        assert_eq!(out, b);
    }

    #[test]
    fn rows_match_the_reference_encoder() {
        // Large enough to be split across several parallel chunks.
        let shape = [3, 700, 64];
        let x = sample(3 * 700 * 64);
        let b = bf16_bytes(&x);
        let xb = decode_tensor("t", &b, DType::BF16, x.len()).unwrap();
        let out = encode_tensor(
            "t",
            &b,
            DType::BF16,
            &shape,
            DType::Q8_0,
            Mxfp4Scale::Ref,
            None,
        )
        .unwrap();
        let mut want = vec![0u8; DType::Q8_0.nbytes(x.len()).unwrap()];
        quantize_row_q8_0_ref(&xb, &mut want);
        assert_eq!(out, want);
        let out = encode_tensor(
            "t",
            &b,
            DType::BF16,
            &shape,
            DType::Mxfp4,
            Mxfp4Scale::Ref,
            None,
        )
        .unwrap();
        let mut want = vec![0u8; DType::Mxfp4.nbytes(x.len()).unwrap()];
        quantize_row_mxfp4_ref(&xb, &mut want);
        assert_eq!(out, want);
    }

    #[test]
    fn mse_with_importance_weighs_per_expert() {
        let shape = [2, 4, 64];
        let x = sample(2 * 4 * 64);
        let b = bf16_bytes(&x);
        let xb = decode_tensor("t", &b, DType::BF16, x.len()).unwrap();
        let mut m = ImportanceMatrix::new();
        let act: Vec<f32> = (0..64)
            .map(|i| if i % 5 == 0 { 10.0 } else { 0.1 })
            .collect();
        m.add("t", 2, 1, &act);
        let out = encode_tensor(
            "t",
            &b,
            DType::BF16,
            &shape,
            DType::Mxfp4,
            Mxfp4Scale::Mse,
            Some(&m),
        )
        .unwrap();
        let w: Vec<f32> = act.iter().map(|a| a * a).collect();
        let mut want = vec![0u8; out.len()];
        let row = DType::Mxfp4.nbytes(64).unwrap();
        for r in 0..8 {
            let imp = (r >= 4).then_some(w.as_slice());
            quantize_row_mxfp4_mse(
                &xb[r * 64..(r + 1) * 64],
                imp,
                &mut want[r * row..(r + 1) * row],
            );
        }
        assert_eq!(out, want);
    }

    #[test]
    fn wrong_sizes_are_errors_naming_the_tensor() {
        let e = encode_tensor(
            "blk.0.x",
            &[0u8; 10],
            DType::BF16,
            &[2, 32],
            DType::Q8_0,
            Mxfp4Scale::Ref,
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("blk.0.x"), "{e}");
        let b = bf16_bytes(&sample(80));
        let e = encode_tensor(
            "blk.0.y",
            &b,
            DType::BF16,
            &[2, 40],
            DType::Q8_0,
            Mxfp4Scale::Ref,
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("blk.0.y"), "{e}");
    }
}
