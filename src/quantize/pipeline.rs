//! The quantize pipeline: decide every tensor's type first (so bad input fails before anything is written),
//! then stream every tensor through the one driver ([`crate::stream`]) in pieces of about [`PIECE_BYTES`] of
//! source, each piece encoded over all cores. A GGUF input is read from its map; an HF or original folder
//! through `convert`'s plan, row range by row range: memory stays at a few pieces, not a tensor, whatever the
//! input.

use std::ops::Range;
use std::path::Path;

use anyhow::{bail, Context, Result};
use ossify_formats::atomic::Existing;
use ossify_formats::gguf::constants::{
    GENERAL_FILE_TYPE, GENERAL_NAME, GENERAL_QUANTIZATION_VERSION, GGML_QUANT_VERSION,
};
use ossify_formats::gguf::{
    GgufModel, GgufWriter, MetaValue, PlannedFileInfo, SplitKeyOrder, SplitRule,
};
use ossify_formats::DType;

use crate::checkpoint::{detect_layout, Checkpoint, Layout};
use crate::gpt_oss::names;
use crate::plan::{OutType, Plan, PlannedTensor};
use crate::stream::{drive, BytesJob, Job, PlanJob};

use super::encode::{check_source_len, Mxfp4Scale, TensorEncoder};
use super::imatrix::ImportanceMatrix;
use super::select::{Choice, TypeRules};

/// Source bytes per piece a tensor is encoded and written in: large enough to keep every core busy within a
/// piece, small enough that the resident set stays far below a gigabyte.
pub const PIECE_BYTES: usize = 32 << 20;

/// Where a source tensor's bytes come from.
pub enum SourceRows<'a> {
    /// Already in `dtype`, in a map (a GGUF tensor).
    Bytes(&'a [u8]),
    /// A tensor of `convert`'s plan, made row range by row range from its checkpoint.
    Plan(&'a PlannedTensor, &'a Checkpoint),
}

/// One tensor of the output, named as in the output, with where its data comes from.
pub struct SourceTensor<'a> {
    pub name: String,
    /// Row-major, outermost first.
    pub shape: Vec<usize>,
    /// The type the source rows are in (ggml block layout for block types).
    pub dtype: DType,
    pub rows: SourceRows<'a>,
}

impl SourceTensor<'_> {
    /// Where the tensor comes from: the same-named GGUF tensor, or convert's plan's source selection.
    pub fn describe(&self) -> String {
        match self.rows {
            SourceRows::Bytes(_) => self.name.clone(),
            SourceRows::Plan(t, _) => t.source.describe(),
        }
    }
}

/// Everything the user chose.
#[derive(Clone, Debug)]
pub struct QuantizeOptions {
    pub rules: TypeRules,
    pub allow_requantize: bool,
    /// Quantize NaN / Inf weights instead of refusing them (`--allow-nonfinite`).
    pub allow_nonfinite: bool,
    pub mxfp4_scale: Mxfp4Scale,
    pub imatrix: Option<ImportanceMatrix>,
    pub progress: bool,
    /// One file, or a split GGUF.
    pub split: OutputSplit,
    /// What to do about an existing output (`--force` replaces a file, never an input).
    pub existing: Existing,
    /// `general.name` of the output (`--name`); `None` keeps the input's (or convert's default).
    pub name: Option<String>,
    /// Plan only (`--dry-run`): choose every type and lay out the files, create nothing.
    pub dry_run: bool,
}

/// How the output GGUF is cut into files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutputSplit {
    /// `--split-max-size` / `--split-max-tensors` (or one file).
    Rule(SplitRule),
    /// `--keep-split`: the shards of the input split GGUF, each tensor in the shard it came from, as
    /// llama-quantize does (one file for an unsplit GGUF).
    KeepInput,
    /// Each tensor's shard, in order (what [`OutputSplit::KeepInput`] becomes once the input is open).
    Shards(Vec<usize>),
}

impl Default for OutputSplit {
    /// One file.
    fn default() -> Self {
        OutputSplit::Rule(SplitRule::None)
    }
}

/// What was written (or with `dry_run`, would be), per tensor.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Name, source type, output type.
    pub tensors: Vec<(String, DType, DType)>,
    /// Per tensor, in the same order: where it comes from ([`SourceTensor::describe`]) and its shape.
    pub sources: Vec<(String, Vec<usize>)>,
    pub notes: Vec<String>,
    pub bytes_in: usize,
    pub bytes_out: usize,
    /// The files written, first shard first.
    pub files: Vec<std::path::PathBuf>,
    /// The same files with their sizes and tensor counts.
    pub planned_files: Vec<PlannedFileInfo>,
}

/// Chooses every output type and checks that the choice can be carried out; the error names the tensor.
pub fn choose_types(sources: &[SourceTensor<'_>], opts: &QuantizeOptions) -> Result<Vec<Choice>> {
    sources
        .iter()
        .map(|s| {
            let c = opts
                .rules
                .choose(&s.name, &s.shape, s.dtype)
                .map_err(anyhow::Error::msg)?;
            if c.dtype != s.dtype && s.dtype.is_quantized() && !opts.allow_requantize {
                bail!(
                    "tensor '{}' is already {} and would be re-quantized to {}; re-quantizing loses accuracy, \
                     pass --allow-requantize to do it anyway",
                    s.name,
                    s.dtype,
                    c.dtype
                );
            }
            let n: usize = s.shape.iter().product();
            if c.dtype.nbytes(n).is_none() {
                bail!("tensor '{}' {:?} cannot be stored as {}", s.name, s.shape, c.dtype);
            }
            Ok(c)
        })
        .collect()
}

/// Writes `sources` as a GGUF at `output` with `metadata` (in order), `general.file_type` set to the preset's
/// and `general.quantization_version` to ggml's, as llama-quantize does (replaced in place when present).
/// Each tensor is encoded and written in pieces of about [`PIECE_BYTES`] of source, through one reused buffer;
/// `release` is handed each source piece once it is written (to drop mapped pages, so the resident set stays
/// about one piece rather than the whole input).
pub fn write_gguf(
    mut metadata: Vec<(String, MetaValue)>,
    sources: &[SourceTensor<'_>],
    output: &Path,
    opts: &QuantizeOptions,
    release: &(dyn Fn(&[u8]) + Sync),
) -> Result<Summary> {
    let choices = choose_types(sources, opts)?;
    set_kv(
        &mut metadata,
        GENERAL_QUANTIZATION_VERSION,
        MetaValue::U32(GGML_QUANT_VERSION),
    );
    set_kv(
        &mut metadata,
        GENERAL_FILE_TYPE,
        MetaValue::U32(opts.rules.preset.ftype.id()),
    );
    if let Some(name) = &opts.name {
        set_kv(&mut metadata, GENERAL_NAME, MetaValue::String(name.clone()));
    }
    let mut w = GgufWriter::new();
    for (k, v) in metadata {
        w.add_kv(&k, v)
            .with_context(|| output.display().to_string())?;
    }
    for (s, c) in sources.iter().zip(&choices) {
        w.add_tensor(&s.name, c.dtype, &s.shape)
            .with_context(|| format!("{}: tensor '{}'", output.display(), s.name))?;
    }
    let mut summary = Summary::default();
    let mut jobs: Vec<Box<dyn Job<'_> + '_>> = Vec::with_capacity(sources.len());
    for (i, (s, c)) in sources.iter().zip(&choices).enumerate() {
        let inner: Box<dyn Job<'_> + '_> = match s.rows {
            SourceRows::Bytes(bytes) => {
                check_source_len(&s.name, bytes.len(), s.dtype, &s.shape)?;
                let row = s.dtype.nbytes(*s.shape.last().unwrap_or(&1)).unwrap_or(1);
                Box::new(BytesJob::new(&s.name, bytes, row, i))
            }
            SourceRows::Plan(t, ckpt) => Box::new(PlanJob::new(t, ckpt, i)),
        };
        let enc = if s.dtype == c.dtype {
            None
        } else {
            Some(
                TensorEncoder::new(
                    &s.name,
                    s.dtype,
                    &s.shape,
                    c.dtype,
                    opts.mxfp4_scale,
                    opts.imatrix.as_ref(),
                )?
                .allow_nonfinite(opts.allow_nonfinite),
            )
        };
        let n: usize = s.shape.iter().product();
        summary.bytes_in += s.dtype.nbytes(n).unwrap_or(0);
        summary.bytes_out += c.dtype.nbytes(n).unwrap_or(0);
        if let Some(n) = c.note(&s.name) {
            summary.notes.push(n);
        }
        summary.tensors.push((s.name.clone(), s.dtype, c.dtype));
        summary.sources.push((s.describe(), s.shape.clone()));
        jobs.push(match enc {
            None => inner,
            Some(enc) => Box::new(EncodeJob::new(inner, enc, i)),
        });
    }
    summary.planned_files = match &opts.split {
        OutputSplit::Rule(rule) => w.planned_files(output, *rule)?,
        OutputSplit::Shards(shard_of) => {
            w.planned_shards(output, shard_of, SplitKeyOrder::LlamaQuantize)?
        }
        OutputSplit::KeepInput => Vec::new(),
    };
    if opts.dry_run {
        summary.files = summary
            .planned_files
            .iter()
            .map(|f| f.path.clone())
            .collect();
        return Ok(summary);
    }
    let out = match &opts.split {
        OutputSplit::Rule(rule) => w.create_split(output, *rule, opts.existing)?,
        OutputSplit::Shards(shard_of) => w.create_shards(output, shard_of, SplitKeyOrder::LlamaQuantize, opts.existing)?,
        OutputSplit::KeepInput => bail!(
            "--keep-split keeps the shards of a split GGUF input; this input is not GGUF (cut the output with \
             --split-max-size or --split-max-tensors)"
        ),
    };
    summary.files = out.paths().iter().map(|p| p.to_path_buf()).collect();
    let bar = crate::progress::bar(
        opts.progress,
        summary.bytes_out as u64,
        "quantizing",
        crate::progress::Unit::Bytes,
    );
    drive(&jobs, &out, PIECE_BYTES, release, &bar)?;
    out.finish()?;
    bar.finish_and_clear();
    Ok(summary)
}

/// A tensor re-encoded into another type: the source rows of `inner` (as they are, or made), then
/// [`TensorEncoder::encode_rows`].
struct EncodeJob<'c> {
    inner: Box<dyn Job<'c> + 'c>,
    enc: TensorEncoder<'c>,
    outputs: [(usize, usize); 1],
}

impl<'c> EncodeJob<'c> {
    fn new(inner: Box<dyn Job<'c> + 'c>, enc: TensorEncoder<'c>, tensor: usize) -> Self {
        let dst_row = enc.dst_row;
        EncodeJob {
            inner,
            enc,
            outputs: [(tensor, dst_row)],
        }
    }
}

impl<'c> Job<'c> for EncodeJob<'c> {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn n_rows(&self) -> usize {
        self.enc.nrows
    }
    fn outputs(&self) -> &[(usize, usize)] {
        &self.outputs
    }
    /// Pieces are sized by their source bytes (the larger side), in the units the source is read in.
    fn rows_per_piece(&self, target_bytes: usize) -> usize {
        self.inner.rows_per_piece(target_bytes)
    }
    fn make(&self, rows: Range<usize>, out: &mut [&mut [u8]]) -> Result<Vec<&'c [u8]>> {
        let Some(dst) = out.first_mut() else {
            return Ok(Vec::new());
        };
        let first = rows.start;
        match self.inner.unchanged(rows.clone()) {
            Some(src) => {
                self.enc.encode_rows(src, first, dst)?;
                Ok(vec![src])
            }
            None => {
                let mut src = vec![0u8; rows.len() * self.enc.src_row];
                let read = self.inner.make(rows, &mut [&mut src])?;
                self.enc.encode_rows(&src, first, dst)?;
                Ok(read)
            }
        }
    }
}

/// Quantizes a GGUF model (one file, or every shard of a split set given any one of them): every tensor and
/// key/value of `input`, in its order, as llama-quantize does; like llama-quantize it drops the input's
/// `split.*` keys, which describe the input's files.
pub fn quantize_gguf(input: &Path, output: &Path, opts: &QuantizeOptions) -> Result<Summary> {
    let f = GgufModel::open(input)?;
    // Any architecture is re-typed as it is; a gpt-oss file's numbers are checked first, so a model whose
    // metadata could not load (block_count 1e9, a NaN rope factor) is refused rather than passed on.
    if f.architecture() == Some(ossify_formats::gguf::constants::ARCH_GPT_OSS) {
        crate::gpt_oss::metadata::config_from_gguf(&f, input)?;
    }
    let sources: Vec<SourceTensor<'_>> = f
        .tensor_infos()
        .map(|ti| {
            let v = f
                .tensor(&ti.name)
                .with_context(|| format!("{}: no tensor '{}'", input.display(), ti.name))?;
            Ok(SourceTensor {
                name: ti.name.clone(),
                shape: ti.shape.clone(),
                dtype: ti.dtype,
                rows: SourceRows::Bytes(v.bytes),
            })
        })
        .collect::<Result<_>>()?;
    let mut rules = opts.rules.clone();
    rules.tied_embeddings = f.tensor_info(names::OUTPUT.gguf).is_none();
    let split = match &opts.split {
        OutputSplit::KeepInput => OutputSplit::Shards(
            f.tensor_infos()
                .map(|t| f.shard_of(&t.name).unwrap_or(0))
                .collect(),
        ),
        other => other.clone(),
    };
    let opts = QuantizeOptions {
        rules,
        split,
        ..opts.clone()
    };
    write_gguf(f.model_metadata(), &sources, output, &opts, &|b| {
        f.release(b)
    })
    .with_context(|| format!("quantizing {}", input.display()))
}

/// Quantizes any checkpoint ossify reads into a GGUF. An HF or original folder goes through `convert`'s plan
/// (its tensors, names, transforms and metadata, with `--outtype auto`, i.e. lossless), so the result is what
/// `ossify convert` followed by llama-quantize would give, without the intermediate file.
pub fn quantize_to_gguf(input: &Path, output: &Path, opts: &QuantizeOptions) -> Result<Summary> {
    // A GGUF is re-typed as it is, whatever its metadata (as llama-quantize does).
    if detect_layout(input)? == Layout::Gguf {
        return quantize_gguf(input, output, opts);
    }
    let ckpt = Checkpoint::open(input, None)?;
    let plan = Plan::new(&ckpt, OutType::Auto)?;
    let metadata = plan.metadata(&ckpt)?;
    let sources: Vec<SourceTensor<'_>> = plan
        .tensors
        .iter()
        .map(|t| SourceTensor {
            name: t.name.clone(),
            shape: t.shape.clone(),
            dtype: t.dtype,
            rows: SourceRows::Plan(t, &ckpt),
        })
        .collect();
    write_gguf(metadata, &sources, output, opts, &|b| ckpt.release(b))
        .with_context(|| format!("quantizing {}", input.display()))
}

fn set_kv(kvs: &mut Vec<(String, MetaValue)>, key: &str, value: MetaValue) {
    match kvs.iter_mut().find(|(k, _)| k == key) {
        Some((_, v)) => *v = value,
        None => kvs.push((key.to_string(), value)),
    }
}
