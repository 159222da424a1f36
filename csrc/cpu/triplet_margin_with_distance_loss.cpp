// triplet_margin_with_distance_loss on the CPU: the pointwise driver with the margin functor.
#include <lossext/cpu/pointwise.h>
#include <losses/triplet_margin_with_distance_loss.h>

LOSSEXT_CPU_POINTWISE(lossext::triplet_margin_with_distance_loss_stub, lossext::TripletMarginDistanceOp);
