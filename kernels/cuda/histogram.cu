// Histograms of a batch of images, (B, n) row-major, into out (B, bins) int64, which the
// caller zeroes first. Launch with grid (B, P) and exactly FD_BLOCK threads per block:
// block (i, p) counts a strided share of image i.
//
// With use_shared != 0 each block counts into a private sub-histogram of `bins`
// unsigned ints in dynamic shared memory (launch with bins * 4 bytes), then adds its
// non-zero counts to out with 64-bit atomics. The caller keeps the pixels one block
// sees below 2**32. With use_shared == 0 (too many bins for shared memory) every pixel
// is added to out directly with a 64-bit global atomic. Counts are integers, so the
// result does not depend on the order of the atomics.
//
// Two ways to find a pixel's bin, the same as kernels/histograms.py:
//   framediff_histogram_lut_<u8|u16>    a value -> bin lookup table (`_bin_lookup`),
//                                       int32 entries already in [0, bins).
//   framediff_histogram_range_<f32|f64> floor((x - lo) * scale) clipped to
//                                       [0, bins - 1], scale = bins / (hi - lo) computed
//                                       by the caller; x is widened to double first.
//                                       NaN pixels are not counted.
//
// Self-contained: no includes, so NVRTC (CuPy RawModule) and `nvcc -ptx` both compile
// it as is.

#define FD_BLOCK 256

extern __shared__ unsigned int fd_hist_shared[];

struct FdLutBin {
    const int* lut;

    template <typename T>
    __device__ __forceinline__ int operator()(T v) const
    {
        return lut[v];
    }
};


template <typename T, typename BinOf>
__device__ __forceinline__ void fd_histogram(
    const T* __restrict__ images, long long n, int bins, int use_shared, BinOf bin_of,
    long long* __restrict__ out)
{
    const long long image = blockIdx.x;
    const T* img = images + image * n;
    unsigned long long* hist = (unsigned long long*)(out + image * bins);
    const long long start = (long long)blockIdx.y * FD_BLOCK + threadIdx.x;
    const long long stride = (long long)gridDim.y * FD_BLOCK;

    if (use_shared) {
        // use_shared is a kernel argument, so every thread of the block takes this
        // branch together and the barriers below are safe.
        for (int j = threadIdx.x; j < bins; j += FD_BLOCK) {
            fd_hist_shared[j] = 0u;
        }
        __syncthreads();
        for (long long i = start; i < n; i += stride) {
            const int k = bin_of(img[i]);
            if (k >= 0) {
                atomicAdd(&fd_hist_shared[k], 1u);
            }
        }
        __syncthreads();
        for (int j = threadIdx.x; j < bins; j += FD_BLOCK) {
            const unsigned int c = fd_hist_shared[j];
            if (c != 0u) {
                atomicAdd(&hist[j], (unsigned long long)c);
            }
        }
    } else {
        for (long long i = start; i < n; i += stride) {
            const int k = bin_of(img[i]);
            if (k >= 0) {
                atomicAdd(&hist[k], 1ull);
            }
        }
    }
}

#define FD_HISTOGRAM_LUT(SUFFIX, T)                                                        \
    extern "C" __global__ void __launch_bounds__(FD_BLOCK) framediff_histogram_lut_##SUFFIX( \
        const T* images, long long n, const int* lut, int bins, int use_shared,            \
        long long* out)                                                                    \
    {                                                                                      \
        FdLutBin bin_of;                                                                   \
        bin_of.lut = lut;                                                                  \
        fd_histogram<T, FdLutBin>(images, n, bins, use_shared, bin_of, out);               \
    }

FD_HISTOGRAM_LUT(u8, unsigned char)
FD_HISTOGRAM_LUT(u16, unsigned short)
