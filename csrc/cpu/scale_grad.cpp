#include <lossext/cpu/pointwise.h>
#include <losses/scale_grad.h>

LOSSEXT_CPU_POINTWISE(lossext::scale_grad_stub, lossext::ScaleGradOp);
