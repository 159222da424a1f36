// nll_loss CPU loops (ISA-compiled): one pass over the samples (the loss reads one element per
// sample). The gradient is zero except at the target: the buffer is zeroed, then one element per
// sample is written. Per-chunk double sums, added in order (deterministic).
#include <lossext/cpu/rowwise.h>
#include <losses/nll_loss.h>

#include <ATen/Dispatch.h>

namespace lossext::CPU_CAPABILITY {
namespace {

template <class T>
void nll_loss_typed(const RowwiseArgs& a) {
  using M = math_t<T>;
  const double denom = rowwise_prepass<T>(a, "nll_loss");
  const double inv = a.reduction == Reduction::Mean ? 1.0 / denom : 1.0;
  const bool fwd = a.mode == RowMode::kForward;
  const bool none = a.reduction == Reduction::None;
  const T* x = static_cast<const T*>(a.input);
  T* g = static_cast<T*>(a.grad_input);
  if (g) zero_fill(g, a.N * a.C * a.S);  // dense buffer (empty_like of the input)
  const int64_t* xs = a.st[kRowInput];
  const int64_t* gs = a.st[kRowGradInput];
  const double sum = chunked_reduce<double>(a.N * a.S, units_per_chunk(4), [&](int64_t b, int64_t e) {
    double acc = 0;
    int64_t i = b;
    for_samples(b, e, a.S, [&](int64_t n, int64_t s) {
      const ClassSample cs = sample_of(a, n, s);
      M loss = 0;
      if (cs.active) {
        const M wt = sample_weight<T>(a, cs);
        if (fwd) loss = -wt * static_cast<M>(x[n * xs[0] + cs.cls * xs[1] + s * xs[2]]);
        if (g) g[n * gs[0] + cs.cls * gs[1] + s * gs[2]] = static_cast<T>(-wt * row_scale<T>(a, n, s, inv));
      }
      if (fwd) {
        acc += static_cast<double>(loss);
        if (none) static_cast<T*>(a.loss)[i] = static_cast<T>(loss);
      }
      ++i;
    });
    return acc;
  });
  if (fwd && !none) *static_cast<T*>(a.loss) = static_cast<T>(a.reduction == Reduction::Mean ? sum / denom : sum);
}

void nll_loss_cpu(const RowwiseArgs& a) {
  LOSSEXT_DISPATCH_FLOATING_TYPES(a.dtype, "nll_loss_cpu", [&] { nll_loss_typed<scalar_t>(a); });
}

}  // namespace
}  // namespace lossext::CPU_CAPABILITY

LOSSEXT_REGISTER_CPU(lossext::nll_loss_stub, &lossext::CPU_CAPABILITY::nll_loss_cpu);
