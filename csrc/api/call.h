// What csrc/api's functions share: the typed dispatcher handle of a lossext op, the grad mask, and
// the argument rules lossext.functional (Python) applies before calling an op.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/core/GradMode.h>
#include <c10/util/Exception.h>
#include <torch/enum.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <tuple>

namespace lossext::api {

using at::Tensor;
using OptTensor = std::optional<Tensor>;
using T = const Tensor&;
using OT = const OptTensor&;
template <size_t N>
using Mask = std::array<bool, N>;
// The ops' outputs: (loss, grad_<d1..dk>, <aux>).
using R2 = std::tuple<Tensor, Tensor>;
using R3 = std::tuple<Tensor, Tensor, Tensor>;
using R4 = std::tuple<Tensor, Tensor, Tensor, Tensor>;
using R5 = std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor>;

// The op through the dispatcher (so its Autograd kernel runs); the signature is checked against the
// registered schema at the first call. Callers keep it in a function-local static.
template <class Sig>
c10::TypedOperatorHandle<Sig> op(const char* name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "").typed<Sig>();
}

// Whether the forward should compute the gradient of `t` in the same pass (lossext._common.grad_mask).
inline bool wants_grad(const Tensor& t) { return t.defined() && t.requires_grad() && c10::GradMode::is_enabled(); }

inline OptTensor opt(const Tensor& t) { return t.defined() ? OptTensor(t) : std::nullopt; }

// torch's composites differentiate a class weight; lossext's kernels do not: raise torch's own
// error rather than drop the gradient (lossext._common.check_weight_not_differentiable).
inline void check_not_differentiable(const char* fn, const char* arg, const Tensor& t) {
  TORCH_CHECK(!wants_grad(t), "The function '", fn, "' is not differentiable with respect to argument '", arg,
              "'. This input cannot have requires_grad True.");
}

// torch's reduction variants (kNone/kMean/kSum) as the ops' reduction int 0/1/2.
template <class V>
int64_t reduction(const V& r) {
  return static_cast<int64_t>(torch::enumtype::reduction_get_enum(r));
}

// torch's C++ mse/smooth_l1/huber warning (torch/nn/functional/loss.h).
inline void warn_if_broadcast(const Tensor& input, const Tensor& target) {
  if (target.sizes() != input.sizes()) {
    TORCH_WARN("Using a target size (", target.sizes(), ") that is different to the input size (", input.sizes(),
               "). ", "This will likely lead to incorrect results due to broadcasting. ",
               "Please ensure they have the same size.");
  }
}

}  // namespace lossext::api
