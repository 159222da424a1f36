// lossext::functional's margin and embedding losses, the focal losses and linear_cross_entropy
// (lossext/api/functional.h); see functional.cpp for the rules every function follows.
#include "api/call.h"

#include <lossext/lossext.h>

#include <algorithm>

namespace lossext::functional {

using namespace ::lossext::api;

// ---- margin and embedding ----------------------------------------------------------------------
Tensor margin_ranking_loss(const Tensor& input1, const Tensor& input2, const Tensor& target,
                           const tf::MarginRankingLossFuncOptions& options) {
  TORCH_CHECK(input1.dim() == input2.dim() && input1.dim() == target.dim(),
              "margin_ranking_loss : All input tensors should have same dimension but got sizes: "
              "input1: ", input1.sizes(), ", input2: ", input2.sizes(), ", target: ", target.sizes());
  static const auto f = op<R4(T, T, T, double, int64_t, Mask<3>)>("lossext::margin_ranking_loss");
  return std::get<0>(f.call(input1, input2, target, options.margin(), reduction(options.reduction()),
                            Mask<3>{wants_grad(input1), wants_grad(input2), wants_grad(target)}));
}

Tensor hinge_embedding_loss(const Tensor& input, const Tensor& target,
                            const tf::HingeEmbeddingLossFuncOptions& options) {
  // As torch, a target that requires grad does not make the loss require it (it is only compared).
  static const auto f = op<R2(T, T, double, int64_t, Mask<1>)>("lossext::hinge_embedding_loss");
  return std::get<0>(f.call(input, target.detach(), options.margin(), reduction(options.reduction()),
                            Mask<1>{wants_grad(input)}));
}

Tensor cosine_embedding_loss(const Tensor& input1, const Tensor& input2, const Tensor& target,
                             const tf::CosineEmbeddingLossFuncOptions& options) {
  static const auto f = op<R4(T, T, T, double, int64_t, Mask<2>)>("lossext::cosine_embedding_loss");
  return std::get<0>(f.call(input1, input2, target.detach(), options.margin(), reduction(options.reduction()),
                            Mask<2>{wants_grad(input1), wants_grad(input2)}));
}

namespace {
Tensor triplet(const Tensor& anchor, const Tensor& positive, const Tensor& negative, double margin, double p,
               double eps, bool swap, int64_t r) {
  static const auto f = op<R5(T, T, T, double, double, double, bool, int64_t, Mask<3>)>("lossext::triplet_margin_loss");
  return std::get<0>(f.call(anchor, positive, negative, margin, p, eps, swap, r,
                            Mask<3>{wants_grad(anchor), wants_grad(positive), wants_grad(negative)}));
}
}  // namespace

Tensor triplet_margin_loss(const Tensor& anchor, const Tensor& positive, const Tensor& negative,
                           const tf::TripletMarginLossFuncOptions& options) {
  return triplet(anchor, positive, negative, options.margin(), options.p(), options.eps(), options.swap(),
                 reduction(options.reduction()));
}

Tensor triplet_margin_with_distance_loss(const Tensor& anchor, const Tensor& positive, const Tensor& negative,
                                         const tf::TripletMarginWithDistanceLossFuncOptions& options) {
  const int64_t r = reduction(options.reduction());
  if (!options.distance_function().has_value()) {  // torch's default: pairwise_distance(p=2, eps=1e-6)
    return triplet(anchor, positive, negative, options.margin(), 2.0, 1e-6, options.swap(), r);
  }
  const auto& dist = *options.distance_function();
  const Tensor d_pos = dist(anchor, positive);
  const Tensor d_neg = dist(anchor, negative);
  const Tensor d_swap = options.swap() ? dist(positive, negative) : Tensor();
  static const auto f = op<R4(T, T, OT, double, int64_t, Mask<3>)>("lossext::triplet_margin_with_distance_loss");
  return std::get<0>(f.call(d_pos, d_neg, opt(d_swap), options.margin(), r,
                            Mask<3>{wants_grad(d_pos), wants_grad(d_neg), wants_grad(d_swap)}));
}

// ---- focal losses ------------------------------------------------------------------------------
Tensor sigmoid_focal_loss(const Tensor& input, const Tensor& target, const SigmoidFocalLossFuncOptions& options) {
  TORCH_CHECK_VALUE(options.gamma() >= 0, "sigmoid_focal_loss: gamma must be >= 0, got ", options.gamma());
  check_not_differentiable("sigmoid_focal_loss", "weight", options.weight());
  check_not_differentiable("sigmoid_focal_loss", "normalizer", options.normalizer());
  const int64_t r = reduction(options.reduction());
  if (!target.is_floating_point()) {  // class indices: the one-hot of each index, in the kernel
    static const auto fi =
        op<R2(T, T, OT, OT, double, double, int64_t, int64_t, Mask<1>)>("lossext::sigmoid_focal_loss_index");
    return std::get<0>(fi.call(input, target, opt(options.weight()), opt(options.normalizer()), options.alpha(),
                               options.gamma(), r, options.ignore_index(), Mask<1>{wants_grad(input)}));
  }
  static const auto f = op<R3(T, T, OT, OT, double, double, int64_t, Mask<2>)>("lossext::sigmoid_focal_loss");
  return std::get<0>(f.call(input, target, opt(options.weight()), opt(options.normalizer()), options.alpha(),
                            options.gamma(), r, Mask<2>{wants_grad(input), wants_grad(target)}));
}

Tensor focal_loss(const Tensor& input, const Tensor& target, const FocalLossFuncOptions& options) {
  TORCH_CHECK_VALUE(options.gamma() >= 0, "focal_loss: gamma must be >= 0, got ", options.gamma());
  const Tensor& alpha_t = options.alpha_per_class();
  TORCH_CHECK_VALUE(!(alpha_t.defined() && options.alpha().has_value()),
                    "focal_loss: set alpha or alpha_per_class, not both");
  check_not_differentiable("focal_loss", "weight", options.weight());
  check_not_differentiable("focal_loss", "alpha", alpha_t);
  const int64_t r = reduction(options.reduction());
  if (options.label_smoothing() > 0 && options.gamma() == 0 && !alpha_t.defined() && !options.alpha().has_value()) {
    return cross_entropy(input, target, tf::CrossEntropyFuncOptions()  // exactly its smoothing, one sweep fewer
                                            .weight(options.weight())
                                            .ignore_index(options.ignore_index())
                                            .reduction(options.reduction())
                                            .label_smoothing(options.label_smoothing()));
  }
  TORCH_CHECK_NOT_IMPLEMENTED(!target.is_floating_point(),
                              "focal_loss: probability targets are not supported; pass class indices");
  static const auto f =
      op<R3(T, T, OT, OT, double, double, int64_t, int64_t, double, Mask<1>)>("lossext::focal_loss");
  return std::get<0>(f.call(input, target, opt(options.weight()), opt(alpha_t), options.alpha().value_or(1.0),
                            options.gamma(), r, options.ignore_index(), options.label_smoothing(),
                            Mask<1>{wants_grad(input)}));
}

// ---- linear_cross_entropy ------------------------------------------------------------------------
Tensor linear_cross_entropy(const Tensor& input, const Tensor& linear_weight, const Tensor& target,
                            const LinearCrossEntropyFuncOptions& options) {
  const double softcap = options.softcap().value_or(0.0);
  TORCH_CHECK_VALUE(!options.softcap().has_value() || softcap > 0,
                    "linear_cross_entropy: softcap must be > 0, got ", softcap);
  check_not_differentiable("linear_cross_entropy", "weight", options.weight());
  if (input.dim() >= 1 && linear_weight.dim() >= 2 && options.ignore_index().has_value()) {
    std::vector<int64_t> logits(input.sizes().begin(), input.sizes().end() - 1);
    logits.insert(logits.end(), linear_weight.sizes().begin(), linear_weight.sizes().end() - 1);
    TORCH_CHECK(target.sizes() != c10::IntArrayRef(logits),
                "ignore_index cannot be specified when target contains probabilities");
  }
  int64_t chunk = 0;  // 0: chosen by the op from the shapes
  if (options.chunk_size().has_value()) {
    TORCH_CHECK_VALUE(*options.chunk_size() >= 1, "linear_cross_entropy: chunk_size must be >= 1, got ",
                      *options.chunk_size());
    chunk = *options.chunk_size();
  } else if (options.memory_budget().has_value()) {
    int64_t row = static_cast<int64_t>(input.element_size());
    for (int64_t d = 0; d + 1 < linear_weight.dim(); ++d) row *= linear_weight.size(d);
    chunk = std::max<int64_t>(1, *options.memory_budget() / std::max<int64_t>(1, row));
  }
  const Tensor& bias = options.linear_bias();
  static const auto f = op<R5(T, T, T, OT, OT, int64_t, int64_t, double, double, double, int64_t, Mask<3>)>(
      "lossext::linear_cross_entropy");
  return std::get<0>(f.call(input, linear_weight, target, opt(bias), opt(options.weight()),
                            reduction(options.reduction()), options.ignore_index().value_or(-100),
                            options.label_smoothing(), options.z_loss(), softcap, chunk,
                            Mask<3>{wants_grad(input), wants_grad(linear_weight), wants_grad(bias)}));
}

}  // namespace lossext::functional
