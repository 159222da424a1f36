// lossext's C++ API: torch::nn's losses computed by lossext's kernels, for libtorch programs.
//
//   #include <torch/torch.h>
//   #include <lossext/lossext.h>
//   namespace F = torch::nn::functional;
//   auto loss = lossext::functional::cross_entropy(logits, target,
//                                                  F::CrossEntropyFuncOptions().label_smoothing(0.1));
//   lossext::nn::CrossEntropyLoss criterion(torch::nn::CrossEntropyLossOptions().ignore_index(0));
//   loss.backward();  // autograd is lossext's (registered at the Autograd key, csrc/autograd)
//
// Every function takes torch's own options type (torch::nn::functional::<Loss>FuncOptions) with the
// same defaults and semantics as torch::nn::functional::<loss>, so swapping the namespace is the
// whole migration; every module is built from torch::nn::<Loss>Options like torch::nn::<Loss>.
// Losses torch has no C++ API for (gaussian_nll_loss, the focal losses, linear_cross_entropy) take
// lossext's options in torch's style (lossext/api/options.h). Link liblossext.so (CMake:
// find_package(lossext), target lossext::lossext; see README "C++ API").
#pragma once

#include <lossext/api/library.h>
#include <lossext/api/options.h>
#include <lossext/api/functional.h>
#include <lossext/api/modules.h>
