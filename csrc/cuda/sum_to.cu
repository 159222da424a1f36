// sum_to_size on CUDA: one block per output element (grid-stride over outputs), threads stride
// over the reduced index space, a fixed block tree combines them. Deterministic, no atomics.
#include <ATen/Dispatch.h>
#include <lossext/common.h>
#include <lossext/cuda/utils.cuh>
#include <lossext/sum_to.h>

namespace lossext::cuda {
namespace {

template <class T>
__global__ void sum_to_kernel(const SumToArgs a) {
  const T* in = static_cast<const T*>(a.in);
  for (int64_t o = blockIdx.x; o < a.nout; o += gridDim.x) {
    const int64_t base = sum_to_offset(o, a.nk, a.ksize, a.kstride);
    double s = 0;
    for (int64_t r = threadIdx.x; r < a.nred; r += blockDim.x)
      s += static_cast<double>(in[base + sum_to_offset(r, a.nr, a.rsize, a.rstride)]);
    s = block_sum(s);
    if (threadIdx.x == 0) static_cast<T*>(a.out)[o] = static_cast<T>(s);
  }
}

void sum_to_cuda(const SumToArgs& a) {
  LOSSEXT_DISPATCH_FLOATING_TYPES(a.dtype, "lossext_sum_to_cuda", [&] {
    const int64_t grid = std::min<int64_t>(a.nout, int64_t(sm_count()) * 16);
    sum_to_kernel<scalar_t><<<grid, 256, 0, c10::cuda::getCurrentCUDAStream()>>>(a);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

}  // namespace
}  // namespace lossext::cuda

LOSSEXT_REGISTER_CUDA(lossext::sum_to_stub, &lossext::cuda::sum_to_cuda);
