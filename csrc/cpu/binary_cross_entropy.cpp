#include <lossext/cpu/pointwise.h>
#include <losses/binary_cross_entropy.h>

LOSSEXT_CPU_POINTWISE(lossext::binary_cross_entropy_stub, lossext::BinaryCrossEntropyOp);
