// scale_grad (out of place, a pointwise op) and scale_rows (in place, lossext/scale_rows.h).
#include <lossext/cpu/pointwise.h>
#include <lossext/cpu/reduce.h>
#include <lossext/cpu/vec.h>
#include <lossext/scale_rows.h>
#include <losses/scale_grad.h>

#include <ATen/Dispatch.h>

#include <algorithm>

LOSSEXT_CPU_POINTWISE(lossext::scale_grad_stub, lossext::ScaleGradOp);

namespace lossext::CPU_CAPABILITY {
namespace {

constexpr int64_t kChunk = 1 << 17;

// g[begin, end) *= f, vectorized.
template <class T>
void scale_span(T* g, int64_t begin, int64_t end, math_t<T> f) {
  using V = Vectorized<math_t<T>>;
  const V fv(f);
  for (int64_t j = begin; j < end; j += V::size()) {
    const int64_t cnt = std::min<int64_t>(V::size(), end - j);
    vstore(g + j, vload(g + j, cnt) * fv, cnt);
  }
}

template <class T>
void scale_rows_typed(const ScaleRowsArgs& a) {
  T* g = static_cast<T*>(a.grad);
  const T* f = static_cast<const T*>(a.factor);
  if (!a.per_sample) {
    const math_t<T> v = static_cast<math_t<T>>(f[0]);
    if (v == math_t<T>(1)) return;
    chunked_for(a.N * a.C * a.S, kChunk, [&](int64_t b, int64_t e) { scale_span(g, b, e, v); });
    return;
  }
  // Per sample (n, s): the C elements c * S + s of row n. Each row n is C * S contiguous elements;
  // S == 1 scales whole rows, else each class plane of S elements is multiplied lane by lane.
  const int64_t row = a.C * a.S;
  chunked_for(a.N * a.C, std::max<int64_t>(1, kChunk / std::max<int64_t>(1, a.S)), [&](int64_t b, int64_t e) {
    using V = Vectorized<math_t<T>>;
    for (int64_t nc = b; nc < e; ++nc) {
      const int64_t n = nc / std::max<int64_t>(1, a.C);
      T* plane = g + n * row + (nc - n * a.C) * a.S;
      const T* fn = f + n * a.S;
      for (int64_t s = 0; s < a.S; s += V::size()) {
        const int64_t cnt = std::min<int64_t>(V::size(), a.S - s);
        vstore(plane + s, vload(plane + s, cnt) * vload(fn + s, cnt), cnt);
      }
    }
  });
}

void scale_rows_cpu(const ScaleRowsArgs& a) {
  LOSSEXT_DISPATCH_FLOATING_TYPES(a.dtype, "scale_rows_cpu", [&] { scale_rows_typed<scalar_t>(a); });
}

}  // namespace
}  // namespace lossext::CPU_CAPABILITY

LOSSEXT_REGISTER_CPU(lossext::scale_rows_stub, &lossext::CPU_CAPABILITY::scale_rows_cpu);
