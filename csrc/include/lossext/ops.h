// Host functions of every op, registered for CPU in csrc/ops/<loss>.cpp and for CUDA in
// csrc/cuda/<loss>.cu. They check, allocate and call the loss's stub; they hold no math.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Optional.h>

#include <array>
#include <tuple>

namespace lossext::ops {

using at::Tensor;
using OptTensor = c10::optional<at::Tensor>;

// grad * grad_output (0-d): the backward of every loss whose gradient was computed in the forward.
Tensor scale_grad(const Tensor& grad, const Tensor& grad_output);

std::tuple<Tensor, Tensor, Tensor> binary_cross_entropy_with_logits(const Tensor& input, const Tensor& target,
                                                                    const OptTensor& weight,
                                                                    const OptTensor& pos_weight, int64_t reduction,
                                                                    std::array<bool, 2> grad_mask);
std::tuple<Tensor, Tensor> binary_cross_entropy_with_logits_backward(const Tensor& grad_output, const Tensor& input,
                                                                     const Tensor& target, const OptTensor& weight,
                                                                     const OptTensor& pos_weight, int64_t reduction,
                                                                     std::array<bool, 2> grad_mask);

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

// nll_loss (csrc/ops/nll_loss.cpp).
std::tuple<Tensor, Tensor> nll_loss(const Tensor& input, const Tensor& target, const OptTensor& weight,
                                    int64_t reduction, int64_t ignore_index, std::array<bool, 1> grad_mask);
Tensor nll_loss_backward(const Tensor& grad_output, const Tensor& input, const Tensor& target,
                         const OptTensor& weight, int64_t reduction, int64_t ignore_index,
                         std::array<bool, 1> grad_mask);

}  // namespace lossext::ops
