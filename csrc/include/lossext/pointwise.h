// The pointwise driver's contract, shared by the host op, the CPU loops and the CUDA kernels.
//
// A pointwise loss reads kInputs operands per element (input, target, weight, ...), all broadcast
// to one shape, and produces a per-element loss and, optionally, the gradient with respect to the
// first kGrads operands. The driver walks the elements (strided, broadcast, any dtype), applies the
// reduction and writes what was asked. A loss supplies only its functor:
//
//   struct MyLoss {
//     static constexpr int kInputs = 2, kGrads = 2;
//     explicit MyLoss(const double* params);              // scalar options from the host
//     template <class V> C10_HOST_DEVICE V operator()(const V (&x)[kInputs], V (&g)[kGrads]) const;
//   };   // returns the loss of one element; g[k] = d loss / d x[k]
//
// Modes:
//   kForwardNone : out[0] = loss (elementwise)
//   kForwardReduce: loss = scale * sum(loss);  grads (where grad_mask has bit k) = scale * g[k]
//   kBackwardNone: x[kInputs] is grad_output; out[k] = scale * grad_output * g[k] (masked k)
#pragma once

#include <c10/core/ScalarType.h>
#include <cstdint>

namespace lossext {

constexpr int kPwMaxDims = 8;
constexpr int kPwMaxOperands = 6;  // inputs (+ grad_output)
constexpr int kPwMaxParams = 8;

enum class PwMode : int { kForwardNone = 0, kForwardReduce = 1, kBackwardNone = 2 };

struct PointwiseArgs {
  PwMode mode = PwMode::kForwardNone;
  c10::ScalarType dtype = c10::ScalarType::Float;  // every operand and output has this dtype
  int64_t numel = 0;
  int ndim = 0;                       // after coalescing; dim 0 is the outermost
  int64_t sizes[kPwMaxDims] = {};
  int nin = 0;                        // operands read per element
  const void* in[kPwMaxOperands] = {};  // nullptr: the operand is the constant 1 (absent weight)
  int64_t in_strides[kPwMaxOperands][kPwMaxDims] = {};  // in elements
  // Elementwise outputs: [0] the loss (kForwardNone) or the gradients of operands 0..kGrads-1.
  void* out[kPwMaxOperands] = {};     // nullptr: not written
  int64_t out_strides[kPwMaxOperands][kPwMaxDims] = {};
  // kForwardReduce: where the 0-d loss goes (dtype). scale: the factor for loss and gradients.
  void* loss = nullptr;
  double scale = 1.0;
  double params[kPwMaxParams] = {};
  // Every operand and output is either absent, a broadcast scalar, or unit-stride in one dim.
  bool contiguous = false;
};

using PointwiseFn = void (*)(const PointwiseArgs&);

}  // namespace lossext
