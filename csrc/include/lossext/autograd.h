// The registry's autograd contract (lossext/_registry.py) in C++, for ops whose per-call cost
// matters: torch.library.register_autograd runs Python on every call (~10 us even without grad,
// ~50 us with it), a C++ Autograd kernel a few microseconds. An op that registers one sets
// `cpp_autograd=True` on its LossSpec (the registry then only registers its fakes).
//
// Contract, as in Python: the forward op runs below autograd. With mean/sum and every needed
// gradient computed in the forward ("scale" mode), the node saves those gradients and its backward
// multiplies them by the 0-d grad_output (free when it is a plain CPU 1). Otherwise ("recompute"
// mode) it saves the inputs and aux outputs and its backward calls the <op>_backward op.
// Host code only (compiled once).
#pragma once

#include <ATen/TensorSubclassLikeUtils.h>
#include <ATen/core/Tensor.h>
#include <ATen/core/grad_mode.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/csrc/autograd/custom_function.h>

namespace lossext {

// grad * grad_output (0-d) through the dispatcher (fake tensors reach the fake kernel); skipped
// when grad_output is a plain CPU tensor equal to 1, the common loss.backward() case.
inline at::Tensor scale_saved_grad(const at::Tensor& grad, const at::Tensor& grad_output) {
  if (grad_output.is_cpu() && !at::isTensorSubclassLike(grad_output) && grad_output.item<double>() == 1.0)
    return grad;
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("lossext::scale_grad", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&)>();
  return op.call(grad, grad_output);
}

// torch raises in the forward when a class weight requires grad (nll_loss is not differentiable
// with respect to it); lossext does the same for every target kind (torch's probability-target
// path would differentiate it: not supported here).
inline void check_weight_not_differentiable(const char* op, const c10::optional<at::Tensor>& weight) {
  TORCH_CHECK(!(weight.has_value() && weight->defined() && weight->requires_grad() && at::GradMode::is_enabled()), op,
              ": is not differentiable with respect to argument 'weight'. This input cannot have requires_grad True.");
}

// Whether the node can keep the forward's gradients ("scale" mode): a reduced loss, and every
// gradient that is needed was computed.
template <size_t K>
inline bool scale_mode(int64_t reduction, const std::array<bool, K>& mask, const std::array<bool, K>& needs) {
  if (reduction == 0) return false;
  for (size_t k = 0; k < K; ++k)
    if (needs[k] && !mask[k]) return false;
  return true;
}

}  // namespace lossext
