#include <lossext/cuda/pointwise.cuh>
#include <losses/quotient.h>

LOSSEXT_CUDA_POINTWISE(lossext::quotient_stub, lossext::QuotientOp);
