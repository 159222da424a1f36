// ctc_loss host functions (CPU and CUDA share them; the stub picks the kernels): torch's argument
// rules, plus what torch does not check (labels in [0, C) and not the blank), then the kernels.
//
// Validation policy: everything that lives on the host is checked here and raises RuntimeError
// naming the sample and the value (lengths given as lists or CPU tensors; targets on the CPU).
// What lives on a CUDA device (targets, lengths) is checked by the kernels without a host sync:
// an invalid sample gets a NaN loss and NaN gradient rows (lossext's policy for class indices).
#include <lossext/autograd.h>
#include <lossext/fresh.h>
#include <lossext/host.h>
#include <lossext/registration.h>
#include <losses/ctc_loss.h>

#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/pin_memory.h>
#include <c10/core/DeviceGuard.h>
#include <torch/library.h>

LOSSEXT_DEFINE_STUB(lossext::ctc_loss_stub, lossext::CtcFn);

namespace lossext::ops {
namespace {
constexpr const char* kOp = "ctc_loss";

struct Problem {
  CtcArgs a;
  Tensor lp, targets, il, tl;  // what the kernels read (keep alive)
  bool batched = true;
  at::ScalarType out_dtype = at::kFloat, math = at::kFloat;
  std::vector<int64_t> lp_shape;
};

// An int64 tensor on `device` with the values of t: a CPU tensor is copied through pinned memory
// without blocking (no host sync).
Tensor to_device_long(const Tensor& t, c10::Device device) {
  Tensor x = t.scalar_type() == at::kLong ? t : t.to(at::kLong);
  if (x.device() == device) return x.contiguous();
  if (device.is_cpu()) return x.to(device).contiguous();  // a CUDA tensor for a CPU loss: torch syncs too
  return x.contiguous().pin_memory().to(device, at::kLong, /*non_blocking=*/true);
}

void check_lengths_dtype(const Tensor& t, const char* name) {
  TORCH_CHECK(at::isIntegralType(t.scalar_type(), /*includeBool=*/false), kOp, ": ", name,
              " must be integral, but got dtype ", t.scalar_type());
}

// Host checks of lengths and labels, with torch's messages where torch has one.
void check_on_host(const Problem& p, const Tensor& il, const Tensor& tl, const Tensor& tg) {
  const CtcArgs& a = p.a;
  if (il.defined()) {
    const int64_t* v = il.const_data_ptr<int64_t>();
    for (int64_t n = 0; n < a.N; ++n) {
      TORCH_CHECK(v[n] >= 0, kOp, ": input_lengths[", n, "] = ", v[n], " is negative (expected input_lengths to ",
                  "have value at least 0)");
      TORCH_CHECK(v[n] <= a.T, kOp, ": input_lengths[", n, "] = ", v[n], " is larger than the input length T = ",
                  a.T, " (expected input_lengths to have value at most ", a.T, ")");
    }
  }
  if (!tl.defined()) return;
  const int64_t* l = tl.const_data_ptr<int64_t>();
  int64_t total = 0;
  for (int64_t n = 0; n < a.N; ++n) {
    TORCH_CHECK(l[n] >= 0, kOp, ": target_lengths[", n, "] = ", l[n], " is negative (expected target_lengths to ",
                "have value at least 0)");
    TORCH_CHECK(a.concatenated || l[n] <= a.tg_size, kOp, ": target_lengths[", n, "] = ", l[n],
                " is longer than the padded targets of shape ", shape_str(p.targets.sizes()),
                " (expected tensor to have size at least ", l[n], " at dimension 1)");
    total += l[n];
  }
  // torch requires the concatenated targets to hold exactly the sum of the target lengths.
  TORCH_CHECK(!a.concatenated || total == a.tg_size, kOp, ": the target lengths sum to ", total,
              " but the concatenated targets have ", a.tg_size, " elements (expected tensor to have size ", total,
              " at dimension 0)");
  if (!tg.defined()) return;
  const int64_t* t = tg.const_data_ptr<int64_t>();
  for (int64_t n = 0, pos = 0; n < a.N; ++n) {
    for (int64_t i = 0; i < l[n]; ++i) {
      const int64_t k = a.concatenated ? pos + i : n * a.tg_size + i;
      const int64_t v = t[k];
      if (v >= 0 && v < a.C && v != a.blank) continue;
      const std::string where = a.concatenated
          ? "targets[" + std::to_string(k) + "] (sample " + std::to_string(n) + ", position " + std::to_string(i) + ")"
          : "targets[" + std::to_string(n) + "][" + std::to_string(i) + "]";
      TORCH_CHECK(v != a.blank, kOp, ": ", where, " = ", v, " is the blank label (blank=", a.blank, ")");
      TORCH_CHECK(false, kOp, ": ", where, " = ", v, " is out of range for ", a.C, " classes (blank=", a.blank, ")");
    }
    pos += l[n];
  }
}

Problem prepare(const Tensor& log_probs, const Tensor& targets, const Tensor& input_lengths,
                const Tensor& target_lengths, int64_t blank, int64_t reduction) {
  (void)to_reduction(reduction, kOp);
  Problem p;
  const auto st = log_probs.scalar_type();
  TORCH_CHECK_NOT_IMPLEMENTED(is_loss_dtype(st), kOp, ": not implemented for log_probs dtype ", st,
                              "; expected a floating dtype (float16, bfloat16, float32 or float64)");
  TORCH_CHECK(log_probs.dim() == 2 || log_probs.dim() == 3, kOp, ": expected log_probs of shape (T, N, C) or ",
              "unbatched (T, C), but got shape ", shape_str(log_probs.sizes()));
  TORCH_CHECK(log_probs.numel() > 0, kOp, ": log_probs tensor must not be empty (got shape ",
              shape_str(log_probs.sizes()), ")");
  TORCH_CHECK(targets.dim() == 1 || targets.dim() == 2, kOp, ": expected targets of 1 (concatenated) or 2 (N, S) ",
              "dimensions, but got shape ", shape_str(targets.sizes()));
  TORCH_CHECK(!targets.is_complex(), kOp, ": expected integer targets, but got dtype ", targets.scalar_type());
  check_lengths_dtype(input_lengths, "input_lengths");
  check_lengths_dtype(target_lengths, "target_lengths");
  const c10::Device dev = log_probs.device();
  TORCH_CHECK(dev.is_cpu() || dev.is_cuda(), kOp, ": unsupported device ", dev);
  p.batched = log_probs.dim() == 3;
  p.lp_shape.assign(log_probs.sizes().begin(), log_probs.sizes().end());
  p.out_dtype = st;
  p.math = st == at::kDouble ? at::kDouble : at::kFloat;
  p.lp = (p.batched ? log_probs : log_probs.unsqueeze(1)).to(p.math).contiguous();
  CtcArgs& a = p.a;
  a.dtype = p.math;
  a.T = p.lp.size(0);
  a.N = p.lp.size(1);
  a.C = p.lp.size(2);
  a.blank = blank;
  a.reduction = reduction;
  TORCH_CHECK(blank >= 0 && blank < a.C, kOp, ": blank must be in label range [0, ", a.C, "), but got blank=", blank);
  TORCH_CHECK(input_lengths.numel() == a.N, kOp, ": input_lengths must be of size batch_size (", a.N,
              "), but got ", input_lengths.numel(), " values (shape ", shape_str(input_lengths.sizes()), ")");
  TORCH_CHECK(target_lengths.numel() == a.N, kOp, ": target_lengths must be of size batch_size (", a.N,
              "), but got ", target_lengths.numel(), " values (shape ", shape_str(target_lengths.sizes()), ")");
  a.concatenated = targets.dim() == 1;
  if (!a.concatenated) {
    TORCH_CHECK(targets.size(0) == a.N, kOp, ": padded targets of shape ", shape_str(targets.sizes()),
                " do not have the batch size ", a.N, " at dimension 0 (expected tensor to have size ", a.N,
                " at dimension 0)");
  }
  // Host copies (for the checks) of whatever is already on the host.
  const auto host_long = [](const Tensor& t) {
    return t.is_cpu() ? (t.scalar_type() == at::kLong ? t : t.to(at::kLong)).contiguous().reshape({-1}) : Tensor();
  };
  // A CPU loss reads everything on the host (CUDA lengths or targets are copied, as torch does):
  // all of it is checked here, the CPU kernels have no checks of their own.
  const auto on_host = [&](const Tensor& t) { return dev.is_cpu() ? t.cpu() : t; };
  const Tensor il_h = host_long(on_host(input_lengths)), tl_h = host_long(on_host(target_lengths));
  const Tensor tg_h = (tl_h.defined() && (dev.is_cpu() || targets.is_cpu())) ? host_long(on_host(targets)) : Tensor();
  a.tg_size = a.concatenated ? targets.numel() : targets.size(1);
  p.targets = targets;  // for messages
  check_on_host(p, il_h, tl_h, tg_h);
  a.device_checks = dev.is_cuda();
  p.il = to_device_long(input_lengths.reshape({-1}), dev);
  p.tl = to_device_long(target_lengths.reshape({-1}), dev);
  p.targets = to_device_long(targets, dev);  // contiguous: padded strides (S, 1), concatenated 1
  a.tg_stride_n = a.concatenated ? 0 : a.tg_size;
  a.tg_stride_s = 1;
  if (tl_h.defined()) {  // the DP's scratch bound: the longest target, where the host knows it
    int64_t mx = 0;
    const int64_t* l = tl_h.const_data_ptr<int64_t>();
    for (int64_t n = 0; n < a.N; ++n) mx = std::max(mx, l[n]);
    a.max_target = mx;
  } else {
    a.max_target = a.tg_size;
  }
  a.log_probs = p.lp.const_data_ptr();
  a.targets = p.targets.const_data_ptr<int64_t>();
  a.input_lengths = p.il.const_data_ptr<int64_t>();
  a.target_lengths = p.tl.const_data_ptr<int64_t>();
  return p;
}

void run(const Problem& p) {
  c10::OptionalDeviceGuard guard(p.lp.device());
  ctc_loss_stub(p.lp.device().type())(p.a);
}

Tensor math_buffer(const Problem& p, at::IntArrayRef shape) {
  return fresh(at::empty(shape, p.lp.options().dtype(p.math)));
}

// The (T, N, C) math-dtype gradient as log_probs' gradient: its dtype, shape and strides.
Tensor as_grad(const Problem& p, const Tensor& g, const Tensor& log_probs) {
  Tensor out = g.to(p.out_dtype).view(p.lp_shape);
  if (log_probs.is_contiguous()) return out;
  return at::empty_like(log_probs).copy_(out);
}

// Forward with the gradient (raw or reduction-scaled, as p.a.grad_reduced) into fresh buffers.
std::pair<Tensor, Tensor> forward(Problem& p, bool want_grad) {
  const bool none = p.a.reduction == 0;
  Tensor loss = math_buffer(p, none ? at::IntArrayRef({p.a.N}) : at::IntArrayRef({}));
  Tensor grad = want_grad ? math_buffer(p, {p.a.T, p.a.N, p.a.C}) : Tensor();
  p.a.mode = CtcMode::kForward;
  p.a.loss = loss.data_ptr();
  p.a.grad = want_grad ? grad.data_ptr() : nullptr;
  run(p);
  loss = loss.to(p.out_dtype);
  if (none && !p.batched) loss = loss.squeeze(0);
  return {loss, grad};
}
}  // namespace

std::tuple<Tensor, Tensor, Tensor> ctc_loss(const Tensor& log_probs, const Tensor& targets,
                                            const Tensor& input_lengths, const Tensor& target_lengths, int64_t blank,
                                            int64_t reduction, bool zero_infinity, std::array<bool, 1> grad_mask) {
  Problem p = prepare(log_probs, targets, input_lengths, target_lengths, blank, reduction);
  p.a.zero_infinity = zero_infinity;
  // Reduced and not float16: the forward writes the scaled gradient; else the raw one (d loss_n /
  // d log_probs, math dtype) is the saved aux that the backward scales by grad_output.
  const bool reduced = reduction != 0 && log_probs.scalar_type() != at::kHalf;
  p.a.grad_reduced = reduced;
  auto [loss, grad] = forward(p, grad_mask[0]);
  const Tensor none_grad = not_computed(log_probs);
  const Tensor none_aux = at::empty({0}, log_probs.options().dtype(p.math));
  if (!grad_mask[0]) return {loss, none_grad, none_aux};
  if (reduced) return {loss, as_grad(p, grad, log_probs), none_aux};
  return {loss, none_grad, grad.view(p.lp_shape)};
}

Tensor ctc_loss_backward(const Tensor& grad_output, const Tensor& log_probs, const Tensor& targets,
                         const Tensor& input_lengths, const Tensor& target_lengths, int64_t blank, int64_t reduction,
                         bool zero_infinity, const Tensor& raw, std::array<bool, 1> grad_mask) {
  if (!grad_mask[0]) return not_computed(log_probs);
  const char* op = "ctc_loss_backward";
  Problem p = prepare(log_probs, targets, input_lengths, target_lengths, blank, reduction);
  p.a.zero_infinity = zero_infinity;
  const int64_t T = p.a.T, N = p.a.N, C = p.a.C;
  Tensor r;
  if (raw.numel() == 0) {  // the forward did not keep it (no gradient was asked there): recompute
    p.a.grad_reduced = false;
    r = forward(p, true).second;
  } else {
    TORCH_CHECK(raw.numel() == T * N * C && raw.scalar_type() == p.math && raw.device() == log_probs.device(), op,
                ": expected the saved gradient of ", T * N * C, " ", p.math, " elements, but got shape ",
                shape_str(raw.sizes()), " of dtype ", raw.scalar_type());
    r = raw.contiguous();
  }
  const bool none = reduction == 0;
  if (none) {
    TORCH_CHECK(grad_output.numel() == N && grad_output.dim() == (p.batched ? 1 : 0), op,
                ": expected grad_output of shape ", p.batched ? shape_str({N}) : std::string("[]"), ", but got ",
                shape_str(grad_output.sizes()));
  } else {
    TORCH_CHECK(grad_output.dim() == 0, op, ": expected a 0-d grad_output, but got shape ",
                shape_str(grad_output.sizes()));
  }
  TORCH_CHECK(grad_output.device() == log_probs.device(), op, ": grad_output is on ", grad_output.device(),
              " but log_probs is on ", log_probs.device());
  const Tensor go = grad_output.to(p.math);  // strided (an expanded grad_output is read in place)
  Tensor g = math_buffer(p, {T, N, C});
  p.a.mode = CtcMode::kScale;
  p.a.raw = r.const_data_ptr();
  p.a.grad_output = go.const_data_ptr();
  p.a.go_stride = (none && p.batched) ? go.stride(0) : 0;
  p.a.grad = g.data_ptr();
  run(p);
  return as_grad(p, g, log_probs);
}

}  // namespace lossext::ops

TORCH_LIBRARY_FRAGMENT(lossext, m) {
  // Returns (loss, grad_log_probs: written for mean/sum when grad_mask[0], raw: d loss_n / d log_probs
  // for the backward to scale, where the forward did not write the scaled gradient).
  m.def("ctc_loss(Tensor log_probs, Tensor targets, Tensor input_lengths, Tensor target_lengths, int blank, "
        "int reduction, bool zero_infinity, bool[1] grad_mask) -> (Tensor, Tensor, Tensor)");
  m.def("ctc_loss_backward(Tensor grad_output, Tensor log_probs, Tensor targets, Tensor input_lengths, "
        "Tensor target_lengths, int blank, int reduction, bool zero_infinity, Tensor raw, bool[1] grad_mask) -> Tensor");
}

// Autograd (lossext/autograd.h): the differentiable arguments.
LOSSEXT_AUTOGRAD(ctc_loss, nullptr, "log_probs");

namespace {
void impls(torch::Library& m) {
  m.impl("ctc_loss", &lossext::ops::ctc_loss);
  m.impl("ctc_loss_backward", &lossext::ops::ctc_loss_backward);
}
}  // namespace
LOSSEXT_IMPL_ALL_DEVICES(impls);
