// The rest of a gpt-oss layer, each kernel the twin of a step of src/gpt_oss/forward.rs (named in its comment).

// Token embeddings: row `tokens[t]` of `w` decoded into out[t] (forward.rs: `w.embed.decode_row_into`). One block
// per token; ids were checked against the vocabulary on the host.
extern "C" __global__ void embed_rows(Mat w, const u32* tokens, float* out) {
    const u32 t = blockIdx.x;
    const u64 line = (u64)w.first + (u64)tokens[t] * w.step;
    const u8* row = line_ptr(w, 0, line);
    const u8* srow = w.kind == K_MXFP4_PAIR ? (const u8*)(w.scales + line * (w.cols / 32)) : nullptr;
    const u32 nb = (w.cols + 31) / 32;
    for (u32 ib = threadIdx.x; ib < nb; ib += blockDim.x) {
        float v[32];
        decode_block(w, row, srow, ib, v);
        const u32 m = min(32u, w.cols - ib * 32);
        for (u32 i = 0; i < m; ++i) out[(u64)t * w.cols + ib * 32 + i] = v[i];
    }
}

// Block-wide sum (blockDim.x a multiple of 32, at most 1024).
__device__ float block_sum(float v) {
    __shared__ float part[32];
    const u32 lane = threadIdx.x % WARP, warp = threadIdx.x / WARP, nw = blockDim.x / WARP;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) part[warp] = v;
    __syncthreads();
    float s = lane < nw ? part[lane] : 0.0f;
    return warp_sum(s);
}

// transformers' GptOssRMSNorm (forward.rs rms_norm): out = w · (x · 1/sqrt(mean(x²) + eps)), one block per row.
extern "C" __global__ void rms_norm(const float* x, const float* w, u32 h, float eps, float* out) {
    const float* xr = x + (u64)blockIdx.x * h;
    float* orow = out + (u64)blockIdx.x * h;
    float s = 0.0f;
    for (u32 i = threadIdx.x; i < h; i += blockDim.x) s += xr[i] * xr[i];
    s = block_sum(s);
    const float r = 1.0f / sqrtf(s / (float)h + eps);
    for (u32 i = threadIdx.x; i < h; i += blockDim.x) orow[i] = w[i] * (xr[i] * r);
}

// Half-split RoPE (gpt_oss/rope.rs Rope::apply) on `n` rows of `heads` heads of `hd` values, with the host's
// cos / sin tables (`hd / 2` per token, the attention factor included): (a, b) -> (a cos - b sin, b cos + a sin).
extern "C" __global__ void rope(float* x, u32 n, u32 heads, u32 hd, const float* cosv, const float* sinv) {
    const u32 half = hd / 2;
    const u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (u64)n * heads * half) return;
    const u32 k = (u32)(i % half);
    const u64 th = i / half;  // token * heads + head
    const u32 t = (u32)(th / heads);
    float* hp = x + th * hd;
    const float c = cosv[(u64)t * half + k], s = sinv[(u64)t * half + k];
    const float a = hp[k], b = hp[k + half];
    hp[k] = a * c - b * s;
    hp[k + half] = b * c + a * s;
}

// Appends this batch's keys and values to a layer's cache (forward.rs LayerCache::append): position p goes to slot
// p (full layers) or p % ring (sliding layers keep the last `ring` positions).
extern "C" __global__ void kv_store(const float* k, const float* v, u32 n, u32 p0, u32 kvd, u32 ring, float* ck,
                                    float* cv) {
    const u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (u64)n * kvd) return;
    const u32 t = (u32)(i / kvd), d = (u32)(i % kvd);
    // A batch longer than the ring: only its last `ring` positions survive (the CPU's in-order writes leave the
    // same), and skipping the rest keeps two threads from writing one slot.
    if (ring && t + ring < n) return;
    const u64 pos = (u64)p0 + t;
    const u64 slot = ring ? pos % ring : pos;
    ck[slot * kvd + d] = k[i];
    cv[slot * kvd + d] = v[i];
}

#define ATT_WARPS 4
#define MAX_DPL 8  // head_dim up to 256: each lane holds elements lane + 32 i

// Attention with sinks (forward.rs attention): one block per (token, head); positions before p0 come from the
// cache, the batch's own from k_new / v_new. Each warp walks every ATT_WARPS-th visible position with an online
// softmax (warp 0 starts from the sink logit, which joins the denominator only); the warps' partial sums are merged
// at the end. `window` = 0 for full attention, else the number of most recent positions seen (the current one
// included).
extern "C" __global__ void attention(const float* q, const float* k_new, const float* v_new, const float* ck,
                                     const float* cv, u32 ring, u32 p0, u32 nh, u32 nkv, u32 hd, u32 window,
                                     const float* sinks, float scale, float* out) {
    __shared__ float sm_m[ATT_WARPS], sm_s[ATT_WARPS];
    __shared__ float sm_o[ATT_WARPS][MAX_DPL * WARP];
    const u32 lane = threadIdx.x % WARP, warp = threadIdx.x / WARP;
    const u32 t = blockIdx.x / nh, head = blockIdx.x % nh;
    const u32 kvh = head / (nh / nkv);
    const u32 qd = nh * hd, kvd = nkv * hd;
    const u64 pos = (u64)p0 + t;
    const u64 lo = (window && pos + 1 > window) ? pos + 1 - window : 0;

    float qv[MAX_DPL], o[MAX_DPL];
#pragma unroll
    for (int i = 0; i < MAX_DPL; ++i) {
        const u32 d = lane + 32 * i;
        qv[i] = d < hd ? q[(u64)t * qd + (u64)head * hd + d] : 0.0f;
        o[i] = 0.0f;
    }
    float m = warp == 0 ? sinks[head] : NEG_INF;
    float s = warp == 0 ? 1.0f : 0.0f;
    for (u64 j = lo + warp; j <= pos; j += ATT_WARPS) {
        const float *kr, *vr;
        if (j < p0) {
            const u64 slot = ring ? j % ring : j;
            kr = ck + slot * kvd + (u64)kvh * hd;
            vr = cv + slot * kvd + (u64)kvh * hd;
        } else {
            kr = k_new + (j - p0) * kvd + (u64)kvh * hd;
            vr = v_new + (j - p0) * kvd + (u64)kvh * hd;
        }
        float part = 0.0f;
#pragma unroll
        for (int i = 0; i < MAX_DPL; ++i) {
            const u32 d = lane + 32 * i;
            if (d < hd) part += qv[i] * kr[d];
        }
        const float score = warp_sum(part) * scale;
        const float m_new = fmaxf(m, score);
        const float corr = expf(m - m_new);
        const float p = expf(score - m_new);
        s = s * corr + p;
#pragma unroll
        for (int i = 0; i < MAX_DPL; ++i) {
            const u32 d = lane + 32 * i;
            o[i] = o[i] * corr + (d < hd ? p * vr[d] : 0.0f);
        }
        m = m_new;
    }
    if (lane == 0) {
        sm_m[warp] = m;
        sm_s[warp] = s;
    }
#pragma unroll
    for (int i = 0; i < MAX_DPL; ++i) sm_o[warp][lane + 32 * i] = o[i];
    __syncthreads();
    if (warp != 0) return;
    float mx = sm_m[0];
    for (int w = 1; w < ATT_WARPS; ++w) mx = fmaxf(mx, sm_m[w]);
    float den = 0.0f;
    float acc[MAX_DPL];
#pragma unroll
    for (int i = 0; i < MAX_DPL; ++i) acc[i] = 0.0f;
    for (int w = 0; w < ATT_WARPS; ++w) {
        // A warp that saw no position holds m = -inf and s = 0: its factor is 0.
        const float f = sm_s[w] > 0.0f ? expf(sm_m[w] - mx) : 0.0f;
        den += sm_s[w] * f;
#pragma unroll
        for (int i = 0; i < MAX_DPL; ++i) acc[i] += sm_o[w][lane + 32 * i] * f;
    }
#pragma unroll
    for (int i = 0; i < MAX_DPL; ++i) {
        const u32 d = lane + 32 * i;
        if (d < hd) out[(u64)t * qd + (u64)head * hd + d] = acc[i] / den;
    }
}

#define MAX_EXPERTS 256

// The router's choice (forward.rs moe): per token the top `k` of `e_n` logits (ties to the lower index), softmax
// over those k. One thread per token; ids / wts are [n, k] in rank order.
extern "C" __global__ void router_topk(const float* logits, u32 n, u32 e_n, u32 k, int* ids, float* wts) {
    const u32 t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= n) return;
    const float* lr = logits + (u64)t * e_n;
    u32 taken[MAX_EXPERTS / 32];
    for (int i = 0; i < MAX_EXPERTS / 32; ++i) taken[i] = 0;
    for (u32 r = 0; r < k; ++r) {
        int best = -1;
        for (u32 e = 0; e < e_n; ++e) {
            if (taken[e / 32] & (1u << (e % 32))) continue;
            // Strictly greater keeps the lower index on ties; NaN never wins, as in total_cmp's order for
            // finite logits.
            if (best < 0 || lr[e] > lr[best]) best = (int)e;
        }
        taken[best / 32] |= 1u << (best % 32);
        ids[(u64)t * k + r] = best;
    }
    const float mx = lr[ids[(u64)t * k]];
    float sum = 0.0f;
    for (u32 r = 0; r < k; ++r) {
        const float x = expf(lr[ids[(u64)t * k + r]] - mx);
        wts[(u64)t * k + r] = x;
        sum += x;
    }
    for (u32 r = 0; r < k; ++r) wts[(u64)t * k + r] /= sum;
}

// Groups the n·k (token, slot) pairs by expert, tokens in order within an expert (a stable counting sort by one
// thread: at most a few thousand pairs), and cuts each expert's run into tiles of `tile` pairs for mul_mat_*:
// sorted[i] = pair id (t·k + slot); tiles[0] = count, then (expert, start, len) per tile. `counts` is scratch of
// e_n + 1 ints.
extern "C" __global__ void moe_plan(const int* ids, u32 n_pairs, u32 e_n, u32 tile, int* counts, int* sorted,
                                    int* tiles) {
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    for (u32 e = 0; e <= e_n; ++e) counts[e] = 0;
    for (u32 p = 0; p < n_pairs; ++p) counts[ids[p] + 1] += 1;
    for (u32 e = 0; e < e_n; ++e) counts[e + 1] += counts[e];  // counts[e] = start of expert e
    int nt = 0;
    for (u32 e = 0; e < e_n; ++e) {
        const int start = counts[e], len = counts[e + 1] - counts[e];
        for (int s = 0; s < len; s += (int)tile) {
            tiles[1 + 3 * nt] = (int)e;
            tiles[2 + 3 * nt] = start + s;
            tiles[3 + 3 * nt] = min((int)tile, len - s);
            ++nt;
        }
    }
    tiles[0] = nt;
    for (u32 p = 0; p < n_pairs; ++p) {
        const int e = ids[p];
        sorted[counts[e]] = (int)p;
        counts[e] += 1;
    }
}

// gpt-oss's clamped SwiGLU (forward.rs moe): gate clamped above at `limit`, up to ±limit,
// out = (up + 1) · gate · sigmoid(alpha · gate).
extern "C" __global__ void swiglu(const float* gate, const float* up, u64 len, float limit, float alpha, float* out) {
    const u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= len) return;
    const float g = fminf(gate[i], limit);
    const float u = fminf(fmaxf(up[i], -limit), limit);
    const float glu = g * (1.0f / (1.0f + expf(-(g * alpha))));
    out[i] = (u + 1.0f) * glu;
}

// Adds the experts' outputs to the residual (forward.rs moe + add_into): per token the k routed rows of `down`
// ([n·k, h], pair order) times their weights, summed in ascending expert order as the CPU sums them, then added to x.
extern "C" __global__ void moe_combine(const float* down, const int* ids, const float* wts, u32 n, u32 k, u32 h,
                                       float* x) {
    const u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (u64)n * h) return;
    const u32 t = (u32)(i / h), c = (u32)(i % h);
    float s = 0.0f;
    int prev = -1;
    for (u32 r = 0; r < k; ++r) {
        // The next expert in ascending order among this token's k (k is small).
        int best = -1;
        u32 slot = 0;
        for (u32 j = 0; j < k; ++j) {
            const int e = ids[(u64)t * k + j];
            if (e > prev && (best < 0 || e < best)) {
                best = e;
                slot = j;
            }
        }
        prev = best;
        const u64 p = (u64)t * k + slot;
        s += down[p * h + c] * wts[p];
    }
    x[i] += s;
}

// x += y, elementwise.
extern "C" __global__ void add_into(float* x, const float* y, u64 len) {
    const u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < len) x[i] += y[i];
}
