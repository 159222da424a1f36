#include <lossext/cuda/pointwise.cuh>
#include <lossext/ops.h>
#include <lossext/pointwise_op.h>
#include <losses/kl_div.h>

#include <torch/library.h>

LOSSEXT_CUDA_POINTWISE(lossext::kl_div_stub, lossext::KLDivOp);

TORCH_LIBRARY_IMPL(lossext, CUDA, m) {
  LOSSEXT_POINTWISE_OP_IMPL(m, kl_div, lossext::ops::kl_div_call, 2);
}
