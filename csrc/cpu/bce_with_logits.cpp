#include <lossext/cpu/pointwise.h>
#include <losses/bce_with_logits.h>

LOSSEXT_CPU_POINTWISE(lossext::bce_with_logits_stub, lossext::BCEWithLogitsOp);
