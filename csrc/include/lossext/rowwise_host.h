// Host side of the row-wise losses (compiled once): torch's argument rules for class-dim losses
// (input (C) / (N, C) / (N, C, d1..dk), class-index or probability targets, class weights,
// ignore_index), the (N, C, S) geometry and layout choice, and the buffers. A loss's host
// function calls rowwise_prepare, checks its own options, and calls its stub with its params.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Optional.h>
#include <lossext/rowwise.h>

#include <initializer_list>
#include <vector>

namespace lossext {

struct RowwiseSpec {
  const char* op;
  bool allow_prob;   // a target shaped like the input holds class probabilities (cross_entropy)
  bool need_layout;  // the forward sweeps rows: every (N, C, S) operand must be in the rows or the
                     // spatial layout (else they are made contiguous). Always so when a gradient is
                     // written; nll_loss's forward reads one element per row, at any strides
  bool target_set = false;  // the target is an (N, C) int64 list of classes per row (kTargetSet losses:
                            // multilabel_margin_loss); the op checks its shape, the args get tN and tC
};

struct RowwiseProblem {
  const char* op = "";
  RowwiseArgs args;                   // geometry and options; output pointers set by the op
  bool prob = false;                  // the target is input-shaped (probabilities: args.other)
  at::Tensor input, target, weight;   // as the kernels read them (maybe converted / contiguous)
  at::Tensor grad_input, grad_target; // allocated by rowwise_prepare where asked (undefined else)
  std::vector<int64_t> sample_shape;  // shape of the unreduced loss (input shape minus class dim)
  at::ScalarType input_dtype, target_dtype;  // the caller's: gradients are returned in these
  bool transposed = false;            // (N, C) with stride(0) == 1, run as (1, C, N) in the spatial layout
};

// Checks the arguments as torch does (same exception types; messages name `spec.op` and the
// shapes) and fills the problem. `want_grad_input` / `want_grad_target` allocate the gradient
// buffers (empty_like of the operand); `inplace` makes grad_input the input itself.
RowwiseProblem rowwise_prepare(const RowwiseSpec& spec, const at::Tensor& input, const at::Tensor& target,
                               const c10::optional<at::Tensor>& weight, int64_t reduction, int64_t ignore_index,
                               bool want_grad_input, bool want_grad_target, bool inplace = false);

// Whether a reduced forward writes the gradients in its own pass: not when an operand is float16.
// A float16 gradient rounded before grad_output multiplies it breaks loss scaling (r = 1/N is
// subnormal in float16 for N > 16384), so the backward computes it in float from the saved
// statistics and rounds once, as the pointwise host does (the fake kernels follow the same rule).
bool rowwise_forward_grads(std::initializer_list<at::Tensor> operands);

// A per-sample (N, S) buffer of the given dtype with shape p.sample_shape (contiguous).
at::Tensor rowwise_sample_buffer(const RowwiseProblem& p, at::ScalarType dtype);
// The loss output: 0-d for mean/sum, else a per-sample buffer (p's dtype).
at::Tensor rowwise_loss_buffer(const RowwiseProblem& p);
// The math dtype of the saved statistics (float for half types).
at::ScalarType rowwise_math_dtype(at::ScalarType dtype);
// The forward's saved statistics, `count` per sample (sample shape + (count,), math dtype); an
// undefined tensor when count is 0. Points p.args.saved at it.
at::Tensor rowwise_saved_buffer(RowwiseProblem& p, int64_t count);
// Checks the saved statistics handed to a backward and points p.args.saved at them.
at::Tensor rowwise_use_saved(RowwiseProblem& p, const at::Tensor& saved, int64_t count);

// Checks grad_output (0-d for mean/sum, the sample shape for none), converts it to p's dtype if
// needed and points p.args at it. Returns the tensor the kernel reads (keep it alive).
at::Tensor rowwise_set_grad_output(RowwiseProblem& p, const at::Tensor& grad_output);
// The same for a loss whose unreduced loss has another shape than p.sample_shape (multi_margin,
// multilabel_margin: torch's (N) or 0-d): grad_output is checked against `loss_shape`.
at::Tensor rowwise_set_grad_output(RowwiseProblem& p, const at::Tensor& grad_output, at::IntArrayRef loss_shape);


// The gradient as returned to the caller: in the caller's dtype, or an empty "not computed" tensor.
at::Tensor rowwise_finish_grad(const at::Tensor& grad, const at::Tensor& like, at::ScalarType dtype);
// The input's gradient as returned: rowwise_finish_grad, in the input's shape (an unbatched input
// runs as one row).
at::Tensor rowwise_grad_like_input(const RowwiseProblem& p, const at::Tensor& input);

}  // namespace lossext
