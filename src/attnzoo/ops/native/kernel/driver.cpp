// The driver of fused local attention (see local_attention.h), compiled for the baseline ISA only: it picks the
// kernels this CPU runs, splits the work into items (a tile of a few hundred queries, or a few dozen keys, of one
// head) and hands them to `threads` threads dynamically (an atomic counter), so a descheduled thread delays one item,
// not a fixed share.
//
// Forward and backward first transpose the keys (and the values) into their workspace: the query blocks read them so.
// Backward runs in slabs of KV heads whose buffers of P and dS (az_buffer entries per query head) fit a budget: first
// every query item of the slab (dq, P, dS, bias-gradient partial sums), then every key item (dk, dv). The bias gradient
// is the sum of the per-item partials in item order, so results do not depend on the thread schedule. Those buffers
// live in a workspace the caller allocates (az_backward_workspace bytes: a torch tensor, so that torch's memory
// accounting sees them); only each thread's scratch (row pointers and weights of one query or key) is allocated here.
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include <atomic>
#include <new>
#include <thread>
#include <vector>

#include "local_attention.h"

namespace {

const int64_t kItem = 32;               // queries or keys per work item

bool cpu_has_avx2_fma() { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }

bool pick(int isa, AzKernels* table) {
    if (isa == 2 || (isa == 0 && cpu_has_avx2_fma())) {
        if (!cpu_has_avx2_fma()) return false;
        az_kernels_avx2(table);
        return true;
    }
    az_kernels_generic(table);
    return true;
}

// Runs body(item, scratch) for item in [0, items) on up to `threads` threads; false when memory ran out.
template <class Body> bool parallel_items(const AzProblem* p, int64_t items, Body body) {
    std::atomic<int64_t> next(0);
    std::atomic<bool> failed(false);
    const int64_t bytes = az_scratch_bytes(p);
    auto worker = [&]() {
        std::vector<char> scratch;
        try {
            scratch.resize(bytes);
        } catch (const std::bad_alloc&) {
            failed = true;
            return;
        }
        for (int64_t item = next++; item < items; item = next++) body(item, scratch.data());
    };
    int64_t threads = p->threads < items ? p->threads : items;
    std::vector<std::thread> pool;
    for (int64_t t = 1; t < threads; ++t) pool.emplace_back(worker);
    worker();
    for (auto& t : pool) t.join();
    return !failed;
}

const int64_t kStrip = 64;        // most last-axis coordinates of a query tile
const int64_t kTileQueries = 512;  // queries of a query tile, about

int64_t chunks(int64_t n) { return (n + kItem - 1) / kItem; }

// A fresh workspace faults its pages in one at a time (thousands of 4 KB faults, a tenth of a 64 x 64 backward);
// transparent huge pages on its 2 MB-aligned part make them a handful. Advice only: where the kernel declines it,
// nothing changes.
void advise_huge_pages(void* memory, int64_t bytes) {
    const uintptr_t huge = (uintptr_t)2 << 20, first = (uintptr_t)memory;
    const uintptr_t begin = (first + huge - 1) & ~(huge - 1), end = (first + (uintptr_t)bytes) & ~(huge - 1);
    if (end > begin) madvise((void*)begin, end - begin, MADV_HUGEPAGE);
}

// Query tiles of a head: the last axis cut into strips of at most kStrip coordinates, the rows into groups.
struct Tiling {
    int64_t strip, strips, rows, groups;
};

Tiling tiling(const AzProblem* p) {
    Tiling t;
    const int64_t Z = p->shape[2], R = p->shape[0] * p->shape[1];
    t.strips = (Z + kStrip - 1) / kStrip;
    t.strip = (Z + t.strips - 1) / t.strips;
    t.strip = (t.strip + 7) / 8 * 8;  // whole query blocks
    t.strips = (Z + t.strip - 1) / t.strip;
    t.rows = kTileQueries / t.strip > 1 ? kTileQueries / t.strip : 1;
    t.groups = (R + t.rows - 1) / t.rows;
    return t;
}

int64_t tiles(const AzProblem* p) {
    Tiling t = tiling(p);
    return t.strips * t.groups;
}

AzTile tile_of(const AzProblem* p, int64_t c) {
    Tiling t = tiling(p);
    const int64_t Z = p->shape[2], R = p->shape[0] * p->shape[1], g = c / t.strips, strip = c % t.strips;
    AzTile tile = {g * t.rows, g * t.rows + t.rows < R ? g * t.rows + t.rows : R, strip * t.strip,
                   strip * t.strip + t.strip < Z ? strip * t.strip + t.strip : Z};
    return tile;
}

// The queries (or keys) [first, last) of work item c.
void span(int64_t c, int64_t n, int64_t* first, int64_t* last) {
    *first = c * kItem;
    *last = *first + kItem < n ? *first + kItem : n;
}

}  // namespace

extern "C" int az_isa_supported(int isa) { return isa == 0 || isa == 1 || (isa == 2 && cpu_has_avx2_fma()); }

// Transposes the rows of every KV head of src (B kv_heads, N, dim) into its panels in dst (see az_panel: the layout
// the query blocks read), in items of kItem rows.
template <class Table>
static bool transpose_heads(const AzProblem* p, const Table& table, int dtype, const void* src, void* dst,
                            int64_t dim) {
    const int64_t N = az_tokens(p), per_head = chunks(N);
    return parallel_items(p, p->batch * p->kv_heads * per_head, [&](int64_t item, void*) {
        int64_t j0, j1;
        span(item % per_head, N, &j0, &j1);
        table.transpose(p, dtype, src, dst, dim, item / per_head, j0, j1);
    });
}

extern "C" int64_t az_forward_workspace(const AzProblem* p, int dtype) {
    return az_transposed(p, p->dim) * (dtype == 0 ? 4 : 8);
}

extern "C" int az_local_forward(const AzProblem* p, int dtype, int isa, const void* q, const void* k, const void* v,
                                const void* rpb, void* out, void* lse, void* workspace) {
    AzKernels table;
    if (!pick(isa, &table)) return 2;
    advise_huge_pages(workspace, az_forward_workspace(p, dtype));
    if (!transpose_heads(p, table, dtype, k, workspace, p->dim)) return 1;
    const int64_t per_head = tiles(p);
    bool ok = parallel_items(p, p->batch * p->heads * per_head, [&](int64_t item, void* scratch) {
        const int64_t bh = item / per_head;
        const AzTile tile = tile_of(p, item % per_head);
        table.forward(p, dtype, q, k, workspace, v, rpb, out, lse, bh / p->heads, bh % p->heads, &tile, scratch);
    });
    return ok ? 0 : 1;
}

// Units (KV heads of one batch entry) per slab and the bytes of a slab's P and dS buffers.
static void slab_of(const AzProblem* p, int64_t size, int64_t* units, int64_t* unit_bytes) {
    *unit_bytes = (p->heads / p->kv_heads) * az_buffer(p) * size;
    int64_t total = p->batch * p->kv_heads, slab = p->slab_bytes / (2 * *unit_bytes);
    *units = slab < 1 ? 1 : (slab > total ? total : slab);
}

extern "C" int64_t az_backward_workspace(const AzProblem* p, int dtype) {
    const int64_t size = dtype == 0 ? 4 : 8;
    int64_t units, unit_bytes;
    slab_of(p, size, &units, &unit_bytes);
    int64_t partial = units * (p->heads / p->kv_heads) * tiles(p) * az_table(p);  // bias partial sums
    return (az_transposed(p, p->dim) + az_transposed(p, p->value_dim) + partial) * size + 2 * units * unit_bytes;
}

extern "C" int az_local_backward(const AzProblem* p, int dtype, int isa, const void* q, const void* k, const void* v,
                                 const void* rpb, const void* out, const void* lse, const void* dout, void* dq,
                                 void* dk, void* dv, void* drpb, void* workspace) {
    AzKernels table;
    if (!pick(isa, &table)) return 2;
    const int64_t size = dtype == 0 ? 4 : 8;
    const int64_t N = az_tokens(p), group = p->heads / p->kv_heads, per_head = tiles(p), tab = az_table(p);
    const int64_t key_items = chunks(N), total = p->batch * p->kv_heads;
    int64_t slab, unit_bytes;
    slab_of(p, size, &slab, &unit_bytes);
    advise_huge_pages(workspace, az_backward_workspace(p, dtype));
    char* kt = (char*)workspace;
    char* vt = kt + az_transposed(p, p->dim) * size;
    if (!transpose_heads(p, table, dtype, k, kt, p->dim) || !transpose_heads(p, table, dtype, v, vt, p->value_dim))
        return 1;
    char* probs = vt + az_transposed(p, p->value_dim) * size;
    char* dscores = probs + slab * unit_bytes;
    char* partial = dscores + slab * unit_bytes;
    for (int64_t first = 0; first < total; first += slab) {
        const int64_t count = first + slab < total ? slab : total - first;
        const int64_t query_items = count * group * per_head;
        if (drpb) memset(partial, 0, query_items * tab * size);  // all-zero bytes are 0.0 in both dtypes
        bool ok = parallel_items(p, query_items, [&](int64_t item, void* scratch) {
            int64_t unit = item / (group * per_head), r = (item / per_head) % group;
            int64_t bg = first + unit, head_buffer = (unit * group + r) * (unit_bytes / group);
            const AzTile tile = tile_of(p, item % per_head);
            void* part = drpb ? partial + item * tab * size : nullptr;
            table.query_grad(p, dtype, q, k, kt, v, vt, rpb, out, lse, dout, dq, probs + head_buffer,
                             dscores + head_buffer, part, bg / p->kv_heads, (bg % p->kv_heads) * group + r,
                             &tile, scratch);
        });
        if (!ok) return 1;
        for (int64_t item = 0; drpb && item < query_items; ++item) {
            int64_t bg = first + item / (group * per_head), h = (bg % p->kv_heads) * group + (item / per_head) % group;
            for (int64_t e = 0; e < tab; ++e) {
                if (dtype == 0)
                    ((float*)drpb)[h * tab + e] += ((const float*)partial)[item * tab + e];
                else
                    ((double*)drpb)[h * tab + e] += ((const double*)partial)[item * tab + e];
            }
        }
        ok = parallel_items(p, count * key_items, [&](int64_t item, void* scratch) {
            int64_t unit = item / key_items, bg = first + unit, j0, j1;
            span(item % key_items, N, &j0, &j1);
            table.key_grad(p, dtype, q, dout, probs + unit * unit_bytes, dscores + unit * unit_bytes, dk, dv,
                           bg / p->kv_heads, bg % p->kv_heads, j0, j1, scratch);
        });
        if (!ok) return 1;
    }
    return 0;
}
