// The driver of fused local attention (see local_attention.h), compiled for the baseline ISA only: it picks the
// kernels this CPU runs, splits the work into items of a few dozen queries (or keys) of one head and hands them to
// `threads` threads dynamically (an atomic counter), so a descheduled thread delays one item, not a fixed share.
//
// Forward and backward first transpose the keys (and the values) into their workspace: the query blocks read them so.
// Backward runs in slabs of KV heads whose buffers of P and dS (az_buffer entries per query head) fit a budget: first every
// query item of the slab (dq, P, dS, bias-gradient partial sums), then every key item (dk, dv). The bias gradient
// is the sum of the per-item partials in item order, so results do not depend on the thread schedule. Those buffers
// live in a workspace the caller allocates (az_backward_workspace bytes: a torch tensor, so that torch's memory
// accounting sees them); only each thread's scratch (row pointers and weights of one query or key) is allocated here.
#include <string.h>

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

int64_t chunks(int64_t n) { return (n + kItem - 1) / kItem; }

// The queries (or keys) [first, last) of work item c.
void span(int64_t c, int64_t n, int64_t* first, int64_t* last) {
    *first = c * kItem;
    *last = *first + kItem < n ? *first + kItem : n;
}

}  // namespace

extern "C" int az_isa_supported(int isa) { return isa == 0 || isa == 1 || (isa == 2 && cpu_has_avx2_fma()); }

// Transposes the rows of every KV head of src (B kv_heads, N, dim) into dst ((B kv_heads, dim, N), the layout the
// query blocks read), in items of kItem rows.
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
    if (!transpose_heads(p, table, dtype, k, workspace, p->dim)) return 1;
    const int64_t N = az_tokens(p), per_head = chunks(N);
    bool ok = parallel_items(p, p->batch * p->heads * per_head, [&](int64_t item, void* scratch) {
        int64_t bh = item / per_head, i0, i1;
        span(item % per_head, N, &i0, &i1);
        table.forward(p, dtype, q, k, workspace, v, rpb, out, lse, bh / p->heads, bh % p->heads, i0, i1, scratch);
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
    int64_t partial = units * (p->heads / p->kv_heads) * chunks(az_tokens(p)) * az_table(p);  // bias partial sums
    return (az_transposed(p, p->dim) + az_transposed(p, p->value_dim) + partial) * size + 2 * units * unit_bytes;
}

extern "C" int az_local_backward(const AzProblem* p, int dtype, int isa, const void* q, const void* k, const void* v,
                                 const void* rpb, const void* out, const void* lse, const void* dout, void* dq,
                                 void* dk, void* dv, void* drpb, void* workspace) {
    AzKernels table;
    if (!pick(isa, &table)) return 2;
    const int64_t size = dtype == 0 ? 4 : 8;
    const int64_t N = az_tokens(p), group = p->heads / p->kv_heads, per_head = chunks(N), tab = az_table(p);
    const int64_t total = p->batch * p->kv_heads;
    int64_t slab, unit_bytes;
    slab_of(p, size, &slab, &unit_bytes);
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
            int64_t unit = item / (group * per_head), r = (item / per_head) % group, i0, i1;
            int64_t bg = first + unit, head_buffer = (unit * group + r) * (unit_bytes / group);
            span(item % per_head, N, &i0, &i1);
            void* part = drpb ? partial + item * tab * size : nullptr;
            table.query_grad(p, dtype, q, k, kt, v, vt, rpb, out, lse, dout, dq, probs + head_buffer,
                             dscores + head_buffer, part, bg / p->kv_heads, (bg % p->kv_heads) * group + r,
                             i0, i1, scratch);
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
        ok = parallel_items(p, count * per_head, [&](int64_t item, void* scratch) {
            int64_t unit = item / per_head, bg = first + unit, j0, j1;
            span(item % per_head, N, &j0, &j1);
            table.key_grad(p, dtype, q, dout, probs + unit * unit_bytes, dscores + unit * unit_bytes, dk, dv,
                           bg / p->kv_heads, bg % p->kv_heads, j0, j1, scratch);
        });
        if (!ok) return 1;
    }
    return 0;
}
