#include <lossext/cuda/pointwise.cuh>
#include <lossext/ops.h>
#include <losses/kl_div.h>

#include <torch/library.h>

LOSSEXT_CUDA_POINTWISE(lossext::kl_div_stub, lossext::KLDivOp);

TORCH_LIBRARY_IMPL(lossext, CUDA, m) {
  m.impl("kl_div", &lossext::ops::kl_div);
  m.impl("kl_div_backward", &lossext::ops::kl_div_backward);
}
