// One host function per op, registered for every device from csrc/ops/<loss>.cpp.
//
// A loss's host function (checks, allocation, kernel-table dispatch) is device-agnostic: the
// stub (lossext/dispatch.h) picks the CPU copy or the CUDA launcher by the input's device. So the
// op's implementation is registered once, here for both dispatch keys, and csrc/cuda/<loss>.cu
// holds only device kernels and their stub entry. A CPU-only build registers the CUDA key too:
// a CUDA tensor then reaches the stub, which says that lossext was built without CUDA kernels.
//
//   void impls(torch::Library& m) { m.impl("mse_loss", &mse_loss); ... }
//   LOSSEXT_IMPL_ALL_DEVICES(impls);
#pragma once

#include <torch/library.h>

#define LOSSEXT_IMPL_ALL_DEVICES(fn)                    \
  TORCH_LIBRARY_IMPL(lossext, CPU, m) { fn(m); }        \
  TORCH_LIBRARY_IMPL(lossext, CUDA, m) { fn(m); }       \
  static_assert(true, "")
