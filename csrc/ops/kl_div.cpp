#include <lossext/host.h>
#include <lossext/ops.h>
#include <losses/kl_div.h>

#include <torch/library.h>

LOSSEXT_DEFINE_STUB(lossext::kl_div_stub, lossext::PointwiseFn);

namespace lossext::ops {
namespace {
constexpr const char* kOp = "kl_div";

// input and target broadcast (as torch's composite op). 'batchmean' divides the sum by
// input.size(0) (not the broadcast size), by nothing for a 0-d input, as torch.nn.functional.
PointwiseCall make_call(const Tensor& input, const Tensor& target, int64_t reduction, bool log_target,
                        std::array<bool, 2> mask) {
  TORCH_CHECK_VALUE(reduction >= 0 && reduction <= 3, kOp,
                    ": reduction must be 0 (none), 1 (mean), 2 (sum) or 3 (batchmean), but got ", reduction);
  TORCH_CHECK(!at::isIntegralType(input.scalar_type(), true) && !at::isIntegralType(target.scalar_type(), true),
              kOp, ": Integral inputs not supported.");
  const auto red = static_cast<Reduction>(reduction);
  c10::optional<double> scale;
  if (red == Reduction::BatchMean) scale = input.dim() == 0 ? 1.0 : 1.0 / static_cast<double>(input.size(0));
  return PointwiseCall{kOp, &kl_div_stub, {input, target}, 2, red, {mask[0], mask[1]}, {log_target ? 1.0 : 0.0},
                       scale};
}
}  // namespace

std::tuple<Tensor, Tensor, Tensor> kl_div(const Tensor& input, const Tensor& target, int64_t reduction,
                                          bool log_target, std::array<bool, 2> grad_mask) {
  auto r = pointwise_forward(make_call(input, target, reduction, log_target, grad_mask));
  return {r[0], r[1], r[2]};
}

std::tuple<Tensor, Tensor> kl_div_backward(const Tensor& grad_output, const Tensor& input, const Tensor& target,
                                           int64_t reduction, bool log_target, std::array<bool, 2> grad_mask) {
  auto r = pointwise_backward(make_call(input, target, reduction, log_target, grad_mask), grad_output);
  return {r[0], r[1]};
}

}  // namespace lossext::ops

TORCH_LIBRARY_FRAGMENT(lossext, m) {
  m.def("kl_div(Tensor input, Tensor target, int reduction, bool log_target, bool[2] grad_mask) "
        "-> (Tensor, Tensor, Tensor)");
  m.def("kl_div_backward(Tensor grad_output, Tensor input, Tensor target, int reduction, bool log_target, "
        "bool[2] grad_mask) -> (Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(lossext, CPU, m) {
  m.impl("kl_div", &lossext::ops::kl_div);
  m.impl("kl_div_backward", &lossext::ops::kl_div_backward);
}
