// The losses as plain differentiable ATen arithmetic, for second derivatives only (the backward
// op's Autograd kernel differentiates them under create_graph=True; see lossext/autograd.h). Each
// follows torch's own definition of the loss (aten/src/ATen/native/Loss*.cpp, torch.nn.functional),
// reductions and denominators included. Never on the path of a loss value or first derivative.
#pragma once

#include <ATen/core/Tensor.h>
#include <lossext/autograd.h>

namespace lossext::autograd {

inline int64_t int_at(const Args& a, size_t i) { return a[i].toInt(); }
inline double double_at(const Args& a, size_t i) { return a[i].toDouble(); }
inline bool bool_at(const Args& a, size_t i) { return a[i].toBool(); }

// sum(l) / sum(w) for mean (torch's weighted l1/mse), else reduce(l * w).
at::Tensor weighted(const at::Tensor& l, const at::Tensor& w, int64_t reduction, bool mean_over_weight_sum);
// softplus(x) = log(1 + exp(x)), stable, twice differentiable.
at::Tensor softplus(const at::Tensor& x);
// cross_entropy (from logits) or nll_loss (from log-probabilities) with torch's options: class-index
// or probability targets, class weights, ignore_index, label smoothing, K-dim and unbatched inputs.
// z_loss adds z w_t lse^2 per non-ignored row (linear_cross_entropy's extra), reduced as the loss.
at::Tensor cross_entropy(const at::Tensor& x, const at::Tensor& target, const at::Tensor& weight, int64_t reduction,
                         int64_t ignore_index, double label_smoothing, bool logits, double z_loss = 0);

}  // namespace lossext::autograd
