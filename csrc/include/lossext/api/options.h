// Options of the losses torch::nn has no C++ API for, in torch's style (torch/nn/options/loss.h):
// lossext::nn::<Loss>Options for the modules, lossext::functional::<Loss>FuncOptions (an alias)
// for the functions. Defaults are lossext.functional's (Python).
#pragma once

#include <torch/arg.h>
#include <torch/enum.h>
#include <torch/nn/options/loss.h>
#include <torch/types.h>

#include <cstdint>
#include <optional>
#include <variant>

namespace lossext::nn {

using reduction_t = std::variant<torch::enumtype::kNone, torch::enumtype::kMean, torch::enumtype::kSum>;

// torch.nn.GaussianNLLLoss / F.gaussian_nll_loss(input, target, var, full, eps, reduction).
struct GaussianNLLLossOptions {
  TORCH_ARG(bool, full) = false;  // add the constant 0.5 * log(2 pi)
  TORCH_ARG(double, eps) = 1e-6;  // var is clamped to at least eps
  TORCH_ARG(reduction_t, reduction) = torch::kMean;
};

// torchvision.ops.sigmoid_focal_loss: a_t (1 - p_t)^gamma BCE_with_logits(input, target).
struct SigmoidFocalLossOptions {
  TORCH_ARG(double, alpha) = 0.25;  // < 0: no alpha weighting
  TORCH_ARG(double, gamma) = 2.0;
  TORCH_ARG(reduction_t, reduction) = torch::kNone;  // torchvision's default
  TORCH_ARG(torch::Tensor, weight) = {};  // broadcasts to the input (or (C)); not differentiable
  // A one-element tensor the reduced loss (every element for kNone) is divided by on the device,
  // e.g. the number of positives; not differentiable.
  TORCH_ARG(torch::Tensor, normalizer) = {};
  TORCH_ARG(int64_t, ignore_index) = -100;  // integer (class-index) targets only
};

// The softmax focal loss with cross_entropy's conventions: -w_t a_t (1 - p_t)^gamma log p_t.
struct FocalLossOptions {
  // a_t: 1 (neither set), alpha for every sample, or alpha_per_class[t] (a (C) tensor).
  TORCH_ARG(std::optional<double>, alpha) = std::nullopt;
  TORCH_ARG(torch::Tensor, alpha_per_class) = {};
  TORCH_ARG(double, gamma) = 2.0;
  TORCH_ARG(torch::Tensor, weight) = {};
  TORCH_ARG(int64_t, ignore_index) = -100;
  TORCH_ARG(reduction_t, reduction) = torch::kMean;
  TORCH_ARG(double, label_smoothing) = 0.0;  // cross_entropy's rule (lossext.functional.focal_loss)
};

// torch.nn.functional.linear_cross_entropy (torch 2.13), fused chunk by chunk of tokens.
struct LinearCrossEntropyLossOptions {
  TORCH_ARG(torch::Tensor, linear_bias) = {};
  TORCH_ARG(torch::Tensor, weight) = {};  // class weight
  TORCH_ARG(reduction_t, reduction) = torch::kMean;
  TORCH_ARG(std::optional<int64_t>, ignore_index) = std::nullopt;  // -100 for class targets
  TORCH_ARG(double, label_smoothing) = 0.0;
  TORCH_ARG(std::optional<int64_t>, chunk_size) = std::nullopt;     // tokens per chunk
  TORCH_ARG(std::optional<int64_t>, memory_budget) = std::nullopt;  // bytes of one chunk's logits
  TORCH_ARG(double, z_loss) = 0.0;                   // + z_loss * w_t * logsumexp(logits)^2
  TORCH_ARG(std::optional<double>, softcap) = std::nullopt;  // logits -> softcap tanh(logits / softcap)
};

}  // namespace lossext::nn

namespace lossext::functional {
using GaussianNLLLossFuncOptions = ::lossext::nn::GaussianNLLLossOptions;
using SigmoidFocalLossFuncOptions = ::lossext::nn::SigmoidFocalLossOptions;
using FocalLossFuncOptions = ::lossext::nn::FocalLossOptions;
using LinearCrossEntropyFuncOptions = ::lossext::nn::LinearCrossEntropyLossOptions;
}  // namespace lossext::functional
