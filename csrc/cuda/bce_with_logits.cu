#include <lossext/cuda/pointwise.cuh>
#include <lossext/ops.h>
#include <lossext/pointwise_op.h>
#include <losses/bce_with_logits.h>

#include <torch/library.h>

LOSSEXT_CUDA_POINTWISE(lossext::bce_with_logits_stub, lossext::BCEWithLogitsOp);

TORCH_LIBRARY_IMPL(lossext, CUDA, m) {
  LOSSEXT_POINTWISE_OP_IMPL(m, binary_cross_entropy_with_logits,
                            lossext::ops::binary_cross_entropy_with_logits_call, 2);
}
