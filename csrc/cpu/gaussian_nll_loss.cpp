#include <lossext/cpu/pointwise.h>
#include <losses/gaussian_nll_loss.h>

LOSSEXT_CPU_POINTWISE(lossext::gaussian_nll_loss_stub, lossext::GaussianNLLOp);
LOSSEXT_CPU_POINTWISE(lossext::count_negative_stub, lossext::CountNegativeOp);
