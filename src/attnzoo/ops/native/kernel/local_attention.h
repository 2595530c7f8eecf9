// Fused local attention on CPU (attnzoo.ops.native): the problem description shared by the driver (driver.cpp,
// compiled once for the baseline ISA) and the compute kernels (kernels.cpp, compiled once per ISA).
//
// A problem is softmax attention on a grid of up to three axes (1-D and 2-D grids are padded with axes of
// length 1) where every query sees a rectangle of keys: on each axis a run of `count` positions starting at
// `start`, `dilation` apart. Optional: a relative position bias table per query head, indexed by the offset
// key - query in dilation units; the first `num_sinks` tokens as extra keys where `sink_visible` says so.
// Every per-axis window must be monotone (start and end never decrease with the query), so that the queries
// seeing one key are a run too: the driver's key-centric backward relies on that (checked in Python).
//
// Nothing here may be a non-static inline function or use a C++ standard-library template: those are emitted as
// COMDAT sections that the linker merges across translation units, so an AVX2 copy could replace the baseline
// one and crash a CPU without AVX2.
#pragma once
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int64_t batch, heads, kv_heads, dim, value_dim, num_sinks, threads;
    int64_t slab_bytes;        // budget of the backward's P and dS buffers (at least one KV head's are held)
    int64_t shape[3];          // grid, row-major; N = shape[0] * shape[1] * shape[2]
    int64_t window[3];         // most keys a query sees per axis: the row stride of the backward buffers
    int64_t inverse_window[3]; // most queries that see one key, per axis
    int64_t dilation[3];
    int64_t radius[3];         // bias table (heads, 2 r0 + 1, 2 r1 + 1, 2 r2 + 1), read when rpb != NULL
    const int64_t* axis[3];    // per axis (4, shape[a]) row-major: key start, key count, query start, query count
    const uint8_t* sink_visible; // (N, num_sinks): query i also sees sink t (never when t is in its rectangle)
    double scale;
} AzProblem;

// A tile of queries: the rows [r0, r1) (a row: the queries of one coordinate of the two leading axes, along the last
// axis) times the last-axis coordinates [z0, z1). Tiles are a few rows tall, so that consecutive rows of a query block
// reuse the keys the block before them brought into the cache.
typedef struct {
    int64_t r0, r1, z0, z1;
} AzTile;

// The per-ISA compute kernels, for dtype 0 (float32) or 1 (float64): each processes a tile of queries (or the
// keys [j0, j1)) of one head; pointers are to whole (B, heads, N, dim) tensors, `kt` / `vt` to the keys / values
// transposed per KV head (az_transposed_head entries each, see az_panel; written by `transpose`).
typedef struct {
    // The panels of head `head` in dst (az_transposed_head entries a head) of that head's rows [j0, j1) (j0 a
    // multiple of 8) of src (heads, N, dim).
    void (*transpose)(const AzProblem*, int dtype, const void* src, void* dst, int64_t dim, int64_t head, int64_t j0,
                      int64_t j1);
    void (*forward)(const AzProblem*, int dtype, const void* q, const void* k, const void* kt, const void* v,
                    const void* rpb, void* out, void* lse, int64_t b, int64_t h, const AzTile* tile, void* scratch);
    // dq of the queries of a tile of head h; writes the probabilities P and the score gradients dS of those queries
    // into the head's buffers (az_buffer entries each) and adds dS to drpb (a (table,) partial sum of this work
    // item) when given.
    void (*query_grad)(const AzProblem*, int dtype, const void* q, const void* k, const void* kt, const void* v,
                       const void* vt, const void* rpb, const void* out, const void* lse, const void* dout, void* dq,
                       void* probs, void* dscores, void* drpb, int64_t b, int64_t h, const AzTile* tile,
                       void* scratch);
    // dk, dv of the keys [j0, j1) of KV head g from the P / dS buffers of its query heads (heads / kv_heads of
    // them, az_buffer entries each, written by query_grad).
    void (*key_grad)(const AzProblem*, int dtype, const void* q, const void* dout, const void* probs,
                     const void* dscores, void* dk, void* dv, int64_t b, int64_t g, int64_t j0, int64_t j1,
                     void* scratch);
} AzKernels;

void az_kernels_generic(AzKernels* table);
void az_kernels_avx2(AzKernels* table);

// The driver's entry points (driver.cpp). isa: 0 = the best this CPU runs, 1 = generic, 2 = AVX2 + FMA.
// dtype: 0 = float32, 1 = float64. Return 0 on success, 1 when memory ran out, 2 for an ISA this CPU lacks.
// The forward's workspace holds az_forward_workspace(p, dtype) bytes, the backward's az_backward_workspace(p, dtype).
int az_isa_supported(int isa);
int64_t az_forward_workspace(const AzProblem* p, int dtype);
int64_t az_backward_workspace(const AzProblem* p, int dtype);
int az_local_forward(const AzProblem* p, int dtype, int isa, const void* q, const void* k, const void* v,
                     const void* rpb, void* out, void* lse, void* workspace);
int az_local_backward(const AzProblem* p, int dtype, int isa, const void* q, const void* k, const void* v,
                      const void* rpb, const void* out, const void* lse, const void* dout, void* dq, void* dk,
                      void* dv, void* drpb, void* workspace);

#ifdef __cplusplus
}
#endif

static inline int64_t az_tokens(const AzProblem* p) { return p->shape[0] * p->shape[1] * p->shape[2]; }

static inline int64_t az_rectangle(const AzProblem* p) { return p->window[0] * p->window[1] * p->window[2]; }

static inline int64_t az_inverse(const AzProblem* p) {
    return p->inverse_window[0] * p->inverse_window[1] * p->inverse_window[2];
}

// Entries of one head's backward buffers (P and dS): key-major, a row of az_inverse entries per key (the queries
// that see it, in the order the key gradient reads them), then a row of num_sinks entries per query.
static inline int64_t az_buffer(const AzProblem* p) { return az_tokens(p) * (az_inverse(p) + p->num_sinks); }

// Keys one query sees at most.
static inline int64_t az_keys(const AzProblem* p) { return az_rectangle(p) + p->num_sinks; }

static inline int64_t az_table(const AzProblem* p) {
    return (2 * p->radius[0] + 1) * (2 * p->radius[1] + 1) * (2 * p->radius[2] + 1);
}

// Entries a work item gathers at most: a query's keys, or a key's queries (all N of them for a sink).
static inline int64_t az_capacity(const AzProblem* p) {
    int64_t inverse = az_inverse(p);
    if (p->num_sinks) inverse += az_tokens(p);
    int64_t keys = az_keys(p);
    return keys > inverse ? keys : inverse;
}

// The transposed keys (values) of a head are panels: panel p holds the keys [8 p, 8 p + 16) as (dim, 16), so that the
// 8 keys from any key j on are 8 consecutive entries of panel j / 8 per element, and one block's keys lie in a few
// kilobytes (a plain (dim, N) transpose spreads them over dim rows N apart: cache-set conflicts and TLB misses). The
// lanes of a query block past its last query read within their panel too (entries past key N - 1 are zeros, and
// those lanes' results never used).
static inline int64_t az_panel(int64_t dim) { return 16 * dim; }

static inline int64_t az_panels(const AzProblem* p) { return (az_tokens(p) + 7) / 8; }

// Entries of one head's panels, and of every KV head's.
static inline int64_t az_transposed_head(const AzProblem* p, int64_t dim) { return az_panels(p) * az_panel(dim); }

static inline int64_t az_transposed(const AzProblem* p, int64_t dim) {
    return p->batch * p->kv_heads * az_transposed_head(p, dim);
}

// Scratch bytes one thread needs: row pointers, key indices and coordinates, positions and two weight arrays for
// az_capacity entries, padded by a vector (the padding lanes are read, never used; the driver zero-fills the scratch
// once per thread); then a query block's scores and score gradients (8 lanes per key of the rectangle) and its
// transposed query and output-gradient rows.
static inline int64_t az_scratch_bytes(const AzProblem* p) {
    int64_t n = az_capacity(p) + 8;
    int64_t block = 8 * (2 * az_rectangle(p) + p->dim + p->value_dim);
    return n * (int64_t)(2 * sizeof(void*) + 4 * sizeof(int64_t) + 2 * sizeof(double)) + block * sizeof(double) + 64;
}
