// Autograd of every loss op, in C++, from one table row per loss.
//
// Every loss follows one op contract (lossext/_registry.py states it):
//   lossext::<name>(<args>, int reduction, bool[k] grad_mask) -> (loss, grad_<d1..dk>, <aux>)
//   lossext::<name>_backward(grad_output, <args without grad_mask>, <aux>, bool[k] grad_mask)
//       -> (grad_<d1..dk>)
// A row registers kernels at the Autograd key for both ops, so eager Python, C++ programs without
// Python, torch.compile (AOTAutograd traces these kernels) and torch.func all use one mechanism:
//   - forward: the loss gets a grad_fn; the gradients written in the same pass (reduced losses)
//     are saved and the backward only scales them by grad_output (in place when nothing else holds
//     them, skipped on the CPU when grad_output is 1); otherwise the backward op recomputes them
//     from the saved inputs and aux outputs.
//   - backward op: differentiable when the row has a `composite`: the loss written in plain ATen
//     arithmetic, used only for second derivatives (create_graph=True). The first derivative keeps
//     lossext's value; its derivative is the composite's second derivative. A row without one
//     (torch has no double backward there either) makes a second derivative raise.
//
//   In csrc/ops/<loss>.cpp:
//     Tensor mse_loss_composite(const lossext::autograd::Args& a) { ... }
//     LOSSEXT_AUTOGRAD(mse_loss, &mse_loss_composite, "input", "target", "weight");
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/core/ivalue.h>
#include <torch/library.h>

#include <string>
#include <vector>

namespace lossext::autograd {

// The forward op's arguments without grad_mask, in schema order; differentiable ones require grad.
using Args = std::vector<c10::IValue>;
// The loss (reduced as the op's `reduction` says) as differentiable ATen arithmetic.
using Composite = at::Tensor (*)(const Args& args);

struct Row {
  std::string name;
  Composite composite = nullptr;   // nullptr: no double backward
  std::vector<std::string> diff;   // differentiable arguments, in the order of the grad outputs
};

// Registers the Autograd kernels of <row.name> and <row.name>_backward.
void register_row(torch::Library& m, Row row);

// Helpers for composites.
inline at::Tensor tensor(const Args& a, size_t i) { return a[i].isNone() ? at::Tensor() : a[i].toTensor(); }
// reduction 0/1/2 = none/mean/sum of an unreduced loss.
at::Tensor reduce(const at::Tensor& loss, int64_t reduction);

}  // namespace lossext::autograd

#define LOSSEXT_AUTOGRAD(name, composite, ...)                                                   \
  TORCH_LIBRARY_IMPL(lossext, Autograd, m) {                                                     \
    ::lossext::autograd::register_row(m, {#name, composite, {__VA_ARGS__}});                     \
  }                                                                                              \
  static_assert(true, "")
