//! What tensors a gpt-oss config implies, in each layout, and the check that a checkpoint has exactly them.
//!
//! Shapes come from one place: [`gguf_shape`] gives every GGUF tensor's logical shape (row-major) from the
//! config; a source tensor's shape is derived from it through the name table's [`Part`] (gate/up rows are
//! interleaved in one tensor twice as tall; q/k/v are row ranges of the fused qkv) and the expert storage
//! (MXFP4 blocks/scales of the (E, out, in) matrix, or a dense (E, in, out) matrix — the transpose).

use anyhow::{bail, Result};
use ossify_formats::safetensors::SafetensorsModel;
use ossify_formats::DType;

use crate::gpt_oss::names::{self, Part, TensorName};
use crate::gpt_oss::GptOssConfig;

use super::Layout;

/// How a checkpoint stores its expert matrices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpertStorage {
    /// `*_blocks` + `*_scales` (U8), OpenAI's MXFP4 layout; (E, out, in).
    Mxfp4,
    /// One float tensor per matrix, (E, in, out) (BF16 fine-tunes).
    Dense(DType),
    /// GGUF: ggml tensors already split into gate / up / down.
    Gguf,
}

/// Which dtypes a tensor may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpectedDType {
    /// F32, F16 or BF16.
    Float,
    /// Exactly this one.
    Exact(DType),
}

impl ExpectedDType {
    pub fn accepts(self, d: DType) -> bool {
        match self {
            ExpectedDType::Float => matches!(d, DType::F32 | DType::F16 | DType::BF16),
            ExpectedDType::Exact(x) => x == d,
        }
    }
}

impl std::fmt::Display for ExpectedDType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExpectedDType::Float => f.write_str("F32, F16 or BF16"),
            ExpectedDType::Exact(d) => write!(f, "{d}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpectedTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub dtype: ExpectedDType,
}

/// The logical shape (row-major, outermost first) of a GGUF tensor, from its name template.
/// Expert matrices are (E, out, in), as ggml stores `ffn_*_exps`.
pub fn gguf_shape(gguf_template: &str, c: &GptOssConfig) -> Option<Vec<usize>> {
    let (v, h, i, e) = (
        c.vocab_size,
        c.hidden_size,
        c.intermediate_size,
        c.num_local_experts,
    );
    let q = c.num_attention_heads * c.head_dim;
    let kv = c.num_key_value_heads * c.head_dim;
    let suffix = gguf_template
        .strip_prefix("blk.{bid}.")
        .unwrap_or(gguf_template);
    Some(match suffix {
        "token_embd.weight" | "output.weight" => vec![v, h],
        "output_norm.weight" | "attn_norm.weight" | "post_attention_norm.weight" => vec![h],
        "attn_q.weight" => vec![q, h],
        "attn_q.bias" => vec![q],
        "attn_k.weight" | "attn_v.weight" => vec![kv, h],
        "attn_k.bias" | "attn_v.bias" => vec![kv],
        "attn_output.weight" => vec![h, q],
        "attn_output.bias" => vec![h],
        "attn_sinks.weight" => vec![c.num_attention_heads],
        "ffn_gate_inp.weight" => vec![e, h],
        "ffn_gate_inp.bias" => vec![e],
        "ffn_gate_exps.weight" | "ffn_up_exps.weight" => vec![e, i, h],
        "ffn_gate_exps.bias" | "ffn_up_exps.bias" => vec![e, i],
        "ffn_down_exps.weight" => vec![e, h, i],
        "ffn_down_exps.bias" => vec![e, h],
        _ => return None,
    })
}

/// The shape of the source tensor a GGUF tensor is `part` of.
fn source_shape(mut shape: Vec<usize>, part: Part, c: &GptOssConfig) -> Vec<usize> {
    match part {
        Part::Whole => {}
        // gate_up is (E, 2I, H) and its bias (E, 2I): the second dimension holds gate and up interleaved.
        Part::Gate | Part::Up => {
            if let Some(d) = shape.get_mut(1) {
                *d *= 2;
            }
        }
        Part::Q | Part::K | Part::V => {
            if let Some(d) = shape.first_mut() {
                *d = (c.num_attention_heads + 2 * c.num_key_value_heads) * c.head_dim;
            }
        }
    }
    shape
}

fn source_of(row: &TensorName, layout: Layout) -> (&'static str, Part) {
    match layout {
        Layout::Original => (row.original, row.original_part),
        _ => (row.hf, row.hf_part),
    }
}

/// The MXFP4 pair names of an expert matrix's base name in `layout`.
pub fn mxfp4_names(base: &str, layout: Layout) -> (String, String) {
    match layout {
        Layout::Original => names::original_mxfp4_names(base),
        _ => names::hf_mxfp4_names(base),
    }
}

/// Every tensor an HF or original checkpoint with this config and expert storage must hold, in the name
/// table's order, each once.
pub fn expected_tensors(
    layout: Layout,
    c: &GptOssConfig,
    experts: ExpertStorage,
) -> Vec<ExpectedTensor> {
    let mut out: Vec<ExpectedTensor> = Vec::new();
    for (bid, row) in names::all_tensors(c.num_hidden_layers) {
        let Some(gshape) = gguf_shape(row.gguf, c) else {
            continue;
        };
        let (template, part) = source_of(row, layout);
        let base = bid.map_or(template.to_string(), |b| names::layer_name(template, b));
        let shape = source_shape(gshape, part, c);
        let mut push = |name: String, shape: Vec<usize>, dtype| {
            if !out.iter().any(|t| t.name == name) {
                out.push(ExpectedTensor { name, shape, dtype });
            }
        };
        if row.expert_matrix {
            // shape = (E, out, in)
            let (e, rows, cols) = (shape[0], shape[1], shape[2]);
            match experts {
                ExpertStorage::Mxfp4 | ExpertStorage::Gguf => {
                    let (b, s) = mxfp4_names(&base, layout);
                    let nb = cols / 32;
                    push(b, vec![e, rows, nb, 16], ExpectedDType::Exact(DType::U8));
                    push(s, vec![e, rows, nb], ExpectedDType::Exact(DType::U8));
                }
                ExpertStorage::Dense(_) => {
                    push(base, vec![e, cols, rows], ExpectedDType::Float);
                }
            }
        } else {
            push(base, shape, ExpectedDType::Float);
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
    // Layer 0's gate/up matrix tells how experts are stored.
    let gate_up = names::PER_LAYER
        .iter()
        .find(|r| r.expert_matrix)
        .map(|r| names::layer_name(source_of(r, layout).0, 0))
        .unwrap_or_default();
    let (blocks, _) = mxfp4_names(&gate_up, layout);
    let experts = if model.entry(&blocks).is_some() {
        if c.hidden_size % 32 != 0 || c.intermediate_size % 32 != 0 {
            bail!(
                "{file0}: MXFP4 experts need hidden_size ({}) and intermediate_size ({}) to be multiples of 32",
                c.hidden_size,
                c.intermediate_size
            );
        }
        ExpertStorage::Mxfp4
    } else if let Some(e) = model.entry(&gate_up) {
        ExpertStorage::Dense(e.dtype)
    } else {
        bail!(
            "{file0}: tensor '{blocks}' (MXFP4 experts) or '{gate_up}' (BF16 experts) is missing"
        );
    };
    for t in expected_tensors(layout, c, experts) {
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
