// cross_entropy CUDA kernels. Math and notation: losses/cross_entropy.h; layouts and building
// blocks: lossext/rowwise.h, lossext/cuda/rowwise.cuh.
//
// Rows layout: a group of threads per row (a warp for C <= 1024, else the whole 512-thread
// block), grid-stride over rows. Pass 1 reads the row once in 16-byte packs, keeping an online
// max / sum of exponentials (plus linear sums) in registers; a group reduction gives the lse. Pass 2
// re-reads the row (still in L2) and writes the final gradient once. Every thread visits the same
// elements in both passes, so the in-place variant (gradient over the logits) has no cross-thread
// hazard; the target's logit reaches the loss through the reduction, never through a re-read.
// Spatial layout: one thread per (n, s) sample walks the classes (coalesced across threads).
// Reduced losses: per-block partials in double, added in order by finalize_sum (no atomics).
// A class target outside [0, C) (not ignore_index) cannot raise here without a host sync: the
// kernels never index with it; the sample's loss and gradient row are NaN, and it adds nothing to
// the mean's denominator (the reduced loss is then NaN too).
#include <lossext/cuda/rowwise.cuh>
#include <losses/cross_entropy.h>

namespace lossext::cuda {
namespace {

constexpr int kWarpRowsThreads = 256;  // warp per row: 8 rows per block
constexpr int kBlockRowThreads = 512;  // block per row
constexpr int64_t kWarpRowsMaxC = 1024;
constexpr int kSpatialThreads = 256;

template <class T, int K, int kThreads, int kGroup, int VEC>
__global__ void __launch_bounds__(kThreads)
ce_rows_kernel(const RowwiseArgs a, const double* __restrict__ scalars, double* __restrict__ partials) {
  using M = typename RowMath<T>::type;
  using Tr = CETraits<K>;
  constexpr int kRows = kThreads / kGroup;
  const int lane = threadIdx.x % kGroup;
  const int64_t grp = threadIdx.x / kGroup;
  const bool fwd = a.mode == RowMode::kForward;
  const bool none = a.reduction == Reduction::None;
  const double inv = a.reduction == Reduction::Mean ? 1.0 / scalars[0] : 1.0;
  const CEConst<M> k{static_cast<M>(a.smoothing), static_cast<M>(a.C),
                     static_cast<M>(scalars ? scalars[1] : static_cast<double>(a.C))};
  const T* w = static_cast<const T*>(a.weight);
  M* lse_buf = static_cast<M*>(a.lse);
  const int64_t C = a.C, rows = a.N * a.S;
  double acc = 0;
  for (int64_t row = int64_t(blockIdx.x) * kRows + grp; row < rows; row += int64_t(gridDim.x) * kRows) {
    const int64_t n = row / a.S, s = row - n * a.S;
    const T* x = static_cast<const T*>(a.input) + n * a.st[kRowInput][0] + s * a.st[kRowInput][2];
    T* g = a.grad_input ? static_cast<T*>(a.grad_input) + n * a.st[kRowGradInput][0] + s * a.st[kRowGradInput][2]
                        : nullptr;
    const T* y = nullptr;
    T* gt = nullptr;
    int64_t t = -1;
    M wt = M(0);
    if constexpr (Tr::kProb) {
      y = static_cast<const T*>(a.target) + n * a.st[kRowTarget][0] + s * a.st[kRowTarget][2];
      if (a.grad_target)
        gt = static_cast<T*>(a.grad_target) + n * a.st[kRowGradTarget][0] + s * a.st[kRowGradTarget][2];
    } else {
      const ClassSample cs = sample_of(a, n, s);
      if (!cs.active && !cs.invalid) {  // ignored: no loss, zero gradient (uniform over the group)
        if (g)
          for (int64_t c = lane; c < C; c += kGroup) g[c] = T(0);
        if (fwd && lane == 0) {
          lse_buf[row] = M(0);
          if (none) static_cast<T*>(a.loss)[row] = T(0);
        }
        continue;
      }
      t = cs.active ? cs.cls : -1;  // an invalid target matches no class
      wt = sample_weight<T>(a, cs);  // NaN when invalid
    }

    RowAcc<M> r = row_acc_identity<M>();
    M lse;
    if (fwd) {  // pass 1
      for_row_packs<VEC, kGroup>(x, C, lane, [&](int64_t c, auto cnt) {
        constexpr int CNT = decltype(cnt)::value;
        M xv[CNT];
        load_pack<CNT>(x + c, xv);
        M bm = xv[0];
#pragma unroll
        for (int i = 1; i < CNT; ++i) bm = nan_max(bm, xv[i]);
        const M mn = nan_max(r.m, bm);
        M sum = M(0);
#pragma unroll
        for (int i = 0; i < CNT; ++i) sum += dev_exp(xv[i] - mn);
        r.z = r.z * dev_exp(r.m - mn) + sum;
        r.m = mn;
        if constexpr (Tr::kProb) {
          M yv[CNT];
          load_pack<CNT>(y + c, yv);
#pragma unroll
          for (int i = 0; i < CNT; ++i) {
            const M wc = Tr::kW ? static_cast<M>(w[c + i]) : M(1);
            r.sx += wc * xv[i];
            r.sy += wc * yv[i];
            r.syx += wc * yv[i] * xv[i];
          }
        } else if constexpr (Tr::kLin) {
#pragma unroll
          for (int i = 0; i < CNT; ++i) r.sx += (Tr::kW ? static_cast<M>(w[c + i]) : M(1)) * xv[i];
        }
        if constexpr (!Tr::kProb) {
#pragma unroll
          for (int i = 0; i < CNT; ++i)
            if (c + i == t) r.xt = xv[i];
        }
      });
      r = group_reduce<kGroup>(r);
      lse = finish_lse(r.m, r.z);
    } else {
      lse = lse_buf[row];
      if constexpr (Tr::kProb) {  // sum_c w_c y_c
        for_row_packs<VEC, kGroup>(y, C, lane, [&](int64_t c, auto cnt) {
          constexpr int CNT = decltype(cnt)::value;
          M yv[CNT];
          load_pack<CNT>(y + c, yv);
#pragma unroll
          for (int i = 0; i < CNT; ++i) r.sy += (Tr::kW ? static_cast<M>(w[c + i]) : M(1)) * yv[i];
        });
        r = group_reduce<kGroup>(r);
      }
    }

    const M rs = row_scale<T>(a, n, s, inv);
    CECoef<M> cf;
    if constexpr (Tr::kProb) {
      cf = ce_prob_coef(k, r.sy, rs, lse);
    } else {
      cf = ce_class_coef(k, wt, rs, lse);
    }
    if (fwd && lane == 0) {
      M l;
      if constexpr (Tr::kProb) {
        l = ce_prob_loss(k, lse, r.sy, r.syx, r.sx);
      } else {
        l = ce_class_loss(k, wt, lse, r.xt, r.sx);
      }
      lse_buf[row] = lse;
      if (none) static_cast<T*>(a.loss)[row] = static_cast<T>(l);
      acc += static_cast<double>(l);
    }
    if (g || gt) {  // pass 2
      for_row_packs<VEC, kGroup>(x, C, lane, [&](int64_t c, auto cnt) {
        constexpr int CNT = decltype(cnt)::value;
        M xv[CNT], yv[CNT] = {}, gv[CNT], gtv[CNT];
        load_pack<CNT>(x + c, xv);
        if constexpr (Tr::kProb) load_pack<CNT>(y + c, yv);
#pragma unroll
        for (int i = 0; i < CNT; ++i) {
          const M wc = Tr::kW ? static_cast<M>(w[c + i]) : M(1);
          gv[i] = ce_grad<K>(dev_exp(xv[i] - lse), yv[i], wc, cf.a, cf.by, cf.e) - (c + i == t ? cf.b : M(0));
          gtv[i] = -cf.by * wc * (xv[i] - lse);
        }
        if (g) store_pack<CNT>(g + c, gv);
        if constexpr (Tr::kProb) {
          if (gt) store_pack<CNT>(gt + c, gtv);
        }
      });
    }
  }
  if (fwd && !none) {
    acc = block_sum(acc);
    if (threadIdx.x == 0) partials[blockIdx.x] = acc;
  }
}

// Spatial layout: one thread per sample, walking the strided class dim.
template <class T, int K>
__global__ void __launch_bounds__(kSpatialThreads)
ce_spatial_kernel(const RowwiseArgs a, const double* __restrict__ scalars, double* __restrict__ partials) {
  using M = typename RowMath<T>::type;
  using Tr = CETraits<K>;
  const bool fwd = a.mode == RowMode::kForward;
  const bool none = a.reduction == Reduction::None;
  const double inv = a.reduction == Reduction::Mean ? 1.0 / scalars[0] : 1.0;
  const CEConst<M> k{static_cast<M>(a.smoothing), static_cast<M>(a.C),
                     static_cast<M>(scalars ? scalars[1] : static_cast<double>(a.C))};
  const T* w = static_cast<const T*>(a.weight);
  M* lse_buf = static_cast<M*>(a.lse);
  const int64_t C = a.C, rows = a.N * a.S;
  const int64_t xc = a.st[kRowInput][1], gc = a.st[kRowGradInput][1];
  const int64_t yc = a.st[kRowTarget][1], gtc = a.st[kRowGradTarget][1];
  double acc = 0;
  for (int64_t row = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; row < rows;
       row += int64_t(gridDim.x) * blockDim.x) {
    const int64_t n = row / a.S, s = row - n * a.S;
    const T* x = static_cast<const T*>(a.input) + n * a.st[kRowInput][0] + s * a.st[kRowInput][2];
    T* g = a.grad_input ? static_cast<T*>(a.grad_input) + n * a.st[kRowGradInput][0] + s * a.st[kRowGradInput][2]
                        : nullptr;
    const T* y = nullptr;
    T* gt = nullptr;
    int64_t t = -1;
    M wt = M(0), xt = M(0);
    if constexpr (Tr::kProb) {
      y = static_cast<const T*>(a.target) + n * a.st[kRowTarget][0] + s * a.st[kRowTarget][2];
      if (a.grad_target)
        gt = static_cast<T*>(a.grad_target) + n * a.st[kRowGradTarget][0] + s * a.st[kRowGradTarget][2];
    } else {
      const ClassSample cs = sample_of(a, n, s);
      if (!cs.active && !cs.invalid) {
        if (g)
          for (int64_t c = 0; c < C; ++c) g[c * gc] = T(0);
        if (fwd) {
          lse_buf[row] = M(0);
          if (none) static_cast<T*>(a.loss)[row] = T(0);
        }
        continue;
      }
      t = cs.active ? cs.cls : -1;
      wt = sample_weight<T>(a, cs);
      if (t >= 0) xt = static_cast<M>(x[t * xc]);  // read before pass 2 may overwrite it
    }
    M lse, sx = M(0), sy = M(0), syx = M(0);
    if (fwd) {
      M m = lse_init_max<M>(), z = M(0);
      for (int64_t c0 = 0; c0 < C; c0 += 4) {  // 4 classes per rescale of z
        M xv[4];
        M bm = lse_init_max<M>();
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          xv[i] = c0 + i < C ? static_cast<M>(x[(c0 + i) * xc]) : lse_init_max<M>();
          bm = nan_max(bm, xv[i]);
        }
        const M mn = nan_max(m, bm);
        M sum = M(0);
#pragma unroll
        for (int i = 0; i < 4; ++i) sum += c0 + i < C ? dev_exp(xv[i] - mn) : M(0);
        z = z * dev_exp(m - mn) + sum;
        m = mn;
        if constexpr (Tr::kLin) {
#pragma unroll
          for (int i = 0; i < 4; ++i) {
            if (c0 + i >= C) break;
            const M wc = Tr::kW ? static_cast<M>(w[c0 + i]) : M(1);
            sx += wc * xv[i];
            if constexpr (Tr::kProb) {
              const M yi = static_cast<M>(y[(c0 + i) * yc]);
              sy += wc * yi;
              syx += wc * yi * xv[i];
            }
          }
        }
      }
      lse = finish_lse(m, z);
    } else {
      lse = lse_buf[row];
      if constexpr (Tr::kProb) {
        for (int64_t c = 0; c < C; ++c) sy += (Tr::kW ? static_cast<M>(w[c]) : M(1)) * static_cast<M>(y[c * yc]);
      }
    }
    const M rs = row_scale<T>(a, n, s, inv);
    CECoef<M> cf;
    if constexpr (Tr::kProb) {
      cf = ce_prob_coef(k, sy, rs, lse);
    } else {
      cf = ce_class_coef(k, wt, rs, lse);
    }
    if (fwd) {
      M l;
      if constexpr (Tr::kProb) {
        l = ce_prob_loss(k, lse, sy, syx, sx);
      } else {
        l = ce_class_loss(k, wt, lse, xt, sx);
      }
      lse_buf[row] = lse;
      if (none) static_cast<T*>(a.loss)[row] = static_cast<T>(l);
      acc += static_cast<double>(l);
    }
    if (g || gt) {
      for (int64_t c = 0; c < C; ++c) {
        const M xv = static_cast<M>(x[c * xc]);
        const M wc = Tr::kW ? static_cast<M>(w[c]) : M(1);
        const M yi = Tr::kProb ? static_cast<M>(y[c * yc]) : M(0);
        if (g) g[c * gc] = static_cast<T>(ce_grad<K>(dev_exp(xv - lse), yi, wc, cf.a, cf.by, cf.e) - (c == t ? cf.b : M(0)));
        if constexpr (Tr::kProb) {
          if (gt) gt[c * gtc] = static_cast<T>(-cf.by * wc * (xv - lse));
        }
      }
    }
  }
  if (fwd && !none) {
    acc = block_sum(acc);
    if (threadIdx.x == 0) partials[blockIdx.x] = acc;
  }
}

// The in-place backward: grad (contiguous (N, C, S)) *= grad_output of its sample.
template <class T>
__global__ void ce_scale_inplace_kernel(const RowwiseArgs a) {
  using M = typename RowMath<T>::type;
  T* g = static_cast<T*>(a.grad_input);
  // loss.backward() of a reduced loss: grad_output is 1 and there is nothing to do. Checked on the
  // device (no host sync), by every thread alike.
  const int64_t cs = a.C * a.S, total = a.N * cs;
  if (a.reduction != Reduction::None) {  // one factor for the whole contiguous buffer
    const M f = row_scale<T>(a, 0, 0, 1.0);
    if (static_cast<double>(static_cast<const T*>(a.grad_output)[0]) == 1.0) return;
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x)
      g[i] = static_cast<T>(static_cast<M>(g[i]) * f);
    return;
  }
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t n = i / cs, s = (i - n * cs) % a.S;
    g[i] = static_cast<T>(static_cast<M>(g[i]) * row_scale<T>(a, n, s, 1.0));
  }
}

enum class Variant { kSpatial, kWarpRows, kBlockRows };

template <class T, int K>
void launch(Variant v, bool packs, int64_t grid, const RowwiseArgs& a, const double* scalars, double* partials) {
  constexpr int VEC = 16 / sizeof(T);
  auto stream = c10::cuda::getCurrentCUDAStream();
  switch (v) {
    case Variant::kSpatial:
      ce_spatial_kernel<T, K><<<grid, kSpatialThreads, 0, stream>>>(a, scalars, partials);
      break;
    case Variant::kWarpRows:
      if (packs) {
        ce_rows_kernel<T, K, kWarpRowsThreads, 32, VEC><<<grid, kWarpRowsThreads, 0, stream>>>(a, scalars, partials);
      } else {
        ce_rows_kernel<T, K, kWarpRowsThreads, 32, 1><<<grid, kWarpRowsThreads, 0, stream>>>(a, scalars, partials);
      }
      break;
    case Variant::kBlockRows:
      if (packs) {
        ce_rows_kernel<T, K, kBlockRowThreads, kBlockRowThreads, VEC>
            <<<grid, kBlockRowThreads, 0, stream>>>(a, scalars, partials);
      } else {
        ce_rows_kernel<T, K, kBlockRowThreads, kBlockRowThreads, 1>
            <<<grid, kBlockRowThreads, 0, stream>>>(a, scalars, partials);
      }
      break;
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <class T>
void cross_entropy_cuda_typed(const RowwiseArgs& a) {
  using M = typename RowMath<T>::type;
  const c10::Device device = current_cuda_device();
  auto stream = c10::cuda::getCurrentCUDAStream();
  const int64_t rows = a.N * a.S;
  if (a.mode == RowMode::kScaleInPlace) {
    const int64_t total = rows * a.C;
    if (total > 0) {
      ce_scale_inplace_kernel<T><<<grid_for(total, 256, 8), 256, 0, stream>>>(a);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
    return;
  }
  // {denominator, W} on the device, when the mean or the weighted smoothing / probability math needs them.
  const bool need_scalars = a.reduction == Reduction::Mean || (a.weight && (a.prob || a.smoothing > 0));
  const at::Tensor scalars = need_scalars ? rowwise_prepass(a, device) : at::Tensor();
  const double* sc = need_scalars ? scalars.data_ptr<double>() : nullptr;
  const bool fwd = a.mode == RowMode::kForward;
  const bool reduce = a.reduction != Reduction::None;
  const bool work = rows > 0 && a.C > 0;
  Variant v;
  int64_t grid;
  if (a.spatial) {
    v = Variant::kSpatial;
    grid = grid_for(rows, kSpatialThreads, 8);
  } else if (a.C <= kWarpRowsMaxC) {
    v = Variant::kWarpRows;
    grid = grid_for(rows, kWarpRowsThreads / 32, 8);
  } else {
    v = Variant::kBlockRows;
    grid = grid_for(rows, 1, 4);
  }
  const at::Tensor partials = partials_buffer(grid, device);
  if (work) {
    const bool packs = !a.spatial && rowwise_packs_ok(a, sizeof(T));
    ce_dispatch_kind(a, [&](auto kind) {
      launch<T, decltype(kind)::value>(v, packs, grid, a, sc, partials.data_ptr<double>());
    });
  } else if (fwd && rows > 0) {  // no classes: every loss is an empty sum (all targets ignored)
    C10_CUDA_CHECK(cudaMemsetAsync(a.lse, 0, rows * sizeof(M), stream));
    if (!reduce) C10_CUDA_CHECK(cudaMemsetAsync(a.loss, 0, rows * sizeof(T), stream));
  }
  if (fwd && reduce) {
    finalize_sum<T>(partials.data_ptr<double>(), work ? grid : 0, 1.0, a.reduction == Reduction::Mean ? sc : nullptr,
                    static_cast<T*>(a.loss));
  }
}

void cross_entropy_cuda(const RowwiseArgs& a) {
  LOSSEXT_DISPATCH_FLOATING_TYPES(a.dtype, "cross_entropy_cuda", [&] { cross_entropy_cuda_typed<scalar_t>(a); });
}

}  // namespace
}  // namespace lossext::cuda

LOSSEXT_REGISTER_CUDA(lossext::cross_entropy_stub, &lossext::cuda::cross_entropy_cuda);
