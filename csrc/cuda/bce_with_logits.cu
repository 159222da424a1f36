#include <lossext/cuda/pointwise.cuh>
#include <lossext/ops.h>
#include <losses/bce_with_logits.h>

#include <torch/library.h>

LOSSEXT_CUDA_POINTWISE(lossext::bce_with_logits_stub, lossext::BCEWithLogitsOp);

TORCH_LIBRARY_IMPL(lossext, CUDA, m) {
  m.impl("binary_cross_entropy_with_logits", &lossext::ops::binary_cross_entropy_with_logits);
  m.impl("binary_cross_entropy_with_logits_backward", &lossext::ops::binary_cross_entropy_with_logits_backward);
}
