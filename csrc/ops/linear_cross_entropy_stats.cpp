// linear_cross_entropy_stats: the per-token log-sum-exp and the z-loss part of linear_cross_entropy's
// loss, for logging (return_lse / return_z_loss), from the statistics its forward saved anyway:
// no logits are recomputed, and the loss's own path is untouched. Not differentiable (outputs for
// logging, as flash-attention's z-loss): the Python layer returns them detached and says so.
#include <lossext/host.h>
#include <lossext/registration.h>
#include <lossext/rowwise_host.h>
#include <losses/cross_entropy.h>
#include <losses/linear_cross_entropy.h>

#include <ATen/ops/empty.h>
#include <c10/core/DeviceGuard.h>
#include <torch/library.h>

LOSSEXT_DEFINE_STUB(lossext::lce_stats_stub, lossext::LceStatsFn);

namespace lossext::ops {
namespace {
using at::Tensor;
constexpr const char* kOp = "linear_cross_entropy_stats";

std::tuple<Tensor, Tensor> linear_cross_entropy_stats(const Tensor& saved, const Tensor& target,
                                                      const OptTensor& weight_opt, int64_t reduction,
                                                      int64_t ignore_index, double z_loss) {
  c10::OptionalDeviceGuard guard(saved.device());
  const Tensor weight = weight_opt.value_or(Tensor());
  const Reduction red = to_reduction(reduction, kOp);
  const bool prob = target.is_floating_point();
  TORCH_CHECK(saved.dim() == 2 && saved.size(1) == ce_saved_count(prob) &&
                  (saved.scalar_type() == at::kFloat || saved.scalar_type() == at::kDouble),
              kOp, ": expected linear_cross_entropy's saved statistics (tokens, ", ce_saved_count(prob),
              ") of float32 or float64, got ", shape_str(saved.sizes()), " of ", saved.scalar_type());
  const int64_t n = saved.size(0);
  check_same_device(kOp, saved, {&target, &weight});
  Tensor t;
  if (!prob) {
    TORCH_CHECK(target.scalar_type() == at::kLong, kOp, ": expected class indices of dtype int64, got ",
                target.scalar_type());
    TORCH_CHECK(target.numel() == n, kOp, ": expected ", n, " class indices (one per token), got target of shape ",
                shape_str(target.sizes()));
    t = target.reshape({n}).contiguous();
  }
  if (weight.defined()) {
    TORCH_CHECK(weight.dim() == 1 && rowwise_math_dtype(weight.scalar_type()) == saved.scalar_type(), kOp,
                ": expected a 1-D class weight of the input's dtype, got ", shape_str(weight.sizes()), " of ",
                weight.scalar_type());
  }
  const Tensor w = weight.defined() ? weight.contiguous() : weight;
  const Tensor sv = saved.contiguous();
  Tensor lse = at::empty({n}, saved.options());
  Tensor zl = red == Reduction::None ? at::empty({n}, saved.options()) : at::empty({}, saved.options());
  LceStatsArgs a;
  a.dtype = w.defined() ? w.scalar_type() : saved.scalar_type();
  a.n = n;
  a.ks = saved.size(1);
  a.C = w.defined() ? w.numel() : 0;
  a.saved = sv.const_data_ptr();
  a.target = prob ? nullptr : t.const_data_ptr<int64_t>();
  a.weight = w.defined() ? w.const_data_ptr() : nullptr;
  a.ignore_index = ignore_index;
  a.z = z_loss;
  a.reduction = red;
  a.lse = lse.data_ptr();
  a.zl = zl.data_ptr();
  lce_stats_stub(saved.device().type())(a);
  return {lse, zl};
}

void impls(torch::Library& m) { m.impl("linear_cross_entropy_stats", &linear_cross_entropy_stats); }
}  // namespace
}  // namespace lossext::ops

TORCH_LIBRARY_FRAGMENT(lossext, m) {
  // `saved`: linear_cross_entropy's 5th output; target: its target (class indices, or probabilities).
  // Returns (lse (tokens), z-loss part: (tokens) for reduction none, else 0-d), in the math dtype.
  m.def("linear_cross_entropy_stats(Tensor saved, Tensor target, Tensor? weight, int reduction, "
        "int ignore_index, float z_loss) -> (Tensor, Tensor)");
}
LOSSEXT_IMPL_ALL_DEVICES(lossext::ops::impls);
