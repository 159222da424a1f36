// Every lossext C++ loss against torch::nn::functional's (or, for the losses torch has no C++ API
// for, against the loss written in ATen arithmetic): the value and the gradient of every
// differentiable input, in float64, with default and non-default options, and a few modules.
// Exits non-zero on the first mismatch (built and run by tools/cpp_example.py).
#include <torch/torch.h>
#include <lossext/lossext.h>

#include <cstdio>
#include <functional>
#include <string>
#include <vector>

namespace F = torch::nn::functional;
namespace L = lossext::functional;
using torch::Tensor;

static int failures = 0, checks = 0;

// `ours` and `ref` compute the loss from the same leaves; compare value and d(sum)/d(leaf).
static void check(const std::string& name, const std::vector<Tensor>& leaves,
                  const std::function<Tensor()>& ours, const std::function<Tensor()>& ref) {
  ++checks;
  try {
    Tensor a = ours(), b = ref();
    bool ok = a.sizes() == b.sizes() && a.dtype() == b.dtype() && torch::allclose(a, b, 1e-6, 1e-9);
    if (ok) {
      auto ga = torch::autograd::grad({a.sum()}, leaves, {}, false, false, /*allow_unused=*/true);
      auto gb = torch::autograd::grad({b.sum()}, leaves, {}, false, false, true);
      for (size_t i = 0; i < leaves.size() && ok; ++i) {
        ok = ga[i].defined() == gb[i].defined() && (!ga[i].defined() || torch::allclose(ga[i], gb[i], 1e-6, 1e-9));
        if (!ok) std::fprintf(stderr, "%s: gradient %zu differs\n", name.c_str(), i);
      }
    } else {
      std::fprintf(stderr, "%s: value differs\n", name.c_str());
    }
    if (!ok) ++failures;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", name.c_str(), e.what());
    ++failures;
  }
}

static Tensor leaf(Tensor t) { return t.to(torch::kDouble).detach().requires_grad_(); }

int main() {
  torch::manual_seed(0);
  const auto d = torch::TensorOptions().dtype(torch::kDouble);
  Tensor x = leaf(torch::randn({6, 5})), t = leaf(torch::randn({6, 5}));
  Tensor sign = torch::randint(0, 2, {6, 5}, d) * 2 - 1;
  Tensor p = leaf(torch::rand({6, 5}) * 0.9 + 0.05), t01 = torch::rand({6, 5}, d);
  Tensor cls = torch::randint(0, 5, {6});
  Tensor w5 = torch::rand({5}, d) + 0.5;

  // ---- pointwise
  check("l1_loss", {x, t}, [&] { return L::l1_loss(x, t); }, [&] { return F::l1_loss(x, t); });
  check("mse_loss(sum)", {x, t}, [&] { return L::mse_loss(x, t, torch::kSum); },
        [&] { return F::mse_loss(x, t, torch::kSum); });
  check("huber_loss(delta)", {x, t}, [&] { return L::huber_loss(x, t, F::HuberLossFuncOptions().delta(0.4)); },
        [&] { return F::huber_loss(x, t, F::HuberLossFuncOptions().delta(0.4)); });
  check("smooth_l1_loss(none)", {x, t}, [&] { return L::smooth_l1_loss(x, t, torch::kNone, 0.5); },
        [&] { return F::smooth_l1_loss(x, t, torch::kNone, 0.5); });
  check("soft_margin_loss", {x}, [&] { return L::soft_margin_loss(x, sign); },
        [&] { return F::soft_margin_loss(x, sign); });
  check("binary_cross_entropy(weight)", {p}, [&] {
    return L::binary_cross_entropy(p, t01, F::BinaryCrossEntropyFuncOptions().weight(w5)); }, [&] {
    return F::binary_cross_entropy(p, t01, F::BinaryCrossEntropyFuncOptions().weight(w5)); });
  check("binary_cross_entropy_with_logits(pos_weight)", {x}, [&] {
    return L::binary_cross_entropy_with_logits(x, t01, F::BinaryCrossEntropyWithLogitsFuncOptions().pos_weight(w5)); },
    [&] { return F::binary_cross_entropy_with_logits(x, t01, F::BinaryCrossEntropyWithLogitsFuncOptions().pos_weight(w5)); });
  check("poisson_nll_loss", {x}, [&] { return L::poisson_nll_loss(x, t01 * 3); },
        [&] { return F::poisson_nll_loss(x, t01 * 3); });
  check("poisson_nll_loss(full, no log)", {p}, [&] {
    return L::poisson_nll_loss(p, t01 * 3, F::PoissonNLLLossFuncOptions().log_input(false).full(true)); }, [&] {
    return F::poisson_nll_loss(p, t01 * 3, F::PoissonNLLLossFuncOptions().log_input(false).full(true)); });
  Tensor lq = leaf(torch::log_softmax(torch::randn({6, 5}), 1)), pt = torch::softmax(torch::randn({6, 5}, d), 1);
  check("kl_div(batchmean)", {lq}, [&] { return L::kl_div(lq, pt, F::KLDivFuncOptions(torch::kBatchMean)); },
        [&] { return F::kl_div(lq, pt, F::KLDivFuncOptions(torch::kBatchMean)); });
  check("kl_div(sum, log_target)", {lq}, [&] {
    return L::kl_div(lq, pt.log(), F::KLDivFuncOptions(torch::kSum).log_target(true)); },
    [&] { return F::kl_div(lq, pt.log(), F::KLDivFuncOptions(torch::kSum).log_target(true)); });
  Tensor var = leaf(torch::rand({6, 5}) + 0.1);
  check("gaussian_nll_loss", {x, t, var}, [&] { return L::gaussian_nll_loss(x, t, var); },
        [&] { return (0.5 * (var.clamp_min(1e-6).log() + (x - t).pow(2) / var.clamp_min(1e-6))).mean(); });

  // ---- row-wise
  check("cross_entropy", {x}, [&] { return L::cross_entropy(x, cls); }, [&] { return F::cross_entropy(x, cls); });
  auto ce = F::CrossEntropyFuncOptions().weight(w5).label_smoothing(0.1).ignore_index(2);
  check("cross_entropy(weight, smoothing, ignore)", {x}, [&] { return L::cross_entropy(x, cls, ce); },
        [&] { return F::cross_entropy(x, cls, ce); });
  check("cross_entropy(probabilities)", {x}, [&] { return L::cross_entropy(x, pt); },
        [&] { return F::cross_entropy(x, pt); });
  check("nll_loss(weight, sum)", {lq}, [&] {
    return L::nll_loss(lq, cls, F::NLLLossFuncOptions().weight(w5).reduction(torch::kSum)); }, [&] {
    return F::nll_loss(lq, cls, F::NLLLossFuncOptions().weight(w5).reduction(torch::kSum)); });
  check("multilabel_soft_margin_loss", {x}, [&] { return L::multilabel_soft_margin_loss(x, t01.round()); },
        [&] { return F::multilabel_soft_margin_loss(x, t01.round()); });
  check("multi_margin_loss(p=2, weight)", {x}, [&] {
    return L::multi_margin_loss(x, cls, F::MultiMarginLossFuncOptions().p(2).weight(w5)); }, [&] {
    return F::multi_margin_loss(x, cls, F::MultiMarginLossFuncOptions().p(2).weight(w5)); });
  Tensor ml = torch::tensor({{3, 0, -1, 1, 2}, {1, 2, 3, -1, 0}}), xm = leaf(torch::randn({2, 5}));
  check("multilabel_margin_loss", {xm}, [&] { return L::multilabel_margin_loss(xm, ml); },
        [&] { return F::multilabel_margin_loss(xm, ml); });
  Tensor lp = leaf(torch::log_softmax(torch::randn({12, 3, 6}), 2)), tg = torch::randint(1, 6, {3, 4});
  Tensor il = torch::full({3}, 12, torch::kLong), tl = torch::tensor({4, 3, 2}, torch::kLong);
  check("ctc_loss", {lp}, [&] { return L::ctc_loss(lp, tg, il, tl); }, [&] { return F::ctc_loss(lp, tg, il, tl); });
  check("ctc_loss(sum)", {lp}, [&] { return L::ctc_loss(lp, tg, il, tl, F::CTCLossFuncOptions().reduction(torch::kSum)); },
        [&] { return F::ctc_loss(lp, tg, il, tl, F::CTCLossFuncOptions().reduction(torch::kSum)); });
  // focal_loss: gamma = 0 is cross_entropy; gamma = 2 is -(1 - p_t)^2 log p_t.
  check("focal_loss(gamma=0)", {x}, [&] { return L::focal_loss(x, cls, L::FocalLossFuncOptions().gamma(0)); },
        [&] { return F::cross_entropy(x, cls); });
  check("focal_loss(alpha)", {x}, [&] { return L::focal_loss(x, cls, L::FocalLossFuncOptions().alpha(0.25)); }, [&] {
    Tensor lpt = torch::log_softmax(x, 1).gather(1, cls.unsqueeze(1)).squeeze(1);
    return (-0.25 * (1 - lpt.exp()).pow(2) * lpt).mean(); });
  // label smoothing eps: (1 - eps) times the target's term plus eps / C times every class's.
  check("focal_loss(label_smoothing)", {x}, [&] {
    return L::focal_loss(x, cls, L::FocalLossFuncOptions().gamma(1.5).label_smoothing(0.2)); }, [&] {
    Tensor lps = torch::log_softmax(x, 1), fl = -(1 - lps.exp()).pow(1.5) * lps;
    return (0.8 * fl.gather(1, cls.unsqueeze(1)).squeeze(1) + 0.2 / 5 * fl.sum(1)).mean(); });
  check("sigmoid_focal_loss", {x}, [&] { return L::sigmoid_focal_loss(x, t01.round()); }, [&] {
    Tensor y = t01.round(), s = torch::sigmoid(x), pt_ = s * y + (1 - s) * (1 - y);
    return (0.25 * y + 0.75 * (1 - y)) * (1 - pt_).pow(2) *
           F::binary_cross_entropy_with_logits(x, y, F::BinaryCrossEntropyWithLogitsFuncOptions().reduction(torch::kNone)); });
  check("sigmoid_focal_loss(class indices, normalizer)", {x}, [&] {
    return L::sigmoid_focal_loss(x, cls, L::SigmoidFocalLossFuncOptions().reduction(torch::kSum).normalizer(
                                             torch::full({1}, 3.0, d))); }, [&] {
    Tensor y = F::one_hot(cls, 5).to(torch::kDouble), s = torch::sigmoid(x), pt_ = s * y + (1 - s) * (1 - y);
    return ((0.25 * y + 0.75 * (1 - y)) * (1 - pt_).pow(2) *
            F::binary_cross_entropy_with_logits(x, y, F::BinaryCrossEntropyWithLogitsFuncOptions().reduction(torch::kNone)))
               .sum() / 3.0; });
  Tensor h = leaf(torch::randn({6, 4})), lw = leaf(torch::randn({5, 4})), lb = leaf(torch::randn({5}));
  check("linear_cross_entropy(bias, chunks)", {h, lw, lb}, [&] {
    return L::linear_cross_entropy(h, lw, cls, L::LinearCrossEntropyFuncOptions().linear_bias(lb).chunk_size(4)); },
    [&] { return F::cross_entropy(F::linear(h, lw, lb), cls); });

  // ---- margin and embedding
  Tensor a1 = leaf(torch::randn({6})), a2 = leaf(torch::randn({6})), s6 = torch::randint(0, 2, {6}, d) * 2 - 1;
  check("margin_ranking_loss(margin)", {a1, a2}, [&] {
    return L::margin_ranking_loss(a1, a2, s6, F::MarginRankingLossFuncOptions().margin(0.3)); },
    [&] { return F::margin_ranking_loss(a1, a2, s6, F::MarginRankingLossFuncOptions().margin(0.3)); });
  check("hinge_embedding_loss", {x}, [&] { return L::hinge_embedding_loss(x, sign); },
        [&] { return F::hinge_embedding_loss(x, sign); });
  check("cosine_embedding_loss(margin)", {x, t}, [&] {
    return L::cosine_embedding_loss(x, t, s6, F::CosineEmbeddingLossFuncOptions().margin(0.2)); },
    [&] { return F::cosine_embedding_loss(x, t, s6, F::CosineEmbeddingLossFuncOptions().margin(0.2)); });
  Tensor n = leaf(torch::randn({6, 5}));
  check("triplet_margin_loss", {x, t, n}, [&] { return L::triplet_margin_loss(x, t, n); },
        [&] { return F::triplet_margin_loss(x, t, n); });
  check("triplet_margin_loss(p=1, swap)", {x, t, n}, [&] {
    return L::triplet_margin_loss(x, t, n, F::TripletMarginLossFuncOptions().p(1).swap(true)); },
    [&] { return F::triplet_margin_loss(x, t, n, F::TripletMarginLossFuncOptions().p(1).swap(true)); });
  check("triplet_margin_with_distance_loss", {x, t, n}, [&] { return L::triplet_margin_with_distance_loss(x, t, n); },
        [&] { return F::triplet_margin_with_distance_loss(x, t, n); });
  auto l1 = [](const Tensor& u, const Tensor& v) { return (u - v).abs().sum(-1); };
  auto twd = F::TripletMarginWithDistanceLossFuncOptions().distance_function(l1).swap(true).margin(2.0);
  check("triplet_margin_with_distance_loss(function, swap)", {x, t, n},
        [&] { return L::triplet_margin_with_distance_loss(x, t, n, twd); },
        [&] { return F::triplet_margin_with_distance_loss(x, t, n, twd); });

  // ---- modules (built from torch's options; weights are buffers)
  lossext::nn::CrossEntropyLoss ours(torch::nn::CrossEntropyLossOptions().weight(w5).label_smoothing(0.2));
  torch::nn::CrossEntropyLoss theirs(torch::nn::CrossEntropyLossOptions().weight(w5).label_smoothing(0.2));
  check("nn::CrossEntropyLoss", {x}, [&] { return ours(x, cls); }, [&] { return theirs(x, cls); });
  if (ours->named_buffers().size() != 1) {
    std::fprintf(stderr, "nn::CrossEntropyLoss: the weight is not a buffer\n");
    ++failures;
  }
  lossext::nn::HuberLoss huber(torch::nn::HuberLossOptions().delta(2.0).reduction(torch::kSum));
  check("nn::HuberLoss", {x, t}, [&] { return huber(x, t); },
        [&] { return torch::nn::HuberLoss(torch::nn::HuberLossOptions().delta(2.0).reduction(torch::kSum))(x, t); });
  lossext::nn::TripletMarginLoss triplet;
  check("nn::TripletMarginLoss", {x, t, n}, [&] { return triplet(x, t, n); },
        [&] { return torch::nn::TripletMarginLoss()(x, t, n); });

  // ---- what torch's C++ functions reject, lossext's reject (same messages)
  ++checks;
  bool raised = false;
  try {
    L::nll_loss(lq[0], cls);  // torch's C++ nll_loss wants 2 or more dimensions
  } catch (const c10::Error& e) {
    raised = std::string(e.what()).find("Expected 2 or more dimensions") != std::string::npos;
  }
  if (!raised) {
    std::fprintf(stderr, "nll_loss of a 1-D input did not raise torch's error\n");
    ++failures;
  }

  std::printf("lossext C++ API: %d checks, %d failures\n", checks, failures);
  return failures == 0 ? 0 : 1;
}
