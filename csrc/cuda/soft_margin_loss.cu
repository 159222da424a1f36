#include <lossext/cuda/pointwise.cuh>
#include <lossext/ops.h>
#include <lossext/pointwise_op.h>
#include <losses/soft_margin_loss.h>

#include <torch/library.h>

LOSSEXT_CUDA_POINTWISE(lossext::soft_margin_loss_stub, lossext::SoftMarginLossOp);

TORCH_LIBRARY_IMPL(lossext, CUDA, m) {
  LOSSEXT_POINTWISE_OP_IMPL(m, soft_margin_loss, lossext::ops::soft_margin_loss_call, 2);
}
