// Shared by every kernel source: the Rust side (kernels/src/cuda/mod.rs) puts this text in front of each .cu file
// before NVRTC compiles it, so no file includes another and no CUDA header is needed.
//
// Weight decoding here must give exactly the values of ossify-formats' scalar decoders (formats/src/quant/), which
// are bit-exact with ggml's dequantize_row_* and transformers' MXFP4 decode.

typedef unsigned char u8;
typedef signed char i8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef int i32;
typedef unsigned long long u64;

#define WARP 32
#define FULL_MASK 0xffffffffu
#define NEG_INF __int_as_float(0xff800000)

// How a matrix is stored: kernels/src/cuda/mod.rs `Kind` spells the same numbers.
#define K_F32 0
#define K_F16 1
#define K_BF16 2
#define K_Q8_0 3
#define K_Q4_0 4
#define K_Q4_1 5
#define K_Q5_0 6
#define K_Q5_1 7
#define K_MXFP4 8       // ggml block_mxfp4: E8M0 byte, 16 bytes; element j in the low nibble of byte j, j+16 high
#define K_MXFP4_PAIR 9  // HF / OpenAI: `blocks` 16 bytes per 32 (2j low nibble, 2j+1 high), `scales` one E8M0 each

// A weight matrix (`rows` out × `cols` in) inside stored bytes, as kernels/src/cpu/matmul.rs `WeightMatrix`: logical
// row r of expert e is stored line `first + e * expert_lines + r * step` of the storage at
// `data + e * expert_bytes`. Transposed storage holds (in, out): element (r, c) is stored line c, column `line(r)`.
// The Rust twin is `MatDesc`; both are 64 bytes with no padding.
struct Mat {
    u64 data;
    u64 scales;        // the pair's scales (K_MXFP4_PAIR), else 0
    u64 row_bytes;     // bytes from one stored line to the next (the pair: of `blocks`)
    u64 expert_bytes;  // bytes between two experts' storage (0 when experts are stacked in one tensor)
    u32 kind;
    u32 rows;
    u32 cols;
    u32 first;
    u32 step;
    u32 expert_lines;
    u32 transposed;
    u32 pad;
};

__device__ __forceinline__ float f16_to_f32(u16 h) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}

__device__ __forceinline__ u16 f32_to_f16(float f) {
    u16 h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
}

__device__ __forceinline__ float bf16_to_f32(u16 b) { return __uint_as_float(((u32)b) << 16); }

// formats/src/quant/bf16.rs fp32_to_bf16 (ggml's GGML_FP32_TO_BF16): round to nearest even, NaN kept quiet.
__device__ __forceinline__ u16 f32_to_bf16(float f) {
    u32 u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (u16)((u >> 16) | 64);
    return (u16)((u + (0x7fffu + ((u >> 16) & 1))) >> 16);
}

// ggml's ggml_e8m0_to_fp32_half: 2^(e - 128), built from bits (subnormal for e < 2).
__device__ __forceinline__ float e8m0_half(u8 e) {
    u32 bits = e < 2 ? (0x00200000u << e) : ((u32)(e - 1) << 23);
    return __uint_as_float(bits);
}

// FP4 E2M1 codes as ggml's kvalues_mxfp4: twice the value, so that e8m0_half restores the scale.
__constant__ int KVALUES_MXFP4[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

__device__ __forceinline__ int kvalue_mxfp4(u32 code) { return KVALUES_MXFP4[code & 15]; }

__device__ __forceinline__ u16 load_u16(const u8* p) { return (u16)(p[0] | (p[1] << 8)); }

__device__ __forceinline__ u32 load_u32(const u8* p) {
    return (u32)p[0] | ((u32)p[1] << 8) | ((u32)p[2] << 16) | ((u32)p[3] << 24);
}

// Bytes of one 32-element block of a block type.
__device__ __forceinline__ u32 block_bytes(u32 kind) {
    switch (kind) {
        case K_Q8_0: return 34;
        case K_Q4_0: return 18;
        case K_Q4_1: return 20;
        case K_Q5_0: return 22;
        case K_Q5_1: return 24;
        case K_MXFP4: return 17;
        default: return 16;  // K_MXFP4_PAIR: bytes of `blocks`
    }
}

__device__ __forceinline__ bool is_scalar_kind(u32 kind) {
    return kind == K_F32 || kind == K_F16 || kind == K_BF16;
}

// Element `i` of a row of a scalar type starting at `row`.
__device__ __forceinline__ float scalar_at(u32 kind, const u8* row, u64 i) {
    switch (kind) {
        case K_F32: return __uint_as_float(load_u32(row + 4 * i));
        case K_F16: return f16_to_f32(load_u16(row + 2 * i));
        default: return bf16_to_f32(load_u16(row + 2 * i));
    }
}

// Stored line `line` of expert `e` (row-major storage): the address of its first byte.
__device__ __forceinline__ const u8* line_ptr(const Mat& m, u32 e, u64 line) {
    return (const u8*)(m.data + (u64)e * m.expert_bytes + line * m.row_bytes);
}

// Decodes elements [32 ib, 32 ib + 32) of a stored row (row-major storage) into v; elements past `cols` (scalar
// types only, whose rows need not be whole blocks) become 0. `row` is line_ptr(); `scales_row` the pair's scales.
__device__ __forceinline__ void decode_block(const Mat& m, const u8* row, const u8* scales_row, u32 ib, float v[32]) {
    const u32 kind = m.kind;
    // Whole 16-byte-aligned blocks of BF16 / F32 (rows of gpt-oss widths are) and the pair's 16-byte blocks load
    // as 16-byte vectors: the same values, fewer memory instructions.
    if (kind == K_BF16 && (u64)ib * 32 + 32 <= m.cols && (((u64)row + (u64)ib * 64) & 15) == 0) {
        const uint4* p = (const uint4*)(row + (u64)ib * 64);
#pragma unroll
        for (int k = 0; k < 4; ++k) {
            const uint4 w = p[k];
            const u32 ws[4] = {w.x, w.y, w.z, w.w};
#pragma unroll
            for (int j = 0; j < 4; ++j) {
                v[8 * k + 2 * j] = __uint_as_float(ws[j] << 16);
                v[8 * k + 2 * j + 1] = __uint_as_float(ws[j] & 0xffff0000u);
            }
        }
        return;
    }
    if (kind == K_F32 && (u64)ib * 32 + 32 <= m.cols && (((u64)row + (u64)ib * 128) & 15) == 0) {
        const float4* p = (const float4*)(row + (u64)ib * 128);
#pragma unroll
        for (int k = 0; k < 8; ++k) {
            const float4 w = p[k];
            v[4 * k] = w.x;
            v[4 * k + 1] = w.y;
            v[4 * k + 2] = w.z;
            v[4 * k + 3] = w.w;
        }
        return;
    }
    if (kind == K_MXFP4_PAIR && (((u64)row + (u64)ib * 16) & 15) == 0) {
        const uint4 w = *(const uint4*)(row + (u64)ib * 16);
        const u32 ws[4] = {w.x, w.y, w.z, w.w};
        const float d = e8m0_half(scales_row[ib]);
#pragma unroll
        for (int j = 0; j < 16; ++j) {
            const u32 byte = (ws[j / 4] >> (8 * (j % 4))) & 0xff;
            v[2 * j] = (float)kvalue_mxfp4(byte & 15) * d;
            v[2 * j + 1] = (float)kvalue_mxfp4(byte >> 4) * d;
        }
        return;
    }
    if (is_scalar_kind(kind)) {
#pragma unroll
        for (int i = 0; i < 32; ++i) {
            u64 c = (u64)ib * 32 + i;
            v[i] = c < m.cols ? scalar_at(kind, row, c) : 0.0f;
        }
        return;
    }
    const u8* b = row + (u64)ib * block_bytes(kind);
    switch (kind) {
        case K_Q8_0: {
            float d = f16_to_f32(load_u16(b));
#pragma unroll
            for (int i = 0; i < 32; ++i) v[i] = (float)(i8)b[2 + i] * d;
            break;
        }
        case K_Q4_0: {
            float d = f16_to_f32(load_u16(b));
#pragma unroll
            for (int j = 0; j < 16; ++j) {
                v[j] = (float)((int)(b[2 + j] & 15) - 8) * d;
                v[j + 16] = (float)((int)(b[2 + j] >> 4) - 8) * d;
            }
            break;
        }
        case K_Q4_1: {
            float d = f16_to_f32(load_u16(b)), mn = f16_to_f32(load_u16(b + 2));
#pragma unroll
            for (int j = 0; j < 16; ++j) {
                v[j] = (float)(b[4 + j] & 15) * d + mn;
                v[j + 16] = (float)(b[4 + j] >> 4) * d + mn;
            }
            break;
        }
        case K_Q5_0: {
            float d = f16_to_f32(load_u16(b));
            u32 qh = load_u32(b + 2);
#pragma unroll
            for (int j = 0; j < 16; ++j) {
                int lo = (b[6 + j] & 15) | (((qh >> j) & 1) << 4);
                int hi = (b[6 + j] >> 4) | (((qh >> (j + 16)) & 1) << 4);
                v[j] = (float)(lo - 16) * d;
                v[j + 16] = (float)(hi - 16) * d;
            }
            break;
        }
        case K_Q5_1: {
            float d = f16_to_f32(load_u16(b)), mn = f16_to_f32(load_u16(b + 2));
            u32 qh = load_u32(b + 4);
#pragma unroll
            for (int j = 0; j < 16; ++j) {
                int lo = (b[8 + j] & 15) | (((qh >> j) & 1) << 4);
                int hi = (b[8 + j] >> 4) | (((qh >> (j + 16)) & 1) << 4);
                v[j] = (float)lo * d + mn;
                v[j + 16] = (float)hi * d + mn;
            }
            break;
        }
        case K_MXFP4: {
            float d = e8m0_half(b[0]);
#pragma unroll
            for (int j = 0; j < 16; ++j) {
                v[j] = (float)kvalue_mxfp4(b[1 + j] & 15) * d;
                v[j + 16] = (float)kvalue_mxfp4(b[1 + j] >> 4) * d;
            }
            break;
        }
        default: {  // K_MXFP4_PAIR
            float d = e8m0_half(scales_row[ib]);
#pragma unroll
            for (int j = 0; j < 16; ++j) {
                v[2 * j] = (float)kvalue_mxfp4(b[j] & 15) * d;
                v[2 * j + 1] = (float)kvalue_mxfp4(b[j] >> 4) * d;
            }
            break;
        }
    }
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(FULL_MASK, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(FULL_MASK, v, o));
    return v;
}
