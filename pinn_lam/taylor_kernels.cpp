// Fused element-wise loops of the tanh Taylor pass (pinn_lam/taylor.py, class _TaylorTanh).
//
// Each function does in one pass over memory what the eager code does in several tensor
// operations; the matrix products and tanh itself stay in PyTorch. Built on first use by
// pinn_lam/kernels.py with the system's C++ compiler, and called through ctypes on
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
#include <cstdint>

namespace {

// First layer. block[0 : nv w] holds h = tanh(a) already. Writes the slabs F_i = d c_i
// (c_i = column i, the constant a'_i along e_i) and, for j < n2,
// F_{n1+j} = d (a''_j - 2 h a'_j^2) = -2 h c_j F_j (a''_j = 0 in the first layer).
template <typename T, int N1, int N2>
void first_forward(T* __restrict block, const T* __restrict column, int64_t nv, int64_t n, int64_t w) {
    const int64_t len = n * w;
    const T* h = block;
    T* slabs = block + nv * w;
    for (int64_t p = 0; p < n; ++p) {
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

// Hidden layer. pre = (previous block) W^T; block[0 : nv w] holds h = tanh(pre + b) already.
// Writes the slabs F_i = d P_i (i < n1), F_{n1+j} = d (P_{n1+j} - 2 h P_j^2).
template <typename T, int N1, int N2>
void hidden_forward(const T* __restrict pre, T* __restrict block, int64_t nv, int64_t n, int64_t w) {
    const int64_t len = n * w;
    const T* h = block;
    const T* ps = pre + nv * w;
    T* fs = block + nv * w;
    for (int64_t e = 0; e < len; ++e) {
        const T hh = h[e], dd = T(1) - hh * hh;
        for (int i = 0; i < N1; ++i) fs[i * len + e] = dd * ps[i * len + e];
        for (int j = 0; j < N2; ++j) {
            const T a1 = ps[j * len + e];
            fs[(N1 + j) * len + e] = dd * (ps[(N1 + j) * len + e] - T(2) * hh * a1 * a1);
        }
    }
}

// Backward through a tanh layer (taylor.py, _tanh_rows_backward): turns ``up``, the gradient of
// the layer's output block, into the gradient of its pre-activations, in place. With OUTER
// (one output column), the incoming gradient is the outer product g[row] wout[u] and ``up`` is
// only written, and the output layer's weight gradient (the sum over rows of g[row] times the
// block's row) is added to ``gwout``. Adds the value rows' column sums (the bias gradient) to
// ``bias`` and, with ``colsum`` (n1 x w), the column sums of the first n1 slabs (the first
// layer's a' gradient).
template <typename T, int N1, int N2, bool OUTER>
void rows_backward(T* __restrict up, const T* __restrict block, const T* __restrict g, const T* __restrict wout,
                   T* __restrict gwout, T* __restrict bias, T* __restrict colsum, int64_t nv, int64_t n, int64_t w) {
    constexpr int K = N1 + N2;
    const int64_t len = n * w;
    const T* fs = block + nv * w;
    T* gs = up + nv * w;
    for (int64_t p = 0; p < n; ++p) {
        const int64_t row = p * w;
        for (int64_t u = 0; u < w; ++u) {
            const int64_t e = row + u;
            const T hh = block[e], dd = T(1) - hh * hh;
            T gr[K];
            for (int r = 0; r < K; ++r) gr[r] = OUTER ? g[nv + r * n + p] * wout[u] : gs[r * len + e];
            if (OUTER) {  // the output layer's weight gradient: sum over rows of g[row] * block[row]
                T acc = g[p] * hh;
                for (int r = 0; r < K; ++r) acc += g[nv + r * n + p] * fs[r * len + e];
                gwout[u] += acc;
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
            bias[u] += gh;
        }
    }
    for (int64_t p = n; p < nv; ++p) {
        const int64_t row = p * w;
        for (int64_t u = 0; u < w; ++u) {
            const T hh = block[row + u];
            const T gh = (OUTER ? g[p] * wout[u] : up[row + u]) * (T(1) - hh * hh);
            if (OUTER) gwout[u] += g[p] * hh;
            up[row + u] = gh;
            bias[u] += gh;
        }
    }
    if (colsum)  // a separate pass (over data still in cache) keeps the loops above vectorised
        for (int i = 0; i < N1; ++i)
            for (int64_t p = 0; p < n; ++p)
                for (int64_t u = 0; u < w; ++u) colsum[i * w + u] += gs[i * len + p * w + u];
}

// The affine output layer with one output column: out[row] = block[row] . wout (+ bias on the
// value rows). A matrix product with one column is a poor shape for BLAS; this is one pass.
template <typename T>
void output_forward(const T* __restrict block, const T* __restrict wout, T bias, T* __restrict out, int64_t nv,
                    int64_t rows, int64_t w) {
    for (int64_t row = 0; row < rows; ++row) {
        const T* b = block + row * w;
        T acc = 0;
        for (int64_t u = 0; u < w; ++u) acc += b[u] * wout[u];
        out[row] = row < nv ? acc + bias : acc;
    }
}

template <typename T, int N1, int N2>
struct Instance {
    static void first(void* b, const void* c, int64_t nv, int64_t n, int64_t w) {
        first_forward<T, N1, N2>(static_cast<T*>(b), static_cast<const T*>(c), nv, n, w);
    }
    static void hidden(const void* p, void* b, int64_t nv, int64_t n, int64_t w) {
        hidden_forward<T, N1, N2>(static_cast<const T*>(p), static_cast<T*>(b), nv, n, w);
    }
    static void backward(void* up, const void* b, const void* g, const void* wo, void* gwo, void* bias, void* colsum,
                         int64_t nv, int64_t n, int64_t w) {
        auto kernel = g ? rows_backward<T, N1, N2, true> : rows_backward<T, N1, N2, false>;
        kernel(static_cast<T*>(up), static_cast<const T*>(b), static_cast<const T*>(g), static_cast<const T*>(wo),
               static_cast<T*>(gwo), static_cast<T*>(bias), static_cast<T*>(colsum), nv, n, w);
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

// double_ != 0 selects double, else float. Every pointer is to a contiguous array. Each
// function returns 0, or 1 for an (n1, n2) pair that is not instantiated (nothing is written).
int pinn_lam_abi_version() { return 3; }

int pinn_lam_first_forward(int double_, void* block, const void* column, int64_t nv, int64_t n, int64_t w,
                           int64_t n1, int64_t n2) {
    if (n2 > n1 || n1 > 7) return 1;
    if (double_) { PINN_LAM_DISPATCH(double, n1, n2, first, block, column, nv, n, w) }
    PINN_LAM_DISPATCH(float, n1, n2, first, block, column, nv, n, w)
}

int pinn_lam_hidden_forward(int double_, const void* pre, void* block, int64_t nv, int64_t n, int64_t w,
                            int64_t n1, int64_t n2) {
    if (n2 > n1 || n1 > 7) return 1;
    if (double_) { PINN_LAM_DISPATCH(double, n1, n2, hidden, pre, block, nv, n, w) }
    PINN_LAM_DISPATCH(float, n1, n2, hidden, pre, block, nv, n, w)
}

int pinn_lam_rows_backward(int double_, void* up, const void* block, const void* g, const void* wout, void* gwout,
                           void* bias, void* colsum, int64_t nv, int64_t n, int64_t w, int64_t n1, int64_t n2) {
    if (n2 > n1 || n1 > 7) return 1;
    if (double_) { PINN_LAM_DISPATCH(double, n1, n2, backward, up, block, g, wout, gwout, bias, colsum, nv, n, w) }
    PINN_LAM_DISPATCH(float, n1, n2, backward, up, block, g, wout, gwout, bias, colsum, nv, n, w)
}

int pinn_lam_output_forward(int double_, const void* block, const void* wout, double bias, void* out, int64_t nv,
                            int64_t rows, int64_t w) {
    if (double_)
        output_forward<double>(static_cast<const double*>(block), static_cast<const double*>(wout), bias,
                               static_cast<double*>(out), nv, rows, w);
    else
        output_forward<float>(static_cast<const float*>(block), static_cast<const float*>(wout), static_cast<float>(bias),
                              static_cast<float*>(out), nv, rows, w);
    return 0;
}

}  // extern "C"
