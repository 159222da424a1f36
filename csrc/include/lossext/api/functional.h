// lossext::functional: torch::nn::functional's losses, same signatures, options, defaults and
// semantics (torch/nn/functional/loss.h), computed by the lossext::<loss> ops (value and gradient
// in lossext's kernels; autograd at the Autograd dispatch key). Defined in liblossext.so
// (csrc/api/). The checks torch's C++ functions make are made here with the same messages.
#pragma once

#include <lossext/api/library.h>
#include <lossext/api/options.h>

#include <ATen/core/Tensor.h>
#include <torch/nn/options/loss.h>

namespace lossext::functional {

using at::Tensor;
namespace tf = ::torch::nn::functional;

// ---- pointwise -------------------------------------------------------------------------------
LOSSEXT_API Tensor l1_loss(const Tensor& input, const Tensor& target, const tf::L1LossFuncOptions& options = {});
LOSSEXT_API Tensor mse_loss(const Tensor& input, const Tensor& target, const tf::MSELossFuncOptions& options = {});
LOSSEXT_API Tensor huber_loss(const Tensor& input, const Tensor& target,
                              const tf::HuberLossFuncOptions& options = {});
LOSSEXT_API Tensor smooth_l1_loss(const Tensor& input, const Tensor& target,
                                  const tf::SmoothL1LossFuncOptions& options = {});
// torch's overload with beta outside the options (which then must not hold one).
LOSSEXT_API Tensor smooth_l1_loss(const Tensor& input, const Tensor& target,
                                  const tf::SmoothL1LossFuncOptions& options, double beta);
LOSSEXT_API Tensor soft_margin_loss(const Tensor& input, const Tensor& target,
                                    const tf::SoftMarginLossFuncOptions& options = {});
LOSSEXT_API Tensor binary_cross_entropy(const Tensor& input, const Tensor& target,
                                        const tf::BinaryCrossEntropyFuncOptions& options = {});
LOSSEXT_API Tensor binary_cross_entropy_with_logits(const Tensor& input, const Tensor& target,
                                                    const tf::BinaryCrossEntropyWithLogitsFuncOptions& options = {});
LOSSEXT_API Tensor poisson_nll_loss(const Tensor& input, const Tensor& target,
                                    const tf::PoissonNLLLossFuncOptions& options = {});
LOSSEXT_API Tensor kl_div(const Tensor& input, const Tensor& target, const tf::KLDivFuncOptions& options = {});
// torch.nn.functional.gaussian_nll_loss (no torch C++ API): var a tensor or one float.
LOSSEXT_API Tensor gaussian_nll_loss(const Tensor& input, const Tensor& target, const Tensor& var,
                                     const GaussianNLLLossFuncOptions& options = {});
LOSSEXT_API Tensor gaussian_nll_loss(const Tensor& input, const Tensor& target, double var,
                                     const GaussianNLLLossFuncOptions& options = {});

// ---- row-wise (class dim 1) ----------------------------------------------------------------------
LOSSEXT_API Tensor cross_entropy(const Tensor& input, const Tensor& target,
                                 const tf::CrossEntropyFuncOptions& options = {});
LOSSEXT_API Tensor nll_loss(const Tensor& input, const Tensor& target, const tf::NLLLossFuncOptions& options = {});
LOSSEXT_API Tensor multilabel_soft_margin_loss(const Tensor& input, const Tensor& target,
                                               const tf::MultilabelSoftMarginLossFuncOptions& options = {});
LOSSEXT_API Tensor multi_margin_loss(const Tensor& input, const Tensor& target,
                                     const tf::MultiMarginLossFuncOptions& options = {});
LOSSEXT_API Tensor multilabel_margin_loss(const Tensor& input, const Tensor& target,
                                          const tf::MultilabelMarginLossFuncOptions& options = {});
LOSSEXT_API Tensor focal_loss(const Tensor& input, const Tensor& target, const FocalLossFuncOptions& options = {});
LOSSEXT_API Tensor sigmoid_focal_loss(const Tensor& input, const Tensor& target,
                                      const SigmoidFocalLossFuncOptions& options = {});
// logits = input @ linear_weight.T (+ linear_bias) are never materialised beyond one chunk.
LOSSEXT_API Tensor linear_cross_entropy(const Tensor& input, const Tensor& linear_weight, const Tensor& target,
                                        const LinearCrossEntropyFuncOptions& options = {});
LOSSEXT_API Tensor ctc_loss(const Tensor& log_probs, const Tensor& targets, const Tensor& input_lengths,
                            const Tensor& target_lengths, const tf::CTCLossFuncOptions& options = {});

// ---- margin and embedding ------------------------------------------------------------------------
LOSSEXT_API Tensor margin_ranking_loss(const Tensor& input1, const Tensor& input2, const Tensor& target,
                                       const tf::MarginRankingLossFuncOptions& options = {});
LOSSEXT_API Tensor hinge_embedding_loss(const Tensor& input, const Tensor& target,
                                        const tf::HingeEmbeddingLossFuncOptions& options = {});
LOSSEXT_API Tensor cosine_embedding_loss(const Tensor& input1, const Tensor& input2, const Tensor& target,
                                         const tf::CosineEmbeddingLossFuncOptions& options = {});
LOSSEXT_API Tensor triplet_margin_loss(const Tensor& anchor, const Tensor& positive, const Tensor& negative,
                                       const tf::TripletMarginLossFuncOptions& options = {});
// Without a distance function: triplet_margin_loss with pairwise_distance's p = 2, eps = 1e-6 (all
// native). With one: its distances (autograd flows through them) feed lossext's margin op.
LOSSEXT_API Tensor triplet_margin_with_distance_loss(const Tensor& anchor, const Tensor& positive,
                                                     const Tensor& negative,
                                                     const tf::TripletMarginWithDistanceLossFuncOptions& options = {});

}  // namespace lossext::functional
