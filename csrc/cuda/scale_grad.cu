#include <lossext/cuda/pointwise.cuh>
#include <losses/scale_grad.h>

LOSSEXT_CUDA_POINTWISE(lossext::scale_grad_stub, lossext::ScaleGradOp);
