#include <lossext/cuda/pointwise.cuh>
#include <lossext/ops.h>
#include <lossext/pointwise_op.h>
#include <losses/smooth_l1_loss.h>

#include <torch/library.h>

LOSSEXT_CUDA_POINTWISE(lossext::smooth_l1_loss_stub, lossext::SmoothL1LossOp);

TORCH_LIBRARY_IMPL(lossext, CUDA, m) {
  LOSSEXT_POINTWISE_OP_IMPL(m, smooth_l1_loss, lossext::ops::smooth_l1_loss_call, 2);
}
