#include <lossext/cuda/pointwise.cuh>
#include <lossext/ops.h>
#include <lossext/pointwise_op.h>
#include <losses/mse_loss.h>

#include <torch/library.h>

LOSSEXT_CUDA_POINTWISE(lossext::mse_loss_stub, lossext::MseLossOp);

TORCH_LIBRARY_IMPL(lossext, CUDA, m) {
  LOSSEXT_POINTWISE_OP_IMPL(m, mse_loss, lossext::ops::mse_loss_call, 3);
}
