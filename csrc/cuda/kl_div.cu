#include <lossext/cuda/pointwise.cuh>
#include <losses/kl_div.h>

LOSSEXT_CUDA_POINTWISE(lossext::kl_div_stub, lossext::KLDivOp);
