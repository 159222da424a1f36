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

std::tuple<Tensor, Tensor, Tensor> binary_cross_entropy(const Tensor& input, const Tensor& target,
                                                        const OptTensor& weight, int64_t reduction,
                                                        std::array<bool, 2> grad_mask);
std::tuple<Tensor, Tensor> binary_cross_entropy_backward(const Tensor& grad_output, const Tensor& input,
                                                         const Tensor& target, const OptTensor& weight,
                                                         int64_t reduction, std::array<bool, 2> grad_mask);

std::tuple<Tensor, Tensor, Tensor> multilabel_soft_margin_loss(const Tensor& input, const Tensor& target,
                                                               const OptTensor& weight, int64_t reduction,
                                                               std::array<bool, 2> grad_mask);
std::tuple<Tensor, Tensor> multilabel_soft_margin_loss_backward(const Tensor& grad_output, const Tensor& input,
                                                                const Tensor& target, const OptTensor& weight,
                                                                int64_t reduction, std::array<bool, 2> grad_mask);

}  // namespace lossext::ops
