// lossext::functional's pointwise and row-wise losses (lossext/api/functional.h): torch's C++
// options and checks (torch/nn/functional/loss.h), then the lossext op through the dispatcher, with
// the argument rules of lossext.functional (Python). The margin and embedding losses are in
// functional_margin.cpp.
#include "api/call.h"

#include <lossext/lossext.h>

namespace lossext::functional {

using namespace ::lossext::api;

// ---- pointwise ---------------------------------------------------------------------------------
Tensor l1_loss(const Tensor& input, const Tensor& target, const tf::L1LossFuncOptions& options) {
  static const auto f = op<R4(T, T, OT, int64_t, Mask<3>)>("lossext::l1_loss");
  return std::get<0>(f.call(input, target, std::nullopt, reduction(options.reduction()),
                            Mask<3>{wants_grad(input), wants_grad(target), false}));
}

Tensor mse_loss(const Tensor& input, const Tensor& target, const tf::MSELossFuncOptions& options) {
  warn_if_broadcast(input, target);
  static const auto f = op<R4(T, T, OT, int64_t, Mask<3>)>("lossext::mse_loss");
  return std::get<0>(f.call(input, target, std::nullopt, reduction(options.reduction()),
                            Mask<3>{wants_grad(input), wants_grad(target), false}));
}

Tensor huber_loss(const Tensor& input, const Tensor& target, const tf::HuberLossFuncOptions& options) {
  warn_if_broadcast(input, target);
  static const auto f = op<R4(T, T, OT, int64_t, double, Mask<3>)>("lossext::huber_loss");
  return std::get<0>(f.call(input, target, std::nullopt, reduction(options.reduction()), options.delta(),
                            Mask<3>{wants_grad(input), wants_grad(target), false}));
}

namespace {
Tensor smooth_l1(const Tensor& input, const Tensor& target, int64_t r, double beta) {
  warn_if_broadcast(input, target);
  static const auto f = op<R3(T, T, int64_t, double, Mask<2>)>("lossext::smooth_l1_loss");
  return std::get<0>(f.call(input, target, r, beta, Mask<2>{wants_grad(input), wants_grad(target)}));
}
}  // namespace

Tensor smooth_l1_loss(const Tensor& input, const Tensor& target, const tf::SmoothL1LossFuncOptions& options) {
  return smooth_l1(input, target, reduction(options.reduction()), options.beta().value_or(1.0));
}

Tensor smooth_l1_loss(const Tensor& input, const Tensor& target, const tf::SmoothL1LossFuncOptions& options,
                      double beta) {
  TORCH_CHECK(!options.beta().has_value(), "expected beta not to be provided in 'options', but got ",
              options.beta().value_or(0.0));
  return smooth_l1(input, target, reduction(options.reduction()), beta);
}

Tensor soft_margin_loss(const Tensor& input, const Tensor& target, const tf::SoftMarginLossFuncOptions& options) {
  static const auto f = op<R3(T, T, int64_t, Mask<2>)>("lossext::soft_margin_loss");
  return std::get<0>(
      f.call(input, target, reduction(options.reduction()), Mask<2>{wants_grad(input), wants_grad(target)}));
}

Tensor binary_cross_entropy(const Tensor& input, const Tensor& target,
                            const tf::BinaryCrossEntropyFuncOptions& options) {
  TORCH_CHECK(target.sizes() == input.sizes(), "Using a target size (", target.sizes(), ") ",
              "that is different to the input size (", input.sizes(), ") is deprecated. ",
              "Please ensure they have the same size.");
  check_not_differentiable("binary_cross_entropy", "weight", options.weight());
  static const auto f = op<R3(T, T, OT, int64_t, Mask<2>)>("lossext::binary_cross_entropy");
  return std::get<0>(f.call(input, target, opt(options.weight()), reduction(options.reduction()),
                            Mask<2>{wants_grad(input), wants_grad(target)}));
}

Tensor binary_cross_entropy_with_logits(const Tensor& input, const Tensor& target,
                                        const tf::BinaryCrossEntropyWithLogitsFuncOptions& options) {
  TORCH_CHECK(target.sizes() == input.sizes(), "Target size (", target.sizes(), ") must be the same as input size (",
              input.sizes(), ")");
  static const auto f = op<R3(T, T, OT, OT, int64_t, Mask<2>)>("lossext::binary_cross_entropy_with_logits");
  return std::get<0>(f.call(input, target, opt(options.weight()), opt(options.pos_weight()),
                            reduction(options.reduction()), Mask<2>{wants_grad(input), wants_grad(target)}));
}

Tensor poisson_nll_loss(const Tensor& input, const Tensor& target, const tf::PoissonNLLLossFuncOptions& options) {
  static const auto f = op<R3(T, T, bool, bool, double, int64_t, Mask<2>)>("lossext::poisson_nll_loss");
  return std::get<0>(f.call(input, target, options.log_input(), options.full(), options.eps(),
                            reduction(options.reduction()), Mask<2>{wants_grad(input), wants_grad(target)}));
}

Tensor kl_div(const Tensor& input, const Tensor& target, const tf::KLDivFuncOptions& options) {
  const auto& red = options.reduction();
  if (std::holds_alternative<torch::enumtype::kMean>(red)) {  // torch's C++ warning
    TORCH_WARN(
        "reduction: 'mean' divides the total loss by both the batch size and the support size."
        "'batchmean' divides only by the batch size, and aligns with the KL div math definition."
        "'mean' will be changed to behave the same as 'batchmean' in the next major release.");
  }
  // 'batchmean' is the sum divided by input.size(0) (not for a 0-d input), in the op's same pass.
  const bool batchmean = std::holds_alternative<torch::enumtype::kBatchMean>(red);
  const int64_t r = batchmean ? static_cast<int64_t>(at::Reduction::Sum) : reduction(red);
  static const auto f = op<R3(T, T, int64_t, bool, bool, Mask<2>)>("lossext::kl_div");
  return std::get<0>(f.call(input, target, r, options.log_target(), batchmean,
                            Mask<2>{wants_grad(input), wants_grad(target)}));
}

namespace {
Tensor gaussian_nll(const Tensor& input, const Tensor& target, const Tensor& var, double var_value,
                    const GaussianNLLLossFuncOptions& options) {
  // The var checks (negative entries, shape) are the op's.
  static const auto f = op<R4(T, T, OT, double, bool, double, int64_t, Mask<3>)>("lossext::gaussian_nll_loss");
  return std::get<0>(f.call(input, target, opt(var), var_value, options.full(), options.eps(),
                            reduction(options.reduction()),
                            Mask<3>{wants_grad(input), wants_grad(target), wants_grad(var)}));
}
}  // namespace

Tensor gaussian_nll_loss(const Tensor& input, const Tensor& target, const Tensor& var,
                         const GaussianNLLLossFuncOptions& options) {
  return gaussian_nll(input, target, var, 1.0, options);
}

Tensor gaussian_nll_loss(const Tensor& input, const Tensor& target, double var,
                         const GaussianNLLLossFuncOptions& options) {
  TORCH_CHECK_VALUE(var >= 0, "var has negative entry/entries");
  return gaussian_nll(input, target, Tensor(), var, options);
}

// ---- row-wise ----------------------------------------------------------------------------------
Tensor cross_entropy(const Tensor& input, const Tensor& target, const tf::CrossEntropyFuncOptions& options) {
  check_not_differentiable("cross_entropy", "weight", options.weight());
  static const auto f = op<R4(T, T, OT, int64_t, int64_t, double, Mask<2>)>("lossext::cross_entropy");
  return std::get<0>(f.call(input, target, opt(options.weight()), reduction(options.reduction()),
                            options.ignore_index(), options.label_smoothing(),
                            Mask<2>{wants_grad(input), wants_grad(target)}));
}

Tensor nll_loss(const Tensor& input, const Tensor& target, const tf::NLLLossFuncOptions& options) {
  // torch's C++ nll_loss checks (stricter than Python's, which takes an unbatched (C) input).
  TORCH_CHECK(input.dim() >= 2, "Expected 2 or more dimensions (got ", input.dim(), ")");
  TORCH_CHECK(input.sizes()[0] == target.sizes()[0], "Expected input batch_size (", input.sizes()[0],
              ") to match target batch_size (", target.sizes()[0], ").");
  check_not_differentiable("nll_loss", "weight", options.weight());
  // As lossext.functional.nll_loss: the forward writes the gradient for small CPU inputs only (the
  // backward then has no op to run at loss.backward()); large ones and CUDA write it in the backward.
  const bool in_forward = input.is_cpu() && input.numel() <= (int64_t{1} << 20);
  static const auto f = op<R2(T, T, OT, int64_t, int64_t, Mask<1>)>("lossext::nll_loss");
  return std::get<0>(f.call(input, target, opt(options.weight()), reduction(options.reduction()),
                            options.ignore_index(), Mask<1>{in_forward && wants_grad(input)}));
}

Tensor multilabel_soft_margin_loss(const Tensor& input, const Tensor& target,
                                   const tf::MultilabelSoftMarginLossFuncOptions& options) {
  check_not_differentiable("multilabel_soft_margin_loss", "weight", options.weight());
  static const auto f = op<R3(T, T, OT, int64_t, Mask<2>)>("lossext::multilabel_soft_margin_loss");
  return std::get<0>(f.call(input, target, opt(options.weight()), reduction(options.reduction()),
                            Mask<2>{wants_grad(input), wants_grad(target)}));
}

Tensor multi_margin_loss(const Tensor& input, const Tensor& target, const tf::MultiMarginLossFuncOptions& options) {
  TORCH_CHECK(options.p() == 1 || options.p() == 2, "only p == 1 and p == 2 supported");
  if (options.weight().defined()) {
    TORCH_CHECK(options.weight().dim() == 1, "weight must be one-dimensional");
  }
  check_not_differentiable("multi_margin_loss", "weight", options.weight());
  static const auto f = op<R3(T, T, int64_t, double, OT, int64_t, Mask<1>)>("lossext::multi_margin_loss");
  return std::get<0>(f.call(input, target, options.p(), options.margin(), opt(options.weight()),
                            reduction(options.reduction()), Mask<1>{wants_grad(input)}));
}

Tensor multilabel_margin_loss(const Tensor& input, const Tensor& target,
                              const tf::MultilabelMarginLossFuncOptions& options) {
  static const auto f = op<R3(T, T, int64_t, Mask<1>)>("lossext::multilabel_margin_loss");
  return std::get<0>(f.call(input, target, reduction(options.reduction()), Mask<1>{wants_grad(input)}));
}

Tensor ctc_loss(const Tensor& log_probs, const Tensor& targets, const Tensor& input_lengths,
                const Tensor& target_lengths, const tf::CTCLossFuncOptions& options) {
  static const auto f = op<R3(T, T, T, T, int64_t, int64_t, bool, Mask<1>)>("lossext::ctc_loss");
  return std::get<0>(f.call(log_probs, targets, input_lengths, target_lengths, options.blank(),
                            reduction(options.reduction()), options.zero_infinity(), Mask<1>{wants_grad(log_probs)}));
}

}  // namespace lossext::functional
