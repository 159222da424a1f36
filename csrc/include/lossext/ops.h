// Host functions of every op, registered for CPU in csrc/ops/<loss>.cpp and for CUDA in
// csrc/cuda/<loss>.cu. They check, allocate and call the loss's stub; they hold no math.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Optional.h>
#include <lossext/host.h>
#include <lossext/pair_loss_host.h>

#include <array>
#include <tuple>

namespace lossext::ops {

using at::Tensor;
using OptTensor = c10::optional<at::Tensor>;

// grad * grad_output (0-d): the backward of every loss whose gradient was computed in the forward.
Tensor scale_grad(const Tensor& grad, const Tensor& grad_output);

// The (input, target[, weight]) losses: the op wrappers of lossext/pointwise_op.h are built from
// these call builders (csrc/ops/<loss>.cpp).
PairLossCall l1_loss_call(const Tensor& input, const Tensor& target, const OptTensor& weight, int64_t reduction);
PairLossCall mse_loss_call(const Tensor& input, const Tensor& target, const OptTensor& weight, int64_t reduction);
PairLossCall huber_loss_call(const Tensor& input, const Tensor& target, const OptTensor& weight, int64_t reduction,
                             double delta);
PairLossCall smooth_l1_loss_call(const Tensor& input, const Tensor& target, int64_t reduction, double beta);
PairLossCall soft_margin_loss_call(const Tensor& input, const Tensor& target, int64_t reduction);

// The other pointwise losses (csrc/ops/<loss>.cpp): call builders of a plain PointwiseCall
// (lossext/host.h), whose grad_mask the op wrappers of lossext/pointwise_op.h fill in.
PointwiseCall binary_cross_entropy_with_logits_call(const Tensor& input, const Tensor& target,
                                                    const OptTensor& weight, const OptTensor& pos_weight,
                                                    int64_t reduction);
PointwiseCall binary_cross_entropy_call(const Tensor& input, const Tensor& target, const OptTensor& weight,
                                        int64_t reduction);
PointwiseCall poisson_nll_loss_call(const Tensor& input, const Tensor& target, bool log_input, bool full,
                                    double eps, int64_t reduction);
// batch_divide: the result divided by input.size(0) (not for a 0-d input), as F.kl_div does for
// reduction='batchmean' (= reduction sum + batch_divide).
PointwiseCall kl_div_call(const Tensor& input, const Tensor& target, int64_t reduction, bool log_target,
                          bool batch_divide);
PointwiseCall multilabel_soft_margin_loss_call(const Tensor& input, const Tensor& target, const OptTensor& weight,
                                               int64_t reduction);

}  // namespace lossext::ops

// gaussian_nll_loss (csrc/ops/gaussian_nll_loss.cpp).
namespace lossext::ops {

// var: a tensor, or absent with the float `var_value` for every element.
std::tuple<Tensor, Tensor, Tensor, Tensor> gaussian_nll_loss(const Tensor& input, const Tensor& target,
                                                             const OptTensor& var, double var_value, bool full,
                                                             double eps, int64_t reduction,
                                                             std::array<bool, 3> grad_mask);
std::tuple<Tensor, Tensor, Tensor> gaussian_nll_loss_backward(const Tensor& grad_output, const Tensor& input,
                                                              const Tensor& target, const OptTensor& var,
                                                              double var_value, bool full, double eps,
                                                              int64_t reduction, std::array<bool, 3> grad_mask);

}  // namespace lossext::ops

namespace lossext::ops {

// cross_entropy (csrc/ops/cross_entropy.cpp). lse: per-sample log-sum-exp (float for half types; 0
// for ignored samples, which need none), saved for the backward. The in-place pair backs
// lossext.functional.cross_entropy(inplace_backward=True). Row-wise geometry: lossext/rowwise.h.
std::tuple<Tensor, Tensor, Tensor, Tensor> cross_entropy(const Tensor& input, const Tensor& target,
                                                         const OptTensor& weight, int64_t reduction,
                                                         int64_t ignore_index, double label_smoothing,
                                                         std::array<bool, 2> grad_mask);
std::tuple<Tensor, Tensor> cross_entropy_backward(const Tensor& grad_output, const Tensor& input, const Tensor& target,
                                                  const OptTensor& weight, int64_t reduction, int64_t ignore_index,
                                                  double label_smoothing, const Tensor& lse,
                                                  std::array<bool, 2> grad_mask);
Tensor cross_entropy_inplace(Tensor& input, const Tensor& target, const OptTensor& weight, int64_t reduction,
                             int64_t ignore_index, double label_smoothing);
void cross_entropy_inplace_backward(Tensor& grad, const Tensor& grad_output, int64_t reduction);
void scale_grad_(Tensor& grad, const Tensor& grad_output);

// nll_loss (csrc/ops/nll_loss.cpp).
std::tuple<Tensor, Tensor> nll_loss(const Tensor& input, const Tensor& target, const OptTensor& weight,
                                    int64_t reduction, int64_t ignore_index, std::array<bool, 1> grad_mask);
Tensor nll_loss_backward(const Tensor& grad_output, const Tensor& input, const Tensor& target,
                         const OptTensor& weight, int64_t reduction, int64_t ignore_index,
                         std::array<bool, 1> grad_mask);

}  // namespace lossext::ops
