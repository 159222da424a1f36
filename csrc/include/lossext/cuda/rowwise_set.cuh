// The CUDA row-wise driver for target-set losses (F::kTargetSet; multilabel_margin_loss; contract
// in lossext/rowwise.h, the CPU counterpart and the layout of the operands in cpu/rowwise_set.h).
// A group of threads per row (a warp for C <= 1024, else a 512-thread block), grid-stride over rows:
//   1. every thread reads the row's target list up to the first -1 (the same addresses: one
//      transaction per entry for the group); the group checks every entry in [-1, C) (a vote). A
//      row with an entry out of range gets a NaN loss and a NaN gradient row, without reading or
//      writing out of bounds and without a host sync (torch's CUDA kernel reads the int64 target
//      into an int, pytorch#191567, and returns a value where the CPU raises, pytorch#99410);
//   2. forward: the group writes the row's is-target mask (zeros, a sync, the ones, a sync);
//   3. per listed target j: pass 1 relative to x_{t_j}, a group merge, finish: target j's loss
//      term; one thread adds grad_target(k_j) to the target's gradient (zeroed first by it);
//   4. pass 2: each thread writes dL/dx_c = sum_j grad(k_j, x_c, y_c) of its non-target classes,
//      with k_j = resume(nullptr, smp_j) (the coefficients grad needs; x_{t_j} re-read from L1).
// Reduced losses: per-block partials in double added in order by finalize_sum (no atomics); the
// mean's divisor N is known on the host.
#pragma once

#include <lossext/cuda/rowwise_kernels.cuh>

#include <limits>

namespace lossext::cuda {

template <int kGroup>
__device__ __forceinline__ bool group_any(bool v) {
  if constexpr (kGroup > 32) {
    return __syncthreads_or(v) != 0;
  } else {
    return __any_sync(0xffffffffu, v) != 0;
  }
}

template <class T, class F, class P, int kThreads, int kGroup>
__global__ void __launch_bounds__(kThreads)
rowwise_set_kernel(const RowwiseArgs a, const P params, double inv, double* __restrict__ partials) {
  using M = typename RowMath<T>::type;
  constexpr int kRows = kThreads / kGroup, kS = F::kStats, kK = F::kCoefs;
  const F f(params, a.C, static_cast<M>(a.C));
  const int lane = threadIdx.x % kGroup;
  const int64_t grp = threadIdx.x / kGroup;
  const bool fwd = a.mode == RowMode::kForward;
  const bool none = a.reduction == Reduction::None;
  const int64_t C = a.C;
  const M nan = std::numeric_limits<M>::quiet_NaN();
  double acc = 0;
  // The row loop runs the same number of times in every thread of a block (block groups sync inside).
  const int64_t stride = int64_t(gridDim.x) * kRows;
  const int64_t rows_here = a.N > int64_t(blockIdx.x) * kRows + grp
                                ? (a.N - (int64_t(blockIdx.x) * kRows + grp) + stride - 1) / stride : 0;
  for (int64_t it = 0; it < rows_here; ++it) {
    const int64_t n = int64_t(blockIdx.x) * kRows + grp + it * stride;
    const RowPtrs<T> rp = row_ptrs<T>(a, n, 0);
    const T* x = rp.x;
    T* y = const_cast<T*>(rp.y);  // the is-target row: written by the forward
    T* g = rp.g;
    const int64_t* tr = static_cast<const int64_t*>(a.target) + n * a.tN;
    bool bad = false;
    for (int64_t c = lane; c < C; c += kGroup) {
      const int64_t t = tr[c * a.tC];
      bad = bad || t < -1 || t >= C;
    }
    bad = group_any<kGroup>(bad);
    int64_t m = 0;  // the listed targets: tr[0 .. m)
    while (m < C && tr[m * a.tC] >= 0) ++m;
    const M rs = static_cast<M>(fwd ? inv : inv * static_cast<double>(static_cast<M>(
        static_cast<const T*>(a.grad_output)[none ? n * a.gN : 0])));
    if (bad) {  // uniform over the group
      for (int64_t c = lane; c < C; c += kGroup) {
        if (fwd) y[c] = T(0);
        if (g) g[c] = static_cast<T>(nan);
      }
      if (fwd && lane == 0) {
        if (none) static_cast<T*>(a.loss)[n] = static_cast<T>(nan);
        acc += static_cast<double>(nan);
      }
      group_sync<kGroup>();
      continue;
    }
    if (fwd) {
      for (int64_t c = lane; c < C; c += kGroup) y[c] = T(0);
      group_sync<kGroup>();
      for (int64_t j = lane; j < m; j += kGroup) y[tr[j * a.tC]] = T(1);
    }
    if (g && lane == 0)
      for (int64_t j = 0; j < m; ++j) g[tr[j * a.tC]] = T(0);
    group_sync<kGroup>();
    M loss = 0;
    for (int64_t j = 0; j < m; ++j) {
      const int64_t t = tr[j * a.tC];
      const RowSample<M> smp{M(1), static_cast<M>(x[t]), rs};
      M st[kS];
      row_init(f, st, M(0), smp.xt);
      for (int64_t c = lane; c < C; c += kGroup) {
        const M xv[1] = {static_cast<M>(x[c])}, yv[1] = {static_cast<M>(y[c])}, wv[1] = {M(1)};
        f.template add<false, 1>(st, xv, yv, wv);
      }
      group_merge<kGroup>(f, st);
      M k[kK];
      loss += f.finish(st, smp, k, nullptr);
      if (g && lane == 0) g[t] = static_cast<T>(static_cast<M>(g[t]) + f.grad_target(k, smp.xt));
    }
    if (fwd && lane == 0) {
      if (none) static_cast<T*>(a.loss)[n] = static_cast<T>(loss);
      acc += static_cast<double>(loss);
    }
    if (g) {
      for (int64_t c = lane; c < C; c += kGroup) {
        const M yc = static_cast<M>(y[c]);
        if (yc != M(0)) continue;  // a target: its gradient came from grad_target above
        const M xc = static_cast<M>(x[c]);
        M sum = 0;
        for (int64_t j = 0; j < m; ++j) {
          const RowSample<M> smp{M(1), static_cast<M>(x[tr[j * a.tC]]), rs};
          M k[kK], gx, gy;
          f.resume(nullptr, smp, k);
          f.grad(k, xc, yc, M(1), gx, gy);
          sum += gx;
        }
        g[c] = static_cast<T>(sum);
      }
    }
    group_sync<kGroup>();  // the next row's mask writes come after this row's reads
  }
  if (fwd && !none) {
    acc = block_sum(acc);
    if (threadIdx.x == 0) partials[blockIdx.x] = acc;
  }
}

// Runs the target-set functor F on a (dtype T) on the current stream.
template <class T, class F, class P>
void rowwise_set_cuda(const RowwiseArgs& a, const P& params) {
  const c10::Device device = current_cuda_device();
  auto stream = c10::cuda::getCurrentCUDAStream();
  const bool fwd = a.mode == RowMode::kForward;
  const bool reduce = a.reduction != Reduction::None;
  // The mean over the N rows (NaN for an empty batch: 0 * inf in finalize_sum).
  const double inv = a.reduction == Reduction::Mean ? 1.0 / static_cast<double>(a.N) : 1.0;
  const bool warp_rows = a.C <= kWarpRowsMaxC;
  const int64_t grid = warp_rows ? grid_for(a.N, kWarpRowsThreads / 32, 8) : grid_for(a.N, 1, 4);
  const at::Tensor partials = partials_buffer(grid, device);
  double* pp = partials.data_ptr<double>();
  const bool work = a.N > 0 && a.C > 0;
  if (work) {
    if (warp_rows) {
      rowwise_set_kernel<T, F, P, kWarpRowsThreads, 32><<<grid, kWarpRowsThreads, 0, stream>>>(a, params, inv, pp);
    } else {
      rowwise_set_kernel<T, F, P, kBlockRowThreads, kBlockRowThreads>
          <<<grid, kBlockRowThreads, 0, stream>>>(a, params, inv, pp);
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  if (fwd && reduce) finalize_sum<T>(pp, work ? grid : 0, a.reduction == Reduction::Mean ? inv : 1.0, nullptr,
                                     static_cast<T*>(a.loss));
}

}  // namespace lossext::cuda
