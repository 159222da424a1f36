#include <lossext/cpu/pointwise.h>
#include <losses/kl_div.h>

LOSSEXT_CPU_POINTWISE(lossext::kl_div_stub, lossext::KLDivOp);
