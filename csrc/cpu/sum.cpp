#include <lossext/cpu/pointwise.h>
#include <losses/sum.h>

LOSSEXT_CPU_POINTWISE(lossext::sum_stub, lossext::SumOp);
