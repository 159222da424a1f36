#include <lossext/cuda/pointwise.cuh>
#include <losses/binary_cross_entropy.h>

LOSSEXT_CUDA_POINTWISE(lossext::binary_cross_entropy_stub, lossext::BinaryCrossEntropyOp);
