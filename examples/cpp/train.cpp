// A libtorch training loop (no Python) through lossext's C++ API: a two-headed MLP (classes and a
// regression value) trained with lossext::nn::CrossEntropyLoss + lossext::functional::mse_loss +
// lossext::functional::smooth_l1_loss. Every step checks the losses and the parameter gradients
// against torch::nn::functional's; the program exits non-zero on a mismatch or if it did not learn.
#include <torch/torch.h>
#include <lossext/lossext.h>

#include <cstdio>

namespace F = torch::nn::functional;

struct Net : torch::nn::Module {
  torch::nn::Linear body{nullptr}, classes{nullptr}, value{nullptr};
  Net() {
    body = register_module("body", torch::nn::Linear(8, 32));
    classes = register_module("classes", torch::nn::Linear(32, 5));
    value = register_module("value", torch::nn::Linear(32, 1));
  }
  std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& x) {
    auto h = torch::relu(body(x));
    return {classes(h), value(h).squeeze(-1)};
  }
};

static bool close(const torch::Tensor& a, const torch::Tensor& b) { return torch::allclose(a, b, 1e-5, 1e-6); }

int main() {
  torch::manual_seed(0);
  // A learnable task: the class and the value are functions of the features.
  auto x = torch::randn({256, 8});
  auto y = (x.slice(1, 0, 5) * 2).argmax(1);
  auto v = x.slice(1, 5, 8).sum(1);

  Net net;
  torch::optim::SGD opt(net.parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));
  // The migration: torch::nn::CrossEntropyLoss -> lossext::nn::CrossEntropyLoss, and
  // torch::nn::functional::<loss> -> lossext::functional::<loss>, same options.
  lossext::nn::CrossEntropyLoss criterion(torch::nn::CrossEntropyLossOptions().label_smoothing(0.05));

  double first = 0, last = 0;
  for (int step = 0; step < 60; ++step) {
    auto [logits, pred] = net.forward(x);
    auto ce = criterion(logits, y);
    auto mse = lossext::functional::mse_loss(pred, v);
    auto sl1 = lossext::functional::smooth_l1_loss(pred, v, F::SmoothL1LossFuncOptions().beta(0.5));
    auto loss = ce + 0.5 * mse + 0.5 * sl1;
    if (step == 0 && ce.grad_fn()->name() != "lossext::cross_entropyBackward") {  // lossext ran, not torch
      std::fprintf(stderr, "unexpected grad_fn %s\n", ce.grad_fn()->name().c_str());
      return 1;
    }

    // torch's losses on the same outputs: the values and every parameter's gradient must agree.
    auto ref = F::cross_entropy(logits, y, F::CrossEntropyFuncOptions().label_smoothing(0.05)) +
               0.5 * F::mse_loss(pred, v) + 0.5 * F::smooth_l1_loss(pred, v, F::SmoothL1LossFuncOptions().beta(0.5));
    auto params = net.parameters();
    auto ref_grads = torch::autograd::grad({ref}, params, {}, /*retain_graph=*/true);
    if (!close(loss, ref)) {
      std::fprintf(stderr, "step %d: lossext loss %.8f != torch %.8f\n", step, loss.item<double>(), ref.item<double>());
      return 1;
    }

    opt.zero_grad();
    loss.backward();  // lossext's C++ autograd
    for (size_t i = 0; i < params.size(); ++i) {
      if (!params[i].grad().defined() || !close(params[i].grad(), ref_grads[i])) {
        std::fprintf(stderr, "step %d: gradient of parameter %zu differs from torch's\n", step, i);
        return 1;
      }
    }
    opt.step();
    if (step == 0) first = loss.item<double>();
    last = loss.item<double>();
  }
  std::printf("lossext C++ example: loss %.4f -> %.4f over 60 steps; losses and gradients match torch (ISAs: %s)\n",
              first, last, lossext::built_isas());
  if (!(last < 0.5 * first)) {
    std::fprintf(stderr, "the model did not learn\n");
    return 1;
  }
  return 0;
}
