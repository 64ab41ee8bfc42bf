// Fused element-wise loops of the tanh Taylor pass (pinn_lam/taylor.py, class _TaylorTanh).
//
// Each function does in one pass over memory what the eager code does in several tensor
// operations; the matrix products and tanh itself stay in PyTorch. Built on first use by
// pinn_lam/kernels.py with the system's C++ compiler, and called through ctypes on
// contiguous CPU tensors. Plain C++ with no PyTorch headers, so it compiles in about a second.
//
// Layout (as in taylor.py): a layer's block is (nv + k n) rows of w floats, row-major: the
// values at all nv points, then k = n1 + n2 slabs of n rows (first derivatives along n1
// directions, then pure second derivatives along the first n2 of them). Element e < n w of
// the value rows and element e of every slab belong to the same point and unit, so every loop
// below runs over one index e with unit stride in every array.
//
// N1, N2 >= 0 are compile-time counts (the common cases are instantiated, so that the
// compiler unrolls the short loops over slabs and vectorises over e); N1 = -1 is the generic
// version with runtime counts.
#include <cstdint>
#include <cstring>

namespace {

template <int N1, int N2>
struct Counts {
    int64_t n1, n2;
    Counts(int64_t a, int64_t b) : n1(N1 >= 0 ? N1 : a), n2(N1 >= 0 ? N2 : b) {}
};

// First layer. block[0 : nv w] holds h = tanh(a) already. Writes d = 1 - h^2 (nv w) and the
// slabs: F_i = d c_i (c_i = column i, the constant a'_i along e_i) and, for j < n2,
// F_{n1+j} = d (a''_j - 2 h a'_j^2) = -2 h c_j F_j (a''_j = 0 in the first layer).
template <typename T, int N1, int N2>
void first_forward(T* __restrict block, T* __restrict d, const T* __restrict column,
                   int64_t nv, int64_t n, int64_t w, int64_t n1_, int64_t n2_) {
    const Counts<N1, N2> k(n1_, n2_);
    const int64_t len = n * w;
    const T* h = block;
    T* slabs = block + nv * w;
    for (int64_t p = 0; p < n; ++p) {
        const int64_t row = p * w;
        for (int64_t i = 0; i < k.n1; ++i) {
            T* f = slabs + i * len + row;
            const T* c = column + i * w;
            for (int64_t u = 0; u < w; ++u) f[u] = (T(1) - h[row + u] * h[row + u]) * c[u];
        }
        for (int64_t j = 0; j < k.n2; ++j) {
            T* s = slabs + (k.n1 + j) * len + row;
            const T* f = slabs + j * len + row;
            const T* c = column + j * w;
            for (int64_t u = 0; u < w; ++u) s[u] = T(-2) * h[row + u] * c[u] * f[u];
        }
    }
    for (int64_t e = 0; e < nv * w; ++e) d[e] = T(1) - h[e] * h[e];
}

// Hidden layer. pre = (previous block) W^T; block[0 : nv w] holds h = tanh(pre + b) already.
// Writes d = 1 - h^2 and the slabs F_i = d P_i (i < n1), F_{n1+j} = d (P_{n1+j} - 2 h P_j^2).
template <typename T, int N1, int N2>
void hidden_forward(const T* __restrict pre, T* __restrict block, T* __restrict d,
                    int64_t nv, int64_t n, int64_t w, int64_t n1_, int64_t n2_) {
    const Counts<N1, N2> k(n1_, n2_);
    const int64_t len = n * w;
    const T* h = block;
    const T* ps = pre + nv * w;
    T* fs = block + nv * w;
    for (int64_t e = 0; e < nv * w; ++e) d[e] = T(1) - h[e] * h[e];
    for (int64_t e = 0; e < len; ++e) {
        const T dd = d[e], hh = h[e];
        for (int64_t i = 0; i < k.n1; ++i) fs[i * len + e] = dd * ps[i * len + e];
        for (int64_t j = 0; j < k.n2; ++j) {
            const T a1 = ps[j * len + e];
            fs[(k.n1 + j) * len + e] = dd * (ps[(k.n1 + j) * len + e] - T(2) * hh * a1 * a1);
        }
    }
}

// Backward through a tanh layer (taylor.py, _tanh_rows_backward): turns ``up``, the gradient of
// the layer's output block, into the gradient of its pre-activations, in place. With
// ``g`` (one output column), the incoming gradient is the outer product g[row] wout[u] and ``up``
// is only written. Adds the value rows' column sums (the bias gradient) to ``bias`` and, with
// ``colsum`` (n1 x w), the column sums of the first n1 slabs (the first layer's a' gradient).
template <typename T, int N1, int N2, bool OUTER>
void rows_backward(T* __restrict up, const T* __restrict block, const T* __restrict d,
                   const T* __restrict g, const T* __restrict wout, T* __restrict bias, T* __restrict colsum,
                   int64_t nv, int64_t n, int64_t w, int64_t n1_, int64_t n2_) {
    const Counts<N1, N2> k(n1_, n2_);
    const int64_t len = n * w, kk = k.n1 + k.n2;
    const T* fs = block + nv * w;
    T* gs = up + nv * w;
    for (int64_t p = 0; p < n; ++p) {
        const int64_t row = p * w;
        for (int64_t u = 0; u < w; ++u) {
            const int64_t e = row + u;
            const T hh = block[e], dd = d[e];
            T m = 0;
            T gin = OUTER ? g[p] * wout[u] : up[e];
            for (int64_t r = 0; r < kk; ++r) {
                const T gr = OUTER ? g[nv + r * n + p] * wout[u] : gs[r * len + e];
                m += gr * fs[r * len + e];
            }
            T gh = gin * dd - T(2) * hh * m;
            for (int64_t j = 0; j < k.n2; ++j) {
                const T f = fs[j * len + e];
                const T gj = OUTER ? g[nv + j * n + p] * wout[u] : gs[j * len + e];
                const T g2 = OUTER ? g[nv + (k.n1 + j) * n + p] * wout[u] : gs[(k.n1 + j) * len + e];
                const T prod = f * g2;
                gh -= T(2) * prod * f;
                gs[j * len + e] = gj * dd - T(4) * hh * prod;
            }
            for (int64_t r = k.n2; r < kk; ++r) {
                const T gr = OUTER ? g[nv + r * n + p] * wout[u] : gs[r * len + e];
                gs[r * len + e] = gr * dd;
            }
            up[e] = gh;
            bias[u] += gh;
            if (colsum)
                for (int64_t i = 0; i < k.n1; ++i) colsum[i * w + u] += gs[i * len + e];
        }
    }
    for (int64_t p = n; p < nv; ++p) {
        const int64_t row = p * w;
        for (int64_t u = 0; u < w; ++u) {
            const T gh = (OUTER ? g[p] * wout[u] : up[row + u]) * d[row + u];
            up[row + u] = gh;
            bias[u] += gh;
        }
    }
}

template <typename T, int N1, int N2>
struct Instance {
    static void first(void* b, void* d, const void* c, int64_t nv, int64_t n, int64_t w, int64_t n1, int64_t n2) {
        first_forward<T, N1, N2>(static_cast<T*>(b), static_cast<T*>(d), static_cast<const T*>(c), nv, n, w, n1, n2);
    }
    static void hidden(const void* p, void* b, void* d, int64_t nv, int64_t n, int64_t w, int64_t n1, int64_t n2) {
        hidden_forward<T, N1, N2>(static_cast<const T*>(p), static_cast<T*>(b), static_cast<T*>(d), nv, n, w, n1, n2);
    }
    static void backward(void* up, const void* b, const void* d, const void* g, const void* wo, void* bias,
                         void* colsum, int64_t nv, int64_t n, int64_t w, int64_t n1, int64_t n2) {
        auto kernel = g ? rows_backward<T, N1, N2, true> : rows_backward<T, N1, N2, false>;
        kernel(static_cast<T*>(up), static_cast<const T*>(b), static_cast<const T*>(d),
                                 static_cast<const T*>(g), static_cast<const T*>(wo), static_cast<T*>(bias),
                                 static_cast<T*>(colsum), nv, n, w, n1, n2);
    }
};

// Calls Instance<T, N1, N2>::name(args...) for the instantiated (n1, n2) (n2 <= n1), else the
// generic version.
#define PINN_LAM_DISPATCH(T, n1, n2, name, ...)                                          \
    do {                                                                                 \
        switch (n1 * 8 + n2) {                                                           \
            case 8: Instance<T, 1, 0>::name(__VA_ARGS__); break;                         \
            case 9: Instance<T, 1, 1>::name(__VA_ARGS__); break;                         \
            case 16: Instance<T, 2, 0>::name(__VA_ARGS__); break;                        \
            case 17: Instance<T, 2, 1>::name(__VA_ARGS__); break;                        \
            case 18: Instance<T, 2, 2>::name(__VA_ARGS__); break;                        \
            case 24: Instance<T, 3, 0>::name(__VA_ARGS__); break;                        \
            case 25: Instance<T, 3, 1>::name(__VA_ARGS__); break;                        \
            case 26: Instance<T, 3, 2>::name(__VA_ARGS__); break;                        \
            case 27: Instance<T, 3, 3>::name(__VA_ARGS__); break;                        \
            default: Instance<T, -1, 0>::name(__VA_ARGS__);                              \
        }                                                                                \
    } while (0)

}  // namespace

extern "C" {

// double_ != 0 selects double, else float. Every pointer is to a contiguous array.
int pinn_lam_abi_version() { return 1; }

void pinn_lam_first_forward(int double_, void* block, void* d, const void* column, int64_t nv, int64_t n,
                            int64_t w, int64_t n1, int64_t n2) {
    if (double_) PINN_LAM_DISPATCH(double, n1, n2, first, block, d, column, nv, n, w, n1, n2);
    else PINN_LAM_DISPATCH(float, n1, n2, first, block, d, column, nv, n, w, n1, n2);
}

void pinn_lam_hidden_forward(int double_, const void* pre, void* block, void* d, int64_t nv, int64_t n,
                             int64_t w, int64_t n1, int64_t n2) {
    if (double_) PINN_LAM_DISPATCH(double, n1, n2, hidden, pre, block, d, nv, n, w, n1, n2);
    else PINN_LAM_DISPATCH(float, n1, n2, hidden, pre, block, d, nv, n, w, n1, n2);
}

void pinn_lam_rows_backward(int double_, void* up, const void* block, const void* d, const void* g,
                            const void* wout, void* bias, void* colsum, int64_t nv, int64_t n, int64_t w,
                            int64_t n1, int64_t n2) {
    if (double_) PINN_LAM_DISPATCH(double, n1, n2, backward, up, block, d, g, wout, bias, colsum, nv, n, w, n1, n2);
    else PINN_LAM_DISPATCH(float, n1, n2, backward, up, block, d, g, wout, bias, colsum, nv, n, w, n1, n2);
}

}  // extern "C"
