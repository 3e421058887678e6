//! The forward pass on a CUDA GPU: [`super::forward`]'s model step for step, every tensor on the device.
//!
//! The weights go to the GPU once, in their stored types (ossify-kernels' [`WeightStore`]: one upload per stored
//! tensor, so a fused qkv or an expert stack is one buffer), and the kernels decode them as the CPU does. The KV
//! cache lives on the GPU (full layers grow by doubling; sliding layers keep a ring of `sliding_window`). Per step
//! the host sends the token ids and the RoPE tables (from the same [`Rope`] as the CPU) and reads the logits, and
//! the residual stream only when a trace is asked for; the router's choices stay on the device (ops.cu
//! `moe_plan` groups the (token, slot) pairs by expert and the expert matmuls run over those tiles).
//!
//! Precision: [`Precision::Exact`] computes in f32 with every weight decoded exactly, as the CPU's exact mode
//! (only the summation order differs); [`Precision::Q8Activations`] rounds activations as ggml-cuda does (Q8_1 in
//! front of MXFP4 and Q8_0 weights, 16-bit in front of BF16 / F16 weights for batches of more than 8 tokens: see
//! ossify-kernels' `Gpu::mul_mat`).

use anyhow::{anyhow, bail, Context, Result};

use ossify_kernels::cpu::Precision;
use ossify_kernels::cuda::{
    ActScratch, Attention, Buf, Gpu, MatDesc, MoeTiles, MulMat, WeightStore, TOKENS_PER_TILE,
};

use super::config::{AttentionKind, GptOssConfig};
use super::forward::{ExpertMatmul, ForwardOptions, Trace, SWIGLU_ALPHA};
use super::rope::Rope;
use super::weights::Weights;

/// Where the forward pass runs (`--device`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Device {
    #[default]
    Cpu,
    /// The first CUDA GPU; an error when there is none.
    Cuda,
    /// CUDA when a driver and a GPU are there, else the CPU.
    Auto,
}

/// The expert hook's signature (see [`super::forward::ExpertHook`]).
pub type HookFn<'h> = dyn Fn(usize, usize, ExpertMatmul, &[f32]) + Send + Sync + 'h;

struct DevLayer {
    /// 0 for full attention, else the window (and the cache's ring).
    window: usize,
    attn_norm: Buf<f32>,
    q: MatDesc,
    q_bias: Buf<f32>,
    k: MatDesc,
    k_bias: Buf<f32>,
    v: MatDesc,
    v_bias: Buf<f32>,
    o: MatDesc,
    o_bias: Buf<f32>,
    sinks: Buf<f32>,
    post_attn_norm: Buf<f32>,
    router: MatDesc,
    router_bias: Buf<f32>,
    gate: MatDesc,
    up: MatDesc,
    down: MatDesc,
    gate_bias: Buf<f32>,
    up_bias: Buf<f32>,
    down_bias: Buf<f32>,
}

/// A model whose weights are on a GPU.
pub struct CudaModel {
    gpu: Gpu,
    store: WeightStore,
    embed: MatDesc,
    output: MatDesc,
    output_norm: Buf<f32>,
    layers: Vec<DevLayer>,
    cfg: GptOssConfig,
    precision: Precision,
    context: usize,
}

/// One layer's keys and values on the device.
struct DevCache {
    k: Buf<f32>,
    v: Buf<f32>,
    /// 0: slot = position (full layers), else the ring's length.
    ring: usize,
    /// Positions the buffers hold.
    cap: usize,
}

/// Activation buffers sized for `cap` tokens.
struct Acts {
    cap: usize,
    tokens: Buf<u32>,
    cos: Buf<f32>,
    sin: Buf<f32>,
    x: Buf<f32>,
    xn: Buf<f32>,
    q: Buf<f32>,
    k: Buf<f32>,
    v: Buf<f32>,
    attn: Buf<f32>,
    router: Buf<f32>,
    ids: Buf<i32>,
    wts: Buf<f32>,
    counts: Buf<i32>,
    sorted: Buf<i32>,
    tiles: Buf<i32>,
    gate: Buf<f32>,
    up: Buf<f32>,
    act: Buf<f32>,
    down: Buf<f32>,
    logits: Buf<f32>,
}

/// A running context on the GPU.
pub struct CudaSession {
    caches: Vec<DevCache>,
    acts: Option<Acts>,
    scratch: ActScratch,
}

fn max_tiles(pairs: usize, experts: usize) -> usize {
    pairs.div_ceil(TOKENS_PER_TILE) + experts
}

impl CudaModel {
    /// The GPU model for `options.device`, or None for the CPU.
    pub fn for_device(
        cfg: &GptOssConfig,
        weights: &Weights,
        options: &ForwardOptions,
    ) -> Result<Option<CudaModel>> {
        let gpu = match options.device {
            Device::Cpu => return Ok(None),
            Device::Cuda => Gpu::open(0).map_err(|e| anyhow!("--device cuda: {e}"))?,
            Device::Auto => match Gpu::probe() {
                Ok(_) => Gpu::open(0).map_err(|e| anyhow!("--device auto: {e}"))?,
                Err(_) => return Ok(None),
            },
        };
        CudaModel::new(gpu, cfg, weights, options).map(Some)
    }

    /// Uploads every weight of `weights` to `gpu`.
    pub fn new(
        gpu: Gpu,
        cfg: &GptOssConfig,
        weights: &Weights,
        options: &ForwardOptions,
    ) -> Result<CudaModel> {
        let mut store = WeightStore::default();
        let up = |g: &Gpu, v: &[f32]| g.upload(v).map_err(|e| anyhow!("{e}"));
        let ctx = || format!("uploading the weights to {}", gpu.name);
        let embed = store.matrix(&gpu, &weights.embed).with_context(ctx)?;
        let output = store.matrix(&gpu, &weights.output).with_context(ctx)?;
        let output_norm = up(&gpu, &weights.output_norm)?;
        let mut layers = Vec::with_capacity(weights.layers.len());
        for (l, lw) in weights.layers.iter().enumerate() {
            let lctx = || format!("layer {l}: uploading to {}", gpu.name);
            let gates: Vec<_> = lw.experts.iter().map(|e| e.gate).collect();
            let ups: Vec<_> = lw.experts.iter().map(|e| e.up).collect();
            let downs: Vec<_> = lw.experts.iter().map(|e| e.down).collect();
            layers.push(DevLayer {
                window: match lw.kind {
                    AttentionKind::Sliding => cfg.sliding_window.max(1),
                    AttentionKind::Full => 0,
                },
                attn_norm: up(&gpu, &lw.attn_norm)?,
                q: store.matrix(&gpu, &lw.q).with_context(lctx)?,
                q_bias: up(&gpu, &lw.q_bias)?,
                k: store.matrix(&gpu, &lw.k).with_context(lctx)?,
                k_bias: up(&gpu, &lw.k_bias)?,
                v: store.matrix(&gpu, &lw.v).with_context(lctx)?,
                v_bias: up(&gpu, &lw.v_bias)?,
                o: store.matrix(&gpu, &lw.o).with_context(lctx)?,
                o_bias: up(&gpu, &lw.o_bias)?,
                sinks: up(&gpu, &lw.sinks)?,
                post_attn_norm: up(&gpu, &lw.post_attn_norm)?,
                router: store.matrix(&gpu, &lw.router).with_context(lctx)?,
                router_bias: up(&gpu, &lw.router_bias)?,
                gate: store.experts(&gpu, &gates).with_context(lctx)?,
                up: store.experts(&gpu, &ups).with_context(lctx)?,
                down: store.experts(&gpu, &downs).with_context(lctx)?,
                gate_bias: up(&gpu, &lw.gate_bias)?,
                up_bias: up(&gpu, &lw.up_bias)?,
                down_bias: up(&gpu, &lw.down_bias)?,
            });
        }
        gpu.synchronize()
            .map_err(|e| anyhow!("{e}"))
            .with_context(ctx)?;
        Ok(CudaModel {
            gpu,
            store,
            embed,
            output,
            output_norm,
            layers,
            cfg: cfg.clone(),
            precision: options.precision,
            context: options.context,
        })
    }

    /// "NVIDIA H200 (sm_90)", for reports.
    pub fn describe(&self) -> String {
        let (a, b) = self.gpu.compute_capability;
        format!("{} (sm_{a}{b})", self.gpu.name)
    }

    /// Bytes of weights uploaded, and device memory in use now (all processes), in bytes.
    pub fn memory(&self) -> Result<(usize, usize)> {
        let (free, total) = self.gpu.mem_info().map_err(|e| anyhow!("{e}"))?;
        Ok((self.store.bytes, total - free))
    }

    /// Bytes a decode step at position `pos` must read from device memory: every dense matrix once, the routed
    /// experts' matrices (top-k of each layer), one embedding row, the KV cache positions attention sees, and the
    /// unembedding; the denominator of the memory-bandwidth roofline.
    pub fn decode_bytes(&self, pos: usize) -> u64 {
        let c = &self.cfg;
        let kv_row = (c.num_key_value_heads * c.head_dim * 4 * 2) as u64;
        let k = c.num_experts_per_tok as u64;
        let mut total =
            self.output.read_bytes() + self.embed.read_bytes() / self.embed.rows().max(1) as u64;
        for l in &self.layers {
            total += [&l.q, &l.k, &l.v, &l.o, &l.router]
                .iter()
                .map(|m| m.read_bytes())
                .sum::<u64>();
            total += k * (l.gate.read_bytes() + l.up.read_bytes() + l.down.read_bytes());
            let seen = if l.window > 0 {
                (pos + 1).min(l.window)
            } else {
                pos + 1
            };
            total += seen as u64 * kv_row;
        }
        total
    }

    fn new_session(&self) -> Result<CudaSession> {
        let kvd = self.cfg.num_key_value_heads * self.cfg.head_dim;
        let caches = self
            .layers
            .iter()
            .map(|l| {
                let cap = if l.window > 0 {
                    l.window
                } else {
                    self.context.max(1)
                };
                Ok(DevCache {
                    k: self.gpu.zeros(cap * kvd)?,
                    v: self.gpu.zeros(cap * kvd)?,
                    ring: l.window,
                    cap,
                })
            })
            .collect::<Result<Vec<_>, ossify_kernels::cuda::CudaError>>()
            .map_err(|e| anyhow!("{e}"))?;
        Ok(CudaSession {
            caches,
            acts: None,
            scratch: ActScratch::default(),
        })
    }

    fn acts(&self, cap: usize) -> Result<Acts> {
        let c = &self.cfg;
        let (h, qd, kvd) = (
            c.hidden_size,
            c.num_attention_heads * c.head_dim,
            c.num_key_value_heads * c.head_dim,
        );
        let (e_n, k, i_n) = (
            c.num_local_experts,
            c.num_experts_per_tok,
            c.intermediate_size,
        );
        let g = &self.gpu;
        let pairs = cap * k;
        let r = (|| {
            Ok::<_, ossify_kernels::cuda::CudaError>(Acts {
                cap,
                tokens: g.zeros(cap)?,
                cos: g.zeros(cap * c.head_dim / 2)?,
                sin: g.zeros(cap * c.head_dim / 2)?,
                x: g.zeros(cap * h)?,
                xn: g.zeros(cap * h)?,
                q: g.zeros(cap * qd)?,
                k: g.zeros(cap * kvd)?,
                v: g.zeros(cap * kvd)?,
                attn: g.zeros(cap * qd)?,
                router: g.zeros(cap * e_n)?,
                ids: g.zeros(pairs)?,
                wts: g.zeros(pairs)?,
                counts: g.zeros(e_n + 1)?,
                sorted: g.zeros(pairs)?,
                tiles: g.zeros(1 + 3 * max_tiles(pairs, e_n))?,
                gate: g.zeros(pairs * i_n)?,
                up: g.zeros(pairs * i_n)?,
                act: g.zeros(pairs * i_n)?,
                down: g.zeros(pairs * h)?,
                logits: g.zeros(cap * c.vocab_size)?,
            })
        })();
        r.map_err(|e| anyhow!("allocating activations for {cap} tokens on the GPU: {e}"))
    }

    /// One batch through every layer at positions `p0..`: logits for `tokens[logits_from..]`. `session` is made on
    /// first use.
    #[allow(clippy::too_many_arguments)]
    pub fn step(
        &self,
        session: &mut Option<CudaSession>,
        rope: &Rope,
        p0: usize,
        tokens: &[u32],
        mut trace: Option<&mut Trace>,
        logits_from: usize,
        hook: Option<&HookFn>,
    ) -> Result<Vec<f32>> {
        let e = |e: ossify_kernels::cuda::CudaError| anyhow!("{e}");
        let g = &self.gpu;
        g.bind().map_err(e)?;
        if session.is_none() {
            *session = Some(self.new_session()?);
        }
        let Some(s) = session.as_mut() else {
            bail!("no GPU session");
        };
        let c = &self.cfg;
        let (t_n, h, v_n) = (tokens.len(), c.hidden_size, c.vocab_size);
        if t_n == 0 {
            return Ok(Vec::new());
        }
        if let Some(&tok) = tokens.iter().find(|&&t| t as usize >= v_n) {
            bail!("token id {tok} is outside the vocabulary of {v_n}");
        }
        let (nh, nkv, hd) = (c.num_attention_heads, c.num_key_value_heads, c.head_dim);
        let kvd = nkv * hd;
        let (e_n, k, i_n) = (
            c.num_local_experts,
            c.num_experts_per_tok,
            c.intermediate_size,
        );
        let eps = c.rms_norm_eps as f32;
        let limit = c.swiglu_limit as f32;
        let prec = self.precision;

        if s.acts.as_ref().is_none_or(|a| a.cap < t_n) {
            s.acts = None;
            s.acts = Some(self.acts(t_n)?);
        }
        let Some(a) = s.acts.as_mut() else {
            bail!("no GPU activations");
        };
        for cache in s.caches.iter_mut() {
            if cache.ring == 0 && p0 + t_n > cache.cap {
                let cap = (p0 + t_n).max(2 * cache.cap);
                let mut k2 = g.zeros::<f32>(cap * kvd).map_err(e)?;
                let mut v2 = g.zeros::<f32>(cap * kvd).map_err(e)?;
                g.copy(&cache.k, &mut k2, 0, p0 * kvd).map_err(e)?;
                g.copy(&cache.v, &mut v2, 0, p0 * kvd).map_err(e)?;
                *cache = DevCache {
                    k: k2,
                    v: v2,
                    ring: 0,
                    cap,
                };
            }
        }

        g.write(&mut a.tokens, 0, tokens).map_err(e)?;
        let half = hd / 2;
        let (mut cos, mut sin) = (vec![0f32; t_n * half], vec![0f32; t_n * half]);
        for t in 0..t_n {
            rope.cos_sin(
                p0 + t,
                &mut cos[t * half..(t + 1) * half],
                &mut sin[t * half..(t + 1) * half],
            );
        }
        g.write(&mut a.cos, 0, &cos).map_err(e)?;
        g.write(&mut a.sin, 0, &sin).map_err(e)?;

        let read = |buf: &Buf<f32>, len: usize| -> Result<Vec<f32>> {
            let mut out = vec![0f32; len];
            g.read(buf, 0, &mut out).map_err(e)?;
            Ok(out)
        };
        // A dense matmul of this step (fields overridden per call).
        macro_rules! mm {
            ($w:expr, $x:expr, $in_rows:expr, $y:expr, $n:expr) => {
                MulMat {
                    w: $w,
                    x: $x,
                    in_rows: $in_rows,
                    y: $y,
                    n: $n,
                    bias: 0,
                    bias_stride: 0,
                    accumulate: false,
                    precision: prec,
                    batch_tokens: t_n,
                    tiles: None,
                }
            };
        }

        g.embed_rows(&self.embed, a.tokens.ptr(), t_n, a.x.ptr())
            .map_err(e)?;
        if let Some(tr) = trace.as_deref_mut() {
            tr.embeddings.extend(read(&a.x, t_n * h)?);
        }
        let scale = (hd as f64).powf(-0.5) as f32;
        let pairs = t_n * k;
        for (l, (lw, cache)) in self.layers.iter().zip(&s.caches).enumerate() {
            let run = |scratch: &mut ActScratch| -> Result<(), ossify_kernels::cuda::CudaError> {
                g.rms_norm(a.x.ptr(), lw.attn_norm.ptr(), t_n, h, eps, a.xn.ptr())?;
                for (w, b, y) in [
                    (&lw.q, &lw.q_bias, &a.q),
                    (&lw.k, &lw.k_bias, &a.k),
                    (&lw.v, &lw.v_bias, &a.v),
                ] {
                    g.mul_mat(
                        &MulMat {
                            bias: b.ptr(),
                            ..mm!(w, a.xn.ptr(), t_n, y.ptr(), t_n)
                        },
                        scratch,
                    )?;
                }
                g.rope(a.q.ptr(), t_n, nh, hd, a.cos.ptr(), a.sin.ptr())?;
                g.rope(a.k.ptr(), t_n, nkv, hd, a.cos.ptr(), a.sin.ptr())?;
                g.attention(&Attention {
                    q: a.q.ptr(),
                    k_new: a.k.ptr(),
                    v_new: a.v.ptr(),
                    ck: cache.k.ptr(),
                    cv: cache.v.ptr(),
                    ring: cache.ring,
                    p0,
                    n: t_n,
                    nh,
                    nkv,
                    hd,
                    window: lw.window,
                    sinks: lw.sinks.ptr(),
                    scale,
                    out: a.attn.ptr(),
                })?;
                g.kv_store(
                    a.k.ptr(),
                    a.v.ptr(),
                    t_n,
                    p0,
                    kvd,
                    cache.ring,
                    cache.k.ptr(),
                    cache.v.ptr(),
                )?;
                Ok(())
            };
            run(&mut s.scratch)
                .map_err(e)
                .with_context(|| format!("layer {l}: attention"))?;
            let scratch = &mut s.scratch;
            g.mul_mat(
                &MulMat {
                    bias: lw.o_bias.ptr(),
                    accumulate: true,
                    ..mm!(&lw.o, a.attn.ptr(), t_n, a.x.ptr(), t_n)
                },
                scratch,
            )
            .map_err(e)
            .with_context(|| format!("layer {l}: attention output"))?;
            if let Some(tr) = trace.as_deref_mut() {
                tr.after_attention[l].extend(read(&a.x, t_n * h)?);
            }

            let moe = |scratch: &mut ActScratch| -> Result<(), ossify_kernels::cuda::CudaError> {
                g.rms_norm(a.x.ptr(), lw.post_attn_norm.ptr(), t_n, h, eps, a.xn.ptr())?;
                g.mul_mat(
                    &MulMat {
                        bias: lw.router_bias.ptr(),
                        ..mm!(&lw.router, a.xn.ptr(), t_n, a.router.ptr(), t_n)
                    },
                    scratch,
                )?;
                g.router_topk(a.router.ptr(), t_n, e_n, k, a.ids.ptr(), a.wts.ptr())?;
                g.moe_plan(
                    a.ids.ptr(),
                    pairs,
                    e_n,
                    a.counts.ptr(),
                    a.sorted.ptr(),
                    a.tiles.ptr(),
                )?;
                let tiles = |in_div: usize| MoeTiles {
                    tiles: a.tiles.ptr(),
                    sorted: a.sorted.ptr(),
                    in_div: in_div as u32,
                    max_tiles: max_tiles(pairs, e_n),
                };
                for (w, b, y) in [
                    (&lw.gate, &lw.gate_bias, &a.gate),
                    (&lw.up, &lw.up_bias, &a.up),
                ] {
                    g.mul_mat(
                        &MulMat {
                            bias: b.ptr(),
                            bias_stride: i_n,
                            tiles: Some(tiles(k)),
                            ..mm!(w, a.xn.ptr(), t_n, y.ptr(), pairs)
                        },
                        scratch,
                    )?;
                }
                g.swiglu(
                    a.gate.ptr(),
                    a.up.ptr(),
                    pairs * i_n,
                    limit,
                    SWIGLU_ALPHA,
                    a.act.ptr(),
                )?;
                g.mul_mat(
                    &MulMat {
                        bias: lw.down_bias.ptr(),
                        bias_stride: h,
                        tiles: Some(tiles(1)),
                        ..mm!(&lw.down, a.act.ptr(), pairs, a.down.ptr(), pairs)
                    },
                    scratch,
                )?;
                Ok(())
            };
            moe(&mut s.scratch)
                .map_err(e)
                .with_context(|| format!("layer {l}: experts"))?;
            if let Some(f) = hook {
                self.call_hook(f, l, a, t_n)?;
            }
            g.moe_combine(a.down.ptr(), a.ids.ptr(), a.wts.ptr(), t_n, k, h, a.x.ptr())
                .map_err(e)
                .with_context(|| format!("layer {l}: experts"))?;
            if let Some(tr) = trace.as_deref_mut() {
                tr.after_moe[l].extend(read(&a.x, t_n * h)?);
            }
        }

        let scored = t_n - logits_from.min(t_n);
        if scored == 0 {
            g.synchronize().map_err(e)?;
            return Ok(Vec::new());
        }
        let first = t_n - scored;
        g.rms_norm(
            a.x.at(first * h),
            self.output_norm.ptr(),
            scored,
            h,
            eps,
            a.xn.ptr(),
        )
        .map_err(e)?;
        g.mul_mat(
            &MulMat {
                batch_tokens: scored,
                ..mm!(&self.output, a.xn.ptr(), scored, a.logits.ptr(), scored)
            },
            &mut s.scratch,
        )
        .map_err(e)
        .context("unembedding")?;
        read(&a.logits, scored * v_n)
    }

    /// Hands the hook every expert's inputs (normed hidden states for gate / up, SwiGLU outputs for down), experts
    /// in order and tokens in order within each, as the CPU path does.
    fn call_hook(&self, f: &HookFn, l: usize, a: &Acts, t_n: usize) -> Result<()> {
        let e = |e: ossify_kernels::cuda::CudaError| anyhow!("{e}");
        let c = &self.cfg;
        let (h, k, i_n, e_n) = (
            c.hidden_size,
            c.num_experts_per_tok,
            c.intermediate_size,
            c.num_local_experts,
        );
        let pairs = t_n * k;
        let mut xn = vec![0f32; t_n * h];
        let mut ids = vec![0i32; pairs];
        let mut act = vec![0f32; pairs * i_n];
        self.gpu.read(&a.xn, 0, &mut xn).map_err(e)?;
        self.gpu.read(&a.ids, 0, &mut ids).map_err(e)?;
        self.gpu.read(&a.act, 0, &mut act).map_err(e)?;
        for ex in 0..e_n {
            let routed: Vec<usize> = (0..pairs).filter(|&p| ids[p] == ex as i32).collect();
            if routed.is_empty() {
                continue;
            }
            let xe: Vec<f32> = routed
                .iter()
                .flat_map(|&p| xn[(p / k) * h..(p / k + 1) * h].iter().copied())
                .collect();
            f(l, ex, ExpertMatmul::GateUp, &xe);
            let ae: Vec<f32> = routed
                .iter()
                .flat_map(|&p| act[p * i_n..(p + 1) * i_n].iter().copied())
                .collect();
            f(l, ex, ExpertMatmul::Down, &ae);
        }
        Ok(())
    }
}
