//! The check that an HF or original checkpoint holds exactly the tensors its config implies.
//!
//! What those are (names, shapes, dtypes) is [`crate::gpt_oss::names::resolve`]'s answer for every row of the
//! name table; this module only compares the safetensors files against it.

use anyhow::{bail, Result};
use ossify_formats::quant::QK_MXFP4;
use ossify_formats::safetensors::SafetensorsModel;

use crate::gpt_oss::names::{self, ExpectedTensor, ExpertStorage, Layout};
use crate::gpt_oss::GptOssConfig;

/// Every tensor an HF or original checkpoint with this config and expert storage must hold, in the name
/// table's order, each once.
pub fn expected_tensors(
    layout: Layout,
    c: &GptOssConfig,
    experts: ExpertStorage,
) -> Vec<ExpectedTensor> {
    let mut out: Vec<ExpectedTensor> = Vec::new();
    for r in names::resolve_all(layout, experts, c) {
        for t in r.stored {
            if !out.iter().any(|o| o.name == t.name) {
                out.push(t);
            }
        }
    }
    out
}

/// Finds how the experts are stored and checks every expected tensor: present, right shape, right dtype.
pub(super) fn validate(
    model: &SafetensorsModel,
    layout: Layout,
    c: &GptOssConfig,
) -> Result<ExpertStorage> {
    let file0 = model
        .files()
        .next()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let experts = names::detect_experts(layout, |n| model.entry(n).map(|e| e.dtype))
        .map_err(|e| anyhow::anyhow!("{file0}: {e}"))?;
    if experts == ExpertStorage::Mxfp4
        && (c.hidden_size % QK_MXFP4 != 0 || c.intermediate_size % QK_MXFP4 != 0)
    {
        bail!(
            "{file0}: MXFP4 experts need hidden_size ({}) and intermediate_size ({}) to be multiples of {QK_MXFP4}",
            c.hidden_size,
            c.intermediate_size
        );
    }
    let expected = expected_tensors(layout, c, experts);
    // llama.cpp's converter refuses a tensor it cannot map ("Can not map tensor"), except these it skips
    // (base.py prepare_tensors); dropping an unknown weight silently would change the model.
    const SKIPPED: [&str; 3] = [
        ".attention.masked_bias",
        ".attention.bias",
        ".rotary_emb.inv_freq",
    ];
    for e in model.entries() {
        if !expected.iter().any(|t| t.name == e.name)
            && !SKIPPED.iter().any(|s| e.name.ends_with(s))
        {
            let file = model
                .file_of(&e.name)
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            bail!(
                "{file}: tensor '{}' is not part of a gpt-oss model with this config ({} layers, {:?} experts)",
                e.name,
                c.num_hidden_layers,
                experts
            );
        }
    }
    for t in expected {
        let Some(e) = model.entry(&t.name) else {
            bail!("{file0}: tensor '{}' is missing", t.name);
        };
        let file = model
            .file_of(&t.name)
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        if e.shape != t.shape {
            bail!(
                "{file}: tensor '{}' has shape {:?}, expected {:?} for this config",
                t.name,
                e.shape,
                t.shape
            );
        }
        if !t.dtype.accepts(e.dtype) {
            bail!(
                "{file}: tensor '{}' has dtype {}, expected {}",
                t.name,
                e.dtype,
                t.dtype
            );
        }
    }
    Ok(experts)
}
