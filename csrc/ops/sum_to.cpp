// sum_to_size: host function and CPU loop. The loop is compiled once (not per ISA): it is a rare
// path (only broadcasting losses use it) and is bound by strided reads, not arithmetic.
#include <lossext/host.h>
#include <lossext/sum_to.h>

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <c10/core/DeviceGuard.h>

LOSSEXT_DEFINE_STUB(lossext::sum_to_stub, lossext::SumToFn);

namespace lossext {
namespace {

template <class T>
void sum_to_cpu_impl(const SumToArgs& a) {
  const T* in = static_cast<const T*>(a.in);
  T* out = static_cast<T*>(a.out);
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(1, a.nred));
  // The reduced index space as (outer, inner): the innermost reduced dimension is walked with a
  // pointer step instead of an index division per element. Same order of additions as a flat
  // row-major walk, so the same bits.
  const int64_t inner = a.nr > 0 ? a.rsize[a.nr - 1] : 1;
  const int64_t istride = a.nr > 0 ? a.rstride[a.nr - 1] : 0;
  const int64_t outer = a.nred == 0 ? 0 : a.nred / inner;
  at::parallel_for(0, a.nout, grain, [&](int64_t b, int64_t e) {
    for (int64_t o = b; o < e; ++o) {
      const T* p0 = in + sum_to_offset(o, a.nk, a.ksize, a.kstride);
      double s = 0;
      for (int64_t r = 0; r < outer; ++r) {
        const T* p = p0 + sum_to_offset(r, a.nr - 1, a.rsize, a.rstride);
        for (int64_t i = 0; i < inner; ++i) s += static_cast<double>(p[i * istride]);
      }
      out[o] = static_cast<T>(s);
    }
  });
}

void sum_to_cpu(const SumToArgs& a) {
  LOSSEXT_DISPATCH_FLOATING_TYPES(a.dtype, "lossext_sum_to_cpu", [&] { sum_to_cpu_impl<scalar_t>(a); });
}

LOSSEXT_REGISTER_CPU(sum_to_stub, &sum_to_cpu);

}  // namespace

at::Tensor sum_to_size(const char* op, const at::Tensor& grad, at::IntArrayRef sizes) {
  const int64_t nd = grad.dim(), off = nd - static_cast<int64_t>(sizes.size());
  TORCH_CHECK(off >= 0, op, ": cannot sum a gradient of shape ", shape_str(grad.sizes()), " to shape ",
              shape_str(sizes));
  SumToArgs a;
  a.dtype = grad.scalar_type();
  a.nout = 1;
  a.nred = 1;
  for (int64_t d = 0; d < nd; ++d) {
    const int64_t g = grad.size(d);
    const bool kept = d >= off && sizes[d - off] == g;
    TORCH_CHECK(kept || d < off || sizes[d - off] == 1, op, ": cannot sum a gradient of shape ",
                shape_str(grad.sizes()), " to shape ", shape_str(sizes));
    if (g == 1) continue;
    TORCH_CHECK(a.nk < kSumToMaxDims && a.nr < kSumToMaxDims, op, ": too many dimensions");
    if (kept) {
      a.ksize[a.nk] = g;
      a.kstride[a.nk++] = grad.stride(d);
      a.nout *= g;
    } else {
      a.rsize[a.nr] = g;
      a.rstride[a.nr++] = grad.stride(d);
      a.nred *= g;
    }
  }
  at::Tensor out = at::empty(sizes, grad.options());
  if (out.numel() == 0) return out;
  a.in = grad.const_data_ptr();
  a.out = out.data_ptr();
  c10::OptionalDeviceGuard guard(grad.device());
  sum_to_stub(grad.device().type())(a);
  return out;
}

}  // namespace lossext
