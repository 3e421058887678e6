//! `--calibration FILE`: run the reference forward pass over text and collect, for every expert matrix, the
//! mean square of each input channel (llama-imatrix's statistic for `ggml_mul_mat_id`), per expert.
//!
//! The text is tokenized with the checkpoint's own tokenizer and cut into chunks evaluated from an empty context
//! each, as llama-imatrix does. Gate and up share their input (the normed hidden state), so both get the same
//! statistics; down sees the SwiGLU output.

use std::path::Path;
use std::sync::Mutex;

use anyhow::{anyhow, bail, Context, Result};
use indicatif::ProgressBar;

use super::imatrix::ImportanceMatrix;
use crate::checkpoint::{Checkpoint, Layout};
use crate::gpt_oss::forward::{Device, ExpertMatmul, ForwardOptions, Model};
use crate::gpt_oss::names::{self, TensorName};
use crate::tokenizer::{GgufVocab, TextTokenizer};

/// Tokens per chunk (llama-imatrix's default context is 512).
pub const DEFAULT_CHUNK: usize = 512;

/// Collects the importance matrix of the checkpoint at `input` over the text in `text_file`, with a bar of the
/// tokens done when `progress` (on a terminal).
pub fn collect_importance(
    input: &Path,
    text_file: &Path,
    chunk: usize,
    device: Device,
    progress: bool,
) -> Result<ImportanceMatrix> {
    let text = crate::checkpoint::read_input_text(text_file).context("--calibration")?;
    let ckpt = Checkpoint::open(input, None)?;
    let tok = match ckpt.layout {
        Layout::Gguf => TextTokenizer::from_gguf_vocab(&GgufVocab::from_gguf_path(input)?)?,
        _ => TextTokenizer::for_checkpoint_dir(ckpt.tokenizer_dir.as_deref().unwrap_or(input))?,
    };
    let ids = tok.encode(&text, false)?;
    if ids.is_empty() {
        bail!(
            "--calibration {}: no tokens in the file",
            text_file.display()
        );
    }
    let chunks: Vec<&[u32]> = ids.chunks(chunk.max(1)).collect();
    let bar = crate::progress::bar(
        progress,
        ids.len() as u64,
        "calibration",
        crate::progress::Unit::Items("tokens"),
    );
    let m = importance_over_on(&ckpt, &chunks, device, &bar)
        .with_context(|| format!("--calibration {}", text_file.display()));
    bar.finish_and_clear();
    m
}

/// The importance matrix of `ckpt` over token sequences, each evaluated from an empty context.
pub fn importance_over(ckpt: &Checkpoint, sequences: &[&[u32]]) -> Result<ImportanceMatrix> {
    importance_over_on(ckpt, sequences, Device::Cpu, &ProgressBar::hidden())
}

/// [`importance_over`] with the forward pass on `device`; `bar` advances by each sequence's tokens.
pub fn importance_over_on(
    ckpt: &Checkpoint,
    sequences: &[&[u32]],
    device: Device,
    bar: &ProgressBar,
) -> Result<ImportanceMatrix> {
    let cfg = ckpt.config.clone();
    let n_exp = cfg.num_local_experts;
    let (h, inter) = (cfg.hidden_size, cfg.intermediate_size);
    let acc = Mutex::new(ImportanceMatrix::new());
    let hook = |l: usize, e: usize, which: ExpertMatmul, rows: &[f32]| {
        let Ok(mut m) = acc.lock() else { return };
        let (targets, width): (&[TensorName], usize) = match which {
            ExpertMatmul::GateUp => (&[names::FFN_GATE_EXPS, names::FFN_UP_EXPS], h),
            ExpertMatmul::Down => (&[names::FFN_DOWN_EXPS], inter),
        };
        for row in targets {
            let name = names::layer_name(row.gguf, l);
            for r in rows.chunks_exact(width) {
                m.add(&name, n_exp, e, r);
            }
        }
    };
    let options = ForwardOptions {
        device,
        ..ForwardOptions::default()
    };
    let model = Model::new(ckpt, options)?.with_expert_hook(Box::new(hook));
    for (i, c) in sequences.iter().enumerate() {
        model.forward(c).with_context(|| format!("chunk {i}"))?;
        bar.inc(c.len() as u64);
    }
    drop(model);
    acc.into_inner()
        .map_err(|_| anyhow!("--calibration: a forward-pass thread panicked"))
}
