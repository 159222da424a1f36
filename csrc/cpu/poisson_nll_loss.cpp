#include <lossext/cpu/pointwise.h>
#include <losses/poisson_nll_loss.h>

LOSSEXT_CPU_POINTWISE(lossext::poisson_nll_loss_stub, lossext::PoissonNLLOp);
