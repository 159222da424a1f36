#include <lossext/cuda/pointwise.cuh>
#include <lossext/ops.h>
#include <lossext/pointwise_op.h>
#include <losses/l1_loss.h>

#include <torch/library.h>

LOSSEXT_CUDA_POINTWISE(lossext::l1_loss_stub, lossext::L1LossOp);

TORCH_LIBRARY_IMPL(lossext, CUDA, m) {
  LOSSEXT_POINTWISE_OP_IMPL(m, l1_loss, lossext::ops::l1_loss_call, 3);
}
