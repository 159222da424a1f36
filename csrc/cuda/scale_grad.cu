// scale_grad (out of place, a pointwise op) and scale_rows (in place, lossext/scale_rows.h).
#include <lossext/cuda/pointwise.cuh>
#include <lossext/cuda/utils.cuh>
#include <lossext/scale_rows.h>
#include <losses/scale_grad.h>

#include <ATen/Dispatch.h>

LOSSEXT_CUDA_POINTWISE(lossext::scale_grad_stub, lossext::ScaleGradOp);

namespace lossext::cuda {
namespace {

template <class T>
__global__ void scale_rows_kernel(const ScaleRowsArgs a) {
  using M = at::opmath_type<T>;
  T* g = static_cast<T*>(a.grad);
  const T* f = static_cast<const T*>(a.factor);
  const int64_t cs = a.C * a.S, total = a.N * cs;
  const int64_t first = int64_t(blockIdx.x) * blockDim.x + threadIdx.x, stride = int64_t(gridDim.x) * blockDim.x;
  if (!a.per_sample) {
    // loss.backward() of a reduced loss: the factor is 1 and there is nothing to do. Decided on the
    // device (no host sync), by every thread alike.
    const M v = static_cast<M>(f[0]);
    if (v == M(1)) return;
    for (int64_t i = first; i < total; i += stride) g[i] = static_cast<T>(static_cast<M>(g[i]) * v);
    return;
  }
  for (int64_t i = first; i < total; i += stride) {
    const int64_t n = i / cs, s = (i - n * cs) % a.S;
    g[i] = static_cast<T>(static_cast<M>(g[i]) * static_cast<M>(f[n * a.S + s]));
  }
}

void scale_rows_cuda(const ScaleRowsArgs& a) {
  const int64_t total = a.N * a.C * a.S;
  if (total == 0) return;
  LOSSEXT_DISPATCH_FLOATING_TYPES(a.dtype, "scale_rows_cuda", [&] {
    scale_rows_kernel<scalar_t><<<grid_for(total, 256, 8), 256, 0, c10::cuda::getCurrentCUDAStream()>>>(a);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

}  // namespace
}  // namespace lossext::cuda

LOSSEXT_REGISTER_CUDA(lossext::scale_rows_stub, &lossext::cuda::scale_rows_cuda);
