// linear_cross_entropy's CPU helpers (losses/linear_cross_entropy.h): the mean's denominator over the
// whole target (the row-wise driver's own pre-pass, which also validates the targets) and the
// float32 accumulation of half-type gradients across chunks, the softcap and the logging statistics
// (lse, z-loss). The row math runs in cross_entropy's
// kernels (csrc/cpu/cross_entropy.cpp).
#include <lossext/cpu/reduce.h>
#include <lossext/cpu/rowwise_prepass.h>
#include <lossext/cpu/vec.h>
#include <losses/linear_cross_entropy.h>

#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>

#include <algorithm>

namespace lossext::CPU_CAPABILITY {
namespace {

at::Tensor lce_denominator_cpu(const RowwiseArgs& a, const char* op) {
  at::Tensor out = at::empty({1}, at::TensorOptions().dtype(at::kDouble));
  LOSSEXT_DISPATCH_FLOATING_TYPES(a.dtype, "lce_denominator_cpu",
                                  [&] { *out.data_ptr<double>() = rowwise_prepass<scalar_t>(a, op); });
  return out;
}

template <class T>
void accumulate_typed(const LceAccArgs& a) {
  using V = Vectorized<float>;
  float* acc = a.acc;
  T* part = static_cast<T*>(a.part);
  chunked_for(a.n, 1 << 16, [&](int64_t b, int64_t e) {
    for (int64_t j = b; j < e; j += V::size()) {
      const int64_t cnt = std::min<int64_t>(V::size(), e - j);
      switch (a.mode) {
        case LceAcc::kSet: vload(part + j, cnt).store(acc + j, cnt); break;
        case LceAcc::kAdd: (V::loadu(acc + j, cnt) + vload(part + j, cnt)).store(acc + j, cnt); break;
        case LceAcc::kFinish: vstore(part + j, V::loadu(acc + j, cnt) + vload(part + j, cnt), cnt); break;
        case LceAcc::kCast: vstore(part + j, V::loadu(acc + j, cnt), cnt); break;
      }
    }
  });
}

void lce_accumulate_cpu(const LceAccArgs& a) {
  if (a.dtype == at::kBFloat16) {
    accumulate_typed<c10::BFloat16>(a);
  } else {
    TORCH_CHECK(a.dtype == at::kHalf, "lce_accumulate: expected a half dtype, got ", a.dtype);
    accumulate_typed<c10::Half>(a);
  }
}

template <class T>
void softcap_typed(const LceCapArgs& a) {
  using M = math_t<T>;
  using V = Vectorized<M>;
  T* x = static_cast<T*>(a.x);
  T* y = static_cast<T*>(a.y);
  const V cap(static_cast<M>(a.cap)), inv(static_cast<M>(1.0 / a.cap)), one(M(1));
  chunked_for(a.n, 1 << 15, [&](int64_t b, int64_t e) {
    for (int64_t j = b; j < e; j += V::size()) {
      const int64_t cnt = std::min<int64_t>(V::size(), e - j);
      if (a.mode == LceCap::kApply) {
        const V c = cap * (vload(x + j, cnt) * inv).tanh();
        vstore(x + j, c, cnt);
        vstore(y + j, c, cnt);
      } else {
        const V u = vload(y + j, cnt) * inv;
        vstore(x + j, vload(x + j, cnt) * (one - u * u), cnt);
      }
    }
  });
}

void lce_softcap_cpu(const LceCapArgs& a) {
  LOSSEXT_DISPATCH_FLOATING_TYPES(a.dtype, "lce_softcap_cpu", [&] { softcap_typed<scalar_t>(a); });
}


// The tokens' statistics (lce_token_stats); sums in double, in chunk order (the same bits for any
// thread count).
template <class T>
void stats_typed(const LceStatsArgs& a) {
  using M = math_t<T>;
  M* lse = static_cast<M*>(a.lse);
  M* zl = static_cast<M*>(a.zl);
  const bool none = a.reduction == Reduction::None;
  const Sums<2> s = chunked_reduce<Sums<2>>(a.n, 1 << 14, [&](int64_t b, int64_t e) {
    Sums<2> part;
    for (int64_t i = b; i < e; ++i) {
      if (a.target && a.weight) {
        const int64_t t = a.target[i];
        TORCH_CHECK_INDEX(t == a.ignore_index || (t >= 0 && t < a.C), "linear_cross_entropy_stats: target ", t,
                          " is out of bounds (", a.C, " classes).");
      }
      M l, zt, wt;
      lce_token_stats<T>(a, i, l, zt, wt);
      lse[i] = l;
      if (none) zl[i] = zt;
      part.v[0] += static_cast<double>(zt);
      part.v[1] += static_cast<double>(wt);
    }
    return part;
  });
  if (!none) *zl = static_cast<M>(a.reduction == Reduction::Mean ? s.v[0] / s.v[1] : s.v[0]);
}

void lce_stats_cpu(const LceStatsArgs& a) {
  LOSSEXT_DISPATCH_FLOATING_TYPES(a.dtype, "lce_stats_cpu", [&] { stats_typed<scalar_t>(a); });
}

}  // namespace
}  // namespace lossext::CPU_CAPABILITY

LOSSEXT_REGISTER_CPU(lossext::lce_denominator_stub, &lossext::CPU_CAPABILITY::lce_denominator_cpu);
LOSSEXT_REGISTER_CPU(lossext::lce_accumulate_stub, &lossext::CPU_CAPABILITY::lce_accumulate_cpu);
LOSSEXT_REGISTER_CPU(lossext::lce_softcap_stub, &lossext::CPU_CAPABILITY::lce_softcap_cpu);
LOSSEXT_REGISTER_CPU(lossext::lce_stats_stub, &lossext::CPU_CAPABILITY::lce_stats_cpu);
