#include <lossext/cpu/pointwise.h>
#include <losses/quotient.h>

LOSSEXT_CPU_POINTWISE(lossext::quotient_stub, lossext::QuotientOp);
