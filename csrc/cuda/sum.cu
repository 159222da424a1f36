#include <lossext/cuda/pointwise.cuh>
#include <losses/sum.h>

LOSSEXT_CUDA_POINTWISE(lossext::sum_stub, lossext::SumOp);
