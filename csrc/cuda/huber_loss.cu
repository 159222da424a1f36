#include <lossext/cuda/pointwise.cuh>
#include <lossext/ops.h>
#include <lossext/pointwise_op.h>
#include <losses/huber_loss.h>

#include <torch/library.h>

LOSSEXT_CUDA_POINTWISE(lossext::huber_loss_stub, lossext::HuberLossOp);

TORCH_LIBRARY_IMPL(lossext, CUDA, m) {
  LOSSEXT_POINTWISE_OP_IMPL(m, huber_loss, lossext::ops::huber_loss_call, 3);
}
