// linear_cross_entropy host functions: the LM head and its cross-entropy, chunk by chunk of tokens,
// never more than one chunk of logits in memory and nothing N x V saved for the backward.
// Per chunk c of rows (x_c: n x H; W: R x H, R = C * d1..dk logits per token):
//   logits_c  = x_c W^T + b                   ATen matmul (the linear layer), into one reused buffer
//   dlogits_c = r (softmax - onehot ...)      cross_entropy's row kernel, in place over logits_c
//   dx_c = dlogits_c W,   dW += dlogits_c^T x_c,   db += 1^T dlogits_c
// softcap (opt-in): logits_c = cap tanh(logits_c / cap) in place before the row kernel (a copy kept),
// and dlogits_c *= 1 - (capped / cap)^2 after it.
// z_loss (opt-in): each row adds z w_t lse^2 (cross_entropy's functor, CrossEntropyParams::z_loss).
// r carries the whole problem's mean denominator, computed first on the device (no host sync).
// Half types accumulate dW and db across chunks in float32 (rounded once at the end).
// Mean/sum forwards that want gradients write them here (the autograd backward only scales);
// reduction 'none' (and float16) recompute the chunk logits in the backward op from the saved
// per-token (m, log z[, Sy]) and apply grad_output per token in the row kernel's backward mode.
#include <lossext/autograd.h>
#include <lossext/composite.h>
#include <lossext/host.h>
#include <lossext/registration.h>
#include <lossext/rowwise_host.h>
#include <losses/cross_entropy.h>
#include <losses/linear_cross_entropy.h>

#include <ATen/ops/addmm.h>
#include <ATen/ops/addmv.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/mm.h>
#include <ATen/ops/mv.h>
#include <ATen/ops/ones.h>
#include <c10/core/DeviceGuard.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

LOSSEXT_DEFINE_STUB(lossext::lce_denominator_stub, lossext::LceDenominatorFn);
LOSSEXT_DEFINE_STUB(lossext::lce_accumulate_stub, lossext::LceAccFn);
LOSSEXT_DEFINE_STUB(lossext::lce_softcap_stub, lossext::LceCapFn);

namespace lossext::ops {
namespace {
using at::Tensor;
constexpr const char* kOp = "linear_cross_entropy";
constexpr RowwiseSpec kSpec{"linear_cross_entropy", /*allow_prob=*/true, /*need_layout=*/true};
// Checks the target against the full logits shape without materialising it (an expanded 0-d tensor).
constexpr RowwiseSpec kCheckSpec{"linear_cross_entropy", /*allow_prob=*/true, /*need_layout=*/false};

// The problem flattened to N tokens.
struct Problem {
  Tensor x, w, b, target, weight;  // x (N, H), w (R, H), b (R) or undefined; target sliced on dim 0
  std::vector<int64_t> row;        // one token's logits: (C, d1..dk)
  std::vector<int64_t> samples;    // the unreduced loss of the flat problem: (N, d1..dk)
  std::vector<int64_t> loss_shape; // ... as returned: () unbatched, (N, d..), or input's leading dims
  int64_t N = 0, H = 0, R = 0, S = 1, chunk = 1;
  double softcap = 0;              // 0: none
  bool prob = false, half = false;
  Reduction red = Reduction::Mean;
  int64_t ignore_index = -100;
  CrossEntropyParams cp;
  int64_t saved_count() const { return ce_saved_count(prob); }
};

int64_t default_chunk(const Problem& P, int64_t elem) {
  // The logits chunk is as large as the input (torch's aspect-ratio rule), at least 64 MiB; for half
  // types at least a quarter of the float32 dW accumulator they need anyway (fewer accumulations).
  int64_t budget = std::max<int64_t>(int64_t(64) << 20, P.N * P.H * elem);
  if (P.half) budget = std::max<int64_t>(budget, P.R * P.H);
  int64_t rows = std::max<int64_t>(1, budget / std::max<int64_t>(1, P.R * elem));
  if (rows >= 16) rows -= rows % 8;
  return std::max<int64_t>(1, std::min(rows, P.N));
}

Problem prepare(const Tensor& input, const Tensor& lw, const Tensor& target, const OptTensor& bias_opt,
                const OptTensor& weight_opt, int64_t reduction, int64_t ignore_index, double label_smoothing,
                double z_loss, double softcap, int64_t chunk_size) {
  Problem P;
  const Tensor bias = bias_opt.value_or(Tensor());
  const Tensor weight = weight_opt.value_or(Tensor());
  TORCH_CHECK(input.dim() >= 1, kOp, ": expected input with dimensionality at least 1, got ", input.dim());
  TORCH_CHECK(lw.dim() >= 2, kOp, ": expected linear_weight with dimensionality at least 2, got ", lw.dim());
  P.H = input.size(-1);
  TORCH_CHECK(P.H == lw.size(-1), kOp, ": expected equal input and linear_weight last dimensions (in_features), got ",
              P.H, " and ", lw.size(-1), ", respectively");
  const int64_t C = lw.size(0);
  const std::vector<int64_t> out(lw.sizes().begin() + 1, lw.sizes().end() - 1);
  P.row = {C};
  P.row.insert(P.row.end(), out.begin(), out.end());
  if (bias.defined()) {
    TORCH_CHECK(bias.sizes().equals(P.row), kOp, ": expected linear_bias shape ", shape_str(P.row), ", got ",
                shape_str(bias.sizes()));
  }
  TORCH_CHECK(out.empty() || input.dim() == 2, kOp, ": K-dimensional loss defined by linear_weight shape ",
              shape_str(lw.sizes()), " requires batched input (N, ", P.H, "), got input with shape ",
              shape_str(input.sizes()));
  TORCH_CHECK_NOT_IMPLEMENTED(is_loss_dtype(input.scalar_type()), kOp, ": not implemented for input dtype '",
                              input.scalar_type(), "' (expected float16, bfloat16, float32 or float64)");
  TORCH_CHECK(lw.scalar_type() == input.scalar_type() && (!bias.defined() || bias.scalar_type() == input.scalar_type()),
              kOp, ": expected input, linear_weight and linear_bias of one dtype, got ", input.scalar_type(), ", ",
              lw.scalar_type(), (bias.defined() ? ", " : ""), (bias.defined() ? c10::toString(bias.scalar_type()) : ""));
  check_same_device(kOp, input, {&lw, &bias, &target, &weight});
  TORCH_CHECK(!(label_smoothing > 1.0), kOp, ": label_smoothing must be between 0.0 and 1.0. Got: ", label_smoothing);
  P.cp.smoothing = label_smoothing > 0.0 ? label_smoothing : 0.0;  // torch ignores negative values
  P.cp.z_loss = z_loss;
  TORCH_CHECK(softcap >= 0.0, kOp, ": softcap must be > 0 (0: none), got ", softcap);
  P.softcap = softcap;
  P.red = to_reduction(reduction, kOp);
  P.ignore_index = ignore_index;
  P.half = input.scalar_type() == at::kHalf || input.scalar_type() == at::kBFloat16;

  const std::vector<int64_t> lead(input.sizes().begin(), input.sizes().end() - 1);
  P.N = 1;
  for (int64_t s : lead) P.N *= s;
  for (int64_t s : out) P.S *= s;
  P.R = C * P.S;
  std::vector<int64_t> logits(lead);  // torch's logits shape: (*lead, C, d1..dk)
  logits.insert(logits.end(), P.row.begin(), P.row.end());
  std::vector<int64_t> flat{P.N};
  flat.insert(flat.end(), P.row.begin(), P.row.end());
  P.prob = target.sizes().equals(input.dim() <= 2 ? logits : std::vector<int64_t>(logits));
  if (P.prob) {
    TORCH_CHECK_NOT_IMPLEMENTED(target.scalar_type() == input.scalar_type(), kOp,
                                ": probability targets of dtype ", target.scalar_type(), " with input of dtype ",
                                input.scalar_type(), " (torch would promote; lossext needs one dtype)");
  }
  if (weight.defined()) {
    TORCH_CHECK(weight.scalar_type() == input.scalar_type(), kOp, ": expected scalar type ", input.scalar_type(),
                " but found ", weight.scalar_type(), " (weight)");
  }
  // torch's own target checks (shapes, dtype; same exception types) against the logits' shape: the
  // exact one for (H) and (N, H) inputs, the flattened (N, C) one for more leading dims.
  Tensor check_target = target;
  if (input.dim() > 2) {
    std::vector<int64_t> cls(lead);
    TORCH_CHECK(P.prob || target.sizes().equals(cls), kOp, ": expected a class-index target of shape ",
                shape_str(cls), " or a probability target of shape ", shape_str(logits), " for input of shape ",
                shape_str(input.sizes()), ", got ", shape_str(target.sizes()));
    check_target = P.prob ? target.reshape(flat) : target.reshape({P.N});
    logits = flat;
  }
  const Tensor shape_only = at::empty({}, input.options()).expand(logits);
  RowwiseProblem full = rowwise_prepare(kCheckSpec, shape_only, check_target, weight, reduction, ignore_index, false,
                                        false);
  (void)full;
  P.target = input.dim() == 1 ? (P.prob ? target.reshape(flat) : target.reshape({1})) : check_target;
  P.samples = {P.N};
  P.samples.insert(P.samples.end(), out.begin(), out.end());
  P.loss_shape = input.dim() == 1 ? std::vector<int64_t>{} : (input.dim() == 2 ? P.samples : lead);
  P.x = input.reshape({P.N, P.H});
  P.w = lw.reshape({P.R, P.H});
  if (bias.defined()) P.b = bias.reshape({P.R});
  P.weight = weight;
  TORCH_CHECK(chunk_size >= 0, kOp, ": chunk_size must be >= 0 (0: chosen from the shapes), got ", chunk_size);
  P.chunk = chunk_size > 0 ? std::min<int64_t>(chunk_size, std::max<int64_t>(P.N, 1))
                           : default_chunk(P, input.element_size());
  return P;
}

// The mean's denominator over the whole target (a 1-element float64 tensor on the device), or
// undefined for sum / none. Validates the targets on the CPU (IndexError) before any matmul.
Tensor denominator(const Problem& P) {
  std::vector<int64_t> shape{P.N};
  shape.insert(shape.end(), P.row.begin(), P.row.end());
  const Tensor shape_only = at::empty({}, P.x.options()).expand(shape);
  RowwiseProblem full = rowwise_prepare(kCheckSpec, shape_only, P.target, P.weight.defined() ? OptTensor(P.weight) : OptTensor(),
                                        static_cast<int64_t>(P.red), P.ignore_index, false, false);
  if (P.red != Reduction::Mean && !P.x.is_cpu()) return Tensor();
  const Tensor d = lce_denominator_stub(P.x.device().type())(full.args, kOp);
  return P.red == Reduction::Mean ? d : Tensor();
}

struct Grads {
  Tensor dx, dw, db;          // outputs (flat shapes), undefined where not wanted
  Tensor dw_acc, db_acc;      // float32 accumulators of half types over several chunks
  bool any() const { return dx.defined() || dw.defined() || db.defined(); }
};

// The chunk loop. Forward: loss into `loss` (one 0-d partial per chunk for mean/sum, or the rows'
// losses for none) and `saved`; backward: `go` (0-d, or the flat samples' grad_output) and `saved`.
void run_chunks(const Problem& P, const Tensor& den, bool backward, const Tensor& go, const Tensor& saved,
                const Tensor& loss, Grads& g) {
  const int64_t K = std::max<int64_t>(1, (P.N + P.chunk - 1) / P.chunk);
  const bool want = g.any();
  Tensor buf = at::empty({std::min(P.chunk, P.N), P.R}, P.x.options());
  // Softcap keeps the capped logits for the chain rule (the row kernel overwrites buf).
  Tensor capped = P.softcap > 0 && want ? at::empty_like(buf) : Tensor();
  auto cap = [&](const Tensor& lg, LceCap mode) {
    LceCapArgs c;
    c.dtype = lg.scalar_type();
    c.n = lg.numel();
    c.x = lg.data_ptr();
    c.y = capped.defined() ? capped.data_ptr() : lg.data_ptr();
    c.cap = P.softcap;
    c.mode = mode;
    lce_softcap_stub(lg.device().type())(c);
  };
  Tensor ones = (want && g.db.defined()) ? at::ones({std::min(P.chunk, P.N)}, P.x.options()) : Tensor();
  const bool cuda = P.x.is_cuda();
  if (want && P.half && K > 1) {
    if (g.dw.defined()) g.dw_acc = at::empty({P.R, P.H}, P.x.options().dtype(at::kFloat));
    if (g.db.defined()) g.db_acc = at::empty({P.R}, P.x.options().dtype(at::kFloat));
  }
  const int64_t ks = P.saved_count(), saved_elem = saved.element_size(), elem = P.x.element_size();
  for (int64_t k = 0; k < K; ++k) {
    const int64_t n0 = k * P.chunk, n = std::min(P.chunk, P.N - n0);
    Tensor lg = buf.narrow(0, 0, n);
    const Tensor xc = P.x.narrow(0, n0, n);
    if (P.b.defined()) {
      at::addmm_out(lg, P.b, xc, P.w.t());
    } else {
      at::mm_out(lg, xc, P.w.t());
    }
    if (P.softcap > 0) cap(lg, LceCap::kApply);
    std::vector<int64_t> shape{n};
    shape.insert(shape.end(), P.row.begin(), P.row.end());
    const Tensor lv = lg.view(shape);
    RowwiseProblem p = rowwise_prepare(kSpec, lv, P.target.narrow(0, n0, n),
                                       P.weight.defined() ? OptTensor(P.weight) : OptTensor(),
                                       static_cast<int64_t>(P.red), P.ignore_index, want, false, /*inplace=*/want);
    p.args.mean_denominator = den.defined() ? den.const_data_ptr<double>() : nullptr;
    p.args.saved = static_cast<char*>(const_cast<void*>(saved.const_data_ptr())) + n0 * P.S * ks * saved_elem;
    Tensor go_c;
    if (backward) {
      p.args.mode = RowMode::kBackward;
      go_c = rowwise_set_grad_output(p, P.red == Reduction::None ? go.narrow(0, n0, n) : go);
    } else {
      p.args.mode = RowMode::kForward;
      p.args.loss = static_cast<char*>(loss.data_ptr()) + (P.red == Reduction::None ? n0 * P.S : k) * elem;
    }
    cross_entropy_stub(P.x.device().type())(p.args, P.cp);
    if (!want) continue;
    if (P.softcap > 0) cap(lg, LceCap::kGrad);
    // lg now holds dloss/dlogits of the chunk (reduction-scaled, times grad_output in the backward).
    if (g.dx.defined()) {
      Tensor dxc = g.dx.narrow(0, n0, n);
      at::mm_out(dxc, lg, P.w);
    }
    const bool last = k == K - 1;
    if (g.dw.defined()) {
      if (g.dw_acc.defined() && cuda) {  // cuBLAS: half operands, float32 accumulator
        at::addmm_out(g.dw_acc, g.dw_acc, lg.t(), xc, at::kFloat, k == 0 ? 0 : 1, 1);
        if (last) lce_accumulate(g.dw_acc, g.dw, LceAcc::kCast);
      } else if (g.dw_acc.defined()) {  // the chunk's partial (rounded once) added in float32
        at::mm_out(g.dw, lg.t(), xc);
        lce_accumulate(g.dw_acc, g.dw, k == 0 ? LceAcc::kSet : (last ? LceAcc::kFinish : LceAcc::kAdd));
      } else if (k == 0) {
        at::mm_out(g.dw, lg.t(), xc);
      } else {
        at::addmm_out(g.dw, g.dw, lg.t(), xc);
      }
    }
    if (g.db.defined()) {
      const Tensor on = ones.narrow(0, 0, n);
      if (g.db_acc.defined()) {
        at::mv_out(g.db, lg.t(), on);
        lce_accumulate(g.db_acc, g.db, k == 0 ? LceAcc::kSet : (last ? LceAcc::kFinish : LceAcc::kAdd));
      } else if (k == 0) {
        at::mv_out(g.db, lg.t(), on);
      } else {
        at::addmv_out(g.db, g.db, lg.t(), on);
      }
    }
  }
}

Grads grad_buffers(const Problem& P, std::array<bool, 3> mask) {
  Grads g;
  if (mask[0]) g.dx = at::empty({P.N, P.H}, P.x.options());
  if (mask[1]) g.dw = at::empty({P.R, P.H}, P.x.options());
  if (mask[2] && P.b.defined()) g.db = at::empty({P.R}, P.x.options());
  return g;
}

std::tuple<Tensor, Tensor, Tensor> finish_grads(const Grads& g, const Tensor& input, const Tensor& lw,
                                                const OptTensor& bias) {
  const Tensor& like_b = bias.has_value() ? *bias : input;
  return {g.dx.defined() ? g.dx.view(input.sizes()) : not_computed(input),
          g.dw.defined() ? g.dw.view(lw.sizes()) : not_computed(lw),
          g.db.defined() ? g.db.view(bias->sizes()) : not_computed(like_b)};
}

std::vector<int64_t> saved_shape(const Problem& P) { return {P.N * P.S, P.saved_count()}; }

}  // namespace

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor> linear_cross_entropy(
    const Tensor& input, const Tensor& linear_weight, const Tensor& target, const OptTensor& linear_bias,
    const OptTensor& weight, int64_t reduction, int64_t ignore_index, double label_smoothing, double z_loss,
    double softcap, int64_t chunk_size, std::array<bool, 3> grad_mask) {
  c10::OptionalDeviceGuard guard(input.device());
  const Problem P = prepare(input, linear_weight, target, linear_bias, weight, reduction, ignore_index,
                            label_smoothing, z_loss, softcap, chunk_size);
  const Tensor den = denominator(P);
  const bool grads = P.red != Reduction::None && rowwise_forward_grads({input});
  Grads g = grad_buffers(P, {grads && grad_mask[0], grads && grad_mask[1], grads && grad_mask[2]});
  const Tensor saved = at::empty(saved_shape(P), P.x.options().dtype(rowwise_math_dtype(P.x.scalar_type())));
  const int64_t K = std::max<int64_t>(1, (P.N + P.chunk - 1) / P.chunk);
  const Tensor loss = P.red == Reduction::None ? at::empty(P.samples, P.x.options()) : at::empty({K}, P.x.options());
  run_chunks(P, den, /*backward=*/false, Tensor(), saved, loss, g);
  Tensor out;
  if (P.red == Reduction::None) {
    out = loss.view(P.loss_shape);
  } else {
    out = K == 1 ? loss.view(at::IntArrayRef{}) : sum_all(kOp, loss);  // the chunks' partials (each already / denominator)
  }
  auto [dx, dw, db] = finish_grads(g, input, linear_weight, linear_bias);
  return {out, dx, dw, db, saved};
}

std::tuple<Tensor, Tensor, Tensor> linear_cross_entropy_backward(
    const Tensor& grad_output, const Tensor& input, const Tensor& linear_weight, const Tensor& target,
    const OptTensor& linear_bias, const OptTensor& weight, int64_t reduction, int64_t ignore_index,
    double label_smoothing, double z_loss, double softcap, int64_t chunk_size, const Tensor& saved,
    std::array<bool, 3> grad_mask) {
  c10::OptionalDeviceGuard guard(input.device());
  const Problem P = prepare(input, linear_weight, target, linear_bias, weight, reduction, ignore_index,
                            label_smoothing, z_loss, softcap, chunk_size);
  const std::vector<int64_t> ss = saved_shape(P);
  TORCH_CHECK(saved.sizes().equals(ss) && saved.scalar_type() == rowwise_math_dtype(P.x.scalar_type()) &&
                  saved.device() == input.device(),
              kOp, "_backward: expected the forward's saved statistics of shape ", shape_str(ss), ", got ",
              shape_str(saved.sizes()));
  Grads g = grad_buffers(P, grad_mask);
  if (g.any()) {
    Tensor go = grad_output;
    if (P.red == Reduction::None) {
      TORCH_CHECK(go.sizes().equals(P.loss_shape), kOp, "_backward: expected grad_output of shape ",
                  shape_str(P.loss_shape), ", got ", shape_str(go.sizes()));
      go = go.reshape(P.samples);
    }
    run_chunks(P, denominator(P), /*backward=*/true, go, saved.contiguous(), Tensor(), g);
  }
  return finish_grads(g, input, linear_weight, linear_bias);
}

}  // namespace lossext::ops

TORCH_LIBRARY_FRAGMENT(lossext, m) {
  // Returns (loss, grad_input, grad_linear_weight, grad_linear_bias, saved); chunk_size 0: from the shapes.
  m.def("linear_cross_entropy(Tensor input, Tensor linear_weight, Tensor target, Tensor? linear_bias, "
        "Tensor? weight, int reduction, int ignore_index, float label_smoothing, float z_loss, float softcap, int chunk_size, "
        "bool[3] grad_mask) "
        "-> (Tensor, Tensor, Tensor, Tensor, Tensor)");
  // `saved`: per token (m, log z[, Sy]) of the forward, for a backward that recomputes the logits.
  m.def("linear_cross_entropy_backward(Tensor grad_output, Tensor input, Tensor linear_weight, Tensor target, "
        "Tensor? linear_bias, Tensor? weight, int reduction, int ignore_index, float label_smoothing, "
        "float z_loss, float softcap, int chunk_size, Tensor saved, bool[3] grad_mask) -> (Tensor, Tensor, Tensor)");
}

// The loss in ATen arithmetic, for second derivatives only (lossext/composite.h).
static at::Tensor linear_cross_entropy_composite(const lossext::autograd::Args& a) {
  using namespace lossext::autograd;
  // The logits of the linear layer (softcapped), then cross_entropy with the z-loss, per token.
  const at::Tensor x = tensor(a, 0), W = tensor(a, 1), t = tensor(a, 2), b = tensor(a, 3);
  const double softcap = double_at(a, 9);
  at::Tensor z = x.matmul(W.t());
  if (b.defined()) z = z.add(b);
  if (softcap > 0) z = z.div(softcap).tanh().mul(softcap);
  const int64_t V = W.size(0);
  const bool prob = t.is_floating_point();
  const at::Tensor l = cross_entropy(z.reshape({-1, V}), prob ? t.reshape({-1, V}) : t.reshape({-1}), tensor(a, 4),
                                     int_at(a, 5), int_at(a, 6), double_at(a, 7), true, double_at(a, 8));
  return int_at(a, 5) == 0 ? l.reshape(x.sizes().slice(0, x.dim() - 1)) : l;
}
LOSSEXT_AUTOGRAD(linear_cross_entropy, &linear_cross_entropy_composite, "input", "linear_weight", "linear_bias");

namespace {
void impls(torch::Library& m) {
  m.impl("linear_cross_entropy", &lossext::ops::linear_cross_entropy);
  m.impl("linear_cross_entropy_backward", &lossext::ops::linear_cross_entropy_backward);
}
}  // namespace
LOSSEXT_IMPL_ALL_DEVICES(impls);
