// Shared pieces of the second-derivative composites (lossext/composite.h).
#include <lossext/composite.h>

#include <ATen/ops/exp.h>
#include <ATen/ops/full_like.h>
#include <ATen/ops/log1p.h>
#include <ATen/ops/log_softmax.h>
#include <ATen/ops/logsumexp.h>
#include <ATen/ops/relu.h>
#include <ATen/ops/where.h>

#include <vector>

namespace lossext::autograd {

at::Tensor reduce(const at::Tensor& loss, int64_t reduction) {
  return reduction == 1 ? loss.mean() : reduction == 2 ? loss.sum() : loss;
}

at::Tensor weighted(const at::Tensor& l, const at::Tensor& w, int64_t reduction, bool mean_over_weight_sum) {
  if (!w.defined()) return reduce(l, reduction);
  const at::Tensor lw = l.mul(w);
  return reduction == 1 && mean_over_weight_sum ? lw.sum().div(w.sum()) : reduce(lw, reduction);
}

at::Tensor softplus(const at::Tensor& x) {
  // relu(x) + log1p(exp(-|x|)): no overflow, and derivatives of every order are sigmoid's.
  return at::relu(x).add(at::log1p(at::exp(x.abs().neg())));
}

at::Tensor cross_entropy(const at::Tensor& x, const at::Tensor& target, const at::Tensor& weight, int64_t reduction,
                         int64_t ignore_index, double eps, bool logits, double z_loss) {
  const int64_t cd = x.dim() >= 2 ? 1 : 0;  // the class dimension
  const int64_t C = x.size(cd);
  const at::Tensor logp = logits ? at::log_softmax(x, cd) : x;
  std::vector<int64_t> wshape(x.dim(), 1);
  wshape[cd] = C;
  const at::Tensor wb = weight.defined() ? weight.reshape(wshape) : at::Tensor();
  const at::Tensor lse2 = z_loss != 0 ? at::logsumexp(x, cd).pow(2) : at::Tensor();
  if (target.is_floating_point()) {  // class probabilities
    const at::Tensor q = eps > 0 ? target.mul(1 - eps).add(eps / C) : target;
    at::Tensor l = logp.mul(q);
    if (wb.defined()) l = l.mul(wb);
    at::Tensor per = l.sum(cd).neg();
    if (z_loss != 0) per = per.add(lse2.mul(z_loss));
    if (reduction == 1) return per.sum().div(static_cast<double>(x.numel() / (C > 0 ? C : 1)));
    return reduce(per, reduction);
  }
  const at::Tensor ign = target.eq(ignore_index);
  const at::Tensor tc = target.masked_fill(ign, 0);
  const at::Tensor picked = logp.gather(cd, tc.unsqueeze(cd)).squeeze(cd);
  const at::Tensor keep = ign.logical_not().to(logp.scalar_type());
  const at::Tensor wy = weight.defined() ? weight.reshape(-1).index_select(0, tc.reshape(-1)).reshape(tc.sizes()).mul(keep)
                                         : keep;
  const at::Tensor nll = picked.mul(wy).neg();
  const at::Tensor denom = reduction == 1 ? wy.sum() : at::Tensor();
  auto red = [&](const at::Tensor& l) { return reduction == 1 ? l.sum().div(denom) : reduce(l, reduction); };
  at::Tensor nll_r = red(nll);
  if (z_loss != 0) nll_r = nll_r.add(red(lse2.mul(wy)).mul(z_loss));
  if (!(eps > 0)) return nll_r;
  const at::Tensor smooth = (wb.defined() ? logp.mul(wb) : logp).sum(cd).neg().mul(keep);
  const at::Tensor smooth_r = reduction == 1 ? smooth.sum().div(weight.defined() ? denom : keep.sum())
                                             : reduce(smooth, reduction);
  at::Tensor r = red(nll).mul(1 - eps).add(smooth_r.mul(eps / C));
  return z_loss != 0 ? r.add(red(lse2.mul(wy)).mul(z_loss)) : r;
}

}  // namespace lossext::autograd
