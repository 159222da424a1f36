// nll_loss CUDA kernels (see losses/nll_loss.h): one thread per sample reads its target's
// log-probability; the gradient buffer (dense) is zeroed with one memset and each sample writes its
// one non-zero. Reduced losses: per-block partials in double, added in order by finalize_sum.
// A class target outside [0, C) (not ignore_index) cannot raise without a host sync: it is never
// used as an index; the sample's loss is NaN, its gradient row NaN, and it adds nothing to the
// mean's denominator.
#include <lossext/cuda/rowwise.cuh>
#include <losses/nll_loss.h>

namespace lossext::cuda {
namespace {

constexpr int kThreads = 256;

template <class T>
__global__ void __launch_bounds__(kThreads)
nll_loss_kernel(const RowwiseArgs a, const double* __restrict__ scalars, double* __restrict__ partials) {
  using M = typename RowMath<T>::type;
  const bool fwd = a.mode == RowMode::kForward;
  const bool none = a.reduction == Reduction::None;
  const double inv = a.reduction == Reduction::Mean ? 1.0 / scalars[0] : 1.0;
  const T* x = static_cast<const T*>(a.input);
  T* g = static_cast<T*>(a.grad_input);
  const int64_t* xs = a.st[kRowInput];
  const int64_t* gs = a.st[kRowGradInput];
  const int64_t rows = a.N * a.S;
  double acc = 0;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < rows; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t n = i / a.S, s = i - n * a.S;
    const ClassSample cs = sample_of(a, n, s);
    const M wt = sample_weight<T>(a, cs);  // 0 ignored, NaN invalid
    M loss = M(0);
    if (cs.active) {
      if (fwd) loss = -wt * static_cast<M>(x[n * xs[0] + cs.cls * xs[1] + s * xs[2]]);
      if (g) g[n * gs[0] + cs.cls * gs[1] + s * gs[2]] = static_cast<T>(-wt * row_scale<T>(a, n, s, inv));
    } else if (cs.invalid) {
      loss = wt;
      if (g)
        for (int64_t c = 0; c < a.C; ++c) g[n * gs[0] + c * gs[1] + s * gs[2]] = static_cast<T>(wt);
    }
    if (fwd) {
      acc += static_cast<double>(loss);
      if (none) static_cast<T*>(a.loss)[i] = static_cast<T>(loss);
    }
  }
  if (fwd && !none) {
    acc = block_sum(acc);
    if (threadIdx.x == 0) partials[blockIdx.x] = acc;
  }
}

template <class T>
void nll_loss_cuda_typed(const RowwiseArgs& a) {
  const c10::Device device = current_cuda_device();
  auto stream = c10::cuda::getCurrentCUDAStream();
  // The mean's denominator, on the device (no host sync).
  const bool mean = a.reduction == Reduction::Mean;
  const at::Tensor scalars = mean ? rowwise_prepass(a, device) : at::Tensor();
  const double* sc = mean ? scalars.data_ptr<double>() : nullptr;
  const int64_t rows = a.N * a.S;
  const bool fwd = a.mode == RowMode::kForward;
  const bool reduce = a.reduction != Reduction::None;
  const int64_t grid = grid_for(rows, kThreads, 8);
  const at::Tensor partials = partials_buffer(grid, device);
  if (a.grad_input && rows * a.C > 0)  // the dense gradient buffer (empty_like of the input)
    C10_CUDA_CHECK(cudaMemsetAsync(a.grad_input, 0, rows * a.C * sizeof(T), stream));
  if (rows > 0) {
    nll_loss_kernel<T><<<grid, kThreads, 0, stream>>>(a, sc, partials.data_ptr<double>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  if (fwd && reduce) {
    finalize_sum<T>(partials.data_ptr<double>(), rows > 0 ? grid : 0, 1.0, sc, static_cast<T*>(a.loss));
  }
}

void nll_loss_cuda(const RowwiseArgs& a) {
  LOSSEXT_DISPATCH_FLOATING_TYPES(a.dtype, "nll_loss_cuda", [&] { nll_loss_cuda_typed<scalar_t>(a); });
}

}  // namespace
}  // namespace lossext::cuda

LOSSEXT_REGISTER_CUDA(lossext::nll_loss_stub, &lossext::cuda::nll_loss_cuda);
