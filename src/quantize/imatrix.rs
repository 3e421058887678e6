//! Importance matrix: for every expert matrix, the mean square of each input channel's activation over the
//! calibration tokens routed to that expert (what llama.cpp's `llama-imatrix` collects for `ggml_mul_mat_id`).
//!
//! The MSE quantizer weighs each weight's squared error by the importance of the input channel it multiplies,
//! which is the first-order estimate of the error it adds to the matmul's output.

use std::collections::BTreeMap;

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
}
