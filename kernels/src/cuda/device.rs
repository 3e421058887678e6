//! One GPU: its context and stream, the compiled kernels, device buffers, weight uploads and typed launches.
//!
//! Buffers are passed to kernels as raw device addresses ([`Buf::at`]); everything runs on one stream, in order,
//! so cudarc's per-buffer event tracking is switched off.

use std::collections::HashMap;
use std::sync::Arc;

use cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, DevicePtr, DeviceRepr, LaunchConfig,
    PushKernelArg, ValidAsZeroBits,
};
use cudarc::nvrtc::Ptx;

use ossify_formats::DType;

use super::nvrtc::{Nvrtc, Output};
use super::{full_source, CudaError, SOURCES};
use crate::cpu::{Precision, Storage, WeightMatrix};

/// Tokens (or expert pairs) one block of the matmul kernels serves: `TT` in matmul.cu.
pub const TOKENS_PER_TILE: usize = 8;
/// Output rows per block of the matmul kernels (one per warp): `WARPS` in matmul.cu.
const ROWS_PER_BLOCK: usize = 8;
/// Up to this many tokens ggml-cuda multiplies quantized weights with `mul_mat_vec_q` (activations quantized by
/// `quantize_q8_1`, f16 scales); above it with `mul_mat_q` (`quantize_mmq_q8_1`, f32 scales), and BF16 / F16
/// weights with activations rounded to 16 bits (ggml-cuda's `MMVQ_MAX_BATCH_SIZE`).
pub const MMVQ_MAX_BATCH: usize = 8;

/// Storage kinds, as `K_*` in common.cuh.
fn kind_of(dtype: DType) -> Option<u32> {
    Some(match dtype {
        DType::F32 => 0,
        DType::F16 => 1,
        DType::BF16 => 2,
        DType::Q8_0 => 3,
        DType::Q4_0 => 4,
        DType::Q4_1 => 5,
        DType::Q5_0 => 6,
        DType::Q5_1 => 7,
        DType::Mxfp4 => 8,
        _ => return None,
    })
}
const K_BF16: u32 = 2;
const K_F16: u32 = 1;
const K_Q8_0: u32 = 3;
const K_MXFP4: u32 = 8;
const K_MXFP4_PAIR: u32 = 9;

/// A weight matrix on the device: common.cuh's `Mat`, field for field.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MatDesc {
    data: u64,
    scales: u64,
    row_bytes: u64,
    expert_bytes: u64,
    kind: u32,
    rows: u32,
    cols: u32,
    first: u32,
    step: u32,
    expert_lines: u32,
    transposed: u32,
    pad: u32,
}

const _: () = assert!(std::mem::size_of::<MatDesc>() == 64);

// SAFETY: plain old data with the C layout of common.cuh's `Mat` (checked size, no padding).
unsafe impl DeviceRepr for MatDesc {}

impl MatDesc {
    pub fn rows(&self) -> usize {
        self.rows as usize
    }

    pub fn cols(&self) -> usize {
        self.cols as usize
    }

    /// Bytes of stored weights one pass of a matmul over this matrix (one expert's) reads.
    pub fn read_bytes(&self) -> u64 {
        let (rows, cols) = (u64::from(self.rows), u64::from(self.cols));
        let scales = if self.kind == K_MXFP4_PAIR {
            rows * cols / 32
        } else {
            0
        };
        if self.transposed != 0 {
            // Each stored line holds every output's element; the matmul reads `rows` of them per line.
            cols * self.row_bytes / u64::from(self.step.max(1))
        } else {
            rows * self.row_bytes + scales
        }
    }

    /// Whether [`Precision::Q8Activations`] multiplies this matrix with Q8_1 activations.
    fn uses_q8(&self) -> bool {
        self.transposed == 0
            && self.cols % 32 == 0
            && matches!(self.kind, K_Q8_0 | K_MXFP4 | K_MXFP4_PAIR)
    }
}

/// A device buffer and its address.
pub struct Buf<T> {
    slice: CudaSlice<T>,
    ptr: u64,
    len: usize,
}

impl<T> Buf<T> {
    /// The device address of element `i`.
    pub fn at(&self, i: usize) -> u64 {
        self.ptr + (i * std::mem::size_of::<T>()) as u64
    }

    pub fn ptr(&self) -> u64 {
        self.ptr
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The expert tiles of one MoE layer (from [`Gpu::moe_plan`]), for [`MulMat::tiles`].
#[derive(Clone, Copy, Debug)]
pub struct MoeTiles {
    /// `int` array: count, then (expert, start, len) per tile.
    pub tiles: u64,
    /// `int` array: pair ids grouped by expert.
    pub sorted: u64,
    /// Pair p reads input row `p / in_div` (k for the experts' gate and up, which read tokens; 1 for down).
    pub in_div: u32,
    /// An upper bound of the tile count (the grid's height).
    pub max_tiles: usize,
}

/// Scratch for rounded activations, grown on demand.
#[derive(Default)]
pub struct ActScratch {
    xq: Option<Buf<i8>>,
    xd: Option<Buf<f32>>,
    xr: Option<Buf<f32>>,
}

/// One matmul: `y[row] (+)= x[in_row] · Wᵀ + bias`.
pub struct MulMat<'a> {
    pub w: &'a MatDesc,
    /// Input rows `[in_rows, cols]`, f32.
    pub x: u64,
    pub in_rows: usize,
    /// Output rows `[n or pairs, rows]`, f32.
    pub y: u64,
    /// Dense: tokens. With `tiles`: pairs (only for the grid's bound check).
    pub n: usize,
    /// 0 for none; else `bias + expert * bias_stride` is added.
    pub bias: u64,
    pub bias_stride: usize,
    /// Add into y instead of overwriting it.
    pub accumulate: bool,
    pub precision: Precision,
    /// Tokens in the batch, which decide how ggml-cuda would have rounded the activations.
    pub batch_tokens: usize,
    pub tiles: Option<MoeTiles>,
}

macro_rules! kernels {
    ($($name:ident),* $(,)?) => {
        struct Funcs { $($name: CudaFunction,)* }
        impl Funcs {
            fn load(found: &mut HashMap<&'static str, CudaFunction>) -> Result<Funcs, CudaError> {
                Ok(Funcs { $($name: found.remove(stringify!($name)).ok_or_else(|| {
                    CudaError::Unsupported(format!("find kernel {} in the compiled sources", stringify!($name)))
                })?,)* })
            }
        }
        /// Every kernel's name, as in the .cu sources.
        pub const KERNEL_NAMES: &[&str] = &[$(stringify!($name)),*];
    };
}

kernels!(
    mul_mat_f32,
    mul_mat_q8,
    quantize_q8_1,
    round_acts,
    embed_rows,
    rms_norm,
    rope,
    kv_store,
    attention,
    router_topk,
    moe_plan,
    swiglu,
    moe_combine,
    add_into,
);

/// The cubin of source `file` for `arch`, compiled once per process (NVRTC takes seconds per source; tests open
/// many models).
fn compiled(nv: &Nvrtc, file: &str, src: &str, arch: u32) -> Result<Vec<u8>, CudaError> {
    static CACHE: std::sync::Mutex<Vec<(String, u32, Vec<u8>)>> = std::sync::Mutex::new(Vec::new());
    if let Ok(c) = CACHE.lock() {
        if let Some((_, _, bin)) = c.iter().find(|(f, a, _)| f == file && *a == arch) {
            return Ok(bin.clone());
        }
    }
    let bin = nv.compile(file, &full_source(file, src), arch, Output::Cubin)?;
    if let Ok(mut c) = CACHE.lock() {
        c.push((file.to_string(), arch, bin.clone()));
    }
    Ok(bin)
}

/// An opened GPU with the kernels compiled for it.
pub struct Gpu {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    f: Funcs,
    /// The device's name as the driver reports it.
    pub name: String,
    /// Compute capability (major, minor).
    pub compute_capability: (i32, i32),
    /// Where NVRTC was found, and its version.
    pub nvrtc: String,
}

fn u32_of(v: usize, what: &str) -> Result<u32, CudaError> {
    u32::try_from(v).map_err(|_| CudaError::Unsupported(format!("index {what} = {v} in 32 bits")))
}

fn blocks(n: usize, per: usize) -> Result<u32, CudaError> {
    u32_of(n.div_ceil(per).max(1), "a grid of that many blocks")
}

/// The launch every kernel call shares: `kernel` on `grid` blocks of `block` threads, with `args` in the kernel's
/// parameter order. Unsafe as `LaunchArgs::launch` is: each call site says (`// SAFETY:`) why every buffer holds
/// what the kernel reads and writes.
macro_rules! launch {
    ($gpu:expr, $kernel:expr, $grid:expr, $block:expr; $($arg:expr),+ $(,)?) => {{
        let mut b = $gpu.stream.launch_builder($kernel);
        $(b.arg($arg);)+
        b.launch(Gpu::cfg($grid, $block))
    }};
}

impl Gpu {
    /// Whether a CUDA driver and at least one device are there (no compilation): the number of devices.
    pub fn probe() -> Result<usize, CudaError> {
        // SAFETY: only tries to open the driver library by its usual names.
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return Err(CudaError::NoDriver(
                "libcuda.so could not be loaded".to_string(),
            ));
        }
        cudarc::driver::result::init().map_err(|e| CudaError::NoDriver(format!("cuInit: {e}")))?;
        let n = CudaContext::device_count()
            .map_err(|e| CudaError::NoDevice(format!("cuDeviceGetCount: {e}")))?;
        if n < 1 {
            return Err(CudaError::NoDevice("the driver sees no GPU".to_string()));
        }
        Ok(n as usize)
    }

    /// Opens device `ordinal` and compiles every kernel for it.
    pub fn open(ordinal: usize) -> Result<Gpu, CudaError> {
        let n = Gpu::probe()?;
        if ordinal >= n {
            return Err(CudaError::NoDevice(format!(
                "device {ordinal} asked for, {n} present"
            )));
        }
        let ctx = CudaContext::new(ordinal)?;
        // SAFETY: ossify uses one stream per context, so no cross-stream synchronisation is needed.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.default_stream();
        let (major, minor) = ctx.compute_capability()?;
        let name = ctx.name()?;
        let nv = Nvrtc::get()?;
        let arch = u32_of((major * 10 + minor).max(0) as usize, "compute capability")?;
        let mut found = HashMap::new();
        for (file, src) in SOURCES {
            let cubin = compiled(nv, file, src, arch)?;
            let module = ctx.load_module(Ptx::from_binary(cubin))?;
            for &k in KERNEL_NAMES {
                if let Ok(f) = module.load_function(k) {
                    found.insert(k, f);
                }
            }
        }
        let f = Funcs::load(&mut found)?;
        Ok(Gpu {
            ctx,
            stream,
            f,
            name,
            compute_capability: (major, minor),
            nvrtc: format!("{} ({}.{})", nv.origin, nv.version.0, nv.version.1),
        })
    }

    /// (free, total) device memory in bytes.
    pub fn mem_info(&self) -> Result<(usize, usize), CudaError> {
        Ok(self.ctx.mem_get_info()?)
    }

    /// Makes this GPU's context current on the calling thread (the driver's state is per thread).
    pub fn bind(&self) -> Result<(), CudaError> {
        Ok(self.ctx.bind_to_thread()?)
    }

    pub fn synchronize(&self) -> Result<(), CudaError> {
        Ok(self.stream.synchronize()?)
    }

    /// A zeroed buffer of `len` elements.
    pub fn zeros<T: DeviceRepr + ValidAsZeroBits>(&self, len: usize) -> Result<Buf<T>, CudaError> {
        let slice = self.stream.alloc_zeros::<T>(len.max(1))?;
        let ptr = slice.device_ptr(&self.stream).0;
        Ok(Buf { slice, ptr, len })
    }

    /// A buffer holding `host`.
    pub fn upload<T: DeviceRepr>(&self, host: &[T]) -> Result<Buf<T>, CudaError> {
        if host.is_empty() {
            return Err(CudaError::Unsupported("upload an empty buffer".into()));
        }
        let slice = self.stream.clone_htod(host)?;
        let ptr = slice.device_ptr(&self.stream).0;
        Ok(Buf {
            slice,
            ptr,
            len: host.len(),
        })
    }

    /// Copies `host` into `buf` from element `at` on.
    pub fn write<T: DeviceRepr>(
        &self,
        buf: &mut Buf<T>,
        at: usize,
        host: &[T],
    ) -> Result<(), CudaError> {
        if at + host.len() > buf.len {
            return Err(CudaError::Unsupported(format!(
                "write {} values at {at} into a buffer of {}",
                host.len(),
                buf.len
            )));
        }
        if host.is_empty() {
            return Ok(());
        }
        let mut view = buf.slice.slice_mut(at..at + host.len());
        self.stream.memcpy_htod(host, &mut view)?;
        Ok(())
    }

    /// Reads `out.len()` elements of `buf` from element `at` on (waits for the stream).
    pub fn read<T: DeviceRepr>(
        &self,
        buf: &Buf<T>,
        at: usize,
        out: &mut [T],
    ) -> Result<(), CudaError> {
        if at + out.len() > buf.len {
            return Err(CudaError::Unsupported(format!(
                "read {} values at {at} from a buffer of {}",
                out.len(),
                buf.len
            )));
        }
        if out.is_empty() {
            return Ok(());
        }
        let view = buf.slice.slice(at..at + out.len());
        self.stream.memcpy_dtoh(&view, out)?;
        self.stream.synchronize()?;
        Ok(())
    }

    /// Copies `len` elements between device buffers (`dst` from `dst_at`).
    pub fn copy<T: DeviceRepr>(
        &self,
        src: &Buf<T>,
        dst: &mut Buf<T>,
        dst_at: usize,
        len: usize,
    ) -> Result<(), CudaError> {
        if len > src.len || dst_at + len > dst.len {
            return Err(CudaError::Unsupported("copy past a buffer's end".into()));
        }
        if len == 0 {
            return Ok(());
        }
        let from = src.slice.slice(..len);
        let mut to = dst.slice.slice_mut(dst_at..dst_at + len);
        self.stream.memcpy_dtod(&from, &mut to)?;
        Ok(())
    }

    fn cfg(grid: (u32, u32, u32), block: u32) -> LaunchConfig {
        LaunchConfig {
            grid_dim: grid,
            block_dim: (block, 1, 1),
            shared_mem_bytes: 0,
        }
    }

    /// `y (+)= x · Wᵀ + bias` for dense rows or expert tiles, activations rounded as `precision` says.
    pub fn mul_mat(&self, m: &MulMat, scratch: &mut ActScratch) -> Result<(), CudaError> {
        let w = m.w;
        let (rows, cols) = (w.rows(), w.cols());
        let grid_y = match m.tiles {
            Some(t) => blocks(t.max_tiles, 1)?,
            None => blocks(m.n, TOKENS_PER_TILE)?,
        };
        let grid = (blocks(rows, ROWS_PER_BLOCK)?, grid_y, 1);
        let (tiles, sorted, in_div) = match m.tiles {
            Some(t) => (t.tiles, t.sorted, t.in_div.max(1)),
            None => (0, 0, 1),
        };
        let n = u32_of(m.n, "tokens")?;
        let bias_stride = u32_of(m.bias_stride, "bias stride")?;
        let accumulate = u32::from(m.accumulate);
        let big_batch = m.batch_tokens > MMVQ_MAX_BATCH;
        let mut x = m.x;
        if m.precision == Precision::Q8Activations {
            if w.uses_q8() {
                let len = m.in_rows * cols;
                let xq = ensure(self, &mut scratch.xq, len)?;
                let xd = ensure(self, &mut scratch.xd, len / 32)?;
                let in_rows = u32_of(m.in_rows, "rows")?;
                let colsu = u32_of(cols, "columns")?;
                let mmq = u32::from(big_batch);
                // SAFETY: x holds in_rows·cols f32; xq / xd were sized for them above.
                unsafe {
                    launch!(self, &self.f.quantize_q8_1, (blocks(len / 32, 8)?, 1, 1), 256;
                        &x, &in_rows, &colsu, &xq, &xd, &mmq)
                }?;
                // SAFETY: the caller sized x, y, bias and the tiles for this matrix (see MulMat).
                unsafe {
                    launch!(self, &self.f.mul_mat_q8, grid, 256;
                        w, &xq, &xd, &m.y, &m.bias, &bias_stride, &n, &tiles, &sorted, &in_div, &accumulate)
                }?;
                return Ok(());
            }
            if big_batch && (w.kind == K_BF16 || w.kind == K_F16) && w.transposed == 0 {
                let len = m.in_rows * cols;
                let xr = ensure(self, &mut scratch.xr, len)?;
                let mode: u32 = if w.kind == K_BF16 { 1 } else { 2 };
                let lenu = len as u64;
                // SAFETY: x and xr hold len f32.
                unsafe {
                    launch!(self, &self.f.round_acts, (blocks(len, 256)?, 1, 1), 256;
                        &x, &lenu, &mode, &xr)
                }?;
                x = xr;
            }
        }
        // SAFETY: the caller sized x, y, bias and the tiles for this matrix (see MulMat).
        unsafe {
            launch!(self, &self.f.mul_mat_f32, grid, 256;
                w, &x, &m.y, &m.bias, &bias_stride, &n, &tiles, &sorted, &in_div, &accumulate)
        }?;
        Ok(())
    }

    /// Rows `tokens[t]` of `w` into `out` (`[n, cols]`).
    pub fn embed_rows(
        &self,
        w: &MatDesc,
        tokens: u64,
        n: usize,
        out: u64,
    ) -> Result<(), CudaError> {
        if w.transposed != 0 {
            return Err(CudaError::Unsupported(
                "embed from a transposed matrix".into(),
            ));
        }
        // SAFETY: tokens holds n ids below w.rows (checked on the host), out n·cols f32.
        unsafe {
            launch!(self, &self.f.embed_rows, (u32_of(n, "tokens")?, 1, 1), 32; w, &tokens, &out)
        }?;
        Ok(())
    }

    /// RMSNorm of `n` rows of `h`.
    pub fn rms_norm(
        &self,
        x: u64,
        w: u64,
        n: usize,
        h: usize,
        eps: f32,
        out: u64,
    ) -> Result<(), CudaError> {
        let hu = u32_of(h, "width")?;
        // SAFETY: x and out hold n·h f32, w h f32.
        unsafe {
            launch!(self, &self.f.rms_norm, (u32_of(n, "rows")?, 1, 1), 256; &x, &w, &hu, &eps, &out)
        }?;
        Ok(())
    }

    /// RoPE on `n` rows of `heads` heads of `hd` with per-token tables `cos`, `sin` (`hd / 2` each).
    pub fn rope(
        &self,
        x: u64,
        n: usize,
        heads: usize,
        hd: usize,
        cos: u64,
        sin: u64,
    ) -> Result<(), CudaError> {
        let total = n * heads * (hd / 2);
        let (nu, hu, du) = (
            u32_of(n, "tokens")?,
            u32_of(heads, "heads")?,
            u32_of(hd, "head_dim")?,
        );
        // SAFETY: x holds n·heads·hd f32, the tables n·hd/2 each.
        unsafe {
            launch!(self, &self.f.rope, (blocks(total, 256)?, 1, 1), 256; &x, &nu, &hu, &du, &cos, &sin)
        }?;
        Ok(())
    }

    /// Stores `n` rows of k and v (`kvd` wide) at positions p0.. of a cache (`ring` = 0: slot = position).
    #[allow(clippy::too_many_arguments)]
    pub fn kv_store(
        &self,
        k: u64,
        v: u64,
        n: usize,
        p0: usize,
        kvd: usize,
        ring: usize,
        ck: u64,
        cv: u64,
    ) -> Result<(), CudaError> {
        let (nu, pu, du, ru) = (
            u32_of(n, "tokens")?,
            u32_of(p0, "position")?,
            u32_of(kvd, "kv width")?,
            u32_of(ring, "window")?,
        );
        // SAFETY: the caches hold every slot the positions map to (sized by the caller).
        unsafe {
            launch!(self, &self.f.kv_store, (blocks(n * kvd, 256)?, 1, 1), 256;
                &k, &v, &nu, &pu, &du, &ru, &ck, &cv)
        }?;
        Ok(())
    }

    /// Attention with sinks for `n` query rows at positions p0.. (see ops.cu `attention`).
    pub fn attention(&self, a: &Attention) -> Result<(), CudaError> {
        if a.hd > 256 || a.nkv == 0 || a.nh % a.nkv != 0 {
            return Err(CudaError::Unsupported(format!(
                "attention with head_dim {} and {}/{} heads",
                a.hd, a.nh, a.nkv
            )));
        }
        let v = [
            u32_of(a.ring, "window")?,
            u32_of(a.p0, "position")?,
            u32_of(a.nh, "heads")?,
            u32_of(a.nkv, "kv heads")?,
            u32_of(a.hd, "head_dim")?,
            u32_of(a.window, "window")?,
        ];
        // SAFETY: buffers sized by the caller for n tokens at positions p0.. (see Attention).
        unsafe {
            launch!(self, &self.f.attention, (u32_of(a.n * a.nh, "query rows")?, 1, 1), 128;
                &a.q, &a.k_new, &a.v_new, &a.ck, &a.cv, &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &a.sinks,
                &a.scale, &a.out)
        }?;
        Ok(())
    }

    /// Top-k expert ids and softmax weights per token (`[n, k]` each).
    pub fn router_topk(
        &self,
        logits: u64,
        n: usize,
        e_n: usize,
        k: usize,
        ids: u64,
        wts: u64,
    ) -> Result<(), CudaError> {
        if e_n > 256 || k == 0 || k > e_n {
            return Err(CudaError::Unsupported(format!(
                "route top-{k} of {e_n} experts"
            )));
        }
        let (nu, eu, ku) = (
            u32_of(n, "tokens")?,
            u32_of(e_n, "experts")?,
            u32_of(k, "top-k")?,
        );
        // SAFETY: logits n·e_n f32, ids / wts n·k.
        unsafe {
            launch!(self, &self.f.router_topk, (blocks(n, 128)?, 1, 1), 128;
                &logits, &nu, &eu, &ku, &ids, &wts)
        }?;
        Ok(())
    }

    /// Groups the pairs by expert into `sorted` and `tiles` (see ops.cu `moe_plan`).
    pub fn moe_plan(
        &self,
        ids: u64,
        n_pairs: usize,
        e_n: usize,
        counts: u64,
        sorted: u64,
        tiles: u64,
    ) -> Result<(), CudaError> {
        let (pu, eu, tu) = (
            u32_of(n_pairs, "pairs")?,
            u32_of(e_n, "experts")?,
            u32_of(TOKENS_PER_TILE, "tile")?,
        );
        // SAFETY: counts e_n+1 ints, sorted n_pairs, tiles 1 + 3·(n_pairs/tile + e_n).
        unsafe {
            launch!(self, &self.f.moe_plan, (1, 1, 1), 32; &ids, &pu, &eu, &tu, &counts, &sorted, &tiles)
        }?;
        Ok(())
    }

    /// Clamped SwiGLU of `len` values.
    pub fn swiglu(
        &self,
        gate: u64,
        up: u64,
        len: usize,
        limit: f32,
        alpha: f32,
        out: u64,
    ) -> Result<(), CudaError> {
        let l = len as u64;
        // SAFETY: all three hold len f32.
        unsafe {
            launch!(self, &self.f.swiglu, (blocks(len, 256)?, 1, 1), 256;
                &gate, &up, &l, &limit, &alpha, &out)
        }?;
        Ok(())
    }

    /// x += Σ routed expert outputs · weights (see ops.cu `moe_combine`).
    #[allow(clippy::too_many_arguments)]
    pub fn moe_combine(
        &self,
        down: u64,
        ids: u64,
        wts: u64,
        n: usize,
        k: usize,
        h: usize,
        x: u64,
    ) -> Result<(), CudaError> {
        let (nu, ku, hu) = (
            u32_of(n, "tokens")?,
            u32_of(k, "top-k")?,
            u32_of(h, "width")?,
        );
        // SAFETY: down n·k·h f32, ids / wts n·k, x n·h.
        unsafe {
            launch!(self, &self.f.moe_combine, (blocks(n * h, 256)?, 1, 1), 256;
                &down, &ids, &wts, &nu, &ku, &hu, &x)
        }?;
        Ok(())
    }

    /// x += y over `len` values.
    pub fn add_into(&self, x: u64, y: u64, len: usize) -> Result<(), CudaError> {
        let l = len as u64;
        // SAFETY: both hold len f32.
        unsafe { launch!(self, &self.f.add_into, (blocks(len, 256)?, 1, 1), 256; &x, &y, &l) }?;
        Ok(())
    }
}

/// Arguments of [`Gpu::attention`].
pub struct Attention {
    /// `[n, nh·hd]`
    pub q: u64,
    /// This batch's keys and values, `[n, nkv·hd]`.
    pub k_new: u64,
    pub v_new: u64,
    /// The layer's cache before this batch.
    pub ck: u64,
    pub cv: u64,
    /// 0 for full layers (slot = position), else the ring's length.
    pub ring: usize,
    pub p0: usize,
    pub n: usize,
    pub nh: usize,
    pub nkv: usize,
    pub hd: usize,
    /// 0 for full attention.
    pub window: usize,
    pub sinks: u64,
    pub scale: f32,
    /// `[n, nh·hd]`
    pub out: u64,
}

/// `slot` grown to hold at least `len` elements; its address.
fn ensure<T: DeviceRepr + ValidAsZeroBits>(
    gpu: &Gpu,
    slot: &mut Option<Buf<T>>,
    len: usize,
) -> Result<u64, CudaError> {
    if slot.as_ref().is_none_or(|b| b.len < len) {
        *slot = None;
        *slot = Some(gpu.zeros::<T>(len)?);
    }
    Ok(slot.as_ref().map_or(0, |b| b.ptr))
}

/// The model's weights on the device: each distinct stored tensor uploaded once, in its stored type.
#[derive(Default)]
pub struct WeightStore {
    regions: Vec<CudaSlice<u8>>,
    by_host: HashMap<(usize, usize), u64>,
    /// Bytes uploaded.
    pub bytes: usize,
}

impl WeightStore {
    /// The device address of `host`'s bytes, uploading them the first time they are asked for.
    pub fn region(&mut self, gpu: &Gpu, host: &[u8]) -> Result<u64, CudaError> {
        let key = (host.as_ptr() as usize, host.len());
        if let Some(&p) = self.by_host.get(&key) {
            return Ok(p);
        }
        if host.is_empty() {
            return Err(CudaError::Unsupported("upload an empty tensor".into()));
        }
        let slice = gpu.stream.clone_htod(host)?;
        let p = slice.device_ptr(&gpu.stream).0;
        self.regions.push(slice);
        self.by_host.insert(key, p);
        self.bytes += host.len();
        Ok(p)
    }

    /// Several host slices of equal length uploaded back to back (one expert's transposed storage each).
    fn concat(&mut self, gpu: &Gpu, parts: &[&[u8]]) -> Result<u64, CudaError> {
        let len = parts.first().map_or(0, |p| p.len());
        let mut slice = gpu.stream.alloc_zeros::<u8>((len * parts.len()).max(1))?;
        for (i, p) in parts.iter().enumerate() {
            let mut view = slice.slice_mut(i * len..(i + 1) * len);
            gpu.stream.memcpy_htod(*p, &mut view)?;
        }
        let ptr = slice.device_ptr(&gpu.stream).0;
        self.regions.push(slice);
        self.bytes += len * parts.len();
        Ok(ptr)
    }

    /// `w` on the device.
    pub fn matrix(&mut self, gpu: &Gpu, w: &WeightMatrix) -> Result<MatDesc, CudaError> {
        let (mut d, data, scales) = describe(w)?;
        d.data = self.region(gpu, data)?;
        if let Some(s) = scales {
            d.scales = self.region(gpu, s)?;
        }
        Ok(d)
    }

    /// The same matrix of every expert, as one descriptor: expert e's rows are `e · expert_lines` stored lines
    /// further (experts stacked in one tensor) or `e · expert_bytes` further (one tensor per expert, uploaded
    /// back to back).
    pub fn experts(&mut self, gpu: &Gpu, ws: &[WeightMatrix]) -> Result<MatDesc, CudaError> {
        let Some(w0) = ws.first() else {
            return Err(CudaError::Unsupported(
                "load a layer without experts".into(),
            ));
        };
        let (mut d, data0, scales0) = describe(w0)?;
        let parts: Vec<Described> = ws.iter().map(describe).collect::<Result<_, _>>()?;
        let stacked = parts.iter().all(|(_, b, s)| {
            std::ptr::eq(*b, data0) && s.map(|s| s.as_ptr()) == scales0.map(|s| s.as_ptr())
        });
        let same_shape = |p: &MatDesc| {
            (p.kind, p.rows, p.cols, p.step, p.row_bytes, p.transposed)
                == (d.kind, d.rows, d.cols, d.step, d.row_bytes, d.transposed)
        };
        if !parts.iter().all(|(p, _, _)| same_shape(p)) {
            return Err(CudaError::Unsupported(
                "load experts of different shapes or types".into(),
            ));
        }
        if stacked {
            let stride = parts
                .get(1)
                .map_or(0, |(p, _, _)| p.first.wrapping_sub(d.first));
            let uniform = parts.iter().enumerate().all(|(e, (p, _, _))| {
                u64::from(p.first) == u64::from(d.first) + e as u64 * u64::from(stride)
            });
            if !uniform {
                return Err(CudaError::Unsupported(
                    "load experts at uneven row offsets".into(),
                ));
            }
            d.expert_lines = stride;
            d.data = self.region(gpu, data0)?;
            if let Some(s) = scales0 {
                d.scales = self.region(gpu, s)?;
            }
        } else {
            let same_lines = parts
                .iter()
                .all(|(p, b, s)| p.first == d.first && b.len() == data0.len() && s.is_none());
            if !same_lines {
                return Err(CudaError::Unsupported(
                    "load separately stored experts of this layout".into(),
                ));
            }
            let slices: Vec<&[u8]> = parts.iter().map(|(_, b, _)| *b).collect();
            d.data = self.concat(gpu, &slices)?;
            d.expert_bytes = data0.len() as u64;
        }
        Ok(d)
    }
}

/// A descriptor without addresses, and the host bytes it describes (data, and the pair's scales).
type Described<'a> = (MatDesc, &'a [u8], Option<&'a [u8]>);

/// The descriptor of `w` (addresses left 0) and its host bytes (data, and the pair's scales).
fn describe<'a>(w: &WeightMatrix<'a>) -> Result<Described<'a>, CudaError> {
    let cols = w.cols();
    let (kind, data, scales, row_bytes) = match w.storage() {
        Storage::Ggml {
            dtype,
            bytes,
            row_bytes,
        } => (
            kind_of(dtype)
                .ok_or_else(|| CudaError::Unsupported(format!("decode {dtype} weights")))?,
            bytes,
            None,
            row_bytes,
        ),
        Storage::Mxfp4Pair { blocks, scales } => (K_MXFP4_PAIR, blocks, Some(scales), cols / 2),
    };
    let first = w.line(0);
    let step = if w.rows() > 1 { w.line(1) - first } else { 1 };
    Ok((
        MatDesc {
            data: 0,
            scales: 0,
            row_bytes: row_bytes as u64,
            expert_bytes: 0,
            kind,
            rows: u32_of(w.rows(), "rows")?,
            cols: u32_of(cols, "columns")?,
            first: u32_of(first, "first row")?,
            step: u32_of(step, "row step")?,
            expert_lines: 0,
            transposed: u32::from(w.is_transposed()),
            pad: 0,
        },
        data,
        scales,
    ))
}
