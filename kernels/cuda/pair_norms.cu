// Difference accumulators of a batch of image pairs, in one pass over memory.
//
// Pair k compares image first[k] of stack a with image second[k] of stack b (n pixels
// each), so pairs within one decoded stack need no gathering copy. For each pair:
// s1 = sum |a-b|, s0 = count(|a-b| > tol), s2 = sum (a-b)^2, mx = max |a-b|,
// sr = sum a^2 -- the accumulators of `pair_norms_int` in kernels/_cpu_fused.py. Integer pixels are differenced and summed
// in 64-bit signed integers (exact, never wrapping); float pixels in double.
//
// Two stages, both deterministic (no floating-point atomics):
//   framediff_pair_norms_<dtype>     grid (K, P): block (k, p) reduces its share of
//                                    pair k into partials[k * P + p].
//   framediff_pair_norms_finish_<acc> grid (K,): block k reduces the P partials of
//                                    pair k, in a fixed order, into out[k].
// The indices must be valid (0 <= first[k] < len(a), 0 <= second[k] < len(b)); the
// Python side checks them.
// Launch both with exactly FD_BLOCK threads per block (the Python side does).
//
// Self-contained: no includes, so NVRTC (CuPy RawModule) and `nvcc -ptx` both compile
// it as is.

#define FD_BLOCK 256
#define FD_WARPS (FD_BLOCK / 32)
#define FD_FULL_MASK 0xffffffffu

// max that propagates NaN like NumPy: a NaN in b wins, a NaN in a stays (b > NaN is
// false). For integers `b != b` is always false.
template <typename V>
__device__ __forceinline__ V fd_max(V a, V b)
{
    return (b > a || b != b) ? b : a;
}

template <typename V>
__device__ __forceinline__ V fd_abs(V d)
{
    return d < V(0) ? -d : d;
}

template <typename V>
__device__ __forceinline__ V fd_warp_sum(V v)
{
    for (int offset = 16; offset > 0; offset >>= 1) {
        v += __shfl_down_sync(FD_FULL_MASK, v, offset);
    }
    return v;
}

template <typename V>
__device__ __forceinline__ V fd_warp_max(V v)
{
    for (int offset = 16; offset > 0; offset >>= 1) {
        v = fd_max(v, __shfl_down_sync(FD_FULL_MASK, v, offset));
    }
    return v;
}

// Block-wide reductions over FD_BLOCK threads; the result is valid in thread 0 only.
// Every thread of the block must call them; `scratch` holds FD_WARPS values and must not
// be reused by another reduction of the same kernel (no barrier after the final read).
template <typename V>
__device__ __forceinline__ V fd_block_sum(V v, V* scratch)
{
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    v = fd_warp_sum(v);
    if (lane == 0) {
        scratch[warp] = v;
    }
    __syncthreads();
    if (warp == 0) {
        v = lane < FD_WARPS ? scratch[lane] : V(0);
        v = fd_warp_sum(v);
    }
    return v;
}

// Same for a max of absolute values: 0 is the identity because every value is >= 0.
template <typename V>
__device__ __forceinline__ V fd_block_max(V v, V* scratch)
{
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    v = fd_warp_max(v);
    if (lane == 0) {
        scratch[warp] = v;
    }
    __syncthreads();
    if (warp == 0) {
        v = lane < FD_WARPS ? scratch[lane] : V(0);
        v = fd_warp_max(v);
    }
    return v;
}

// Stage 1. `a` and `b` are (N, n) and (M, n) row-major, `first` and `second` (K,);
// the partials are (K, P) row-major with K = gridDim.x and P = gridDim.y. `Acc` is long long for integer pixels, double for
// float pixels; `tol` has the same type.
template <typename T, typename Acc>
__device__ __forceinline__ void fd_pair_norms_partial(
    const T* __restrict__ a, const T* __restrict__ b, const long long* __restrict__ first,
    const long long* __restrict__ second, long long n, Acc tol,
    Acc* __restrict__ p_s1, long long* __restrict__ p_s0, Acc* __restrict__ p_s2,
    Acc* __restrict__ p_mx, Acc* __restrict__ p_sr)
{
    __shared__ Acc sh_s1[FD_WARPS];
    __shared__ long long sh_s0[FD_WARPS];
    __shared__ Acc sh_s2[FD_WARPS];
    __shared__ Acc sh_mx[FD_WARPS];
    __shared__ Acc sh_sr[FD_WARPS];

    const long long pair = blockIdx.x;
    const long long parts = gridDim.y;
    const T* ai = a + first[pair] * n;
    const T* bi = b + second[pair] * n;

    Acc s1 = 0, s2 = 0, mx = 0, sr = 0;
    long long s0 = 0;
    const long long stride = parts * FD_BLOCK;
    for (long long i = (long long)blockIdx.y * FD_BLOCK + threadIdx.x; i < n; i += stride) {
        const Acc x = (Acc)ai[i];
        const Acc d = x - (Acc)bi[i];
        const Acc ad = fd_abs(d);
        s1 += ad;
        s2 += d * d;
        sr += x * x;
        s0 += (ad > tol) ? 1 : 0;
        mx = fd_max(mx, ad);
    }

    s1 = fd_block_sum(s1, sh_s1);
    s0 = fd_block_sum(s0, sh_s0);
    s2 = fd_block_sum(s2, sh_s2);
    mx = fd_block_max(mx, sh_mx);
    sr = fd_block_sum(sr, sh_sr);
    if (threadIdx.x == 0) {
        const long long o = pair * parts + blockIdx.y;
        p_s1[o] = s1;
        p_s0[o] = s0;
        p_s2[o] = s2;
        p_mx[o] = mx;
        p_sr[o] = sr;
    }
}

// Stage 2. Partials are (K, parts) row-major, outputs (K,); K = gridDim.x.
template <typename Acc>
__device__ __forceinline__ void fd_pair_norms_finish(
    const Acc* __restrict__ p_s1, const long long* __restrict__ p_s0,
    const Acc* __restrict__ p_s2, const Acc* __restrict__ p_mx,
    const Acc* __restrict__ p_sr, int parts,
    Acc* __restrict__ s1_out, long long* __restrict__ s0_out, Acc* __restrict__ s2_out,
    Acc* __restrict__ mx_out, Acc* __restrict__ sr_out)
{
    __shared__ Acc sh_s1[FD_WARPS];
    __shared__ long long sh_s0[FD_WARPS];
    __shared__ Acc sh_s2[FD_WARPS];
    __shared__ Acc sh_mx[FD_WARPS];
    __shared__ Acc sh_sr[FD_WARPS];

    const long long pair = blockIdx.x;
    const long long base = pair * parts;
    Acc s1 = 0, s2 = 0, mx = 0, sr = 0;
    long long s0 = 0;
    for (int j = threadIdx.x; j < parts; j += FD_BLOCK) {
        s1 += p_s1[base + j];
        s0 += p_s0[base + j];
        s2 += p_s2[base + j];
        mx = fd_max(mx, p_mx[base + j]);
        sr += p_sr[base + j];
    }

    s1 = fd_block_sum(s1, sh_s1);
    s0 = fd_block_sum(s0, sh_s0);
    s2 = fd_block_sum(s2, sh_s2);
    mx = fd_block_max(mx, sh_mx);
    sr = fd_block_sum(sr, sh_sr);
    if (threadIdx.x == 0) {
        s1_out[pair] = s1;
        s0_out[pair] = s0;
        s2_out[pair] = s2;
        mx_out[pair] = mx;
        sr_out[pair] = sr;
    }
}

#define FD_PAIR_NORMS(SUFFIX, T, ACC)                                                      \
    extern "C" __global__ void __launch_bounds__(FD_BLOCK) framediff_pair_norms_##SUFFIX(  \
        const T* a, const T* b, const long long* first, const long long* second,          \
        long long n, ACC tol, ACC* p_s1, long long* p_s0, ACC* p_s2, ACC* p_mx, ACC* p_sr) \
    {                                                                                      \
        fd_pair_norms_partial<T, ACC>(a, b, first, second, n, tol, p_s1, p_s0, p_s2, p_mx, \
                                      p_sr);                                               \
    }

FD_PAIR_NORMS(u8, unsigned char, long long)
FD_PAIR_NORMS(i8, signed char, long long)
FD_PAIR_NORMS(u16, unsigned short, long long)
FD_PAIR_NORMS(i16, short, long long)
FD_PAIR_NORMS(f32, float, double)
FD_PAIR_NORMS(f64, double, double)

#define FD_PAIR_NORMS_FINISH(SUFFIX, ACC)                                                  \
    extern "C" __global__ void __launch_bounds__(FD_BLOCK)                                 \
        framediff_pair_norms_finish_##SUFFIX(                                              \
            const ACC* p_s1, const long long* p_s0, const ACC* p_s2, const ACC* p_mx,      \
            const ACC* p_sr, int parts, ACC* s1, long long* s0, ACC* s2, ACC* mx,          \
            ACC* sr)                                                                       \
    {                                                                                      \
        fd_pair_norms_finish<ACC>(p_s1, p_s0, p_s2, p_mx, p_sr, parts, s1, s0, s2, mx, sr); \
    }

FD_PAIR_NORMS_FINISH(i64, long long)
FD_PAIR_NORMS_FINISH(f64, double)
