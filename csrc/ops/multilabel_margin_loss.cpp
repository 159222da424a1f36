// multilabel_margin_loss host functions (CPU and CUDA share them; the stub picks the kernels).
// torch's argument rules are checked here, then the (C) / (N, C) input runs as an (N, C) problem
// of the row-wise target-set driver (lossext/rowwise.h, kTargetSet). The forward also returns the
// is-target buffer (input-shaped, 1 at each row's target classes, as torch's), which a separate
// backward reads.
#include <lossext/autograd.h>
#include <lossext/composite.h>
#include <lossext/host.h>
#include <lossext/registration.h>
#include <lossext/rowwise_host.h>
#include <losses/multilabel_margin_loss.h>

#include <ATen/ops/empty.h>
#include <c10/core/DeviceGuard.h>
#include <torch/library.h>

LOSSEXT_DEFINE_STUB(lossext::multilabel_margin_loss_stub, lossext::MultilabelMarginFn);

namespace lossext::ops {
namespace {
constexpr const char* kOp = "multilabel_margin_loss";
constexpr RowwiseSpec kSpec{kOp, /*allow_prob=*/false, /*need_layout=*/true, /*target_set=*/true};

struct Problem {
  RowwiseProblem p;
  std::vector<int64_t> loss_shape;  // reduction none: (N), or a 0-d loss for an unbatched input
  Tensor is_target;                 // (N, C) contiguous, the input's dtype
};

// torch's checks (aten/src/ATen/native/LossMultiLabelMargin.cpp), messages naming the op and shapes.
Problem prepare(const Tensor& input, const Tensor& target, int64_t reduction, bool want_grad) {
  const int64_t nd = input.dim();
  TORCH_CHECK((nd == 2 && input.size(1) != 0) || (nd == 1 && input.size(0) != 0) || nd == 0, kOp,
              ": Expected non-empty vector or matrix with optional 0-dim batch size, but got: ",
              shape_str(input.sizes()));
  const int64_t nframe = nd == 2 ? input.size(0) : 1;
  const int64_t dim = nd == 0 ? 1 : input.size(nd - 1);
  const bool ok = nd <= 1 ? (target.dim() <= 1 && target.numel() == dim)
                          : (target.dim() == 2 && target.size(0) == nframe && target.size(1) == dim);
  TORCH_CHECK(ok, kOp, ": inconsistent target size: ", shape_str(target.sizes()), " for input of size: ",
              shape_str(input.sizes()));
  TORCH_CHECK(target.scalar_type() == at::kLong, kOp, ": expected scalar type Long but found ",
              target.scalar_type(), " (target of shape ", shape_str(target.sizes()), ")");
  // Views: the input as (N, C) with a contiguous class dim (the driver's rows layout), the target as (N, C).
  Tensor x = nd == 2 ? input : input.reshape({1, dim});
  if (dim > 1 && x.stride(1) != 1) x = x.contiguous();
  Problem pr{rowwise_prepare(kSpec, x, shaped(target, {nframe, dim}), c10::nullopt, reduction, -100, want_grad, false),
             nd == 2 ? std::vector<int64_t>{nframe} : std::vector<int64_t>{}, Tensor()};
  return pr;
}

// Points the args at the is-target buffer (the driver's second operand).
void use_is_target(Problem& pr, const Tensor& t) {
  pr.is_target = t;
  RowwiseArgs& a = pr.p.args;
  a.other = t.const_data_ptr();
  a.st[kRowOther][0] = t.stride(0);
  a.st[kRowOther][1] = t.stride(1);
  a.st[kRowOther][2] = 0;
}

void run(const Problem& pr) {
  c10::OptionalDeviceGuard guard(pr.p.input.device());
  multilabel_margin_loss_stub(pr.p.input.device().type())(pr.p.args, MultilabelMarginParams{});
}

}  // namespace

std::tuple<Tensor, Tensor, Tensor> multilabel_margin_loss(const Tensor& input, const Tensor& target, int64_t reduction,
                                                          std::array<bool, 1> grad_mask) {
  // float16: the backward computes the gradient in float (rowwise_forward_grads, as the fake kernels).
  const bool reduce = reduction != static_cast<int64_t>(Reduction::None);
  const bool grads = reduce && rowwise_forward_grads({input, target});
  Problem pr = prepare(input, target, reduction, grads && grad_mask[0]);
  const RowwiseArgs& a = pr.p.args;
  use_is_target(pr, at::empty({a.N, a.C}, pr.p.input.options()));
  Tensor loss = rowwise_loss_buffer(pr.p);
  pr.p.args.mode = RowMode::kForward;
  pr.p.args.loss = loss.data_ptr();
  run(pr);
  if (!reduce) loss = shaped(loss, pr.loss_shape);
  return {loss, rowwise_grad_like_input(pr.p, input), shaped(pr.is_target, input.sizes())};
}

Tensor multilabel_margin_loss_backward(const Tensor& grad_output, const Tensor& input, const Tensor& target,
                                       int64_t reduction, const Tensor& is_target, std::array<bool, 1> grad_mask) {
  Problem pr = prepare(input, target, reduction, grad_mask[0]);
  if (pr.p.grad_input.defined()) {
    const RowwiseArgs& a = pr.p.args;
    TORCH_CHECK(is_target.sizes().equals(input.sizes()) && is_target.device() == input.device(), kOp,
                ": expected the forward's is_target of shape ", shape_str(input.sizes()), ", but got ",
                shape_str(is_target.sizes()));
    // 0/1 values: any dtype converts exactly (under autocast the forward ran in float32 while the
    // eager autograd Function saved the caller's float16 input).
    const at::ScalarType dt = pr.p.input.scalar_type();
    use_is_target(pr, (is_target.scalar_type() == dt ? is_target : is_target.to(dt)).reshape({a.N, a.C}).contiguous());
    const Tensor g = rowwise_set_grad_output(pr.p, grad_output, pr.loss_shape);
    pr.p.args.mode = RowMode::kBackward;
    run(pr);
  }
  return rowwise_grad_like_input(pr.p, input);
}
}  // namespace lossext::ops

TORCH_LIBRARY_FRAGMENT(lossext, m) {
  // The third output: the is-target buffer (input-shaped), read by a separate backward.
  m.def("multilabel_margin_loss(Tensor input, Tensor target, int reduction, bool[1] grad_mask) "
        "-> (Tensor, Tensor, Tensor)");
  m.def("multilabel_margin_loss_backward(Tensor grad_output, Tensor input, Tensor target, int reduction, "
        "Tensor is_target, bool[1] grad_mask) -> Tensor");
}

// The loss in ATen arithmetic, for second derivatives only (lossext/composite.h).
static at::Tensor multilabel_margin_loss_composite(const lossext::autograd::Args& a) {
  using namespace lossext::autograd;
  // sum over targets j (up to the first -1) and non-targets k of max(0, 1 - (x_j - x_k)) / C.
  at::Tensor x = tensor(a, 0), t = tensor(a, 1);
  const bool unbatched = x.dim() <= 1;
  if (unbatched) x = x.reshape({1, -1}), t = t.reshape({1, -1});
  const at::Tensor valid = t.ne(-1).to(at::kLong).cumprod(1);   // positions before the first -1
  const at::Tensor tc = t.clamp_min(0).mul(valid);
  const at::Tensor is_target = valid.new_zeros(t.sizes()).scatter_add(1, tc, valid).gt(0);
  const at::Tensor xt = x.gather(1, tc);
  const at::Tensor m = x.unsqueeze(1).sub(xt.unsqueeze(2)).add(1).relu()
                           .mul(valid.unsqueeze(2)).mul(is_target.logical_not().unsqueeze(1));
  at::Tensor per = m.sum({1, 2}).div(static_cast<double>(x.size(1)));
  if (unbatched) per = per.squeeze(0);
  return reduce(per, int_at(a, 2));
}
LOSSEXT_AUTOGRAD(multilabel_margin_loss, &multilabel_margin_loss_composite, "input");

namespace {
void impls(torch::Library& m) {
  m.impl("multilabel_margin_loss", &lossext::ops::multilabel_margin_loss);
  m.impl("multilabel_margin_loss_backward", &lossext::ops::multilabel_margin_loss_backward);
}
}  // namespace
LOSSEXT_IMPL_ALL_DEVICES(impls);
