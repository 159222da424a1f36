// vocab_parallel_linear_cross_entropy host functions: the LM head whose rows are split by vocabulary
// (rank r holds W[o_r : o_r + V_r] and b[o_r : o_r + V_r]) fused with vocab_parallel_cross_entropy,
// chunk by chunk of tokens as linear_cross_entropy (never more than one chunk of logits in memory):
//   stats:    per chunk c, logits_c = x_c W_r^T + b_r (ATen matmul into one reused buffer), then the
//             rank's row statistics (vocab_parallel_cross_entropy's stats kernel)
//   (Python: one all_gather of the statistics, then vocab_parallel_cross_entropy_combine)
//   backward: per chunk, the logits again, their gradient in place (grad_output folded in), then
//             dx_c = dlogits_c W_r (this rank's part: Python all-reduces dx over the group),
//             dW_r += dlogits_c^T x_c,  db_r += 1^T dlogits_c
// Half types accumulate dW and db across chunks in float32 (linear_cross_entropy's helpers).
#include <lossext/host.h>
#include <lossext/registration.h>
#include <lossext/rowwise_host.h>
#include <losses/linear_cross_entropy.h>
#include <losses/vocab_parallel_cross_entropy.h>

#include <ATen/ops/addmm.h>
#include <ATen/ops/addmv.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/mm.h>
#include <ATen/ops/mv.h>
#include <ATen/ops/ones.h>
#include <c10/core/DeviceGuard.h>
#include <torch/library.h>

#include <algorithm>

namespace lossext::ops {
// From csrc/ops/vocab_parallel_cross_entropy.cpp.
CrossEntropyParams vpce_params(const char* op, double label_smoothing);
RowwiseProblem vpce_problem(const char* op, const at::Tensor& logits, const at::Tensor& target, int64_t vocab_start,
                            const OptTensor& weight, int64_t reduction, int64_t ignore_index, bool want_grad,
                            bool inplace);
void vpce_run_stats(RowwiseProblem& p, const CrossEntropyParams& cp, void* saved, const at::Tensor& scratch);

namespace {
using at::Tensor;
constexpr const char* kOp = "vocab_parallel_linear_cross_entropy";

struct Head {
  Tensor x, w, b, target;
  int64_t N = 0, H = 0, R = 0, chunk = 1;
  bool half = false;
};

Head prepare(const Tensor& input, const Tensor& lw, const Tensor& target, const OptTensor& bias, int64_t chunk_size) {
  Head h;
  TORCH_CHECK(input.dim() == 2, kOp, ": expected input of shape (N, H), got ", shape_str(input.sizes()));
  TORCH_CHECK(lw.dim() == 2 && lw.size(1) == input.size(1), kOp, ": expected linear_weight_shard of shape (V_local, ",
              input.size(1), "), got ", shape_str(lw.sizes()));
  TORCH_CHECK_NOT_IMPLEMENTED(is_loss_dtype(input.scalar_type()), kOp, ": not implemented for input dtype '",
                              input.scalar_type(), "' (expected float16, bfloat16, float32 or float64)");
  const Tensor b = bias.value_or(Tensor());
  TORCH_CHECK(lw.scalar_type() == input.scalar_type() && (!b.defined() || b.scalar_type() == input.scalar_type()),
              kOp, ": expected input, linear_weight_shard and linear_bias_shard of one dtype, got ",
              input.scalar_type(), ", ", lw.scalar_type(), b.defined() ? ", " : "",
              b.defined() ? c10::toString(b.scalar_type()) : "");
  if (b.defined()) {
    TORCH_CHECK(b.dim() == 1 && b.size(0) == lw.size(0), kOp, ": expected linear_bias_shard of shape (",
                lw.size(0), "), got ", shape_str(b.sizes()));
  }
  TORCH_CHECK(target.dim() == 1 && target.size(0) == input.size(0), kOp, ": expected target of shape (",
              input.size(0), "), got ", shape_str(target.sizes()));
  check_same_device(kOp, input, {&lw, &b, &target});
  TORCH_CHECK(chunk_size >= 0, kOp, ": chunk_size must be >= 0 (0: chosen from the shapes), got ", chunk_size);
  h.x = input;
  h.w = lw;
  h.b = b;
  h.target = target;
  h.N = input.size(0);
  h.H = input.size(1);
  h.R = lw.size(0);
  h.half = input.scalar_type() == at::kHalf || input.scalar_type() == at::kBFloat16;
  const int64_t elem = input.element_size();
  // linear_cross_entropy's rule: a logits chunk as large as the input, at least 64 MiB.
  const int64_t budget = std::max<int64_t>(int64_t(64) << 20, h.N * h.H * elem);
  int64_t rows = std::max<int64_t>(1, budget / std::max<int64_t>(1, h.R * elem));
  if (rows >= 16) rows -= rows % 8;
  h.chunk = chunk_size > 0 ? chunk_size : rows;
  h.chunk = std::max<int64_t>(1, std::min(h.chunk, std::max<int64_t>(h.N, 1)));
  return h;
}

// logits of rows [n0, n0 + n) into buf's first n rows.
Tensor chunk_logits(const Head& h, Tensor& buf, int64_t n0, int64_t n) {
  Tensor lg = buf.narrow(0, 0, n);
  const Tensor xc = h.x.narrow(0, n0, n);
  if (h.b.defined()) {
    at::addmm_out(lg, h.b, xc, h.w.t());
  } else {
    at::mm_out(lg, xc, h.w.t());
  }
  return lg;
}

Tensor stats(const Tensor& input, const Tensor& lw, const Tensor& target, const OptTensor& bias,
             int64_t vocab_start, const OptTensor& weight, int64_t ignore_index, double label_smoothing,
             int64_t chunk_size) {
  const CrossEntropyParams cp = vpce_params(kOp, label_smoothing);
  Head h = prepare(input, lw, target, bias, chunk_size);
  c10::OptionalDeviceGuard guard(input.device());
  const int64_t k = vpce_stats_count(cp.smoothing > 0);
  Tensor out = at::empty({h.N, k}, input.options().dtype(rowwise_math_dtype(input.scalar_type())));
  Tensor buf = at::empty({std::min(h.chunk, std::max<int64_t>(h.N, 1)), h.R}, input.options());
  const Tensor scratch = at::empty({}, input.options());
  for (int64_t n0 = 0; n0 < h.N; n0 += h.chunk) {
    const int64_t n = std::min(h.chunk, h.N - n0);
    const Tensor lg = chunk_logits(h, buf, n0, n);
    RowwiseProblem p = vpce_problem(kOp, lg, h.target.narrow(0, n0, n), vocab_start, weight, 2, ignore_index, false,
                                    false);
    vpce_run_stats(p, cp, static_cast<char*>(out.data_ptr()) + n0 * k * out.element_size(), scratch);
  }
  return out;
}

std::tuple<Tensor, Tensor, Tensor> backward(const Tensor& grad_output, const Tensor& input, const Tensor& lw,
                                            const Tensor& target, const OptTensor& bias, int64_t vocab_start,
                                            const OptTensor& weight, int64_t reduction, int64_t ignore_index,
                                            double label_smoothing, int64_t chunk_size, const Tensor& saved,
                                            const Tensor& denominator, std::array<bool, 3> mask) {
  const CrossEntropyParams cp = vpce_params(kOp, label_smoothing);
  Head h = prepare(input, lw, target, bias, chunk_size);
  const Reduction red = to_reduction(reduction, kOp);
  TORCH_CHECK(saved.dim() == 2 && saved.size(0) == h.N, kOp, ": expected the combined statistics of shape (", h.N,
              ", ", kVpceSaved, "), got ", shape_str(saved.sizes()));
  TORCH_CHECK(denominator.numel() == 1 && denominator.scalar_type() == at::kDouble, kOp,
              ": expected the forward's 1-element float64 denominator");
  c10::OptionalDeviceGuard guard(input.device());
  Tensor dx = mask[0] ? at::empty({h.N, h.H}, input.options()) : Tensor();
  Tensor dw = mask[1] ? at::empty({h.R, h.H}, input.options()) : Tensor();
  Tensor db = mask[2] && h.b.defined() ? at::empty({h.R}, input.options()) : Tensor();
  const int64_t K = (h.N + h.chunk - 1) / h.chunk;
  if (h.N == 0) {  // no tokens: zero gradients of the head
    if (dw.defined()) dw.zero_();
    if (db.defined()) db.zero_();
  }
  Tensor dw_acc, db_acc;
  const bool cuda = input.is_cuda();
  if (h.half && K > 1) {
    if (dw.defined()) dw_acc = at::empty({h.R, h.H}, input.options().dtype(at::kFloat));
    if (db.defined()) db_acc = at::empty({h.R}, input.options().dtype(at::kFloat));
  }
  Tensor buf = at::empty({std::min(h.chunk, std::max<int64_t>(h.N, 1)), h.R}, input.options());
  Tensor ones = db.defined() ? at::ones({buf.size(0)}, input.options()) : Tensor();
  const Tensor den = denominator.contiguous();
  for (int64_t k = 0; k < K; ++k) {
    const int64_t n0 = k * h.chunk, n = std::min(h.chunk, h.N - n0);
    Tensor lg = chunk_logits(h, buf, n0, n);
    RowwiseProblem p = vpce_problem(kOp, lg, h.target.narrow(0, n0, n), vocab_start, weight, reduction,
                                    ignore_index, true, /*inplace=*/true);
    const Tensor go = rowwise_set_grad_output(p, red == Reduction::None ? grad_output.narrow(0, n0, n) : grad_output);
    const Tensor s = rowwise_use_saved(p, saved.narrow(0, n0, n), kVpceSaved);
    p.args.mean_denominator = den.const_data_ptr<double>();
    p.args.mode = RowMode::kBackward;
    vpce_grad_stub(input.device().type())(p.args, cp);
    // lg now holds dloss/dlogits of the chunk.
    const Tensor xc = h.x.narrow(0, n0, n);
    if (dx.defined()) {
      Tensor dxc = dx.narrow(0, n0, n);
      at::mm_out(dxc, lg, h.w);
    }
    const bool last = k == K - 1;
    if (dw.defined()) {
      if (dw_acc.defined() && cuda) {  // cuBLAS: half operands, float32 accumulator
        at::addmm_out(dw_acc, dw_acc, lg.t(), xc, at::kFloat, k == 0 ? 0 : 1, 1);
        if (last) lce_accumulate(dw_acc, dw, LceAcc::kCast);
      } else if (dw_acc.defined()) {
        at::mm_out(dw, lg.t(), xc);
        lce_accumulate(dw_acc, dw, k == 0 ? LceAcc::kSet : (last ? LceAcc::kFinish : LceAcc::kAdd));
      } else if (k == 0) {
        at::mm_out(dw, lg.t(), xc);
      } else {
        at::addmm_out(dw, dw, lg.t(), xc);
      }
    }
    if (db.defined()) {
      const Tensor on = ones.narrow(0, 0, n);
      if (db_acc.defined()) {
        at::mv_out(db, lg.t(), on);
        lce_accumulate(db_acc, db, k == 0 ? LceAcc::kSet : (last ? LceAcc::kFinish : LceAcc::kAdd));
      } else if (k == 0) {
        at::mv_out(db, lg.t(), on);
      } else {
        at::addmv_out(db, db, lg.t(), on);
      }
    }
  }
  const Tensor& like_b = h.b.defined() ? h.b : input;
  return {dx.defined() ? dx : not_computed(input), dw.defined() ? dw : not_computed(lw),
          db.defined() ? db : not_computed(like_b)};
}

}  // namespace
}  // namespace lossext::ops

TORCH_LIBRARY_FRAGMENT(lossext, m) {
  m.def("vocab_parallel_linear_cross_entropy_stats(Tensor input, Tensor linear_weight, Tensor target, "
        "Tensor? linear_bias, int vocab_start, Tensor? weight, int ignore_index, float label_smoothing, "
        "int chunk_size) -> Tensor");
  // dx is this rank's part (the caller all-reduces it over the group); dW, db the shard's gradients.
  m.def("vocab_parallel_linear_cross_entropy_backward(Tensor grad_output, Tensor input, Tensor linear_weight, "
        "Tensor target, Tensor? linear_bias, int vocab_start, Tensor? weight, int reduction, int ignore_index, "
        "float label_smoothing, int chunk_size, Tensor saved, Tensor denominator, bool[3] grad_mask) "
        "-> (Tensor, Tensor, Tensor)");
}

namespace {
void impls(torch::Library& m) {
  m.impl("vocab_parallel_linear_cross_entropy_stats", &lossext::ops::stats);
  m.impl("vocab_parallel_linear_cross_entropy_backward", &lossext::ops::backward);
}
}  // namespace
LOSSEXT_IMPL_ALL_DEVICES(impls);
