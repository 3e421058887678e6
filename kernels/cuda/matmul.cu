// y = x · Wᵀ (+ bias) over weights in their stored types, decoded in the kernel exactly as the CPU decodes them.
//
// One warp per output row, TT tokens per block column: each lane decodes whole 32-element blocks of the row once
// and dots them with every token of the tile, then the warp sums its lanes. The same kernels serve the dense
// matmuls (tiles = null: tile y covers tokens [TT y, TT y + TT)) and the experts (tiles from moe_plan: each tile is
// one expert's run of (token, slot) pairs; pair p reads input row p / in_div and writes output row p).

#define WARPS 8
#define TT 8

struct Tile {
    u32 e, start, len;
};

__device__ __forceinline__ bool get_tile(const int* tiles, u32 n, u32 by, Tile& t) {
    if (tiles) {
        if ((int)by >= tiles[0]) return false;
        t.e = (u32)tiles[1 + 3 * by];
        t.start = (u32)tiles[2 + 3 * by];
        t.len = (u32)tiles[3 + 3 * by];
    } else {
        t.e = 0;
        t.start = by * TT;
        if (t.start >= n) return false;
        t.len = min((u32)TT, n - t.start);
    }
    return true;
}

__device__ __forceinline__ void tile_rows(const Tile& t, const int* sorted, u32 in_div, u32 out_row[TT], u32 in_row[TT]) {
#pragma unroll
    for (int j = 0; j < TT; ++j) {
        u32 p = (u32)j < t.len ? (sorted ? (u32)sorted[t.start + j] : t.start + j) : 0;
        out_row[j] = p;
        in_row[j] = p / in_div;
    }
}

__device__ __forceinline__ void write_out(const Mat& w, const Tile& t, const u32 out_row[TT], float acc[TT], u32 r,
                                          float* y, const float* bias, u32 bias_stride, u32 accumulate) {
    float b = bias ? bias[(u64)t.e * bias_stride + r] : 0.0f;
#pragma unroll
    for (int j = 0; j < TT; ++j) {
        float s = warp_sum(acc[j]);
        if ((u32)j < t.len && (threadIdx.x % WARP) == 0) {
            float v = s + b;
            u64 o = (u64)out_row[j] * w.rows + r;
            y[o] = accumulate ? y[o] + v : v;
        }
    }
}

// f32 activations and accumulation (the exact mode; activations may have been rounded by round_acts first).
extern "C" __global__ void mul_mat_f32(Mat w, const float* x, float* y, const float* bias, u32 bias_stride, u32 n,
                                       const int* tiles, const int* sorted, u32 in_div, u32 accumulate) {
    const u32 lane = threadIdx.x % WARP;
    const u32 r = blockIdx.x * WARPS + threadIdx.x / WARP;
    Tile t;
    if (!get_tile(tiles, n, blockIdx.y, t) || r >= w.rows) return;
    u32 out_row[TT], in_row[TT];
    tile_rows(t, sorted, in_div, out_row, in_row);
    float acc[TT];
#pragma unroll
    for (int j = 0; j < TT; ++j) acc[j] = 0.0f;
    const u64 line = (u64)w.first + (u64)t.e * w.expert_lines + (u64)r * w.step;
    const u32 cols = w.cols;
    if (w.transposed) {
        // Stored (in, out): element (r, c) is column `line` of stored line c.
        const u8* base = (const u8*)(w.data + (u64)t.e * w.expert_bytes);
        for (u32 c = lane; c < cols; c += WARP) {
            float wv = scalar_at(w.kind, base + (u64)c * w.row_bytes, line);
#pragma unroll
            for (int j = 0; j < TT; ++j)
                if ((u32)j < t.len) acc[j] += wv * x[(u64)in_row[j] * cols + c];
        }
    } else {
        const u8* row = line_ptr(w, t.e, line);
        const u8* srow = w.kind == K_MXFP4_PAIR ? (const u8*)(w.scales + line * (cols / 32)) : nullptr;
        const u32 nb = (cols + 31) / 32;
        for (u32 ib = lane; ib < nb; ib += WARP) {
            float v[32];
            decode_block(w, row, srow, ib, v);
            const u32 c0 = ib * 32;
            const u32 m = min(32u, cols - c0);
#pragma unroll
            for (int j = 0; j < TT; ++j) {
                if ((u32)j >= t.len) continue;
                const float* xr = x + (u64)in_row[j] * cols + c0;
                float a = acc[j];
                if (m == 32 && ((u64)xr & 15) == 0) {
                    const float4* x4 = (const float4*)xr;
#pragma unroll
                    for (int k = 0; k < 8; ++k) {
                        const float4 xv = x4[k];
                        a += v[4 * k] * xv.x;
                        a += v[4 * k + 1] * xv.y;
                        a += v[4 * k + 2] * xv.z;
                        a += v[4 * k + 3] * xv.w;
                    }
                } else if (m == 32) {
#pragma unroll
                    for (int i = 0; i < 32; ++i) a += v[i] * xr[i];
                } else {
                    for (u32 i = 0; i < m; ++i) a += v[i] * xr[i];
                }
                acc[j] = a;
            }
        }
    }
    write_out(w, t, out_row, acc, r, y, bias, bias_stride, accumulate);
}

// Q8 activations (quantize_q8_1's int8 codes `xq` and per-block scales `xd`) against MXFP4 (both layouts) or Q8_0
// weights: integer block sums times (weight scale · activation scale), as ggml-cuda's vec_dot_mxfp4_q8_1 and
// vec_dot_q8_0_q8_1 compute them.
extern "C" __global__ void mul_mat_q8(Mat w, const i8* xq, const float* xd, float* y, const float* bias,
                                      u32 bias_stride, u32 n, const int* tiles, const int* sorted, u32 in_div,
                                      u32 accumulate) {
    const u32 lane = threadIdx.x % WARP;
    const u32 r = blockIdx.x * WARPS + threadIdx.x / WARP;
    Tile t;
    if (!get_tile(tiles, n, blockIdx.y, t) || r >= w.rows) return;
    u32 out_row[TT], in_row[TT];
    tile_rows(t, sorted, in_div, out_row, in_row);
    float acc[TT];
#pragma unroll
    for (int j = 0; j < TT; ++j) acc[j] = 0.0f;
    const u64 line = (u64)w.first + (u64)t.e * w.expert_lines + (u64)r * w.step;
    const u32 cols = w.cols, nb = cols / 32;
    const u8* row = line_ptr(w, t.e, line);
    const u8* srow = w.kind == K_MXFP4_PAIR ? (const u8*)(w.scales + line * nb) : nullptr;
    for (u32 ib = lane; ib < nb; ib += WARP) {
        // The block's weights as small integers (MXFP4: ggml's doubled E2M1 values) and its scale.
        int wq[32];
        float dw;
        const u8* b = row + (u64)ib * block_bytes(w.kind);
        if (w.kind == K_Q8_0) {
            dw = f16_to_f32(load_u16(b));
#pragma unroll
            for (int i = 0; i < 32; ++i) wq[i] = (i8)b[2 + i];
        } else if (w.kind == K_MXFP4) {
            dw = e8m0_half(b[0]);
#pragma unroll
            for (int j = 0; j < 16; ++j) {
                wq[j] = kvalue_mxfp4(b[1 + j] & 15);
                wq[j + 16] = kvalue_mxfp4(b[1 + j] >> 4);
            }
        } else {  // K_MXFP4_PAIR
            dw = e8m0_half(srow[ib]);
#pragma unroll
            for (int j = 0; j < 16; ++j) {
                wq[2 * j] = kvalue_mxfp4(b[j] & 15);
                wq[2 * j + 1] = kvalue_mxfp4(b[j] >> 4);
            }
        }
#pragma unroll
        for (int j = 0; j < TT; ++j) {
            if ((u32)j >= t.len) continue;
            const i8* q = xq + (u64)in_row[j] * cols + (u64)ib * 32;
            int s = 0;
#pragma unroll
            for (int i = 0; i < 32; ++i) s += wq[i] * (int)q[i];
            acc[j] += (dw * xd[(u64)in_row[j] * nb + ib]) * (float)s;
        }
    }
    write_out(w, t, out_row, acc, r, y, bias, bias_stride, accumulate);
}

// Activations to Q8_1 codes, one warp per 32-element block of `rows` rows of `cols` (a multiple of 32), as
// ggml-cuda rounds them (ggml/src/ggml-cuda/quantize.cu):
//   mmq = 0, quantize_q8_1 (mul_mat_vec_q, up to 8 tokens): d = amax / 127, q = roundf(x / d), d kept as f16;
//   mmq = 1, quantize_mmq_q8_1 with the D4 layout (mul_mat_q, MXFP4 and Q8_0 weights): q = roundf(x · (127 /
//   amax)), d = 1 / (127 / amax) kept as f32.
// roundf rounds halves away from zero. An all-zero block gets d = 0 and zero codes.
extern "C" __global__ void quantize_q8_1(const float* x, u32 rows, u32 cols, i8* xq, float* xd, u32 mmq) {
    const u32 nb = cols / 32;
    const u64 blk = (u64)blockIdx.x * (blockDim.x / WARP) + threadIdx.x / WARP;
    if (blk >= (u64)rows * nb) return;
    const u32 lane = threadIdx.x % WARP;
    const u64 row = blk / nb, ib = blk % nb;
    const u64 at = row * cols + ib * 32 + lane;
    const float v = x[at];
    const float amax = warp_max(fabsf(v));
    int q = 0;
    float d = 0.0f;
    if (mmq) {
        if (amax != 0.0f) {
            const float d_inv = 127.0f / amax;
            q = (int)roundf(v * d_inv);
            d = 1.0f / d_inv;
        }
    } else {
        d = amax / 127.0f;
        q = amax == 0.0f ? 0 : (int)roundf(v / d);
        d = f16_to_f32(f32_to_f16(d));
    }
    xq[at] = (i8)q;
    if (lane == 0) xd[row * nb + ib] = d;
}

// Activations rounded to the weights' 16-bit type (mode 1: bf16, 2: f16) and widened again, as ggml-cuda feeds
// BF16 / F16 weights through cuBLAS / its tensor-core kernels for batches of more than 8 tokens.
extern "C" __global__ void round_acts(const float* x, u64 len, u32 mode, float* out) {
    const u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= len) return;
    const float v = x[i];
    out[i] = mode == 1 ? bf16_to_f32(f32_to_bf16(v)) : f16_to_f32(f32_to_f16(v));
}
