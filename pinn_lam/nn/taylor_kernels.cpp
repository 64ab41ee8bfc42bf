// Fused element-wise loops of the tanh Taylor pass (pinn_lam/nn/taylor.py, class _TaylorTanh).
//
// Each function does in one pass over memory what the eager code does in several tensor
// operations; the matrix products and tanh itself stay in PyTorch. Built on first use by
// pinn_lam/nn/kernels.py with the system's C++ compiler, and called through ctypes on
// contiguous CPU tensors. Plain C++ with no PyTorch headers, so it compiles in seconds.
//
// Layout (as in taylor.py): a layer's block is (nv + k n) rows of w numbers, row-major: the
// values h at all nv points, then k = n1 + n2 slabs of n rows (first derivatives along n1
// directions, then pure second derivatives along the first n2 of them). Element e < n w of
// the value rows and element e of every slab belong to the same point and unit, so every loop
// below runs with unit stride in every array. The slope d = 1 - h^2 is recomputed from h
// wherever it is needed rather than stored: on a CPU this pass is bound by memory traffic.
//
// N1 and N2 are compile-time counts, so that the compiler unrolls the short loops over slabs
// and vectorises over the units; the instantiated pairs are listed in PINN_LAM_DISPATCH (and
// in kernels.py, which sends every other pair to the eager path).
//
// Threads: every loop runs over fixed chunks of points (CHUNK, or 4 CHUNK for the cheap affine
// map), shared out among ``threads`` OpenMP threads when kernels.py builds with OpenMP. It links
// the OpenMP runtime PyTorch uses, so these loops run on PyTorch's own thread pool. Sums over
// points (bias and weight gradients) are formed per chunk and added in chunk order afterwards,
// so every result is the same bit for bit whatever the number of threads.
#include <algorithm>
#include <cstdint>
#include <vector>

namespace {

constexpr int64_t CHUNK = 128;  // points per chunk: 128 x 20 units x (1 + 3 slabs) floats is 40 KB

// body(begin, end, chunk) for the chunks [begin, end) of [0, count), on up to ``threads`` threads.
template <typename Body>
void for_chunks(int64_t count, int64_t chunk, int threads, const Body& body) {
    const int64_t chunks = (count + chunk - 1) / chunk;
    (void)threads;
#pragma omp parallel for schedule(static, 1) num_threads(threads) if (threads > 1 && chunks > 1)
    for (int64_t c = 0; c < chunks; ++c) body(c * chunk, std::min(count, (c + 1) * chunk), c);
}

// Each kernel is a function over one chunk of points [begin, end), whose __restrict pointers
// let the compiler vectorise (a lambda's captured pointers would lose them), and a driver that
// shares the chunks out.

// First layer. block[0 : nv w] holds h = tanh(a) already. Writes the slabs F_i = d c_i
// (c_i = column i, the constant a'_i along e_i) and, for j < n2,
// F_{n1+j} = d (a''_j - 2 h a'_j^2) = -2 h c_j F_j (a''_j = 0 in the first layer).
template <typename T, int N1, int N2>
void first_chunk(const T* __restrict h, T* __restrict slabs, const T* __restrict column, int64_t n, int64_t w,
                 int64_t begin, int64_t end) {
    const int64_t len = n * w;
    for (int64_t p = begin; p < end; ++p) {
        const int64_t row = p * w;
        for (int i = 0; i < N1; ++i) {
            T* f = slabs + i * len + row;
            const T* c = column + i * w;
            for (int64_t u = 0; u < w; ++u) f[u] = (T(1) - h[row + u] * h[row + u]) * c[u];
        }
        for (int j = 0; j < N2; ++j) {
            T* s = slabs + (N1 + j) * len + row;
            const T* f = slabs + j * len + row;
            const T* c = column + j * w;
            for (int64_t u = 0; u < w; ++u) s[u] = T(-2) * h[row + u] * c[u] * f[u];
        }
    }
}

// The first layer's a'_i is a constant row: column i = scale_i W_0[:, cols_i] (W_0 is w x din).
template <typename T, int N1, int N2>
void first_forward(T* block, const T* w0, int64_t din, const int64_t* cols, const T* scale, int64_t nv, int64_t n,
                   int64_t w, int threads) {
    std::vector<T> columns(static_cast<size_t>(N1 * w));
    for (int i = 0; i < N1; ++i)
        for (int64_t u = 0; u < w; ++u) columns[i * w + u] = w0[u * din + cols[i]] * scale[i];
    const T* column = columns.data();
    for_chunks(n, CHUNK, threads, [=](int64_t begin, int64_t end, int64_t) {
        first_chunk<T, N1, N2>(block, block + nv * w, column, n, w, begin, end);
    });
}

// Hidden layer. pre = (previous block) W^T; block[0 : nv w] holds h = tanh(pre + b) already.
// Writes the slabs F_i = d P_i (i < n1), F_{n1+j} = d (P_{n1+j} - 2 h P_j^2).
template <typename T, int N1, int N2>
void hidden_chunk(const T* __restrict h, const T* __restrict ps, T* __restrict fs, int64_t n, int64_t w,
                  int64_t begin, int64_t end) {
    const int64_t len = n * w;
    for (int64_t e = begin * w; e < end * w; ++e) {
        const T hh = h[e], dd = T(1) - hh * hh;
        for (int i = 0; i < N1; ++i) fs[i * len + e] = dd * ps[i * len + e];
        for (int j = 0; j < N2; ++j) {
            const T a1 = ps[j * len + e];
            fs[(N1 + j) * len + e] = dd * (ps[(N1 + j) * len + e] - T(2) * hh * a1 * a1);
        }
    }
}

template <typename T, int N1, int N2>
void hidden_forward(const T* pre, T* block, int64_t nv, int64_t n, int64_t w, int threads) {
    for_chunks(n, CHUNK, threads, [=](int64_t begin, int64_t end, int64_t) {
        hidden_chunk<T, N1, N2>(block, pre + nv * w, block + nv * w, n, w, begin, end);
    });
}

// Backward through a tanh layer (taylor.py, _tanh_rows_backward): turns ``up``, the gradient of
// the layer's output block, into the gradient of its pre-activations, in place. With OUTER
// (one output column), the incoming gradient is the outer product g[row] wout[u] and ``up`` is
// only written; the output layer's weight gradient (the sum over rows of g[row] times the
// block's row) is written to ``gwout`` and its bias gradient (the sum of g over the value rows)
// to ``gbout``. Writes the value rows' column sums (the bias gradient) to ``bias``. For the
// first layer (``z`` given: the nv x din scaled points) it also writes the layer's weight
// gradient ``gweight`` (w x din): sum over value rows of up[p] z[p]^T, plus, in column cols_i,
// scale_i times the column sums of slab i (the gradient of the constant a'_i).
// The chunk function adds its points' sums to bsum, wsum, csum (N1 x w), zsum (din x w), osum.
template <typename T, int N1, int N2, bool OUTER>
void backward_chunk(T* __restrict up, const T* __restrict block, const T* __restrict g, const T* __restrict wout,
                    T* __restrict bsum, T* __restrict wsum, T* __restrict csum, T* __restrict zsum,
                    T* __restrict osum, const T* __restrict z, int64_t din, int64_t nv, int64_t n, int64_t w,
                    int64_t begin, int64_t end) {
    constexpr int K = N1 + N2;
    const int64_t len = n * w;
    const T* fs = block + nv * w;
    T* gs = up + nv * w;
    const int64_t mid = end < n ? end : n;  // points [begin, mid) have slabs, [mid, end) only values
    for (int64_t p = begin; p < mid; ++p) {
        const int64_t row = p * w;
        for (int64_t u = 0; u < w; ++u) {
            const int64_t e = row + u;
            const T hh = block[e], dd = T(1) - hh * hh;
            T gr[K];
            for (int r = 0; r < K; ++r) gr[r] = OUTER ? g[nv + r * n + p] * wout[u] : gs[r * len + e];
            if (OUTER) {  // the output layer's weight gradient: sum over rows of g[row] * block[row]
                T acc = g[p] * hh;
                for (int r = 0; r < K; ++r) acc += g[nv + r * n + p] * fs[r * len + e];
                wsum[u] += acc;
            }
            T m = 0;
            for (int r = 0; r < K; ++r) m += gr[r] * fs[r * len + e];
            T gh = (OUTER ? g[p] * wout[u] : up[e]) * dd - T(2) * hh * m;
            for (int j = 0; j < N2; ++j) {
                const T f = fs[j * len + e], prod = f * gr[N1 + j];
                gh -= T(2) * prod * f;
                gs[j * len + e] = gr[j] * dd - T(4) * hh * prod;
            }
            for (int r = N2; r < K; ++r) gs[r * len + e] = gr[r] * dd;
            up[e] = gh;
            bsum[u] += gh;
        }
    }
    for (int64_t p = begin > n ? begin : n; p < end; ++p) {
        const int64_t row = p * w;
        for (int64_t u = 0; u < w; ++u) {
            const T hh = block[row + u];
            const T gh = (OUTER ? g[p] * wout[u] : up[row + u]) * (T(1) - hh * hh);
            if (OUTER) wsum[u] += g[p] * hh;
            up[row + u] = gh;
            bsum[u] += gh;
        }
    }
    // separate passes over data still in cache keep the loops above vectorised
    if (OUTER)
        for (int64_t p = begin; p < end; ++p) osum[0] += g[p];
    if (z) {
        for (int i = 0; i < N1; ++i)
            for (int64_t p = begin; p < mid; ++p)
                for (int64_t u = 0; u < w; ++u) csum[i * w + u] += gs[i * len + p * w + u];
        for (int64_t p = begin; p < end; ++p)
            for (int64_t i = 0; i < din; ++i) {
                const T zi = z[p * din + i];
                for (int64_t u = 0; u < w; ++u) zsum[i * w + u] += up[p * w + u] * zi;
            }
    }
}

template <typename T, int N1, int N2, bool OUTER>
void rows_backward(T* up, const T* block, const T* g, const T* wout, T* gwout, T* gbout, T* bias, const T* z,
                   int64_t din, const int64_t* cols, const T* scale, T* gweight, int64_t nv, int64_t n, int64_t w,
                   int threads) {
    // per chunk: the bias sums (w), the output weight sums (w), the slab column sums (N1 w), the
    // first layer's weight sums (din w) and the output bias sum (1)
    const int64_t dz = z ? din : 0;
    const int64_t stride = (2 + N1 + dz) * w + 1, chunks = (nv + CHUNK - 1) / CHUNK;
    std::vector<T> sums(static_cast<size_t>(chunks * stride), T(0));
    T* const part = sums.data();
    for_chunks(nv, CHUNK, threads, [=](int64_t begin, int64_t end, int64_t chunk) {
        T* bsum = part + chunk * stride;
        backward_chunk<T, N1, N2, OUTER>(up, block, g, wout, bsum, bsum + w, bsum + 2 * w, bsum + (2 + N1) * w,
                                         bsum + stride - 1, z, dz, nv, n, w, begin, end);
    });
    // written in chunk order: the same sums on any number of threads
    std::vector<T> total(static_cast<size_t>(stride), T(0));
    for (int64_t c = 0; c < chunks; ++c)
        for (int64_t k = 0; k < stride; ++k) total[k] += part[c * stride + k];
    for (int64_t u = 0; u < w; ++u) bias[u] = total[u];
    if (OUTER) {
        for (int64_t u = 0; u < w; ++u) gwout[u] = total[w + u];
        gbout[0] = total[stride - 1];
    }
    if (z) {
        const T* csum = total.data() + 2 * w;
        const T* zsum = csum + N1 * w;
        for (int64_t u = 0; u < w; ++u)
            for (int64_t i = 0; i < din; ++i) gweight[u * din + i] = zsum[i * w + u];
        for (int i = 0; i < N1; ++i)
            for (int64_t u = 0; u < w; ++u) gweight[u * din + cols[i]] += csum[i * w + u] * scale[i];
    }
}

// The first layer's pre-activations a = z W_0^T + b at the nv points z (nv x din, din small):
// a matrix product with an inner dimension of two or three is a poor shape for BLAS.
template <typename T>
void affine_chunk(T* __restrict out, const T* __restrict z, const T* __restrict w0t, const T* __restrict b,
                  int64_t din, int64_t w, int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
        T* o = out + p * w;
        for (int64_t u = 0; u < w; ++u) o[u] = b[u];
        for (int64_t i = 0; i < din; ++i) {
            const T zi = z[p * din + i];
            const T* c = w0t + i * w;
            for (int64_t u = 0; u < w; ++u) o[u] += zi * c[u];
        }
    }
}

template <typename T>
void first_affine(T* out, const T* z, const T* w0, const T* b, int64_t nv, int64_t din, int64_t w, int threads) {
    std::vector<T> transposed(static_cast<size_t>(din * w));  // W_0^T: unit stride over the units
    for (int64_t u = 0; u < w; ++u)
        for (int64_t i = 0; i < din; ++i) transposed[i * w + u] = w0[u * din + i];
    const T* w0t = transposed.data();
    for_chunks(nv, 4 * CHUNK, threads, [=](int64_t begin, int64_t end, int64_t) {
        affine_chunk<T>(out, z, w0t, b, din, w, begin, end);
    });
}

template <typename T, int N1, int N2>
struct Instance {
    static void first(void* b, const void* w0, int64_t din, const int64_t* cols, const void* scale, int64_t nv,
                      int64_t n, int64_t w, int t) {
        first_forward<T, N1, N2>(static_cast<T*>(b), static_cast<const T*>(w0), din, cols,
                                 static_cast<const T*>(scale), nv, n, w, t);
    }
    static void hidden(const void* p, void* b, int64_t nv, int64_t n, int64_t w, int t) {
        hidden_forward<T, N1, N2>(static_cast<const T*>(p), static_cast<T*>(b), nv, n, w, t);
    }
    static void backward(void* up, const void* b, const void* g, const void* wo, void* gwo, void* gbo, void* bias,
                         const void* z, int64_t din, const int64_t* cols, const void* scale, void* gw, int64_t nv,
                         int64_t n, int64_t w, int t) {
        auto kernel = g ? rows_backward<T, N1, N2, true> : rows_backward<T, N1, N2, false>;
        kernel(static_cast<T*>(up), static_cast<const T*>(b), static_cast<const T*>(g), static_cast<const T*>(wo),
               static_cast<T*>(gwo), static_cast<T*>(gbo), static_cast<T*>(bias), static_cast<const T*>(z), din, cols,
               static_cast<const T*>(scale), static_cast<T*>(gw), nv, n, w, t);
    }
};

// Calls Instance<T, n1, n2>::name(args...) and returns 0 for the instantiated pairs, else 1.
#define PINN_LAM_DISPATCH(T, n1, n2, name, ...)                             \
    switch (n1 * 8 + n2) {                                                  \
        case 8: Instance<T, 1, 0>::name(__VA_ARGS__); return 0;             \
        case 9: Instance<T, 1, 1>::name(__VA_ARGS__); return 0;             \
        case 16: Instance<T, 2, 0>::name(__VA_ARGS__); return 0;            \
        case 17: Instance<T, 2, 1>::name(__VA_ARGS__); return 0;            \
        case 18: Instance<T, 2, 2>::name(__VA_ARGS__); return 0;            \
        case 24: Instance<T, 3, 0>::name(__VA_ARGS__); return 0;            \
        case 25: Instance<T, 3, 1>::name(__VA_ARGS__); return 0;            \
        case 26: Instance<T, 3, 2>::name(__VA_ARGS__); return 0;            \
        case 27: Instance<T, 3, 3>::name(__VA_ARGS__); return 0;            \
        default: return 1;                                                  \
    }

}  // namespace

extern "C" {

// double_ != 0 selects double, else float. Every pointer is to a contiguous array; ``threads``
// is the most threads to use (PyTorch's count). Each function returns 0, or 1 for an (n1, n2)
// pair that is not instantiated (nothing is written).
int pinn_lam_abi_version() { return 6; }

// 1 when built with OpenMP (the loops can use several threads), else 0.
int pinn_lam_openmp() {
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

int pinn_lam_first_forward(int double_, void* block, const void* w0, int64_t din, const int64_t* cols,
                           const void* scale, int64_t nv, int64_t n, int64_t w, int64_t n1, int64_t n2, int threads) {
    if (n2 > n1 || n1 > 7) return 1;
    if (double_) { PINN_LAM_DISPATCH(double, n1, n2, first, block, w0, din, cols, scale, nv, n, w, threads) }
    PINN_LAM_DISPATCH(float, n1, n2, first, block, w0, din, cols, scale, nv, n, w, threads)
}

int pinn_lam_hidden_forward(int double_, const void* pre, void* block, int64_t nv, int64_t n, int64_t w,
                            int64_t n1, int64_t n2, int threads) {
    if (n2 > n1 || n1 > 7) return 1;
    if (double_) { PINN_LAM_DISPATCH(double, n1, n2, hidden, pre, block, nv, n, w, threads) }
    PINN_LAM_DISPATCH(float, n1, n2, hidden, pre, block, nv, n, w, threads)
}

int pinn_lam_rows_backward(int double_, void* up, const void* block, const void* g, const void* wout, void* gwout,
                           void* gbout, void* bias, const void* z, int64_t din, const int64_t* cols, const void* scale,
                           void* gweight, int64_t nv, int64_t n, int64_t w, int64_t n1, int64_t n2, int threads) {
    if (n2 > n1 || n1 > 7) return 1;
    if (double_) {
        PINN_LAM_DISPATCH(double, n1, n2, backward, up, block, g, wout, gwout, gbout, bias, z, din, cols, scale,
                          gweight, nv, n, w, threads)
    }
    PINN_LAM_DISPATCH(float, n1, n2, backward, up, block, g, wout, gwout, gbout, bias, z, din, cols, scale, gweight,
                      nv, n, w, threads)
}

int pinn_lam_first_affine(int double_, void* out, const void* z, const void* w0, const void* b, int64_t nv,
                          int64_t din, int64_t w, int threads) {
    if (double_)
        first_affine<double>(static_cast<double*>(out), static_cast<const double*>(z), static_cast<const double*>(w0),
                             static_cast<const double*>(b), nv, din, w, threads);
    else
        first_affine<float>(static_cast<float*>(out), static_cast<const float*>(z), static_cast<const float*>(w0),
                            static_cast<const float*>(b), nv, din, w, threads);
    return 0;
}

}  // extern "C"
