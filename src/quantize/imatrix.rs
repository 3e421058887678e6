//! Importance matrix: for every expert matrix, the mean square of each input channel's activation over the
//! calibration tokens routed to that expert (what llama.cpp's `llama-imatrix` collects for `ggml_mul_mat_id`).
//!
//! The MSE quantizer weighs each weight's squared error by the importance of the input channel it multiplies,
//! which is the first-order estimate of the error it adds to the matmul's output.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use ossify_formats::atomic::Existing;
use ossify_formats::gguf::{GgufFile, GgufWriter, MetaArray, MetaValue};
use ossify_formats::DType;

/// llama.cpp's imatrix GGUF (tools/imatrix/imatrix.cpp `save_imatrix`, common/imatrix-loader.{h,cpp}): for each
/// weight `W`, tensors `W.in_sum2` (F32, one row of sums of x² per expert) and `W.counts` (F32, tokens per
/// expert), with these keys.
const IMATRIX_GENERAL_TYPE: &str = "imatrix";
const KV_DATASETS: &str = "imatrix.datasets";
const KV_CHUNK_COUNT: &str = "imatrix.chunk_count";
const KV_CHUNK_SIZE: &str = "imatrix.chunk_size";
const SUFFIX_SUMS: &str = ".in_sum2";
const SUFFIX_COUNTS: &str = ".counts";

/// Sums of squared activations, per tensor, per expert, per input channel.
#[derive(Clone, Debug, Default)]
pub struct ImportanceMatrix {
    entries: BTreeMap<String, Entry>,
}

#[derive(Clone, Debug)]
struct Entry {
    n_per_row: usize,
    /// `n_experts * n_per_row` sums of x², expert-major.
    sums: Vec<f64>,
    /// Tokens seen per expert.
    counts: Vec<u64>,
}

impl ImportanceMatrix {
    pub fn new() -> ImportanceMatrix {
        ImportanceMatrix::default()
    }

    /// Records one token's input row `x` to expert `expert` of tensor `tensor` (a GGUF name such as
    /// `blk.0.ffn_down_exps.weight`) that has `n_experts` experts.
    pub fn add(&mut self, tensor: &str, n_experts: usize, expert: usize, x: &[f32]) {
        let n = x.len();
        let e = self
            .entries
            .entry(tensor.to_string())
            .or_insert_with(|| Entry {
                n_per_row: n,
                sums: vec![0.0; n_experts * n],
                counts: vec![0; n_experts],
            });
        if e.n_per_row != n || expert >= e.counts.len() {
            // A caller bug, not input: ignore rather than corrupt the statistics.
            debug_assert!(
                false,
                "imatrix: {tensor}: row {n} / expert {expert} do not fit"
            );
            return;
        }
        for (s, &v) in e.sums[expert * n..(expert + 1) * n].iter_mut().zip(x) {
            *s += f64::from(v) * f64::from(v);
        }
        e.counts[expert] += 1;
    }

    /// Mean x² per input channel for one expert, or `None` when the tensor is unknown or the expert never saw
    /// a token (the quantizer then weighs all channels equally).
    pub fn expert(&self, tensor: &str, expert: usize) -> Option<Vec<f32>> {
        let e = self.entries.get(tensor)?;
        let count = *e.counts.get(expert)?;
        if count == 0 {
            return None;
        }
        let n = e.n_per_row;
        Some(
            e.sums[expert * n..(expert + 1) * n]
                .iter()
                .map(|s| (s / count as f64) as f32)
                .collect(),
        )
    }

    pub fn tensors(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(|k| k.as_str())
    }

    /// Tokens routed to each expert of `tensor`.
    pub fn counts(&self, tensor: &str) -> Option<&[u64]> {
        self.entries.get(tensor).map(|e| e.counts.as_slice())
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Writes llama.cpp's imatrix GGUF, readable by `llama-quantize --imatrix`. Tensors in name order, as
    /// llama-imatrix writes them.
    pub fn write_gguf(
        &self,
        path: &Path,
        dataset: &str,
        chunk_size: u32,
        existing: Existing,
    ) -> Result<()> {
        let mut w = GgufWriter::new();
        let ctx = || path.display().to_string();
        w.add_kv(
            "general.type",
            MetaValue::String(IMATRIX_GENERAL_TYPE.into()),
        )
        .with_context(ctx)?;
        w.add_kv(
            KV_DATASETS,
            MetaValue::Array(MetaArray::String(vec![dataset.to_string()])),
        )
        .with_context(ctx)?;
        w.add_kv(KV_CHUNK_COUNT, MetaValue::U32(1))
            .with_context(ctx)?;
        w.add_kv(KV_CHUNK_SIZE, MetaValue::U32(chunk_size))
            .with_context(ctx)?;
        let mut data: Vec<Vec<u8>> = Vec::new();
        for (name, e) in &self.entries {
            let n_mat = e.counts.len();
            w.add_tensor(
                &format!("{name}{SUFFIX_SUMS}"),
                DType::F32,
                &[n_mat, e.n_per_row],
            )
            .with_context(ctx)?;
            data.push(
                e.sums
                    .iter()
                    .flat_map(|&v| (v as f32).to_le_bytes())
                    .collect(),
            );
            w.add_tensor(&format!("{name}{SUFFIX_COUNTS}"), DType::F32, &[n_mat, 1])
                .with_context(ctx)?;
            data.push(
                e.counts
                    .iter()
                    .flat_map(|&c| (c as f32).to_le_bytes())
                    .collect(),
            );
        }
        let out = w.create_with(path, existing)?;
        for (i, d) in data.iter().enumerate() {
            out.write_tensor(i, d)?;
        }
        out.finish()?;
        Ok(())
    }

    /// Reads llama.cpp's imatrix GGUF (as written by `llama-imatrix` or [`ImportanceMatrix::write_gguf`]).
    pub fn read_gguf(path: &Path) -> Result<ImportanceMatrix> {
        let f = GgufFile::open(path)?;
        let mut m = ImportanceMatrix::new();
        let f32s = |name: &str| -> Result<(Vec<usize>, Vec<f32>)> {
            let t = f
                .tensor(name)
                .with_context(|| format!("{}: no tensor '{name}'", path.display()))?;
            if t.dtype != DType::F32 {
                bail!(
                    "{}: tensor '{name}' is {}, expected F32",
                    path.display(),
                    t.dtype
                );
            }
            let v = t
                .bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            Ok((t.shape.clone(), v))
        };
        for ti in &f.tensors {
            let Some(name) = ti.name.strip_suffix(SUFFIX_SUMS) else {
                continue;
            };
            let (shape, sums) = f32s(&ti.name)?;
            let (_, counts) = f32s(&format!("{name}{SUFFIX_COUNTS}"))?;
            let n_mat = counts.len();
            if n_mat == 0 || sums.len() % n_mat != 0 || shape.first().copied().unwrap_or(1) != n_mat
            {
                bail!(
                    "{}: '{name}': {} sums do not split into {n_mat} experts",
                    path.display(),
                    sums.len()
                );
            }
            if counts.iter().any(|c| !c.is_finite() || *c < 0.0) {
                bail!(
                    "{}: '{name}': counts must be finite and non-negative",
                    path.display()
                );
            }
            m.entries.insert(
                name.to_string(),
                Entry {
                    n_per_row: sums.len() / n_mat,
                    sums: sums.iter().map(|&v| f64::from(v)).collect(),
                    counts: counts.iter().map(|&c| c.round() as u64).collect(),
                },
            );
        }
        if m.is_empty() {
            bail!(
                "{}: no '*{SUFFIX_SUMS}' tensors; not an imatrix file",
                path.display()
            );
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_of_squares_per_expert() {
        let mut m = ImportanceMatrix::new();
        m.add("blk.0.ffn_down_exps.weight", 3, 1, &[1.0, -2.0]);
        m.add("blk.0.ffn_down_exps.weight", 3, 1, &[3.0, 0.0]);
        m.add("blk.0.ffn_down_exps.weight", 3, 2, &[0.5, 0.5]);
        assert_eq!(
            m.expert("blk.0.ffn_down_exps.weight", 1),
            Some(vec![5.0, 2.0])
        );
        assert_eq!(
            m.expert("blk.0.ffn_down_exps.weight", 2),
            Some(vec![0.25, 0.25])
        );
        assert_eq!(m.expert("blk.0.ffn_down_exps.weight", 0), None);
        assert_eq!(m.expert("blk.0.ffn_down_exps.weight", 7), None);
        assert_eq!(m.counts("blk.0.ffn_down_exps.weight"), Some(&[0, 2, 1][..]));
    }

    #[test]
    fn gguf_round_trip() {
        let mut m = ImportanceMatrix::new();
        m.add("blk.1.ffn_up_exps.weight", 2, 0, &[1.0, 2.0, 3.0]);
        m.add("blk.1.ffn_up_exps.weight", 2, 0, &[1.0, 0.0, 1.0]);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("imatrix.gguf");
        m.write_gguf(&p, "calib.txt", 512, Existing::Refuse)
            .unwrap();
        let r = ImportanceMatrix::read_gguf(&p).unwrap();
        assert_eq!(
            r.expert("blk.1.ffn_up_exps.weight", 0),
            Some(vec![1.0, 2.0, 5.0])
        );
        assert_eq!(r.expert("blk.1.ffn_up_exps.weight", 1), None);
        assert!(ImportanceMatrix::read_gguf(&dir.path().join("missing")).is_err());
    }
}
