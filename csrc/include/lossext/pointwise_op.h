// The two host functions of a loss op (see lossext/_registry.py for the contract), generated from
// one "call builder" that checks the arguments and describes the call:
//
//   PairLossCall mse_loss_call(const Tensor& input, const Tensor& target, const OptTensor& weight,
//                              int64_t reduction);   // file-local in csrc/ops/mse_loss.cpp
//
// gives, for schema  mse_loss(<those args>, bool[K] grad_mask) -> (Tensor x K+1)
//   forward (<those args>, std::array<bool, K> grad_mask) -> tuple of K + 1 tensors
//   backward(grad_output, <those args>, std::array<bool, K> grad_mask) -> tuple of K tensors
// which LOSSEXT_POINTWISE_OP registers for every device, once, at the end of csrc/ops/<loss>.cpp.
// The call type needs a `grad_mask` vector and run_forward / run_backward overloads.
#pragma once

#include <ATen/core/Tensor.h>
#include <lossext/host.h>
#include <lossext/registration.h>

#include <array>
#include <cstddef>
#include <tuple>
#include <utility>
#include <vector>

namespace lossext {

namespace detail {
template <size_t... I>
auto tensors_tuple(const std::vector<at::Tensor>& v, std::index_sequence<I...>) {
  return std::make_tuple(v[I]...);
}
}  // namespace detail

// A plain PointwiseCall (lossext/host.h) works as a call type too.
inline std::vector<at::Tensor> run_forward(const PointwiseCall& call) { return pointwise_forward(call); }
inline std::vector<at::Tensor> run_backward(const PointwiseCall& call, const at::Tensor& grad_output) {
  return pointwise_backward(call, grad_output);
}

template <size_t N>
auto tensors_tuple(const std::vector<at::Tensor>& v) {
  TORCH_CHECK(v.size() == N, "lossext: an op produced ", v.size(), " tensors, its schema has ", N);
  return detail::tensors_tuple(v, std::make_index_sequence<N>{});
}

template <class Sig>
struct OpFns;

template <class Call, class... A>
struct OpFns<Call(A...)> {
  template <Call (*Make)(A...), size_t K>
  static auto forward(A... args, std::array<bool, K> grad_mask) {
    Call call = Make(args...);
    call.grad_mask.assign(grad_mask.begin(), grad_mask.end());
    return tensors_tuple<K + 1>(run_forward(call));
  }
  template <Call (*Make)(A...), size_t K>
  static auto backward(const at::Tensor& grad_output, A... args, std::array<bool, K> grad_mask) {
    Call call = Make(args...);
    call.grad_mask.assign(grad_mask.begin(), grad_mask.end());
    return tensors_tuple<K>(run_backward(call, grad_output));
  }
};

}  // namespace lossext

// Registers <name> and <name>_backward, built from `make` (a function) with K differentiable args.
#define LOSSEXT_POINTWISE_OP_IMPL(m, name, make, K)                              \
  do {                                                                           \
    using LossextOpFns_ = ::lossext::OpFns<decltype(make)>;                      \
    (m).impl(#name, &LossextOpFns_::forward<&make, K>);                          \
    (m).impl(#name "_backward", &LossextOpFns_::backward<&make, K>);             \
  } while (0)

// In csrc/ops/<loss>.cpp, at namespace scope:  LOSSEXT_POINTWISE_OP(mse_loss, lossext::ops::mse_loss_call, 3);
#define LOSSEXT_POINTWISE_OP(name, make, K)                                                     \
  static void LOSSEXT_CONCAT(lossext_impls_, name)(torch::Library & m) {                        \
    LOSSEXT_POINTWISE_OP_IMPL(m, name, make, K);                                                \
  }                                                                                             \
  LOSSEXT_IMPL_ALL_DEVICES(LOSSEXT_CONCAT(lossext_impls_, name))
