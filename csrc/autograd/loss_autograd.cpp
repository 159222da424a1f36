// The Autograd-key kernels of every loss op (see lossext/autograd.h for the contract and a row).
#include <lossext/autograd.h>

#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>
#include <c10/core/impl/TorchDispatchModeTLS.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/functions/basic_ops.h>
#include <torch/csrc/autograd/functions/utils.h>
#include <torch/csrc/dynamo/compiled_autograd.h>
#include <torch/csrc/autograd/graph_task.h>

#include <c10/util/SmallVector.h>

#include <deque>
#include <memory>
#include <mutex>
#include <optional>

namespace lossext::autograd {
namespace {

using c10::IValue;
using torch::autograd::variable_list;
using torch::jit::Stack;

// A row and what its two schemas say, resolved at the first call (schemas and kernels register in
// static initialisers of different files, in no fixed order).
struct Entry {
  Row row;
  int64_t index = 0;
  std::once_flag once;
  size_t n_args = 0, n_out = 0, red_pos = 0;
  std::vector<size_t> diff_pos;    // forward argument positions of row.diff
  std::vector<size_t> fixed_pos;   // tensor arguments without a gradient
  std::vector<bool> is_tensor;     // per forward argument
  std::vector<bool> is_optional;   // per forward argument
  std::optional<c10::OperatorHandle> backward_op;
  std::optional<c10::OperatorHandle> scale, scale_;
};

std::deque<Entry>& entries() {
  static std::deque<Entry> e;  // stable addresses; filled by static initialisers only
  return e;
}

c10::OperatorHandle find(const std::string& name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(("lossext::" + name).c_str(), "");
}

Entry& resolved(Entry& e) {
  std::call_once(e.once, [&e] {
    const auto& args = find(e.row.name).schema().arguments();
    e.n_args = args.size();
    e.n_out = find(e.row.name).schema().returns().size();
    TORCH_CHECK(args.back().name() == "grad_mask", "lossext::", e.row.name, ": grad_mask must be the last argument");
    e.diff_pos.assign(e.row.diff.size(), 0);
    std::vector<bool> found(e.row.diff.size(), false);
    for (size_t i = 0; i < args.size(); ++i) {
      const auto& t = args[i].type();
      const bool opt = t->kind() == c10::TypeKind::OptionalType;
      const bool tensor = t->kind() == c10::TypeKind::TensorType ||
                          (opt && t->containedType(0)->kind() == c10::TypeKind::TensorType);
      e.is_tensor.push_back(tensor);
      e.is_optional.push_back(opt);
      if (args[i].name() == "reduction") e.red_pos = i;
      bool diff = false;
      for (size_t d = 0; d < e.row.diff.size(); ++d) {
        if (args[i].name() == e.row.diff[d]) e.diff_pos[d] = i, found[d] = diff = true;
      }
      if (tensor && !diff) e.fixed_pos.push_back(i);
    }
    for (size_t d = 0; d < found.size(); ++d)
      TORCH_CHECK(found[d], "lossext::", e.row.name, ": no argument named ", e.row.diff[d]);
    e.backward_op = find(e.row.name + "_backward");
    e.scale = find("scale_grad");
    e.scale_ = find("scale_grad_");
  });
  return e;
}

at::Tensor tensor_at(const IValue& v) { return v.isTensor() ? v.toTensor() : at::Tensor(); }
bool bit(uint32_t mask, size_t i) { return (mask >> i) & 1u; }

std::string no_double_backward_msg(const Entry& e) {
  return "lossext: double backward of " + e.row.name + " is not supported (a second derivative through a "
         "lossext loss, e.g. create_graph=True followed by a backward of the gradient)";
}

// Nodes are std::shared_ptr in older torch releases and c10::intrusive_ptr in newer ones.
using NodePtr = decltype(torch::autograd::Edge::function);
template <class T, class... A>
auto make_node(A&&... a) {
  if constexpr (std::is_same_v<NodePtr, std::shared_ptr<torch::autograd::Node>>)
    return std::make_shared<T>(std::forward<A>(a)...);
  else
    return c10::make_intrusive<T>(std::forward<A>(a)...);
}

// The gradients of a row without a composite get, under create_graph=True, a node that raises when
// reached: a second derivative raises instead of silently treating them as constants.
void guard_second_derivative(const Entry& e, variable_list& outs, torch::autograd::edge_list edges) {
  // The node's edges lead to the tensors the gradients depend on, so that any second derivative
  // (backward or autograd.grad of any of them, also under torch.func) reaches it.
  // torch.func transforms always differentiate with create_graph, and no node on their wrapped
  // tensors is reached by an outer transform: a nested one would see a silent zero. Raise.
  for (const auto& o : outs)
    TORCH_CHECK(!o.defined() || !o.key_set().has(c10::DispatchKey::FuncTorchGradWrapper), "lossext: ", e.row.name,
                " under torch.func transforms is not supported (it has no second derivative, and a transform "
                "cannot tell lossext whether one will be taken); use torch.autograd");
  NodePtr err;
  for (auto& o : outs) {
    if (!o.defined() || !torch::autograd::isDifferentiableType(o.scalar_type())) continue;
    if (!err) err = make_node<torch::autograd::Error>(no_double_backward_msg(e), std::move(edges));
    o = o.detach();
    torch::autograd::set_history(o, err);
  }
}

// lossext has no forward-mode derivatives: a dual input (torch.func.jvp, jacfwd, forward_ad) raises
// instead of silently getting a zero tangent.
void check_no_forward_ad(const Entry& e, c10::ArrayRef<IValue> args, const char* op) {
  for (const auto& v : args)
    if (v.isTensor())
      TORCH_CHECK_NOT_IMPLEMENTED(!torch::autograd::isFwGradDefined(v.toTensor()), "lossext::", op,
                                  ": forward-mode AD (torch.func.jvp, jacfwd, hessian, torch.autograd.forward_ad) "
                                  "is not supported; use reverse mode (backward, torch.func.grad, jacrev)");
}

// Whether a saved gradient may be scaled in place: plain tensors (no subclass, mode or transform
// sees them), and only this node holds it (its SavedVariable and the unpacked copy).
bool plain(const at::Tensor& t) {
  constexpr c10::DispatchKeySet wrapped({c10::DispatchKey::Python, c10::DispatchKey::PythonTLSSnapshot,
                                         c10::DispatchKey::Functionalize, c10::DispatchKey::FuncTorchGradWrapper,
                                         c10::DispatchKey::FuncTorchBatched});
  return !t.key_set().has_any(wrapped);
}
// Whether a plain 0-d grad_output on the CPU is 1 (loss.backward()), read in place: item() is two
// dispatches, a visible part of a backward at N=64.
bool cpu_one(const at::Tensor& g) {
  if (!g.is_cpu() || g.is_neg()) return false;  // (a negative view: scaled as any other)
  switch (g.scalar_type()) {
    case at::kFloat: return *g.const_data_ptr<float>() == 1.0f;
    case at::kDouble: return *g.const_data_ptr<double>() == 1.0;
    default: return g.item<double>() == 1.0;
  }
}
bool private_to_node(const at::Tensor& g) { return g.use_count() == 2 && g.storage().use_count() == 1; }

// The loss's grad_fn. Inputs (next edges): the defined differentiable arguments, in row order.
struct LossBackward : public torch::autograd::Node {
  Entry* e = nullptr;
  bool scale = false;                 // saved[0..]: the forward's gradients, to scale
  bool inputs = false;                // then: the tensor arguments and the aux outputs
  uint32_t needs = 0, present = 0;    // bit i: differentiable argument i (a row has at most 32)
  std::vector<torch::autograd::SavedVariable> saved;
  std::vector<IValue> scalars;        // forward arguments (None where a tensor is)

  std::string name() const override { return "lossext::" + e->row.name + "Backward"; }
  void release_variables() override {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& v : saved) v.reset_data();
  }
  void compiled_args(torch::dynamo::autograd::CompiledNodeArgs& args) const override {
    args.collect(e->index);
    args.collect(scale);
    args.collect(inputs);
    args.collect(needs);
    args.collect(present);
    args.collect(saved, false);
    for (const auto& v : scalars) args.collect(v);
  }
  variable_list apply_with_saved(const variable_list& grads, torch::dynamo::autograd::SwapSavedVariables& sv) override {
    sv.before(saved);
    variable_list r = apply(variable_list(grads));
    sv.after(saved);
    return r;
  }
  variable_list apply(variable_list&& grads) override;
};

variable_list LossBackward::apply(variable_list&& grads) {
  const size_t k = e->row.diff.size();
  // slot[i]: the next edge of differentiable argument i (absent ones have none).
  c10::SmallVector<size_t, 4> slot(k);
  size_t n_in = 0;
  for (size_t i = 0; i < k; ++i) slot[i] = bit(present, i) ? n_in++ : SIZE_MAX;
  variable_list result(n_in);
  const at::Tensor g = grads[0];
  if (!g.defined()) return result;
  const bool create_graph = c10::GradMode::is_enabled();
  c10::SmallVector<bool, 4> want(k);
  for (size_t i = 0; i < k; ++i) want[i] = bit(needs, i) && task_should_compute_output(slot[i]);
  size_t n_scaled = 0;
  for (size_t i = 0; i < k; ++i) n_scaled += scale && bit(needs, i);
  const bool scaling = scale && !(create_graph && e->row.composite);
  // Unpack (and version-check) only what this path reads: the scaled gradients, or everything.
  variable_list vals;
  vals.reserve(scaling ? n_scaled : saved.size());
  for (size_t j = 0; j < (scaling ? n_scaled : saved.size()); ++j) vals.push_back(saved[j].unpack());

  if (scaling) {
    // The forward's gradients times grad_output.
    const bool may_in_place = !create_graph && g.dim() == 0 && plain(g) && !c10::impl::dispatch_mode_enabled() &&
                              !torch::autograd::get_current_graph_task_keep_graph();
    const bool one = may_in_place && cpu_one(g);
    {
      at::AutoDispatchBelowADInplaceOrView guard;
      for (size_t i = 0, j = 0; i < k; ++i) {
        if (!bit(needs, i)) continue;
        at::Tensor& G = vals[j++];
        if (!want[i]) continue;
        at::Tensor& r = result[slot[i]];
        if (one) {
          r = G;
        } else if (may_in_place && plain(G) && G.device() == g.device() && private_to_node(G)) {
          // Nothing else holds the forward's gradient and the graph is not kept: scale in place
          // (on CUDA a no-op decided on the device when grad_output is 1).
          // (The signature of a Tensor(a!) argument is Tensor&: any other is rejected at the call.)
          e->scale_->typed<void(at::Tensor&, const at::Tensor&)>().call(G, g);
          r = G;
        } else {
          r = e->scale->typed<at::Tensor(const at::Tensor&, const at::Tensor&)>().call(G, g);
        }
      }
    }
    if (create_graph) {
      torch::autograd::edge_list edges = next_edges();
      if (g.requires_grad()) edges.push_back(torch::autograd::impl::gradient_edge(g));
      guard_second_derivative(*e, result, std::move(edges));
    }
    return result;
  }

  // Recompute through the backward op, dispatched from the top: under create_graph=True its own
  // Autograd kernel makes the result differentiable (or raising).
  Stack st;
  st.reserve(e->n_args + e->n_out);
  st.emplace_back(g);
  size_t j = n_scaled;
  for (size_t i = 0; i + 1 < e->n_args; ++i) {
    if (!e->is_tensor[i]) {
      st.push_back(scalars[i]);
    } else {
      const at::Tensor& t = vals[j++];
      st.push_back(t.defined() || !e->is_optional[i] ? IValue(t) : IValue());
    }
  }
  for (; j < vals.size(); ++j) st.emplace_back(vals[j]);
  c10::List<bool> mask;
  for (bool w : want) mask.push_back(w);
  st.emplace_back(std::move(mask));
  e->backward_op->callBoxed(&st);
  for (size_t i = 0; i < k; ++i)
    if (want[i]) result[slot[i]] = st[i].toTensor();
  return result;
}

class ForwardKernel final : public c10::OperatorKernel {
 public:
  explicit ForwardKernel(Entry* e) : e_(e) {}
  void operator()(const c10::OperatorHandle& op, c10::DispatchKeySet ks, Stack* stack) {
    Entry& e = resolved(*e_);
    const auto args = torch::jit::last(*stack, e.n_args);
    check_no_forward_ad(e, args, e.row.name.c_str());
    uint32_t needs = 0;
    bool any = false;
    if (c10::GradMode::is_enabled()) {
      // torch's error for a non-differentiable argument (class weights, index targets) that
      // requires grad, instead of silently giving it no gradient.
      for (size_t p : e.fixed_pos) {
        const at::Tensor t = tensor_at(args[p]);
        TORCH_CHECK(!(t.defined() && t.requires_grad()), "The function '", e.row.name,
                    "' is not differentiable with respect to argument '", op.schema().arguments()[p].name(),
                    "'. This input cannot have requires_grad True.");
      }
      for (size_t i = 0; i < e.row.diff.size(); ++i) {
        const at::Tensor t = tensor_at(args[e.diff_pos[i]]);
        if (t.defined() && t.requires_grad()) needs |= 1u << i;
        any = any || bit(needs, i);
      }
    }
    if (!any) {
      op.redispatchBoxed(ks & c10::after_autograd_keyset, stack);
      return;
    }
    // (Small vectors and reserved node members: each heap allocation is visible at N=64.)
    const c10::SmallVector<IValue, 12> a(args.begin(), args.end());
    {
      at::AutoDispatchBelowADInplaceOrView guard;
      op.redispatchBoxed(ks & c10::after_autograd_keyset, stack);
    }
    const auto out = torch::jit::last(*stack, e.n_out);
    const size_t k = e.row.diff.size();
    auto node = make_node<LossBackward>();
    node->e = &e;
    node->needs = needs;
    // The forward wrote the gradients (a reduced loss; not for float16, see csrc/ops/host.cpp):
    // each one asked for has its input's shape (an empty (0,) tensor means "not computed").
    bool scale = a[e.red_pos].toInt() != 0;
    c10::SmallVector<at::Tensor, 4> diff;  // the node's inputs: defined differentiable arguments
    for (size_t i = 0; i < k; ++i) {
      const at::Tensor x = tensor_at(a[e.diff_pos[i]]);
      if (x.defined()) node->present |= 1u << i;
      if (x.defined()) diff.push_back(x);
      if (!bit(needs, i)) continue;
      const at::Tensor g = tensor_at(out[1 + i]);
      scale = scale && g.defined() && g.sizes() == x.sizes();
    }
    node->scale = scale;
    // A row with a second derivative keeps its inputs too (references: the forward held them, so
    // the peak memory is unchanged), for a backward under create_graph=True.
    node->inputs = !scale || e.row.composite != nullptr;
    node->saved.reserve((scale ? k : 0) + (node->inputs ? e.n_args + e.n_out : 0));
    if (scale)
      for (size_t i = 0; i < k; ++i)
        if (bit(needs, i)) node->saved.emplace_back(out[1 + i].toTensor(), false);
    if (node->inputs) {
      node->scalars.reserve(e.n_args);
      for (size_t i = 0; i + 1 < e.n_args; ++i) {
        if (e.is_tensor[i]) node->saved.emplace_back(tensor_at(a[i]), false);
        node->scalars.push_back(e.is_tensor[i] ? IValue() : a[i]);
      }
      for (size_t j = 1 + k; j < e.n_out; ++j) node->saved.emplace_back(out[j].toTensor(), false);
    }
    node->set_next_edges(torch::autograd::collect_next_edges(at::ArrayRef<at::Tensor>(diff.data(), diff.size())));
    at::Tensor loss = out[0].toTensor();
    torch::autograd::set_history(loss, node);
  }

 private:
  Entry* e_;
};

// The backward op: plain below autograd, unless a second derivative may be taken.
class BackwardKernel final : public c10::OperatorKernel {
 public:
  explicit BackwardKernel(Entry* e) : e_(e) {}
  void operator()(const c10::OperatorHandle& op, c10::DispatchKeySet ks, Stack* stack) {
    Entry& e = resolved(*e_);
    const size_t n = op.schema().arguments().size();
    const auto args = torch::jit::last(*stack, n);
    check_no_forward_ad(e, args, (e.row.name + "_backward").c_str());
    bool rg = false;
    if (c10::GradMode::is_enabled())
      for (const auto& v : args) rg = rg || (v.isTensor() && v.toTensor().defined() && v.toTensor().requires_grad());
    if (!rg) {
      op.redispatchBoxed(ks & c10::after_autograd_keyset, stack);
      return;
    }
    const std::vector<IValue> copy(args.begin(), args.end());
    {
      at::AutoDispatchBelowADInplaceOrView guard;
      op.redispatchBoxed(ks & c10::after_autograd_keyset, stack);
    }
    const size_t k = e.row.diff.size(), base = stack->size() - k;
    variable_list outs;
    for (size_t i = 0; i < k; ++i) outs.push_back(tensor_at((*stack)[base + i]));
    const auto mask = copy.back().toBoolList();
    if (e.row.composite == nullptr) {
      for (size_t i = 0; i < k; ++i)
        if (!mask[i]) outs[i] = at::Tensor();
      std::vector<at::Tensor> ins;
      for (const auto& v : copy)
        if (v.isTensor() && v.toTensor().defined() && v.toTensor().requires_grad()) ins.push_back(v.toTensor());
      guard_second_derivative(e, outs, torch::autograd::collect_next_edges(ins));
    } else {
      // d(first derivative) through the composite: its gradient, differentiable (create_graph),
      // stands in for the derivative of lossext's value, which it equals.
      Args fargs(copy.begin() + 1, copy.begin() + 1 + (e.n_args - 1));
      variable_list leaves;
      for (size_t i = 0; i < k; ++i) {
        if (!mask[i]) continue;
        at::Tensor x = tensor_at(fargs[e.diff_pos[i]]);
        if (!x.requires_grad()) x = x.detach().requires_grad_(true);
        fargs[e.diff_pos[i]] = x;
        leaves.push_back(x);
      }
      bool functorch = false;
      for (const auto& v : copy)
        functorch = functorch || (v.isTensor() && v.toTensor().key_set().has(c10::DispatchKey::FuncTorchGradWrapper));
      const at::Tensor loss = e.row.composite(fargs);
      const variable_list d = torch::autograd::grad({loss}, leaves, {copy[0].toTensor()}, /*retain_graph=*/true,
                                                    /*create_graph=*/true, /*allow_unused=*/true);
      for (size_t i = 0, j = 0; i < k; ++i) {
        if (!mask[i]) continue;
        const at::Tensor& c = d[j++];
        if (!c.defined() || !outs[i].defined()) continue;
        // Under torch.func transforms the composite's value itself: functorch's detach() cuts every
        // level, and the native value is differentiated again by an outer level's kernel.
        outs[i] = functorch ? c : outs[i].add(c.sub(c.detach()));
      }
    }
    for (size_t i = 0; i < k; ++i)
      if (outs[i].defined()) (*stack)[base + i] = outs[i];
  }

 private:
  Entry* e_;
};

}  // namespace

void register_row(torch::Library& m, Row row) {
  auto& all = entries();
  TORCH_CHECK(row.diff.size() <= 32, "lossext::", row.name, ": at most 32 differentiable arguments");
  Entry& e = all.emplace_back();
  e.index = static_cast<int64_t>(all.size()) - 1;
  const std::string name = row.name;
  e.row = std::move(row);
  m.impl(name.c_str(), torch::CppFunction::makeFromBoxedFunctor(std::make_unique<ForwardKernel>(&e)));
  m.impl((name + "_backward").c_str(), torch::CppFunction::makeFromBoxedFunctor(std::make_unique<BackwardKernel>(&e)));
}

}  // namespace lossext::autograd
