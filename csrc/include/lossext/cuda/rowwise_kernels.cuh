// The CUDA row-wise driver's kernels and launcher (see lossext/cuda/rowwise.cuh). F is a loss
// functor of the row-wise contract (lossext/rowwise.h) over the math type M.
#pragma once

#include <lossext/cuda/rowwise.cuh>

namespace lossext::cuda {

constexpr int kWarpRowsThreads = 256;  // warp per row: 8 rows per block
constexpr int kBlockRowThreads = 512;  // block per row
constexpr int64_t kWarpRowsMaxC = 1024;
constexpr int kSpatialThreads = 256;

// The functor of a launch: its params and the device-side W (sum of the class weights).
template <class F, class P, class M>
__device__ __forceinline__ F make_functor(const P& p, const RowwiseArgs& a, const double* scalars) {
  return F(p, a.C, static_cast<M>(scalars ? scalars[1] : static_cast<double>(a.C)));
}

// Plain addition as a group merge (the second sweep's sums, lossext/rowwise.h: kStats2).
struct SumMerge {
  template <class M, int K>
  __device__ __forceinline__ void merge(M (&s)[K], const M (&o)[K]) const {
#pragma unroll
    for (int k = 0; k < K; ++k) s[k] += o[k];
  }
};

// kGroup threads per row (1: the spatial layout, a thread per row walking the strided class dim,
// coalesced across threads). VEC > 1: 16-byte packs of a contiguous row.
template <class T, class F, class P, int kThreads, int kGroup, int VEC>
__global__ void __launch_bounds__(kThreads)
rowwise_kernel(const RowwiseArgs a, const P params, const double* __restrict__ scalars,
                    double* __restrict__ partials) {
  using M = typename RowMath<T>::type;
  constexpr int kRows = kThreads / kGroup, kS = F::kStats, kK = F::kCoefs;
  constexpr bool kZ = RowThird<F>::value;  // a third operand (lossext/rowwise.h)
  const F f = make_functor<F, P, M>(params, a, scalars);
  const int lane = threadIdx.x % kGroup;
  const int64_t grp = threadIdx.x / kGroup;
  const bool fwd = a.mode == RowMode::kForward;
  const bool none = a.reduction == Reduction::None;
  const double inv = a.reduction == Reduction::Mean ? 1.0 / scalars[0] : 1.0;
  const T* w = static_cast<const T*>(a.weight);
  const M* sw = static_cast<const M*>(a.sweep_weight);  // what the sweeps read as w, where set
  auto w_at = [&](int64_t c) -> M { return sw ? sw[c] : static_cast<M>(w[c]); };
  M* saved = static_cast<M*>(a.saved);
  const int64_t C = a.C, rows = a.N * a.S;
  const bool aliased = a.grad_input == a.input;  // the opt-in in-place gradient
  // Class strides: 1 in the rows layout wherever a row is swept (packs need it), the operands' own
  // in the spatial one (and for nll_loss's x_t, read at any strides).
  const int64_t xc = a.st[kRowInput][1], gc = a.st[kRowGradInput][1];
  const int64_t yc = a.st[kRowOther][1], gyc = a.st[kRowGradOther][1];
  const int64_t zc = a.st[kRowThird][1], gzc = a.st[kRowGradThird][1];
  double acc = 0;
  for (int64_t row = int64_t(blockIdx.x) * kRows + grp; row < rows; row += int64_t(gridDim.x) * kRows) {
    const int64_t n = row / a.S, s = row - n * a.S;
    const RowPtrs<T> rp = row_ptrs<T>(a, n, s);
    const T* x = rp.x;
    const T* y = rp.y;
    T* g = rp.g;
    T* gy = rp.gy;
    T* gz = rp.gz;
    const ClassSample cs = sample_of(a, n, s);
    if (!cs.active && !cs.invalid) {  // ignored: no loss, zero gradient (uniform over the group)
      for (int64_t c = lane; c < C; c += kGroup) {
        if (g) g[c * gc] = T(0);
        if (gy) gy[c * gyc] = T(0);
        if (gz) gz[c * gzc] = T(0);
      }
      if (fwd && lane == 0) {
        for (int q = 0; q < F::kSaved; ++q) saved[row * F::kSaved + q] = M(0);
        if (none) static_cast<T*>(a.loss)[row] = T(0);
      }
      continue;
    }
    RowSample<M> smp = row_sample<T>(a, cs, x, xc, row_scale<T>(a, n, s, inv));
    smp.v = value_at(a, n, s);
    const int64_t t = cs.active ? cs.cls : -1;  // an invalid target matches no class
    M k[kK];
    if (fwd) {
      M st[kS];
      row_init(f, st, C > 0 ? static_cast<M>(x[0]) : M(0), smp.xt);
      if constexpr (F::kPass1) {
        for_row_packs<VEC, kGroup>(x, C, lane, [&](int64_t c, auto cnt) {
          constexpr int CNT = decltype(cnt)::value;
          M xv[CNT], yv[CNT], zv[CNT], wv[CNT];
          load_pack<CNT>(x + c * xc, xv);
          if constexpr (F::kOther) load_pack<CNT>(y + c * yc, yv);  // (yc == 1 wherever CNT > 1)
          if constexpr (kZ) load_pack<CNT>(rp.z + c * zc, zv);
#pragma unroll
          for (int i = 0; i < CNT; ++i) {
            if constexpr (!F::kOther) yv[i] = M(0);
            wv[i] = F::kWeighted ? w_at(c + i) : M(1);
          }
          if constexpr (kZ) {
            f.template add<false, CNT>(st, xv, yv, zv, wv);
          } else {
            f.template add<false, CNT>(st, xv, yv, wv);
          }
        });
        group_merge<kGroup>(f, st);
      } else if (aliased) {
        group_sync<kGroup>();  // every thread has read x_t before anyone overwrites it
      }
      M l = f.finish(st, smp, k, saved + row * F::kSaved);
      if constexpr (RowStats2<F>::value > 0) {  // the second sweep, with finish's k
        M s2[RowStats2<F>::value] = {};
        for_row_packs<VEC, kGroup>(x, C, lane, [&](int64_t c, auto cnt) {
          constexpr int CNT = decltype(cnt)::value;
          M xv[CNT], wv[CNT];
          load_pack<CNT>(x + c * xc, xv);
#pragma unroll
          for (int i = 0; i < CNT; ++i) wv[i] = F::kWeighted ? w_at(c + i) : M(1);
          f.template add2<CNT>(s2, k, xv, wv);
        });
        group_merge<kGroup>(SumMerge{}, s2);
        l = f.finish2(s2, smp, k, saved + row * F::kSaved);
      }
      if (lane == 0) {
        if (none) static_cast<T*>(a.loss)[row] = static_cast<T>(l);
        acc += static_cast<double>(l);
      }
    } else {
      f.resume(saved + row * F::kSaved, smp, k);
      // An in-place backward (linear_cross_entropy's chunks): every thread has read x_t (row_sample)
      // before the thread owning column t overwrites it in pass 2.
      if (aliased) group_sync<kGroup>();
    }
    if (g || gy || gz) {  // pass 2
      for_row_packs<VEC, kGroup>(x, C, lane, [&](int64_t c, auto cnt) {
        constexpr int CNT = decltype(cnt)::value;
        M xv[CNT], yv[CNT], zv[CNT], gv[CNT], gyv[CNT], gzv[CNT];
        load_pack<CNT>(x + c * xc, xv);
        if constexpr (F::kOther) load_pack<CNT>(y + c * yc, yv);
        if constexpr (kZ) load_pack<CNT>(rp.z + c * zc, zv);
#pragma unroll
        for (int i = 0; i < CNT; ++i) {
          if constexpr (!F::kOther) yv[i] = M(0);
          const M wi = F::kWeighted ? w_at(c + i) : M(1);
          if constexpr (kZ) {
            f.grad(k, xv[i], yv[i], zv[i], wi, gv[i], gyv[i], gzv[i]);
          } else {
            f.grad(k, xv[i], yv[i], wi, gv[i], gyv[i]);
          }
          if (c + i == t) gv[i] = f.grad_target(k, smp.xt);
        }
        if (g) store_pack<CNT>(g + c * gc, gv);
        if constexpr (F::kOther) {
          if (gy) store_pack<CNT>(gy + c * gyc, gyv);
        }
        if constexpr (kZ) {
          if (gz) store_pack<CNT>(gz + c * gzc, gzv);
        }
      });
    }
  }
  if (fwd && !none) {
    acc = block_sum(acc);
    if (threadIdx.x == 0) partials[blockIdx.x] = acc;
  }
}

// Runs functor F on a (dtype T) on the current stream.
template <class T, class F, class P>
void rowwise_cuda(const RowwiseArgs& a, const P& params) {
  using M = typename RowMath<T>::type;
  constexpr int VEC = 16 / sizeof(T);
  const c10::Device device = current_cuda_device();
  auto stream = c10::cuda::getCurrentCUDAStream();
  const int64_t rows = a.N * a.S;
  // {denominator, W} on the device: the mean's divisor, and W where class weights are given.
  const bool need_scalars = a.reduction == Reduction::Mean || a.weight;
  const at::Tensor scalars = need_scalars ? rowwise_prepass(a, device) : at::Tensor();
  const double* sc = need_scalars ? scalars.data_ptr<double>() : nullptr;
  if (need_scalars && a.mean_denominator) {  // the caller's denominator (a chunk of a larger problem)
    C10_CUDA_CHECK(cudaMemcpyAsync(scalars.data_ptr<double>(), a.mean_denominator, sizeof(double),
                                   cudaMemcpyDeviceToDevice, stream));
  }
  const bool fwd = a.mode == RowMode::kForward;
  const bool reduce = a.reduction != Reduction::None;
  const bool work = rows > 0 && (a.C > 0 || a.empty_row_loss);
  int64_t grid;
  if (a.spatial) {
    grid = grid_for(rows, kSpatialThreads, 8);
  } else if (a.C <= kWarpRowsMaxC) {
    grid = grid_for(rows, kWarpRowsThreads / 32, 8);
  } else {
    grid = grid_for(rows, 1, 4);
  }
  const at::Tensor partials = partials_buffer(grid, device);
  double* pp = partials.data_ptr<double>();
  if (work) {
    const bool packs = !a.spatial && rowwise_packs_ok(a, sizeof(T));
    if (a.spatial) {
      rowwise_kernel<T, F, P, kSpatialThreads, 1, 1><<<grid, kSpatialThreads, 0, stream>>>(a, params, sc, pp);
    } else if (a.C <= kWarpRowsMaxC) {
      if (packs) {
        rowwise_kernel<T, F, P, kWarpRowsThreads, 32, VEC><<<grid, kWarpRowsThreads, 0, stream>>>(a, params, sc, pp);
      } else {
        rowwise_kernel<T, F, P, kWarpRowsThreads, 32, 1><<<grid, kWarpRowsThreads, 0, stream>>>(a, params, sc, pp);
      }
    } else if (packs) {
      rowwise_kernel<T, F, P, kBlockRowThreads, kBlockRowThreads, VEC>
          <<<grid, kBlockRowThreads, 0, stream>>>(a, params, sc, pp);
    } else {
      rowwise_kernel<T, F, P, kBlockRowThreads, kBlockRowThreads, 1>
          <<<grid, kBlockRowThreads, 0, stream>>>(a, params, sc, pp);
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  } else if (fwd && rows > 0) {  // no classes: every loss is an empty sum (class targets: all ignored)
    if (F::kSaved > 0) C10_CUDA_CHECK(cudaMemsetAsync(a.saved, 0, rows * F::kSaved * sizeof(M), stream));
    if (!reduce) C10_CUDA_CHECK(cudaMemsetAsync(a.loss, 0, rows * sizeof(T), stream));
  }
  if (fwd && reduce) {
    finalize_sum<T>(pp, work ? grid : 0, 1.0, a.reduction == Reduction::Mean ? sc : nullptr, static_cast<T*>(a.loss));
  }
}

}  // namespace lossext::cuda
