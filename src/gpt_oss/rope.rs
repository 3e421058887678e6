//! Rotary position embedding as gpt-oss applies it: half-split (NeoX) rotation with YaRN frequencies.
//!
//! Frequencies follow transformers' `_compute_yarn_parameters` (modeling_rope_utils.py), computed in f32 as
//! torch does; `truncate: false` (the HF / OpenAI definition) keeps the correction range unrounded, and
//! `yarn_truncate` rounds it (floor / ceil) as llama.cpp does. The attention factor (0.1·ln(factor)+1 when the
//! config does not give one) multiplies cos and sin.

use std::f64::consts::PI;

use super::config::GptOssConfig;

/// Inverse frequencies (one per rotated pair) and the factor applied to cos and sin.
#[derive(Clone, Debug)]
pub struct Rope {
    pub inv_freq: Vec<f32>,
    pub attention_scaling: f32,
    half: usize,
}

impl Rope {
    /// `truncate_override`: `Some(true)` rounds the YaRN correction range as llama.cpp does, `None` follows the
    /// config.
    pub fn new(config: &GptOssConfig, truncate_override: Option<bool>) -> Rope {
        let dim = config.head_dim;
        let half = dim / 2;
        let base = config.rope_theta;
        // torch: base ** (arange(0, dim, 2).float() / dim), in f32.
        let pos_freqs: Vec<f32> = (0..half)
            .map(|i| (base as f32).powf((2 * i) as f32 / dim as f32))
            .collect();
        let Some(ys) = &config.rope_scaling else {
            return Rope {
                inv_freq: pos_freqs.iter().map(|p| 1.0 / p).collect(),
                attention_scaling: 1.0,
                half,
            };
        };
        let factor = ys.factor;
        let attention_scaling = if factor <= 1.0 {
            1.0
        } else {
            0.1 * factor.ln() + 1.0
        };
        let truncate = truncate_override.unwrap_or(ys.truncate);
        let (low, high) = Self::correction_range(config, truncate).unwrap_or((0.0, 0.0));
        // linear_ramp_factor works in f32 on (arange(dim//2) - min) / (max - min).
        let (lo, mut hi) = (low as f32, high as f32);
        if lo == hi {
            hi += 0.001;
        }
        let inv_freq = pos_freqs
            .iter()
            .enumerate()
            .map(|(i, &p)| {
                let ramp = ((i as f32 - lo) / (hi - lo)).clamp(0.0, 1.0);
                let extrapolation_factor = 1.0 - ramp;
                let inv_extra = 1.0 / p;
                let inv_inter = 1.0 / (factor as f32 * p);
                inv_inter * (1.0 - extrapolation_factor) + inv_extra * extrapolation_factor
            })
            .collect();
        Rope {
            inv_freq,
            attention_scaling: attention_scaling as f32,
            half,
        }
    }

    /// Fills `cos` and `sin` (`head_dim / 2` each) for one position.
    pub fn cos_sin(&self, pos: usize, cos: &mut [f32], sin: &mut [f32]) {
        let p = pos as f32;
        for ((c, s), &f) in cos.iter_mut().zip(sin.iter_mut()).zip(&self.inv_freq) {
            let a = p * f;
            *c = a.cos() * self.attention_scaling;
            *s = a.sin() * self.attention_scaling;
        }
    }

    /// Rotates every head of `x` (heads of `2 * half` values back to back): first half with the second,
    /// `(a, b) -> (a·cos − b·sin, b·cos + a·sin)`.
    pub fn apply(&self, x: &mut [f32], cos: &[f32], sin: &[f32]) {
        let h = self.half;
        for head in x.chunks_exact_mut(2 * h) {
            let (a, b) = head.split_at_mut(h);
            for i in 0..h {
                let (x1, x2) = (a[i], b[i]);
                a[i] = x1 * cos[i] - x2 * sin[i];
                b[i] = x2 * cos[i] + x1 * sin[i];
            }
        }
    }

    /// The correction range (low, high) in rotated-pair indices, after optional rounding; for tests and reports.
    pub fn correction_range(config: &GptOssConfig, truncate: bool) -> Option<(f64, f64)> {
        let ys = config.rope_scaling.as_ref()?;
        let dim = config.head_dim as f64;
        let orig = ys.original_max_position_embeddings as f64;
        let cd = |rot: f64| (dim * (orig / (rot * 2.0 * PI)).ln()) / (2.0 * config.rope_theta.ln());
        let (mut lo, mut hi) = (cd(ys.beta_fast), cd(ys.beta_slow));
        if truncate {
            lo = lo.floor();
            hi = hi.ceil();
        }
        Some((lo.max(0.0), hi.min(dim - 1.0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpt_oss::config::{AttentionKind, RopeScaling};

    fn gpt_oss_20b_rope() -> GptOssConfig {
        GptOssConfig {
            vocab_size: 201088,
            hidden_size: 2880,
            intermediate_size: 2880,
            num_hidden_layers: 24,
            num_attention_heads: 64,
            num_key_value_heads: 8,
            head_dim: 64,
            num_local_experts: 32,
            num_experts_per_tok: 4,
            sliding_window: 128,
            max_position_embeddings: 131072,
            rope_theta: 150000.0,
            rope_scaling: Some(RopeScaling {
                factor: 32.0,
                beta_fast: 32.0,
                beta_slow: 1.0,
                original_max_position_embeddings: 4096,
                truncate: false,
            }),
            rms_norm_eps: 1e-5,
            swiglu_limit: 7.0,
            layer_types: vec![AttentionKind::Sliding; 24],
            bos_token_id: None,
            eos_token_id: None,
            pad_token_id: None,
        }
    }

    /// The real config's YaRN ramp: 8.0928 and 17.398 unrounded (HF / OpenAI), 8 and 18 rounded (llama.cpp),
    /// as the issue states them; concentration 0.1·ln(32) + 1.
    #[test]
    fn gpt_oss_20b_correction_range_and_concentration() {
        let c = gpt_oss_20b_rope();
        let (lo, hi) = Rope::correction_range(&c, false).unwrap();
        assert!(
            (lo - 8.0928).abs() < 1e-4 && (hi - 17.398).abs() < 1e-3,
            "{lo} {hi}"
        );
        assert_eq!(Rope::correction_range(&c, true), Some((8.0, 18.0)));
        let r = Rope::new(&c, None);
        assert!((r.attention_scaling - (0.1 * 32f32.ln() + 1.0)).abs() < 1e-6);
        assert_eq!(r.inv_freq.len(), 32);
        // Below the ramp the frequencies are the original ones; above it they are divided by the factor.
        assert_eq!(r.inv_freq[0], 1.0);
        let base31 = 1.0 / 150000f32.powf(62.0 / 64.0);
        assert!((r.inv_freq[31] - base31 / 32.0).abs() <= 1e-6 * base31);
    }
}
