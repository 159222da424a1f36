#include <lossext/cuda/pointwise.cuh>
#include <losses/bce_with_logits.h>

LOSSEXT_CUDA_POINTWISE(lossext::bce_with_logits_stub, lossext::BCEWithLogitsOp);
