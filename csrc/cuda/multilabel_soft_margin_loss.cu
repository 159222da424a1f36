#include <lossext/cuda/pointwise.cuh>
#include <lossext/ops.h>
#include <lossext/pointwise_op.h>
#include <losses/multilabel_soft_margin_loss.h>

#include <torch/library.h>

LOSSEXT_CUDA_POINTWISE(lossext::multilabel_soft_margin_loss_stub, lossext::MultilabelSoftMarginOp);

TORCH_LIBRARY_IMPL(lossext, CUDA, m) {
  LOSSEXT_POINTWISE_OP_IMPL(m, multilabel_soft_margin_loss, lossext::ops::multilabel_soft_margin_loss_call, 2);
}
