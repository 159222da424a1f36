#include <lossext/cuda/pointwise.cuh>
#include <lossext/ops.h>
#include <lossext/pointwise_op.h>
#include <losses/binary_cross_entropy.h>

#include <torch/library.h>

LOSSEXT_CUDA_POINTWISE(lossext::binary_cross_entropy_stub, lossext::BinaryCrossEntropyOp);

TORCH_LIBRARY_IMPL(lossext, CUDA, m) {
  LOSSEXT_POINTWISE_OP_IMPL(m, binary_cross_entropy, lossext::ops::binary_cross_entropy_call, 2);
}
