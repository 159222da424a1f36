// lossext::nn: torch::nn's loss modules (torch/nn/modules/loss.h) computed by lossext::functional,
// built from torch's own options (torch::nn::<Loss>Options): torch::nn::Cloneable modules with the
// same forward signatures, and the class weights registered as buffers as torch's modules do (so
// module->to(device) moves them). FocalLoss, SigmoidFocalLoss and GaussianNLLLoss take lossext's
// options (lossext/api/options.h); torch.nn.LinearCrossEntropyLoss (which owns a Linear layer) has
// no C++ module yet: use lossext::functional::linear_cross_entropy.
#pragma once

#include <lossext/api/functional.h>
#include <lossext/api/options.h>

#include <torch/nn/cloneable.h>
#include <torch/nn/options/loss.h>
#include <torch/nn/pimpl.h>

#include <ostream>
#include <utility>

// A module whose forward(a, b[, c]) is lossext::functional::fn(a, b[, c], options). RESET registers
// the option tensors that torch's module registers as buffers (empty for most losses).
#define LOSSEXT_LOSS_MODULE_BEGIN(Name, Options)                                                  \
  struct Name##Impl : ::torch::nn::Cloneable<Name##Impl> {                                        \
    explicit Name##Impl(Options options_ = {}) : options(std::move(options_)) { reset(); }        \
    void pretty_print(std::ostream& stream) const override { stream << "lossext::nn::" #Name "()"; } \
    Options options;

#define LOSSEXT_LOSS_MODULE_END(Name) \
  }                                   \
  ;                                   \
  TORCH_MODULE(Name)

// forward(input, target); the options are passed as they are.
#define LOSSEXT_LOSS_MODULE2(Name, fn, Options)                                          \
  LOSSEXT_LOSS_MODULE_BEGIN(Name, Options)                                               \
  void reset() override {}                                                               \
  at::Tensor forward(const at::Tensor& input, const at::Tensor& target) {                \
    return ::lossext::functional::fn(input, target, options);                            \
  }                                                                                      \
  LOSSEXT_LOSS_MODULE_END(Name)

// forward(input, target) with options.weight() a buffer `weight` (as torch's modules).
#define LOSSEXT_WEIGHTED_LOSS_MODULE2(Name, fn, Options)                                 \
  LOSSEXT_LOSS_MODULE_BEGIN(Name, Options)                                               \
  void reset() override { weight = register_buffer("weight", options.weight()); }        \
  at::Tensor forward(const at::Tensor& input, const at::Tensor& target) {                \
    Options o = options;                                                                 \
    o.weight(weight);                                                                    \
    return ::lossext::functional::fn(input, target, o);                                  \
  }                                                                                      \
  at::Tensor weight;                                                                     \
  LOSSEXT_LOSS_MODULE_END(Name)

// forward(a, b, c): the embedding and ranking losses.
#define LOSSEXT_LOSS_MODULE3(Name, fn, Options, a, b, c)                                 \
  LOSSEXT_LOSS_MODULE_BEGIN(Name, Options)                                               \
  void reset() override {}                                                               \
  at::Tensor forward(const at::Tensor& a, const at::Tensor& b, const at::Tensor& c) {    \
    return ::lossext::functional::fn(a, b, c, options);                                  \
  }                                                                                      \
  LOSSEXT_LOSS_MODULE_END(Name)

namespace lossext::nn {

// ---- pointwise ---------------------------------------------------------------------------------
LOSSEXT_LOSS_MODULE2(L1Loss, l1_loss, ::torch::nn::L1LossOptions);
LOSSEXT_LOSS_MODULE2(MSELoss, mse_loss, ::torch::nn::MSELossOptions);
LOSSEXT_LOSS_MODULE2(HuberLoss, huber_loss, ::torch::nn::HuberLossOptions);
LOSSEXT_LOSS_MODULE2(SmoothL1Loss, smooth_l1_loss, ::torch::nn::SmoothL1LossOptions);
LOSSEXT_LOSS_MODULE2(SoftMarginLoss, soft_margin_loss, ::torch::nn::SoftMarginLossOptions);
LOSSEXT_LOSS_MODULE2(PoissonNLLLoss, poisson_nll_loss, ::torch::nn::PoissonNLLLossOptions);
LOSSEXT_LOSS_MODULE2(KLDivLoss, kl_div, ::torch::nn::KLDivLossOptions);
LOSSEXT_WEIGHTED_LOSS_MODULE2(BCELoss, binary_cross_entropy, ::torch::nn::BCELossOptions);

LOSSEXT_LOSS_MODULE_BEGIN(BCEWithLogitsLoss, ::torch::nn::BCEWithLogitsLossOptions)
void reset() override {
  weight = register_buffer("weight", options.weight());
  pos_weight = register_buffer("pos_weight", options.pos_weight());
}
at::Tensor forward(const at::Tensor& input, const at::Tensor& target) {
  return ::lossext::functional::binary_cross_entropy_with_logits(
      input, target, ::torch::nn::BCEWithLogitsLossOptions(options).weight(weight).pos_weight(pos_weight));
}
at::Tensor weight;
at::Tensor pos_weight;
LOSSEXT_LOSS_MODULE_END(BCEWithLogitsLoss);

// forward(input, target, var): var a tensor (torch.nn.GaussianNLLLoss).
LOSSEXT_LOSS_MODULE3(GaussianNLLLoss, gaussian_nll_loss, GaussianNLLLossOptions, input, target, var);

// ---- row-wise ----------------------------------------------------------------------------------
LOSSEXT_WEIGHTED_LOSS_MODULE2(CrossEntropyLoss, cross_entropy, ::torch::nn::CrossEntropyLossOptions);
LOSSEXT_WEIGHTED_LOSS_MODULE2(NLLLoss, nll_loss, ::torch::nn::NLLLossOptions);
LOSSEXT_WEIGHTED_LOSS_MODULE2(MultiLabelSoftMarginLoss, multilabel_soft_margin_loss,
                              ::torch::nn::MultiLabelSoftMarginLossOptions);
LOSSEXT_WEIGHTED_LOSS_MODULE2(MultiMarginLoss, multi_margin_loss, ::torch::nn::MultiMarginLossOptions);
LOSSEXT_LOSS_MODULE2(MultiLabelMarginLoss, multilabel_margin_loss, ::torch::nn::MultiLabelMarginLossOptions);
LOSSEXT_WEIGHTED_LOSS_MODULE2(SigmoidFocalLoss, sigmoid_focal_loss, SigmoidFocalLossOptions);

LOSSEXT_LOSS_MODULE_BEGIN(FocalLoss, FocalLossOptions)
void reset() override {
  weight = register_buffer("weight", options.weight());
  alpha_per_class = register_buffer("alpha_per_class", options.alpha_per_class());
}
at::Tensor forward(const at::Tensor& input, const at::Tensor& target) {
  return ::lossext::functional::focal_loss(input, target,
                                           FocalLossOptions(options).weight(weight).alpha_per_class(alpha_per_class));
}
at::Tensor weight;
at::Tensor alpha_per_class;
LOSSEXT_LOSS_MODULE_END(FocalLoss);

LOSSEXT_LOSS_MODULE_BEGIN(CTCLoss, ::torch::nn::CTCLossOptions)
void reset() override {}
at::Tensor forward(const at::Tensor& log_probs, const at::Tensor& targets, const at::Tensor& input_lengths,
                   const at::Tensor& target_lengths) {
  return ::lossext::functional::ctc_loss(log_probs, targets, input_lengths, target_lengths, options);
}
LOSSEXT_LOSS_MODULE_END(CTCLoss);

// ---- margin and embedding ----------------------------------------------------------------------
LOSSEXT_LOSS_MODULE2(HingeEmbeddingLoss, hinge_embedding_loss, ::torch::nn::HingeEmbeddingLossOptions);
LOSSEXT_LOSS_MODULE3(MarginRankingLoss, margin_ranking_loss, ::torch::nn::MarginRankingLossOptions, input1, input2,
                     target);
LOSSEXT_LOSS_MODULE3(CosineEmbeddingLoss, cosine_embedding_loss, ::torch::nn::CosineEmbeddingLossOptions, input1,
                     input2, target);
LOSSEXT_LOSS_MODULE3(TripletMarginLoss, triplet_margin_loss, ::torch::nn::TripletMarginLossOptions, anchor,
                     positive, negative);
LOSSEXT_LOSS_MODULE3(TripletMarginWithDistanceLoss, triplet_margin_with_distance_loss,
                     ::torch::nn::TripletMarginWithDistanceLossOptions, anchor, positive, negative);

}  // namespace lossext::nn

#undef LOSSEXT_LOSS_MODULE3
#undef LOSSEXT_WEIGHTED_LOSS_MODULE2
#undef LOSSEXT_LOSS_MODULE2
#undef LOSSEXT_LOSS_MODULE_END
#undef LOSSEXT_LOSS_MODULE_BEGIN
