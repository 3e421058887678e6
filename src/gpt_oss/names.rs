//! Tensor names of gpt-oss in the three layouts we read, as data, and the one resolver that says where a GGUF
//! tensor's values are in a checkpoint of any layout.
//!
//! Each row of [`GLOBAL`] / [`PER_LAYER`] names one GGUF tensor (the names llama.cpp gives gpt-oss:
//! gguf-py/gguf/constants.py `MODEL_ARCH.GPT_OSS` and `TENSOR_NAMES`), its shape as config dimensions, where it
//! comes from in the Hugging Face layout (transformers' `GptOssForCausalLM` state dict) and in OpenAI's
//! `original/` layout (gpt_oss/torch/model.py), and which part of the source tensor it is. `{bid}` stands for the
//! layer index.
//!
//! [`resolve`] turns a row, a layer, a layout and an expert storage into a [`Resolved`]: the GGUF name and shape,
//! the [`Source`] selection (whole; rows a..b of the fused qkv; even / odd entries of a fused gate/up bias; an
//! MXFP4 blocks + scales pair with its parity; a dense transposed expert stack) and every stored tensor it reads
//! with its expected shape. convert's plan, verify-parity's tensor comparison, the forward pass's weights, the
//! checkpoint checks and the safetensors writer (in reverse) all go through it, so adding a tensor or a layout
//! means editing this table.
//!
//! Expert matrices can be stored two ways in HF and original checkpoints: MXFP4 as a pair `{hf}_blocks` +
//! `{hf}_scales` (original: `{original}.blocks` + `{original}.scales`), or as a plain 16/32-bit tensor named
//! `{hf}` (a BF16 fine-tune; shape (E, in, out), the transpose of the MXFP4 layout's (E, out, in)).

use ossify_formats::quant::{QK_MXFP4, QS_MXFP4};
use ossify_formats::DType;

use super::config::GptOssConfig;

/// Which of the three checkpoint layouts a path holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Hugging Face transformers: config.json + model*.safetensors (+ index).
    Hf,
    /// OpenAI's `original/` folder: config.json + model.safetensors with `block.N.*` names.
    Original,
    /// One GGUF file, or a split set of them (llama.cpp's gguf-split).
    Gguf,
}

impl Layout {
    pub fn name(self) -> &'static str {
        match self {
            Layout::Hf => "hf",
            Layout::Original => "original",
            Layout::Gguf => "gguf",
        }
    }

    pub fn from_name(s: &str) -> Option<Layout> {
        match s {
            "hf" => Some(Layout::Hf),
            "original" => Some(Layout::Original),
            "gguf" => Some(Layout::Gguf),
            _ => None,
        }
    }

    /// The layout whose token-embedding name `has` knows (GGUF, then HF, then original), if any.
    pub fn by_names(has: impl Fn(&str) -> bool) -> Option<Layout> {
        [Layout::Gguf, Layout::Hf, Layout::Original]
            .into_iter()
            .find(|&l| has(TOKEN_EMBD.source(l).0))
    }

    /// The (blocks, scales) suffixes of an MXFP4 pair in this layout; `None` for GGUF (ggml blocks hold both).
    fn mxfp4_suffixes(self) -> Option<(&'static str, &'static str)> {
        match self {
            Layout::Hf => Some(("_blocks", "_scales")),
            Layout::Original => Some((".blocks", ".scales")),
            Layout::Gguf => None,
        }
    }
}

impl std::fmt::Display for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

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

/// Which dtypes a stored tensor may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpectedDType {
    /// F32, F16 or BF16.
    Float,
    /// Exactly this one.
    Exact(DType),
    /// Any type (a GGUF tensor: any ggml type).
    Any,
}

impl ExpectedDType {
    pub fn accepts(self, d: DType) -> bool {
        match self {
            ExpectedDType::Float => matches!(d, DType::F32 | DType::F16 | DType::BF16),
            ExpectedDType::Exact(x) => x == d,
            ExpectedDType::Any => true,
        }
    }
}

impl std::fmt::Display for ExpectedDType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExpectedDType::Float => f.write_str("F32, F16 or BF16"),
            ExpectedDType::Exact(d) => write!(f, "{d}"),
            ExpectedDType::Any => f.write_str("any type"),
        }
    }
}

/// One stored tensor a checkpoint must hold: its name, shape (row-major) and dtype.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpectedTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub dtype: ExpectedDType,
}

/// A dimension of a GGUF tensor, from the config.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dim {
    /// `vocab_size`
    Vocab,
    /// `hidden_size`
    Hidden,
    /// `intermediate_size` (one expert's width)
    Ffn,
    /// `num_local_experts`
    Experts,
    /// `num_attention_heads`
    Heads,
    /// `num_attention_heads · head_dim`: the query rows.
    QRows,
    /// `num_key_value_heads · head_dim`: the key (or value) rows.
    KvRows,
}

impl Dim {
    pub fn of(self, c: &GptOssConfig) -> usize {
        match self {
            Dim::Vocab => c.vocab_size,
            Dim::Hidden => c.hidden_size,
            Dim::Ffn => c.intermediate_size,
            Dim::Experts => c.num_local_experts,
            Dim::Heads => c.num_attention_heads,
            Dim::QRows => c.num_attention_heads.saturating_mul(c.head_dim),
            Dim::KvRows => c.num_key_value_heads.saturating_mul(c.head_dim),
        }
    }
}

/// Which part of the source tensor a GGUF tensor is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// The whole source tensor.
    Whole,
    /// Even rows of the fused gate/up projection (or even entries of its bias): the gate.
    Gate,
    /// Odd rows of the fused gate/up projection (or odd entries of its bias): the up projection.
    Up,
    /// The query rows of the original layout's fused qkv (first n_heads * head_dim rows).
    Q,
    /// The key rows of the fused qkv (next n_kv_heads * head_dim rows).
    K,
    /// The value rows of the fused qkv (last n_kv_heads * head_dim rows).
    V,
}

impl Part {
    /// For gate / up: which of the interleaved rows (0 = even = gate, 1 = odd = up).
    pub fn parity(self) -> Option<usize> {
        match self {
            Part::Gate => Some(0),
            Part::Up => Some(1),
            _ => None,
        }
    }
}

/// One GGUF tensor and its sources. `hf_part` applies to the HF name, `original_part` to the original name.
#[derive(Clone, Copy, Debug)]
pub struct TensorName {
    pub gguf: &'static str,
    /// Logical shape, row-major (outermost first); expert matrices are (E, out, in) as ggml stores `ffn_*_exps`.
    pub shape: &'static [Dim],
    pub hf: &'static str,
    pub hf_part: Part,
    pub original: &'static str,
    pub original_part: Part,
    /// Expert matrix that HF and original checkpoints may store as MXFP4 blocks + scales, or dense transposed.
    pub expert_matrix: bool,
}

impl TensorName {
    /// The source name template and part in `layout` (GGUF: the GGUF name, whole).
    pub fn source(&self, layout: Layout) -> (&'static str, Part) {
        match layout {
            Layout::Gguf => (self.gguf, Part::Whole),
            Layout::Hf => (self.hf, self.hf_part),
            Layout::Original => (self.original, self.original_part),
        }
    }

    /// Whether `name` is this tensor's GGUF name (for some layer, if it has one).
    pub fn is(&self, name: &str) -> bool {
        match self.gguf.split_once("{bid}") {
            None => name == self.gguf,
            Some((pre, post)) => name
                .strip_prefix(pre)
                .and_then(|n| n.strip_suffix(post))
                .is_some_and(|b| !b.is_empty() && b.bytes().all(|c| c.is_ascii_digit())),
        }
    }

    /// The logical GGUF shape for a config.
    pub fn shape(&self, c: &GptOssConfig) -> Vec<usize> {
        self.shape.iter().map(|d| d.of(c)).collect()
    }
}

const fn t(
    gguf: &'static str,
    shape: &'static [Dim],
    hf: &'static str,
    original: &'static str,
) -> TensorName {
    tp(gguf, shape, hf, Part::Whole, original, Part::Whole)
}

const fn tp(
    gguf: &'static str,
    shape: &'static [Dim],
    hf: &'static str,
    hf_part: Part,
    original: &'static str,
    original_part: Part,
) -> TensorName {
    TensorName {
        gguf,
        shape,
        hf,
        hf_part,
        original,
        original_part,
        expert_matrix: false,
    }
}

const fn expert(
    gguf: &'static str,
    shape: &'static [Dim],
    hf: &'static str,
    original: &'static str,
    part: Part,
) -> TensorName {
    TensorName {
        gguf,
        shape,
        hf,
        hf_part: part,
        original,
        original_part: part,
        expert_matrix: true,
    }
}

use Dim::{Experts as E, Ffn as I, Heads, Hidden as H, KvRows as KV, QRows as Q, Vocab as V};

// Rows that code outside the table refers to by name; the rest are written inline in the tables below.
pub const TOKEN_EMBD: TensorName = t(
    "token_embd.weight",
    &[V, H],
    "model.embed_tokens.weight",
    "embedding.weight",
);
pub const OUTPUT_NORM: TensorName = t(
    "output_norm.weight",
    &[H],
    "model.norm.weight",
    "norm.scale",
);
pub const OUTPUT: TensorName = t(
    "output.weight",
    &[V, H],
    "lm_head.weight",
    "unembedding.weight",
);
pub const ATTN_NORM: TensorName = t(
    "blk.{bid}.attn_norm.weight",
    &[H],
    "model.layers.{bid}.input_layernorm.weight",
    "block.{bid}.attn.norm.scale",
);
pub const ATTN_Q: TensorName = tp(
    "blk.{bid}.attn_q.weight",
    &[Q, H],
    "model.layers.{bid}.self_attn.q_proj.weight",
    Part::Whole,
    "block.{bid}.attn.qkv.weight",
    Part::Q,
);
pub const ATTN_Q_BIAS: TensorName = tp(
    "blk.{bid}.attn_q.bias",
    &[Q],
    "model.layers.{bid}.self_attn.q_proj.bias",
    Part::Whole,
    "block.{bid}.attn.qkv.bias",
    Part::Q,
);
pub const ATTN_K: TensorName = tp(
    "blk.{bid}.attn_k.weight",
    &[KV, H],
    "model.layers.{bid}.self_attn.k_proj.weight",
    Part::Whole,
    "block.{bid}.attn.qkv.weight",
    Part::K,
);
pub const ATTN_K_BIAS: TensorName = tp(
    "blk.{bid}.attn_k.bias",
    &[KV],
    "model.layers.{bid}.self_attn.k_proj.bias",
    Part::Whole,
    "block.{bid}.attn.qkv.bias",
    Part::K,
);
pub const ATTN_V: TensorName = tp(
    "blk.{bid}.attn_v.weight",
    &[KV, H],
    "model.layers.{bid}.self_attn.v_proj.weight",
    Part::Whole,
    "block.{bid}.attn.qkv.weight",
    Part::V,
);
pub const ATTN_V_BIAS: TensorName = tp(
    "blk.{bid}.attn_v.bias",
    &[KV],
    "model.layers.{bid}.self_attn.v_proj.bias",
    Part::Whole,
    "block.{bid}.attn.qkv.bias",
    Part::V,
);
pub const ATTN_OUTPUT: TensorName = t(
    "blk.{bid}.attn_output.weight",
    &[H, Q],
    "model.layers.{bid}.self_attn.o_proj.weight",
    "block.{bid}.attn.out.weight",
);
pub const ATTN_OUTPUT_BIAS: TensorName = t(
    "blk.{bid}.attn_output.bias",
    &[H],
    "model.layers.{bid}.self_attn.o_proj.bias",
    "block.{bid}.attn.out.bias",
);
pub const ATTN_SINKS: TensorName = t(
    "blk.{bid}.attn_sinks.weight",
    &[Heads],
    "model.layers.{bid}.self_attn.sinks",
    "block.{bid}.attn.sinks",
);
pub const POST_ATTN_NORM: TensorName = t(
    "blk.{bid}.post_attention_norm.weight",
    &[H],
    "model.layers.{bid}.post_attention_layernorm.weight",
    "block.{bid}.mlp.norm.scale",
);
pub const FFN_GATE_INP: TensorName = t(
    "blk.{bid}.ffn_gate_inp.weight",
    &[E, H],
    "model.layers.{bid}.mlp.router.weight",
    "block.{bid}.mlp.gate.weight",
);
pub const FFN_GATE_INP_BIAS: TensorName = t(
    "blk.{bid}.ffn_gate_inp.bias",
    &[E],
    "model.layers.{bid}.mlp.router.bias",
    "block.{bid}.mlp.gate.bias",
);
pub const FFN_GATE_EXPS: TensorName = expert(
    "blk.{bid}.ffn_gate_exps.weight",
    &[E, I, H],
    "model.layers.{bid}.mlp.experts.gate_up_proj",
    "block.{bid}.mlp.mlp1_weight",
    Part::Gate,
);
pub const FFN_GATE_EXPS_BIAS: TensorName = tp(
    "blk.{bid}.ffn_gate_exps.bias",
    &[E, I],
    "model.layers.{bid}.mlp.experts.gate_up_proj_bias",
    Part::Gate,
    "block.{bid}.mlp.mlp1_bias",
    Part::Gate,
);
pub const FFN_UP_EXPS: TensorName = expert(
    "blk.{bid}.ffn_up_exps.weight",
    &[E, I, H],
    "model.layers.{bid}.mlp.experts.gate_up_proj",
    "block.{bid}.mlp.mlp1_weight",
    Part::Up,
);
pub const FFN_UP_EXPS_BIAS: TensorName = tp(
    "blk.{bid}.ffn_up_exps.bias",
    &[E, I],
    "model.layers.{bid}.mlp.experts.gate_up_proj_bias",
    Part::Up,
    "block.{bid}.mlp.mlp1_bias",
    Part::Up,
);
pub const FFN_DOWN_EXPS: TensorName = expert(
    "blk.{bid}.ffn_down_exps.weight",
    &[E, H, I],
    "model.layers.{bid}.mlp.experts.down_proj",
    "block.{bid}.mlp.mlp2_weight",
    Part::Whole,
);
pub const FFN_DOWN_EXPS_BIAS: TensorName = t(
    "blk.{bid}.ffn_down_exps.bias",
    &[E, H],
    "model.layers.{bid}.mlp.experts.down_proj_bias",
    "block.{bid}.mlp.mlp2_bias",
);

/// Tensors outside the layers, in llama.cpp's order.
pub const GLOBAL: &[TensorName] = &[TOKEN_EMBD, OUTPUT_NORM, OUTPUT];

/// Tensors of layer `{bid}`, in llama.cpp's order.
pub const PER_LAYER: &[TensorName] = &[
    ATTN_NORM,
    ATTN_Q,
    ATTN_Q_BIAS,
    ATTN_K,
    ATTN_K_BIAS,
    ATTN_V,
    ATTN_V_BIAS,
    ATTN_OUTPUT,
    ATTN_OUTPUT_BIAS,
    ATTN_SINKS,
    POST_ATTN_NORM,
    FFN_GATE_INP,
    FFN_GATE_INP_BIAS,
    FFN_GATE_EXPS,
    FFN_GATE_EXPS_BIAS,
    FFN_UP_EXPS,
    FFN_UP_EXPS_BIAS,
    FFN_DOWN_EXPS,
    FFN_DOWN_EXPS_BIAS,
];

/// Substitutes the layer index into a template.
pub fn layer_name(template: &str, bid: usize) -> String {
    template.replace("{bid}", &bid.to_string())
}

/// A template with the layer index substituted, or a global name as it is.
pub fn name_at(template: &str, layer: Option<usize>) -> String {
    layer.map_or_else(|| template.to_string(), |b| layer_name(template, b))
}

/// Every GGUF tensor of a model with `n_layers` layers, with its row of this table, in llama.cpp's order.
pub fn all_tensors(n_layers: usize) -> Vec<(Option<usize>, &'static TensorName)> {
    let mut v: Vec<(Option<usize>, &'static TensorName)> =
        GLOBAL.iter().map(|r| (None, r)).collect();
    for bid in 0..n_layers {
        v.extend(PER_LAYER.iter().map(|r| (Some(bid), r)));
    }
    v
}

/// How many layers a checkpoint's tensor names hold: one more than the largest index N among names that
/// start as `layer_template` (a per-layer name template of the name table, `blk.{bid}.attn_norm.weight`) does
/// up to `{bid}`, followed by N and a dot. Used to refuse a layer count the tensors cannot back before
/// anything is sized by it.
pub fn layers_present<'a>(names: impl Iterator<Item = &'a str>, layer_template: &str) -> usize {
    let prefix = layer_template.split("{bid}").next().unwrap_or_default();
    names
        .filter_map(|n| {
            let rest = n.strip_prefix(prefix)?;
            let (idx, _) = rest.split_once('.')?;
            idx.parse::<usize>().ok()
        })
        .max()
        .map_or(0, |m| m.saturating_add(1))
}

/// The MXFP4 pair names `(blocks, scales)` of an expert matrix's base name in `layout` (HF `{base}_blocks`,
/// original `{base}.blocks`; GGUF has no pairs and gets the HF spelling).
pub fn mxfp4_pair(base: &str, layout: Layout) -> (String, String) {
    let (b, s) = layout
        .mxfp4_suffixes()
        .or(Layout::Hf.mxfp4_suffixes())
        .unwrap_or(("_blocks", "_scales"));
    (format!("{base}{b}"), format!("{base}{s}"))
}

/// The scales tensor that goes with an MXFP4 blocks tensor, in either layout's spelling.
pub fn mxfp4_scales_of(blocks: &str) -> Option<String> {
    [Layout::Hf, Layout::Original]
        .into_iter()
        .filter_map(Layout::mxfp4_suffixes)
        .find_map(|(b, s)| blocks.strip_suffix(b).map(|base| format!("{base}{s}")))
}

/// Whether `name` is spelled as the scales half of an MXFP4 pair.
pub fn is_mxfp4_scales(name: &str) -> bool {
    [Layout::Hf, Layout::Original]
        .into_iter()
        .filter_map(Layout::mxfp4_suffixes)
        .any(|(_, s)| name.ends_with(s))
}

/// Where a GGUF tensor's values are in a checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// The stored tensor, whole: its shape is the GGUF tensor's.
    Whole { name: String },
    /// Rows `start..end` of the outermost dimension (for a 1-D tensor: entries): q, k or v of the original
    /// layout's fused qkv.
    Rows {
        name: String,
        start: usize,
        end: usize,
    },
    /// Every other entry along dimension 1, from `parity` (0 = gate, 1 = up): a fused gate/up bias (E, 2I).
    Interleaved { name: String, parity: usize },
    /// An MXFP4 pair (E, R, in/32, 16) + (E, R, in/32) of the (E, out, in) matrix, repacked; with `parity`,
    /// output row r of each expert is stored row 2r + parity (the fused gate/up).
    Mxfp4 {
        blocks: String,
        scales: String,
        parity: Option<usize>,
    },
    /// A dense expert stack stored (E, in, R), the transpose of (E, out, in); `parity` as for [`Source::Mxfp4`].
    DenseExperts { name: String, parity: Option<usize> },
}

impl Source {
    /// The stored tensors this reads.
    pub fn inputs(&self) -> Vec<&str> {
        match self {
            Source::Whole { name }
            | Source::Rows { name, .. }
            | Source::Interleaved { name, .. }
            | Source::DenseExperts { name, .. } => vec![name],
            Source::Mxfp4 { blocks, scales, .. } => vec![blocks, scales],
        }
    }

    /// `(step, offset)`: output row r along dimension 1 is stored row `r * step + offset` (gate/up interleave).
    pub fn row_step(parity: Option<usize>) -> (usize, usize) {
        parity.map_or((1, 0), |p| (2, p))
    }

    /// One line for humans: how the tensor is made.
    pub fn describe(&self) -> String {
        let rows = |p: &Option<usize>| match p {
            None => "",
            Some(0) => ", even rows",
            Some(_) => ", odd rows",
        };
        match self {
            Source::Whole { name } => name.clone(),
            Source::Rows { name, start, end } => format!("{name} rows {start}..{end}"),
            Source::Interleaved { name, parity } => format!("{name}{}", rows(&Some(*parity))),
            Source::DenseExperts { name, parity } => format!("{name} transposed{}", rows(parity)),
            Source::Mxfp4 { blocks, parity, .. } => format!("{blocks} repacked{}", rows(parity)),
        }
    }
}

/// One GGUF tensor resolved in one checkpoint layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// GGUF name (`blk.3.attn_q.weight`).
    pub gguf: String,
    pub layer: Option<usize>,
    /// Logical GGUF shape, row-major.
    pub shape: Vec<usize>,
    pub source: Source,
    /// The stored tensors `source` reads, with the shapes and dtypes the config implies.
    pub stored: Vec<ExpectedTensor>,
}

/// Where GGUF tensor `row` of layer `layer` lives in a `layout` checkpoint whose experts are stored as
/// `experts` (ignored for GGUF; `Gguf` storage in an HF / original layout means the MXFP4 pair), for config `c`.
pub fn resolve(
    row: &TensorName,
    layer: Option<usize>,
    layout: Layout,
    experts: ExpertStorage,
    c: &GptOssConfig,
) -> Resolved {
    let shape = row.shape(c);
    let (template, part) = row.source(layout);
    let name = name_at(template, layer);
    let exp = |name: String, shape: Vec<usize>, dtype| ExpectedTensor { name, shape, dtype };
    let (source, stored) = if layout == Layout::Gguf {
        let stored = vec![exp(name.clone(), shape.clone(), ExpectedDType::Any)];
        (Source::Whole { name }, stored)
    } else if row.expert_matrix {
        // (E, out, in); a fused gate/up stores twice the rows, interleaved.
        let (e, out, inp) = match shape[..] {
            [e, out, inp] => (e, out, inp),
            _ => (0, 0, 0),
        };
        let parity = part.parity();
        let rows = out.saturating_mul(Source::row_step(parity).0);
        match experts {
            ExpertStorage::Dense(_) => {
                let stored = vec![exp(name.clone(), vec![e, inp, rows], ExpectedDType::Float)];
                (Source::DenseExperts { name, parity }, stored)
            }
            ExpertStorage::Mxfp4 | ExpertStorage::Gguf => {
                let (blocks, scales) = mxfp4_pair(&name, layout);
                let u8 = ExpectedDType::Exact(DType::U8);
                let stored = vec![
                    exp(blocks.clone(), vec![e, rows, inp / QK_MXFP4, QS_MXFP4], u8),
                    exp(scales.clone(), vec![e, rows, inp / QK_MXFP4], u8),
                ];
                let source = Source::Mxfp4 {
                    blocks,
                    scales,
                    parity,
                };
                (source, stored)
            }
        }
    } else {
        let mut stored_shape = shape.clone();
        let source = match part {
            Part::Whole => Source::Whole { name: name.clone() },
            Part::Gate | Part::Up => {
                let parity = part.parity().unwrap_or(0);
                if let Some(d) = stored_shape.get_mut(1) {
                    *d = d.saturating_mul(2);
                }
                Source::Interleaved {
                    name: name.clone(),
                    parity,
                }
            }
            Part::Q | Part::K | Part::V => {
                let (q, kv) = (Dim::QRows.of(c), Dim::KvRows.of(c));
                let (start, end) = match part {
                    Part::Q => (0, q),
                    Part::K => (q, q + kv),
                    _ => (q + kv, q + 2 * kv),
                };
                if let Some(d) = stored_shape.first_mut() {
                    *d = q + 2 * kv;
                }
                Source::Rows {
                    name: name.clone(),
                    start,
                    end,
                }
            }
        };
        (source, vec![exp(name, stored_shape, ExpectedDType::Float)])
    };
    Resolved {
        gguf: name_at(row.gguf, layer),
        layer,
        shape,
        source,
        stored,
    }
}

/// Every GGUF tensor of the model `c` resolved in `layout`, in llama.cpp's order.
pub fn resolve_all(layout: Layout, experts: ExpertStorage, c: &GptOssConfig) -> Vec<Resolved> {
    all_tensors(c.num_hidden_layers)
        .into_iter()
        .map(|(layer, row)| resolve(row, layer, layout, experts, c))
        .collect()
}

/// How an HF or original checkpoint stores its experts, from the dtype of the tensors it has (`dtype_of`):
/// layer 0's MXFP4 gate/up pair, or its dense gate/up matrix. The error names both.
pub fn detect_experts(
    layout: Layout,
    dtype_of: impl Fn(&str) -> Option<DType>,
) -> Result<ExpertStorage, String> {
    if layout == Layout::Gguf {
        return Ok(ExpertStorage::Gguf);
    }
    let gate_up = layer_name(FFN_GATE_EXPS.source(layout).0, 0);
    let (blocks, _) = mxfp4_pair(&gate_up, layout);
    if dtype_of(&blocks).is_some() {
        Ok(ExpertStorage::Mxfp4)
    } else if let Some(d) = dtype_of(&gate_up) {
        Ok(ExpertStorage::Dense(d))
    } else {
        Err(format!(
            "tensor '{blocks}' (MXFP4 experts) or '{gate_up}' (BF16 experts) is missing"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> GptOssConfig {
        GptOssConfig {
            vocab_size: 50,
            hidden_size: 64,
            intermediate_size: 32,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            num_key_value_heads: 2,
            head_dim: 16,
            num_local_experts: 3,
            num_experts_per_tok: 2,
            sliding_window: 8,
            max_position_embeddings: 128,
            rope_theta: 150000.0,
            rope_scaling: None,
            rms_norm_eps: 1e-5,
            swiglu_limit: 7.0,
            layer_types: crate::gpt_oss::AttentionKind::alternating(2),
            bos_token_id: None,
            eos_token_id: None,
            pad_token_id: None,
        }
    }

    #[test]
    fn names_are_unique_per_layout() {
        for layout in [Layout::Gguf, Layout::Hf, Layout::Original] {
            let all = resolve_all(layout, ExpertStorage::Mxfp4, &config());
            let mut g: Vec<_> = all.iter().map(|r| r.gguf.clone()).collect();
            let n = g.len();
            g.sort();
            g.dedup();
            assert_eq!(g.len(), n);
        }
    }

    #[test]
    fn names_match_llama_cpp_gpt_oss() {
        // One row checked against a GGUF written by llama.cpp's converter (golden/ tests check them all).
        assert_eq!(
            layer_name(PER_LAYER[10].gguf, 3),
            "blk.3.post_attention_norm.weight"
        );
    }

    #[test]
    fn qkv_rows_tile_the_fused_tensor_and_gate_up_alternate() {
        let c = config();
        let r =
            |row: &TensorName| resolve(row, Some(1), Layout::Original, ExpertStorage::Mxfp4, &c);
        let spans: Vec<_> = [ATTN_Q, ATTN_K, ATTN_V]
            .iter()
            .map(|row| match r(row).source {
                Source::Rows { start, end, .. } => (start, end),
                s => panic!("{s:?}"),
            })
            .collect();
        assert_eq!(spans, [(0, 64), (64, 96), (96, 128)]);
        assert_eq!(r(&ATTN_Q).stored[0].shape, [128, 64]);
        let gate = r(&FFN_GATE_EXPS);
        assert_eq!(
            gate.source,
            Source::Mxfp4 {
                blocks: "block.1.mlp.mlp1_weight.blocks".into(),
                scales: "block.1.mlp.mlp1_weight.scales".into(),
                parity: Some(0)
            }
        );
        // Stored (E, 2I, H/32, 16): twice the rows of the (E, I, H) GGUF tensor.
        assert_eq!(gate.shape, [3, 32, 64]);
        assert_eq!(gate.stored[0].shape, [3, 64, 2, 16]);
        let dense = resolve(
            &FFN_UP_EXPS,
            Some(0),
            Layout::Hf,
            ExpertStorage::Dense(DType::BF16),
            &c,
        );
        assert_eq!(dense.stored[0].shape, [3, 64, 64]);
        assert_eq!(
            dense.source,
            Source::DenseExperts {
                name: "model.layers.0.mlp.experts.gate_up_proj".into(),
                parity: Some(1)
            }
        );
    }

    #[test]
    fn gguf_names_are_recognised_at_any_layer() {
        assert!(FFN_GATE_INP.is("blk.12.ffn_gate_inp.weight"));
        assert!(!FFN_GATE_INP.is("blk..ffn_gate_inp.weight"));
        assert!(!FFN_GATE_INP.is("blk.1.ffn_gate_inp.bias"));
        assert!(OUTPUT.is("output.weight"));
        assert!(!OUTPUT.is("blk.0.output.weight"));
    }

    #[test]
    fn mxfp4_pair_names_both_ways() {
        assert_eq!(
            mxfp4_scales_of("model.layers.0.mlp.experts.down_proj_blocks").as_deref(),
            Some("model.layers.0.mlp.experts.down_proj_scales")
        );
        assert_eq!(
            mxfp4_scales_of("block.0.mlp.mlp2_weight.blocks").as_deref(),
            Some("block.0.mlp.mlp2_weight.scales")
        );
        assert!(is_mxfp4_scales("block.0.mlp.mlp2_weight.scales"));
        assert!(!is_mxfp4_scales("model.norm.weight"));
    }
}
