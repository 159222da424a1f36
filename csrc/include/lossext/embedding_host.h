// Host side of the embedding losses on the row-wise driver (cosine_embedding_loss,
// triplet_margin_loss; compiled once). Their operands are embeddings whose last dimension holds a
// sample's D features (the driver's "class" dim); the batch dims before it broadcast, as torch's
// composites broadcast them, and flatten into the driver's N rows (S = 1, rows layout).
//   operands   2 or 3 tensors (input, other, third); the rows of each are read with unit stride
//              (expanded views without copies where the batch dims merge into one stride, else a
//              contiguous copy); a size-1 feature dim broadcast to D is materialised
//   value      an optional per-sample target that broadcasts with the batch dims (cosine's y)
// Gradients are computed at the broadcast shape and summed back to each operand's shape.
#pragma once

#include <ATen/core/Tensor.h>
#include <lossext/rowwise.h>

#include <array>
#include <vector>

namespace lossext {

constexpr int kEmbedMaxOperands = 3;

struct EmbeddingProblem {
  const char* op = "";
  RowwiseArgs args;
  int count = 0;                                      // operands
  std::array<at::Tensor, kEmbedMaxOperands> rows;     // as the kernel reads them
  std::array<at::Tensor, kEmbedMaxOperands> grads;    // at the broadcast shape, where wanted
  std::array<at::Tensor, kEmbedMaxOperands> given;    // the caller's operands
  at::Tensor value;                                   // the value target as the kernel reads it
  std::vector<int64_t> shape;                         // the broadcast operand shape (batch..., D)
  std::vector<int64_t> sample_shape;                  // the unreduced loss: the batch shape
};

// Checks dtypes and devices, broadcasts, converts and lays out the operands; allocates the wanted
// gradients. `names` name the operands (and the value target last) in messages. Operands of 0
// dims are one sample of one feature. The dtype is torch's result type of the operands (an integer
// result: the default float dtype); with `float_each`, integer operands count as the default float
// dtype before promoting (cosine's |x|^2 + EPSILON is float for an integer x beside a half one).
EmbeddingProblem embedding_prepare(const char* op, at::TensorList operands, const at::Tensor& value,
                                   const std::vector<const char*>& names, int64_t reduction,
                                   at::ArrayRef<bool> want_grads, bool float_each = false);

// The loss output (0-d for mean/sum, else the batch shape; the computation dtype) and the forward's
// saved statistics (batch shape + (count,), math dtype); both point p.args at their buffers.
at::Tensor embedding_loss_buffer(EmbeddingProblem& p);
at::Tensor embedding_saved_buffer(EmbeddingProblem& p, int64_t count);
// The backward's inputs: grad_output (checked against the reduction) and the saved statistics.
// Return the tensors the kernel reads (keep them alive).
at::Tensor embedding_set_grad_output(EmbeddingProblem& p, const at::Tensor& grad_output);
at::Tensor embedding_use_saved(EmbeddingProblem& p, const at::Tensor& saved, int64_t count);
// 1/D where every operand in `ks` has one feature broadcast to the D of the problem (the kernel
// reads D copies of it: a norm over them is scaled back to torch's norm over its one element), else 1.
double embedding_inv_rep(const EmbeddingProblem& p, std::initializer_list<int> ks);
// Operand k's gradient as returned: summed to its shape, in its dtype; "not computed" if not wanted.
at::Tensor embedding_grad(const EmbeddingProblem& p, int k);

}  // namespace lossext
