// Tiny harness over ggml's own reference quantizers (ggml/src/ggml-quants.c), used by make_vectors.py as a
// second independent source next to gguf-py. Build (make_vectors.py does it):
//   cc -O2 -ffp-contract=off -I$GGML/include -I$GGML/src ggml_ref.c $GGML/src/ggml-quants.c -lm -o ggml_ref
// Usage: ggml_ref quantize TYPE in.f32 out.bin     (TYPE: q4_0 q4_1 q5_0 q5_1 q8_0 mxfp4 f16 bf16)
//        ggml_ref dequantize TYPE in.bin out.f32
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdarg.h>
#include "ggml.h"
#include "ggml-impl.h"
#include "ggml-quants.h"

// ggml-quants.c references these from ggml.c; the reference row functions never reach them.
void ggml_abort(const char * file, int line, const char * fmt, ...) {
    fprintf(stderr, "ggml_abort %s:%d\n", file, line); abort();
}
size_t ggml_row_size(enum ggml_type type, int64_t ne) { (void) type; (void) ne; abort(); }
const char * ggml_type_name(enum ggml_type type) { (void) type; return "?"; }
size_t ggml_type_size(enum ggml_type type) { (void) type; abort(); }

static void * slurp(const char * path, size_t * n) {
    FILE * f = fopen(path, "rb"); if (!f) { perror(path); exit(1); }
    fseek(f, 0, SEEK_END); *n = (size_t) ftell(f); fseek(f, 0, SEEK_SET);
    void * p = malloc(*n ? *n : 1); if (fread(p, 1, *n, f) != *n) { perror(path); exit(1); }
    fclose(f); return p;
}
static void spit(const char * path, const void * p, size_t n) {
    FILE * f = fopen(path, "wb"); if (!f || fwrite(p, 1, n, f) != n) { perror(path); exit(1); } fclose(f);
}

struct t { const char * name; int bs, ts; void (*q)(const float *, void *, int64_t); void (*dq)(const void *, float *, int64_t); };

static void q_f16(const float * x, void * y, int64_t k) { for (int64_t i = 0; i < k; i++) ((ggml_fp16_t *) y)[i] = GGML_FP32_TO_FP16(x[i]); }
static void dq_f16(const void * x, float * y, int64_t k) { for (int64_t i = 0; i < k; i++) y[i] = GGML_FP16_TO_FP32(((const ggml_fp16_t *) x)[i]); }
static void q_bf16(const float * x, void * y, int64_t k) { for (int64_t i = 0; i < k; i++) ((ggml_bf16_t *) y)[i] = GGML_FP32_TO_BF16(x[i]); }
static void dq_bf16(const void * x, float * y, int64_t k) { for (int64_t i = 0; i < k; i++) y[i] = GGML_BF16_TO_FP32(((const ggml_bf16_t *) x)[i]); }

#define Q(T) (void (*)(const float *, void *, int64_t)) quantize_row_##T##_ref
#define D(T) (void (*)(const void *, float *, int64_t)) dequantize_row_##T
static const struct t types[] = {
    {"q4_0", 32, sizeof(block_q4_0), Q(q4_0), D(q4_0)},
    {"q4_1", 32, sizeof(block_q4_1), Q(q4_1), D(q4_1)},
    {"q5_0", 32, sizeof(block_q5_0), Q(q5_0), D(q5_0)},
    {"q5_1", 32, sizeof(block_q5_1), Q(q5_1), D(q5_1)},
    {"q8_0", 32, sizeof(block_q8_0), Q(q8_0), D(q8_0)},
    {"mxfp4", 32, sizeof(block_mxfp4), Q(mxfp4), D(mxfp4)},
    {"f16", 1, 2, q_f16, dq_f16},
    {"bf16", 1, 2, q_bf16, dq_bf16},
};

int main(int argc, char ** argv) {
    if (argc != 5) { fprintf(stderr, "usage: ggml_ref quantize|dequantize TYPE in out\n"); return 2; }
    const struct t * t = NULL;
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) if (!strcmp(types[i].name, argv[2])) t = &types[i];
    if (!t) { fprintf(stderr, "unknown type %s\n", argv[2]); return 2; }
    size_t n; void * in = slurp(argv[3], &n);
    if (!strcmp(argv[1], "quantize")) {
        int64_t k = (int64_t) (n / 4);
        size_t out_n = (size_t) (k / t->bs) * t->ts; void * out = malloc(out_n ? out_n : 1);
        t->q((const float *) in, out, k); spit(argv[4], out, out_n);
    } else {
        int64_t k = (int64_t) (n / t->ts) * t->bs;
        float * out = malloc(k ? (size_t) k * 4 : 1);
        t->dq(in, out, k); spit(argv[4], out, (size_t) k * 4);
    }
    return 0;
}
