// nll_loss on one sample (see lossext/rowwise.h for the layout): the input holds log-probabilities.
//   loss = -w_t x_t          (0 when ignored)
//   dL/dx_c = -r w_t [c == t]   (r: 1/denominator for mean, 1 for sum, times grad_output)
#pragma once

#include <lossext/dispatch.h>
#include <lossext/rowwise.h>

namespace lossext {

LOSSEXT_DECLARE_STUB(nll_loss_stub, RowwiseFn);

}  // namespace lossext
