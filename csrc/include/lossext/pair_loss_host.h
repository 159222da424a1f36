// Host side of the (input, target[, weight]) losses (functor: lossext/pair_loss.h): the rules
// torch's functionals apply around the math, in one place (csrc/ops/pair_loss.cpp).
//
//  - input and target broadcast (RuntimeError naming the op and both shapes if they cannot);
//  - weight (l1, mse, huber) must have exactly the input's shape (ValueError, as torch), is
//    broadcast with the rest and is differentiable;
//  - the mean is sum / numel, except for a weighted l1/mse: sum(w f) / sum(w) (torch's functional);
//  - the loss dtype is the promoted dtype, or the input's for huber/soft_margin (the ATen kernels
//    write into a tensor like the input), then promoted with a weight as torch's `loss * weight`
//    does (a 0-d weight of a 0-d input does not take part unless the loss is 0-d too);
//  - soft_margin's target may broadcast to the input's shape but not enlarge it (as ATen);
//  - integer/bool targets (and, per loss, inputs) are promoted as torch does; complex operands
//    raise NotImplementedError, except where the loss has a complex kernel (l1: complex input and/or
//    target, real loss of the real value type, complex gradients; a complex weight still raises).
//    torch's soft_margin computes complex operands too: a documented deviation.
//  - hinge_embedding's input must be floating (torch computes integer inputs for 'none'/'sum').
#pragma once

#include <ATen/core/Tensor.h>
#include <lossext/dispatch.h>
#include <lossext/host.h>
#include <lossext/pointwise.h>

#include <vector>

namespace lossext {

// What sets one pair loss apart (a static constant in its csrc/ops/<loss>.cpp).
struct PairLossInfo {
  const char* op;
  const Stub<PointwiseFn>* stub;
  bool mean_over_weight_sum = false;  // l1, mse: weighted mean = sum(w f) / sum(w)
  bool loss_in_input_dtype = false;   // huber, soft_margin
  bool target_within_input = false;   // soft_margin: broadcasting may not enlarge the input
  // Integer and bool operands, as torch (they are promoted with torch.result_type's dtype):
  bool int_input_ok = false;              // l1, mse, smooth_l1: integer input, floating target
  bool int_pair_not_implemented = true;   // both integer: NotImplementedError (no integer kernel),
                                          // else RuntimeError (l1, soft_margin)
  bool bool_target_ok = true;             // l1: torch's `input - target` rejects a bool target
  bool float_input = false;             // hinge_embedding: a floating input only
  // The kernels for complex input/target (a ComplexPairLoss functor), or nullptr: NotImplementedError.
  const Stub<PointwiseFn>* complex_stub = nullptr;
};

struct PairLossCall {
  const PairLossInfo* info;
  at::Tensor input, target;
  at::Tensor weight;            // undefined: no weight
  int64_t reduction = 1;
  std::vector<double> params;   // the Base functor's options
  std::vector<bool> grad_mask;  // input, target[, weight]; set by the op wrapper (pointwise_op.h)
};

// {loss, grad_input, grad_target[, grad_weight]}; a grad is computed in the same pass (scaled by the
// reduction) for reduction mean/sum where grad_mask is set, else it is an empty tensor.
std::vector<at::Tensor> run_forward(const PairLossCall& call);
// {grad_input, grad_target[, grad_weight]} = grad_output * d loss / d operand, where grad_mask is set.
std::vector<at::Tensor> run_backward(const PairLossCall& call, const at::Tensor& grad_output);

}  // namespace lossext
