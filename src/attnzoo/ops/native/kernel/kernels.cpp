// The compute kernels of fused local attention (see local_attention.h), compiled once per ISA:
//   -DAZ_ISA=generic (baseline x86-64 / any GCC target) and -DAZ_ISA=avx2 -mavx2 -mfma.
// The vectors are GCC vector extensions of 256 bits (8 floats, 4 doubles): AVX2 registers in the AVX2 build, pairs
// of SSE registers in the generic one. Everything has internal linkage (see the header's note on COMDAT).
//
// Forward, per query block (see "Query blocks" below: up to 8 consecutive queries of a grid row, one lane each):
// scores against the transposed keys, one FMA per key and element, the exact two-pass softmax on whole vectors,
// each lane's weighted sum of value rows read in place; per query where no block fits: its key rows gathered in
// place, scores 8 keys at a time (eight dot products reduced across lanes at once), the softmax in a small buffer.
// out and lse = max + log(sum). Backward (FlashAttention's identities, P recomputed from lse):
// per query, dP = dO V^T, D = rowsum(dO * O), dS = P (dP - D), dq = scale dS K; per key, from the stored P and dS
// of the queries that see it, dk = scale dS^T Q and dv = P^T dO: every output row is written by one work item, so
// threads never write the same memory and no atomics are needed.
#include <math.h>
#include <string.h>

#include "local_attention.h"

#define AZ_JOIN2(a, b) a##_##b
#define AZ_JOIN(a, b) AZ_JOIN2(a, b)

namespace {

typedef float f8 __attribute__((vector_size(32)));
typedef double d4 __attribute__((vector_size(32)));
typedef int32_t i8 __attribute__((vector_size(32)));

template <typename T> struct Lanes;
template <> struct Lanes<float> { typedef f8 V; enum { n = 8 }; };
template <> struct Lanes<double> { typedef d4 V; enum { n = 4 }; };

template <typename T> static inline typename Lanes<T>::V load(const T* p) {
    typename Lanes<T>::V v;
    memcpy(&v, p, sizeof v);
    return v;
}

template <typename T> static inline void store(T* p, typename Lanes<T>::V v) { memcpy(p, &v, sizeof v); }

template <typename T> static inline typename Lanes<T>::V splat(T x) {
    typename Lanes<T>::V v = {};
    return v + x;
}

static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

// Lane sums of 8 (4) accumulators as one vector: out[u] = sum(acc[u]).
static inline f8 reduce_lanes(const f8* a) {
    f8 b0 = __builtin_shufflevector(a[0], a[1], 0, 8, 2, 10, 4, 12, 6, 14) +
            __builtin_shufflevector(a[0], a[1], 1, 9, 3, 11, 5, 13, 7, 15);
    f8 b1 = __builtin_shufflevector(a[2], a[3], 0, 8, 2, 10, 4, 12, 6, 14) +
            __builtin_shufflevector(a[2], a[3], 1, 9, 3, 11, 5, 13, 7, 15);
    f8 b2 = __builtin_shufflevector(a[4], a[5], 0, 8, 2, 10, 4, 12, 6, 14) +
            __builtin_shufflevector(a[4], a[5], 1, 9, 3, 11, 5, 13, 7, 15);
    f8 b3 = __builtin_shufflevector(a[6], a[7], 0, 8, 2, 10, 4, 12, 6, 14) +
            __builtin_shufflevector(a[6], a[7], 1, 9, 3, 11, 5, 13, 7, 15);
    // b0 = (a0 01, a1 01, a0 23, a1 23, a0 45, a1 45, a0 67, a1 67), likewise b1 (a2, a3) ...
    f8 c0 = __builtin_shufflevector(b0, b1, 0, 1, 8, 9, 4, 5, 12, 13) +
            __builtin_shufflevector(b0, b1, 2, 3, 10, 11, 6, 7, 14, 15);
    f8 c1 = __builtin_shufflevector(b2, b3, 0, 1, 8, 9, 4, 5, 12, 13) +
            __builtin_shufflevector(b2, b3, 2, 3, 10, 11, 6, 7, 14, 15);
    // c0 = (a0 0-3, a1 0-3, a2 0-3, a3 0-3, a0 4-7, a1 4-7, a2 4-7, a3 4-7), c1 the same for a4..a7
    return __builtin_shufflevector(c0, c1, 0, 1, 2, 3, 8, 9, 10, 11) +
           __builtin_shufflevector(c0, c1, 4, 5, 6, 7, 12, 13, 14, 15);
}

static inline d4 reduce_lanes(const d4* a) {
    d4 b0 = __builtin_shufflevector(a[0], a[1], 0, 4, 2, 6) + __builtin_shufflevector(a[0], a[1], 1, 5, 3, 7);
    d4 b1 = __builtin_shufflevector(a[2], a[3], 0, 4, 2, 6) + __builtin_shufflevector(a[2], a[3], 1, 5, 3, 7);
    return __builtin_shufflevector(b0, b1, 0, 1, 4, 5) + __builtin_shufflevector(b0, b1, 2, 3, 6, 7);
}

// out[j] = scale * (x . rows[j]) for j < n, rows read in place a lane-width at a time; the padding lanes of the
// last block (up to a lane multiple) get copies of the last row's value.
template <typename T>
static void dots(const T* x, const T* const* rows, int64_t n, int64_t dim, T scale, T* out) {
    typedef typename Lanes<T>::V V;
    const int L = Lanes<T>::n;
    const int64_t body = dim / L * L;
    for (int64_t j0 = 0; j0 < n; j0 += L) {
        const T* r[L];
        for (int u = 0; u < L; ++u) r[u] = rows[min64(j0 + u, n - 1)];
        V acc[L];
        for (int u = 0; u < L; ++u) acc[u] = splat<T>(0);
        for (int64_t d = 0; d < body; d += L) {
            V xv = load(x + d);
            for (int u = 0; u < L; ++u) acc[u] += xv * load(r[u] + d);
        }
        V sum = reduce_lanes(acc);
        if (body < dim) {
            T tail[L];
            for (int u = 0; u < L; ++u) {
                T s = 0;
                for (int64_t d = body; d < dim; ++d) s += x[d] * r[u][d];
                tail[u] = s;
            }
            sum += load(tail);
        }
        store(out + j0, sum * scale);
    }
}

// body(Count<G>()) for G = count in 1..8 (nothing for 0): a run-time count to a template argument.
template <int G> struct Count {
    enum { n = G };
};

template <class Body> static inline void with_count(int64_t count, Body body) {
    switch (count) {
        case 8: body(Count<8>()); break;
        case 7: body(Count<7>()); break;
        case 6: body(Count<6>()); break;
        case 5: body(Count<5>()); break;
        case 4: body(Count<4>()); break;
        case 3: body(Count<3>()); break;
        case 2: body(Count<2>()); break;
        case 1: body(Count<1>()); break;
        default: break;
    }
}

// acc[off : off + NV lanes] = (acc[...] if accumulate, else 0) + scale sum_j w[j ws] rows[j][shift + off : ...], the
// sums held in registers (two sets for up to four vectors, even and odd rows, so that the FMA latency is hidden).
template <typename T, int NV>
static inline void weighted_block(const T* const* rows, int64_t shift, const T* w, int64_t ws, int64_t n, int64_t off,
                                  T scale, bool accumulate, T* acc) {
    typedef typename Lanes<T>::V V;
    const int L = Lanes<T>::n;
    const int S = NV <= 4 ? 2 : 1;
    V a[S][NV];
    for (int u = 0; u < NV; ++u)
        for (int t = 0; t < S; ++t) a[t][u] = splat<T>(0);
    shift += off;
    int64_t j = 0;
    for (; j + S <= n; j += S) {
        for (int t = 0; t < S; ++t) {
            V wj = splat<T>(w[(j + t) * ws]);
            const T* r = rows[j + t] + shift;
            for (int u = 0; u < NV; ++u) a[t][u] += wj * load(r + u * L);
        }
    }
    for (; j < n; ++j) {
        V wj = splat<T>(w[j * ws]);
        const T* r = rows[j] + shift;
        for (int u = 0; u < NV; ++u) a[0][u] += wj * load(r + u * L);
    }
    for (int u = 0; u < NV; ++u) {
        V sum = (S == 2 ? a[0][u] + a[S - 1][u] : a[0][u]) * scale;
        store(acc + off + u * L, accumulate ? load(acc + off + u * L) + sum : sum);
    }
}

// acc[:dim] = (acc[:dim] if accumulate, else 0) + scale sum_j w[j ws] rows[j][shift : shift + dim] (all zeros for
// n = 0 without accumulate): the scale and the first write in registers, not in passes over acc.
template <typename T>
static void weighted_sum(const T* const* rows, int64_t shift, const T* w, int64_t ws, int64_t n, int64_t dim, T scale,
                         bool accumulate, T* acc) {
    const int L = Lanes<T>::n;
    int64_t off = 0;
    for (; dim - off >= 8 * L; off += 8 * L) weighted_block<T, 8>(rows, shift, w, ws, n, off, scale, accumulate, acc);
    with_count((dim - off) / L, [&](auto vectors) {
        weighted_block<T, decltype(vectors)::n>(rows, shift, w, ws, n, off, scale, accumulate, acc);
    });
    off += (dim - off) / L * L;
    for (int64_t d = off; d < dim; ++d) {
        T sum = 0;
        for (int64_t j = 0; j < n; ++j) sum += w[j * ws] * rows[j][shift + d];
        acc[d] = (accumulate ? acc[d] : 0) + scale * sum;
    }
}

// exp of 8 floats (Cephes expf: x = n ln2 + r with n rounded to nearest, |r| <= ln2 / 2, degree-6 polynomial;
// relative error ~2e-7). Inputs here are <= 0 (scores minus their max or their log-sum-exp): clamped at -87.3,
// where the result (1e-38) is below float32's smallest normal; NaN stays NaN.
static inline f8 exp_lanes(f8 x) {
    const f8 lo = splat<float>(-87.3f);
    f8 xc = x < lo ? lo : x;
    const float round = 12582912.0f;  // 1.5 * 2^23: adding and subtracting it rounds to the nearest integer
    f8 n = (xc * 1.44269504088896341f + round) - round;
    f8 r = xc - n * 0.693359375f + n * 2.12194440e-4f;
    f8 r2 = r * r;
    f8 y = ((((1.9875691500e-4f * r + 1.3981999507e-3f) * r + 8.3334519073e-3f) * r + 4.1665795894e-2f) * r +
            1.6666665459e-1f) * r + 5.0000001201e-1f;
    y = y * r2 + r + 1.0f;
    i8 bits = (__builtin_convertvector(n, i8) + 127) << 23;
    f8 scale;
    memcpy(&scale, &bits, sizeof scale);
    y = y * scale;
    return x == x ? y : x;
}

static inline d4 exp_lanes(d4 x) {
    for (int u = 0; u < 4; ++u) x[u] = exp(x[u]);
    return x;
}

// x[j] = exp(x[j] - shift) for j < n (x padded to a lane multiple).
template <typename T> static inline void exp_shifted(T* x, int64_t n, T shift) {
    for (int64_t j = 0; j < n; j += Lanes<T>::n) store(x + j, exp_lanes(load(x + j) - shift));
}

// Largest of x[:n], a lane-width at a time (x padded to a lane multiple with copies of x[n - 1]).
template <typename T> static inline T max_of(const T* x, int64_t n) {
    typedef typename Lanes<T>::V V;
    const int L = Lanes<T>::n;
    V m = load(x);
    for (int64_t j = L; j < n; j += L) {
        V y = load(x + j);
        m = y > m ? y : m;
    }
    T lanes[L];
    store(lanes, m);
    T best = lanes[0];
    for (int u = 1; u < L; ++u) best = lanes[u] > best ? lanes[u] : best;
    return best;
}

// Sum of x[:n] (the padding lanes up to a lane multiple are set to 0 first).
template <typename T> static inline T sum_of(T* x, int64_t n) {
    typedef typename Lanes<T>::V V;
    const int L = Lanes<T>::n;
    for (int64_t j = n; j % L; ++j) x[j] = 0;
    V s = splat<T>(0);
    for (int64_t j = 0; j < n; j += L) s += load(x + j);
    T lanes[L];
    store(lanes, s);
    T total = 0;
    for (int u = 0; u < L; ++u) total += lanes[u];
    return total;
}

template <typename T> struct Scratch {
    const T** rows_a;  // key rows (forward) / query rows (key gradient)
    const T** rows_b;  // value rows / output-gradient rows
    int64_t* key;      // key index (forward and query gradient)
    int64_t* key_z;    // its coordinate on the last axis
    int64_t* pos;      // column in the backward buffers
    int64_t* table;    // bias table entry, -1 for none
    T* w0;             // scores / probabilities
    T* w1;             // dP / dS
    T* lanes0;         // a query block's scores / probabilities: lane t of key n at n L + t
    T* lanes1;         // its dP / dS
    T* q_lanes;        // its query rows transposed: lane t of element d at d L + t
    T* do_lanes;       // its output-gradient rows transposed
};

template <typename T> static Scratch<T> carve(const AzProblem* p, void* memory) {
    int64_t n = az_capacity(p) + 8;
    char* m = (char*)memory;
    Scratch<T> s;
    s.rows_a = (const T**)m; m += n * sizeof(void*);
    s.rows_b = (const T**)m; m += n * sizeof(void*);
    s.key = (int64_t*)m; m += n * sizeof(int64_t);
    s.key_z = (int64_t*)m; m += n * sizeof(int64_t);
    s.pos = (int64_t*)m; m += n * sizeof(int64_t);
    s.table = (int64_t*)m; m += n * sizeof(int64_t);
    s.w0 = (T*)m; m += n * sizeof(double);
    s.w1 = (T*)m; m += n * sizeof(double);
    const int64_t lanes = 8 * az_rectangle(p) * sizeof(double);
    s.lanes0 = (T*)m; m += lanes;
    s.lanes1 = (T*)m; m += lanes;
    s.q_lanes = (T*)m; m += 8 * p->dim * sizeof(double);
    s.do_lanes = (T*)m;
    return s;
}

struct Coords { int64_t c[3]; };

static inline Coords coords(const AzProblem* p, int64_t i) {
    Coords r;
    r.c[2] = i % p->shape[2];
    r.c[1] = (i / p->shape[2]) % p->shape[1];
    r.c[0] = i / (p->shape[2] * p->shape[1]);
    return r;
}

static inline int64_t flat(const AzProblem* p, int64_t x, int64_t y, int64_t z) {
    return (x * p->shape[1] + y) * p->shape[2] + z;
}

static inline int64_t div_exact(int64_t a, int64_t d) { return d == 1 ? a : a / d; }

// What a gather records beside the rows: buffer columns (backward), bias entries (with a bias).
enum Record { kRows = 0, kColumns = 1, kBias = 2 };

// The keys of query i: rows of k / v (of one head) and, as asked, their buffer columns and bias entries.
template <typename T>
static int64_t gather_keys(const AzProblem* p, int64_t i, const T* k, const T* v, int record, Scratch<T>& s) {
    Coords q = coords(p, i);
    int64_t start[3], count[3];
    for (int a = 0; a < 3; ++a) {
        start[a] = p->axis[a][q.c[a]];
        count[a] = p->axis[a][p->shape[a] + q.c[a]];
    }
    const int64_t* d = p->dilation;
    const int64_t* r = p->radius;
    const int64_t D = p->dim, Dv = p->value_dim, kz = d[2] * D, vz = d[2] * Dv, inverse = az_inverse(p);
    int64_t n = 0;
    for (int64_t a = 0; a < count[0]; ++a) {
        int64_t x = start[0] + a * d[0];
        for (int64_t b = 0; b < count[1]; ++b) {
            int64_t y = start[1] + b * d[1];
            int64_t j = flat(p, x, y, start[2]);
            const T* kr = k + j * D;
            const T* vr = v + j * Dv;
            for (int64_t c = 0; c < count[2]; ++c, kr += kz, vr += vz) {
                s.rows_a[n + c] = kr;
                s.rows_b[n + c] = vr;
                s.key[n + c] = j + c * d[2];
                s.key_z[n + c] = start[2] + c * d[2];
            }
            if (record & kColumns) {  // where this query's entry goes in each key's row of the buffers
                const int64_t* inv[3] = {p->axis[0] + 2 * p->shape[0], p->axis[1] + 2 * p->shape[1],
                                         p->axis[2] + 2 * p->shape[2]};
                int64_t row = (div_exact(q.c[0] - inv[0][x], d[0]) * p->inverse_window[1] +
                               div_exact(q.c[1] - inv[1][y], d[1])) * p->inverse_window[2];
                for (int64_t c = 0; c < count[2]; ++c) {
                    int64_t z = start[2] + c * d[2];
                    s.pos[n + c] = (j + c * d[2]) * inverse + row + div_exact(q.c[2] - inv[2][z], d[2]);
                }
            }
            if (record & kBias) {
                int64_t row = ((div_exact(x - q.c[0], d[0]) + r[0]) * (2 * r[1] + 1) + div_exact(y - q.c[1], d[1]) +
                               r[1]) * (2 * r[2] + 1) + div_exact(start[2] - q.c[2], d[2]) + r[2];
                for (int64_t c = 0; c < count[2]; ++c) s.table[n + c] = row + c;
            }
            n += count[2];
        }
    }
    const uint8_t* sinks = p->sink_visible + i * p->num_sinks;
    for (int64_t t = 0; t < p->num_sinks; ++t) {
        if (!sinks[t]) continue;
        s.rows_a[n] = k + t * D;
        s.rows_b[n] = v + t * Dv;
        s.pos[n] = az_tokens(p) * inverse + i * p->num_sinks + t;
        s.table[n] = -1;
        ++n;
    }
    return n;
}

// Scores of query row qi against the n gathered keys, scaled and biased: s.w0[:n] (padded to a lane multiple).
template <typename T>
static void scores(const AzProblem* p, const T* qi, const T* rpb_h, int64_t n, Scratch<T>& s) {
    dots(qi, s.rows_a, n, p->dim, (T)p->scale, s.w0);
    if (!rpb_h) return;
    for (int64_t j = 0; j < n; ++j)
        if (s.table[j] >= 0) s.w0[j] += rpb_h[s.table[j]];
    for (int64_t j = n; j % Lanes<T>::n; ++j) s.w0[j] = s.w0[n - 1];
}

static inline int64_t kv_head(const AzProblem* p, int64_t h) { return h / (p->heads / p->kv_heads); }

// ---- Query blocks: the lanes of a vector hold consecutive queries of a grid row ----
// Where up to L consecutive queries along the last axis see key runs on that axis of one length whose starts step
// by 1 (the interior of a window: lane t sees lane 0's keys shifted by t) or by 0 (a clamped border or a Swin window:
// every lane sees the same keys), the block is computed with one lane a query: per key and element one vector FMA
// against the transposed keys (no reduction across lanes), the softmax on whole vectors, and the key gathering,
// bias lookup and loop overhead shared by the block. Lanes past the block's last query compute on the keys after the
// block's (within their panel, see az_panel; zeros past the final key) and their results are never read.
struct Block {
    int64_t lanes;  // queries in the block; 1: the query runs alone
    int64_t step;   // 1 or 0: how far lane t's keys are from lane t - 1's
};

// The block of queries at coordinate z of the last axis (the same in every row), at most up to z1.
template <typename T> static Block block_at(const AzProblem* p, int64_t z, int64_t z1) {
    const Block single = {1, 0};
    const int64_t Z = p->shape[2];
    const int64_t* start = p->axis[2];
    const int64_t* count = p->axis[2] + Z;
    if (p->num_sinks || count[z] == 0) return single;
    const int64_t most = min64(Lanes<T>::n, z1 - z);
    int64_t run[2] = {1, 1};  // lanes whose starts step by 0, by 1
    for (int64_t step = 0; step < 2; ++step)
        while (run[step] < most && count[z + run[step]] == count[z] &&
               start[z + run[step]] == start[z] + step * run[step])
            ++run[step];
    if (p->dilation[2] != 1) run[0] = 1;  // neighbouring queries are in different dilation groups
    Block b = {run[1] >= run[0] ? run[1] : run[0], run[1] >= run[0] ? 1 : 0};
    return b;
}

// Whether the queries of row r see keys on the two leading axes.
static inline bool row_sees_keys(const AzProblem* p, int64_t r) {
    return p->axis[0][p->shape[0] + r / p->shape[1]] && p->axis[1][p->shape[1] + r % p->shape[1]];
}

// Runs visit(i, block) over a tile: per block of the last axis, its rows top to bottom (a block's keys mostly
// those of the row above), `block.lanes` 1 for a query alone.
template <typename T, class Visit> static void each_block(const AzProblem* p, const AzTile* tile, Visit visit) {
    const int64_t Z = p->shape[2];
    for (int64_t z = tile->z0; z < tile->z1;) {
        const Block blk = block_at<T>(p, z, tile->z1);
        for (int64_t r = tile->r0; r < tile->r1; ++r) {
            if (blk.lanes > 1 && row_sees_keys(p, r)) {
                visit(r * Z + z, blk);
            } else {
                const Block single = {1, 0};
                for (int64_t t = 0; t < blk.lanes; ++t) visit(r * Z + z + t, single);
            }
        }
        z += blk.lanes;
    }
}

// out[e L + t] = rows[(i + t) dim + e] for t < lanes, 0 in the other lanes.
template <typename T> static void to_lanes(const T* rows, int64_t i, int64_t lanes, int64_t dim, T* out) {
    const int L = Lanes<T>::n;
    for (int64_t t = 0; t < L; ++t) {
        const T* r = rows + (i + t) * dim;
        if (t < lanes)
            for (int64_t e = 0; e < dim; ++e) out[e * L + t] = r[e];
        else
            for (int64_t e = 0; e < dim; ++e) out[e * L + t] = 0;
    }
}

// out[g L + t] = scale sum_e x[e L + t] cols(e, key[g] + t STEP) for g < G: G keys of a block (lane 0's index)
// against the panels `cols` of one head (see az_panel).
template <typename T, int G, int STEP>
static inline void lane_dots_chunk(const T* x, const T* cols, int64_t dim, const int64_t* key, T scale, T* out) {
    typedef typename Lanes<T>::V V;
    const int L = Lanes<T>::n;
    const T* c[G];
    for (int g = 0; g < G; ++g) c[g] = cols + (key[g] >> 3) * 16 * dim + (key[g] & 7);
    V acc[G];
    V xv = load(x);
    for (int g = 0; g < G; ++g) acc[g] = xv * (STEP ? load(c[g]) : splat<T>(*c[g]));
    for (int64_t e = 1, off = 16; e < dim; ++e, off += 16) {
        xv = load(x + e * L);
        for (int g = 0; g < G; ++g) acc[g] += xv * (STEP ? load(c[g] + off) : splat<T>(c[g][off]));
    }
    for (int g = 0; g < G; ++g) store(out + g * L, acc[g] * scale);
}

template <typename T, int G>
static inline void lane_dots_chunk(const T* x, const T* cols, int64_t dim, const int64_t* key, int64_t step, T scale,
                                   T* out) {
    if (step)
        lane_dots_chunk<T, G, 1>(x, cols, dim, key, scale, out);
    else
        lane_dots_chunk<T, G, 0>(x, cols, dim, key, scale, out);
}

// out[n L + t] for n < count: the block's keys in chunks of at most 8 of near-equal sizes, so that every chunk
// keeps several FMA chains in flight.
template <typename T>
static void lane_dots(const T* x, const T* cols, int64_t dim, const int64_t* key, int64_t count,
                      int64_t step, T scale, T* out) {
    const int L = Lanes<T>::n;
    const int64_t chunks = (count + 7) / 8;
    for (int64_t c = 0, first = 0; c < chunks; ++c) {
        const int64_t size = (count - first) / (chunks - c);
        const int64_t* kc = key + first;
        T* oc = out + first * L;
        with_count(size, [&](auto keys) { lane_dots_chunk<T, decltype(keys)::n>(x, cols, dim, kc, step, scale, oc); });
        first += size;
    }
}

// The block's biased scores into s.lanes0 (its queries already in s.q_lanes, lane 0's keys gathered). With step 0
// (dilation 1) lane t's offset on the last axis is lane 0's minus t: table entry minus t.
template <typename T>
static void block_scores(const AzProblem* p, const T* kt_g, const T* rpb_h, int64_t n, Block blk, Scratch<T>& s) {
    const int L = Lanes<T>::n;
    lane_dots(s.q_lanes, kt_g, p->dim, s.key, n, blk.step, (T)p->scale, s.lanes0);
    if (!rpb_h) return;
    for (int64_t j = 0; j < n; ++j) {
        T* sj = s.lanes0 + j * L;
        if (blk.step)
            store(sj, load(sj) + rpb_h[s.table[j]]);
        else
            for (int64_t t = 0; t < blk.lanes; ++t) sj[t] += rpb_h[s.table[j] - t];
    }
}

template <typename T>
static void forward_block(const AzProblem* p, const T* q_h, const T* kt_g, const T* rpb_h, T* out_h, T* lse_h,
                          int64_t i, Block blk, int64_t n, Scratch<T>& s) {
    typedef typename Lanes<T>::V V;
    const int L = Lanes<T>::n;
    const int64_t Dv = p->value_dim;
    to_lanes(q_h, i, blk.lanes, p->dim, s.q_lanes);
    block_scores(p, kt_g, rpb_h, n, blk, s);
    V m = load(s.lanes0);
    for (int64_t j = 1; j < n; ++j) {
        V x = load(s.lanes0 + j * L);
        m = x > m ? x : m;
    }
    V l = splat<T>(0);
    for (int64_t j = 0; j < n; ++j) {
        V e = exp_lanes(load(s.lanes0 + j * L) - m);
        store(s.lanes0 + j * L, e);
        l += e;
    }
    T ms[L], ls[L];
    store(ms, m);
    store(ls, l);
    for (int64_t t = 0; t < blk.lanes; ++t) {
        weighted_sum(s.rows_b, t * blk.step * Dv, s.lanes0 + t, L, n, Dv, (T)1 / ls[t], false, out_h + (i + t) * Dv);
        lse_h[i + t] = ms[t] + (T)log((double)ls[t]);
    }
}

// Query i alone (a border, a sink, a causal ramp, a dilated border): its keys gathered one by one.
template <typename T>
static void forward_query(const AzProblem* p, const T* q_h, const T* kh, const T* vh, const T* rpb_h, T* out_h,
                          T* lse_h, int64_t i, Scratch<T>& s) {
    const int64_t D = p->dim, Dv = p->value_dim;
    T* oi = out_h + i * Dv;
    int64_t n = gather_keys(p, i, kh, vh, rpb_h ? kBias : kRows, s);
    if (n == 0) {
        for (int64_t e = 0; e < Dv; ++e) oi[e] = 0;
        lse_h[i] = -INFINITY;
        return;
    }
    scores(p, q_h + i * D, rpb_h, n, s);
    T m = max_of(s.w0, n);
    exp_shifted(s.w0, n, m);
    T l = sum_of(s.w0, n);
    weighted_sum(s.rows_b, 0, s.w0, 1, n, Dv, (T)1 / l, false, oi);
    lse_h[i] = m + (T)log((double)l);
}

template <typename T>
static void forward(const AzProblem* p, const T* q, const T* k, const T* kt, const T* v, const T* rpb, T* out,
                    T* lse, int64_t b, int64_t h, const AzTile* tile, void* scratch) {
    Scratch<T> s = carve<T>(p, scratch);
    const int64_t N = az_tokens(p), D = p->dim, Dv = p->value_dim;
    const int64_t bh = b * p->heads + h, bg = b * p->kv_heads + kv_head(p, h);
    const T* kh = k + bg * N * D;
    const T* vh = v + bg * N * Dv;
    const T* rpb_h = rpb ? rpb + h * az_table(p) : 0;
    const T* kt_g = kt + bg * az_transposed_head(p, D);
    each_block<T>(p, tile, [&](int64_t i, Block blk) {
        if (blk.lanes > 1) {
            int64_t n = gather_keys(p, i, kh, vh, rpb ? kBias : kRows, s);
            forward_block(p, q + bh * N * D, kt_g, rpb_h, out + bh * N * Dv, lse + bh * N, i, blk, n, s);
        } else {
            forward_query(p, q + bh * N * D, kh, vh, rpb_h, out + bh * N * Dv, lse + bh * N, i, s);
        }
    });
}

// The per-head tensors of a query-gradient work item.
template <typename T> struct HeadGrad {
    const T *q, *k, *kt, *v, *vt, *rpb, *out, *lse, *dout;
    T *dq, *probs, *dscores, *drpb;
};

template <typename T>
static void query_grad_block(const AzProblem* p, const HeadGrad<T>& g, int64_t i, Block blk, int64_t n,
                             Scratch<T>& s) {
    typedef typename Lanes<T>::V V;
    const int L = Lanes<T>::n;
    const int64_t D = p->dim, Dv = p->value_dim, Z = p->shape[2], z0 = i % Z;
    const int64_t inverse = az_inverse(p), d2 = p->dilation[2];
    const int64_t* first_query = p->axis[2] + 2 * Z;
    to_lanes(g.q, i, blk.lanes, D, s.q_lanes);
    to_lanes(g.dout, i, blk.lanes, Dv, s.do_lanes);
    block_scores(p, g.kt, g.rpb, n, blk, s);
    T lse[L], delta[L];
    for (int64_t t = 0; t < L; ++t) {
        lse[t] = delta[t] = 0;
        if (t >= blk.lanes) continue;
        lse[t] = g.lse[i + t];
        const T* doi = g.dout + (i + t) * Dv;
        const T* oi = g.out + (i + t) * Dv;
        for (int64_t e = 0; e < Dv; ++e) delta[t] += doi[e] * oi[e];
    }
    lane_dots(s.do_lanes, g.vt, Dv, s.key, n, blk.step, (T)1, s.lanes1);
    const V lse_v = load(lse), delta_v = load(delta);
    for (int64_t j = 0; j < n; ++j) {
        V prob = exp_lanes(load(s.lanes0 + j * L) - lse_v);
        store(s.lanes0 + j * L, prob);
        store(s.lanes1 + j * L, prob * (load(s.lanes1 + j * L) - delta_v));
    }
    for (int64_t j = 0; j < n; ++j) {
        const int64_t kz = s.key_z[j], base = s.pos[j] - div_exact(z0 - first_query[kz], d2);
        for (int64_t t = 0; t < blk.lanes; ++t) {  // the division only for dilated axes (it is slow)
            const int64_t offset = z0 + t - first_query[kz + t * blk.step];
            const int64_t pos = base + t * blk.step * inverse + (d2 == 1 ? offset : offset / d2);
            g.probs[pos] = s.lanes0[j * L + t];
            g.dscores[pos] = s.lanes1[j * L + t];
        }
        if (!g.drpb) continue;
        if (blk.step) {
            T sum = 0;
            for (int64_t t = 0; t < blk.lanes; ++t) sum += s.lanes1[j * L + t];
            g.drpb[s.table[j]] += sum;
        } else {
            for (int64_t t = 0; t < blk.lanes; ++t) g.drpb[s.table[j] - t] += s.lanes1[j * L + t];
        }
    }
    for (int64_t t = 0; t < blk.lanes; ++t)
        weighted_sum(s.rows_a, t * blk.step * D, s.lanes1 + t, L, n, D, (T)p->scale, false, g.dq + (i + t) * D);
}

template <typename T> static void query_grad_query(const AzProblem* p, const HeadGrad<T>& g, int64_t i, Scratch<T>& s) {
    const int64_t N = az_tokens(p), D = p->dim, Dv = p->value_dim, S = p->num_sinks, sinks = N * az_inverse(p);
    T* dqi = g.dq + i * D;
    for (int64_t t = 0; t < S; ++t) g.probs[sinks + i * S + t] = g.dscores[sinks + i * S + t] = 0;
    int64_t n = gather_keys(p, i, g.k, g.v, g.rpb ? kColumns | kBias : kColumns, s);
    if (n == 0) {
        for (int64_t e = 0; e < D; ++e) dqi[e] = 0;
        return;
    }
    scores(p, g.q + i * D, g.rpb, n, s);
    exp_shifted(s.w0, n, g.lse[i]);
    const T* doi = g.dout + i * Dv;
    dots(doi, s.rows_b, n, Dv, (T)1, s.w1);
    const T* oi = g.out + i * Dv;
    T delta = 0;
    for (int64_t e = 0; e < Dv; ++e) delta += doi[e] * oi[e];
    for (int64_t j = 0; j < n; ++j) {
        s.w1[j] = s.w0[j] * (s.w1[j] - delta);
        g.probs[s.pos[j]] = s.w0[j];
        g.dscores[s.pos[j]] = s.w1[j];
    }
    if (g.drpb)
        for (int64_t j = 0; j < n; ++j)
            if (s.table[j] >= 0) g.drpb[s.table[j]] += s.w1[j];
    weighted_sum(s.rows_a, 0, s.w1, 1, n, D, (T)p->scale, false, dqi);
}

template <typename T>
static void query_grad(const AzProblem* p, const T* q, const T* k, const T* kt, const T* v, const T* vt,
                       const T* rpb, const T* out, const T* lse, const T* dout, T* dq, T* probs, T* dscores, T* drpb,
                       int64_t b, int64_t h, const AzTile* tile, void* scratch) {
    Scratch<T> s = carve<T>(p, scratch);
    const int64_t N = az_tokens(p), D = p->dim, Dv = p->value_dim;
    const int64_t bh = b * p->heads + h, bg = b * p->kv_heads + kv_head(p, h);
    HeadGrad<T> g = {q + bh * N * D, k + bg * N * D, kt + bg * az_transposed_head(p, D), v + bg * N * Dv,
                     vt + bg * az_transposed_head(p, Dv),
                     rpb ? rpb + h * az_table(p) : 0, out + bh * N * Dv, lse + bh * N, dout + bh * N * Dv,
                     dq + bh * N * D, probs, dscores, drpb};
    each_block<T>(p, tile, [&](int64_t i, Block blk) {
        if (blk.lanes > 1) {
            int64_t n = gather_keys(p, i, g.k, g.v, rpb ? kColumns | kBias : kColumns, s);
            query_grad_block(p, g, i, blk, n, s);
        } else {
            query_grad_query(p, g, i, s);
        }
    });
}

template <typename T>
static void key_grad(const AzProblem* p, const T* q, const T* dout, const T* probs, const T* dscores, T* dk, T* dv,
                     int64_t b, int64_t g, int64_t j0, int64_t j1, void* scratch) {
    Scratch<T> s = carve<T>(p, scratch);
    const int64_t N = az_tokens(p), D = p->dim, Dv = p->value_dim, S = p->num_sinks, inverse = az_inverse(p);
    const int64_t group = p->heads / p->kv_heads, bg = b * p->kv_heads + g, buffer = az_buffer(p);
    const int64_t* d = p->dilation;
    const int64_t* iw = p->inverse_window;
    const T scale = (T)p->scale;
    for (int64_t j = j0; j < j1; ++j) {
        T* dkj = dk + (bg * N + j) * D;
        T* dvj = dv + (bg * N + j) * Dv;
        Coords key = coords(p, j);
        int64_t start[3], count[3];
        for (int a = 0; a < 3; ++a) {
            start[a] = p->axis[a][2 * p->shape[a] + key.c[a]];
            count[a] = p->axis[a][3 * p->shape[a] + key.c[a]];
        }
        for (int64_t r = 0; r < group; ++r) {
            const int64_t bh = b * p->heads + g * group + r;
            const T* prob_h = probs + r * buffer;
            const T* ds_h = dscores + r * buffer;
            const T* qh = q + bh * N * D;
            const T* doh = dout + bh * N * Dv;
            int64_t n = 0;
            for (int64_t a = 0; a < count[0]; ++a) {
                for (int64_t bb = 0; bb < count[1]; ++bb, n += count[2]) {
                    int64_t i = flat(p, start[0] + a * d[0], start[1] + bb * d[1], start[2]);
                    const T* qr = qh + i * D;
                    const T* dor = doh + i * Dv;
                    for (int64_t c = 0; c < count[2]; ++c, qr += d[2] * D, dor += d[2] * Dv) {
                        s.rows_a[n + c] = qr;
                        s.rows_b[n + c] = dor;
                    }
                    int64_t entry = j * inverse + (a * iw[1] + bb) * iw[2];
                    for (int64_t c = 0; c < count[2]; ++c) {  // a few entries: a loop, not a memcpy call
                        s.w0[n + c] = ds_h[entry + c];
                        s.w1[n + c] = prob_h[entry + c];
                    }
                }
            }
            if (j < S) {
                for (int64_t i = 0; i < N; ++i) {
                    if (!p->sink_visible[i * S + j]) continue;
                    s.rows_a[n] = qh + i * D;
                    s.rows_b[n] = doh + i * Dv;
                    s.w0[n] = ds_h[N * inverse + i * S + j];
                    s.w1[n] = prob_h[N * inverse + i * S + j];
                    ++n;
                }
            }
            weighted_sum(s.rows_a, 0, s.w0, 1, n, D, scale, r > 0, dkj);  // the query heads of the group summed
            weighted_sum(s.rows_b, 0, s.w1, 1, n, Dv, (T)1, r > 0, dvj);
        }
    }
}

template <typename T>
static void transpose(const AzProblem* p, const T* src, T* dst, int64_t dim, int64_t head, int64_t j0, int64_t j1) {
    const int64_t N = az_tokens(p), panel = az_panel(dim);
    const T* from = src + head * N * dim;
    T* to = dst + head * az_transposed_head(p, dim);
    for (int64_t j = j0; j < j1; j += 8) {
        const int64_t m = min64(8, j1 - j);
        T* low = to + (j >> 3) * panel;            // keys j.. are the first half of their own panel
        T* high = j ? low - panel + 8 : nullptr;  // and the second half of the one before
        for (int64_t e = 0; e < dim; ++e)
            for (int64_t u = 0; u < m; ++u) {
                const T x = from[(j + u) * dim + e];
                low[e * 16 + u] = x;
                if (high) high[e * 16 + u] = x;
            }
    }
    if (j1 < N) return;
    // The last two panels' entries past key N - 1 (read by the lanes past a block's last query): zeros, so that
    // those lanes compute on finite numbers. The work item with the last key owns both panels' tail entries.
    const int64_t last = (N - 1) >> 3;
    for (int64_t P = last > 0 ? last - 1 : 0; P <= last; ++P)
        for (int64_t e = 0; e < dim; ++e)
            for (int64_t u = N - 8 * P; u < 16; ++u) to[P * panel + e * 16 + u] = 0;
}

// The table's untyped entry points: dtype 0 runs the float kernels, 1 the double ones.
static void transpose_any(const AzProblem* p, int dtype, const void* src, void* dst, int64_t dim, int64_t head,
                          int64_t j0, int64_t j1) {
    if (dtype == 0)
        transpose(p, (const float*)src, (float*)dst, dim, head, j0, j1);
    else
        transpose(p, (const double*)src, (double*)dst, dim, head, j0, j1);
}

static void forward_any(const AzProblem* p, int dtype, const void* q, const void* k, const void* kt, const void* v,
                        const void* rpb, void* out, void* lse, int64_t b, int64_t h, const AzTile* tile,
                        void* scratch) {
    if (dtype == 0)
        forward(p, (const float*)q, (const float*)k, (const float*)kt, (const float*)v, (const float*)rpb,
                (float*)out, (float*)lse, b, h, tile, scratch);
    else
        forward(p, (const double*)q, (const double*)k, (const double*)kt, (const double*)v, (const double*)rpb,
                (double*)out, (double*)lse, b, h, tile, scratch);
}

static void query_grad_any(const AzProblem* p, int dtype, const void* q, const void* k, const void* kt,
                           const void* v, const void* vt, const void* rpb, const void* out, const void* lse,
                           const void* dout, void* dq, void* probs, void* dscores, void* drpb, int64_t b, int64_t h,
                           const AzTile* tile, void* scratch) {
    if (dtype == 0)
        query_grad(p, (const float*)q, (const float*)k, (const float*)kt, (const float*)v, (const float*)vt,
                   (const float*)rpb, (const float*)out, (const float*)lse, (const float*)dout, (float*)dq,
                   (float*)probs, (float*)dscores, (float*)drpb, b, h, tile, scratch);
    else
        query_grad(p, (const double*)q, (const double*)k, (const double*)kt, (const double*)v, (const double*)vt,
                   (const double*)rpb, (const double*)out, (const double*)lse, (const double*)dout, (double*)dq,
                   (double*)probs, (double*)dscores, (double*)drpb, b, h, tile, scratch);
}

static void key_grad_any(const AzProblem* p, int dtype, const void* q, const void* dout, const void* probs,
                         const void* dscores, void* dk, void* dv, int64_t b, int64_t g, int64_t j0, int64_t j1,
                         void* scratch) {
    if (dtype == 0)
        key_grad(p, (const float*)q, (const float*)dout, (const float*)probs, (const float*)dscores, (float*)dk,
                 (float*)dv, b, g, j0, j1, scratch);
    else
        key_grad(p, (const double*)q, (const double*)dout, (const double*)probs, (const double*)dscores, (double*)dk,
                 (double*)dv, b, g, j0, j1, scratch);
}

}  // namespace

extern "C" void AZ_JOIN(az_kernels, AZ_ISA)(AzKernels* table) {
    table->transpose = transpose_any;
    table->forward = forward_any;
    table->query_grad = query_grad_any;
    table->key_grad = key_grad_any;
}
