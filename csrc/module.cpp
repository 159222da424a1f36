// The Python module lossext._C: importing it loads liblossext.so (lossext/lib/, found through the
// rpath $ORIGIN/lib), whose static initialisers register every op. Ops are reached through
// torch.ops.lossext.*; this is the only file that sees Python.h.
//
// It adds one entry, call(h, *args): the loss op h through the dispatcher (autograd, autocast,
// modes and all: the same kernels as torch.ops.lossext.<op>), returning only the loss. It exists
// for the call overhead at small sizes: torch.ops' generic Python-to-IValue path, the GIL release
// and the tuple of every output cost ~2-5 us a call at N=64 (a whole forward + backward is ~25;
// measured in benchmarks/results/cpu-2026-12-06-overhead.md). An argument it does
// not handle as torch.ops would (a __torch_function__ subclass or mode, an unexpected type) makes
// it return NotImplemented, and the caller goes through torch.ops (lossext/_registry.py).
#include <Python.h>

#include <ATen/PythonTorchFunctionTLS.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/core/GradMode.h>
#include <torch/csrc/Exceptions.h>
#include <torch/csrc/autograd/python_variable.h>

#include <deque>
#include <vector>

namespace lossext {
const char* built_isas();  // in liblossext.so (lossext/lossext.h)

namespace {

enum class Arg : char { Tensor, OptTensor, Int, Float, Bool, BoolList };

struct Op {
  c10::OperatorHandle handle;
  std::vector<Arg> args;
  std::vector<size_t> diff;  // the differentiable arguments' positions, in grad_mask order
};

// A deque: handles stay valid while another thread, its GIL released, runs a call through one.
std::deque<Op>& ops() {
  static std::deque<Op> v;
  return v;
}

// op_handle(name, diff) -> h: resolves lossext::<name> once (the import registers every loss);
// diff: the positions of its differentiable arguments, in grad_mask order.
PyObject* op_handle(PyObject*, PyObject* args) {
  HANDLE_TH_ERRORS
  const char* s = nullptr;
  PyObject* diff = nullptr;
  if (!PyArg_ParseTuple(args, "sO!", &s, &PyList_Type, &diff)) return nullptr;
  auto h = c10::Dispatcher::singleton().findSchemaOrThrow((std::string("lossext::") + s).c_str(), "");
  Op op{h, {}, {}};
  for (Py_ssize_t i = 0; i < PyList_GET_SIZE(diff); ++i) {
    const Py_ssize_t p = PyLong_AsSsize_t(PyList_GET_ITEM(diff, i));
    if (p < 0 || static_cast<size_t>(p) >= h.schema().arguments().size())
      return PyErr_Occurred() ? nullptr : PyErr_Format(PyExc_ValueError, "op_handle: bad position");
    op.diff.push_back(static_cast<size_t>(p));
  }
  for (const auto& a : h.schema().arguments()) {
    const auto& t = a.type();
    if (t->kind() == c10::TypeKind::TensorType) {
      op.args.push_back(Arg::Tensor);
    } else if (t->kind() == c10::TypeKind::OptionalType &&
               t->containedType(0)->kind() == c10::TypeKind::TensorType) {
      op.args.push_back(Arg::OptTensor);
    } else if (t->kind() == c10::TypeKind::IntType) {
      op.args.push_back(Arg::Int);
    } else if (t->kind() == c10::TypeKind::FloatType) {
      op.args.push_back(Arg::Float);
    } else if (t->kind() == c10::TypeKind::BoolType) {
      op.args.push_back(Arg::Bool);
    } else if (t->kind() == c10::TypeKind::ListType && t->containedType(0)->kind() == c10::TypeKind::BoolType) {
      op.args.push_back(Arg::BoolList);
    } else {
      TORCH_CHECK(false, "lossext._C.op_handle: lossext::", s, " has an argument of type ", t->str());
    }
  }
  ops().push_back(std::move(op));
  return PyLong_FromSsize_t(static_cast<Py_ssize_t>(ops().size()) - 1);
  END_HANDLE_TH_ERRORS
}

// A plain tensor (Tensor or Parameter: no __torch_function__ of its own).
bool plain_tensor(PyObject* o) { return THPVariable_CheckExact(o); }

// One argument as an IValue, or false where torch.ops should handle it.
bool convert(PyObject* o, Arg kind, c10::IValue& out) {
  switch (kind) {
    case Arg::OptTensor:
      if (o == Py_None) return out = c10::IValue(), true;
      [[fallthrough]];
    case Arg::Tensor:
      if (!plain_tensor(o)) return false;
      out = THPVariable_Unpack(o);
      return true;
    case Arg::Int:
      if (!PyLong_CheckExact(o)) return false;
      out = static_cast<int64_t>(PyLong_AsLongLong(o));
      return !PyErr_Occurred();
    case Arg::Float:
      if (PyFloat_CheckExact(o)) return out = PyFloat_AS_DOUBLE(o), true;
      if (!PyLong_CheckExact(o)) return false;
      out = PyLong_AsDouble(o);
      return !PyErr_Occurred();
    case Arg::Bool:
      if (!PyBool_Check(o)) return false;
      return out = (o == Py_True), true;
    case Arg::BoolList: {
      if (!PyList_CheckExact(o)) return false;
      c10::List<bool> l;
      const Py_ssize_t n = PyList_GET_SIZE(o);
      l.reserve(n);
      for (Py_ssize_t i = 0; i < n; ++i) {
        PyObject* b = PyList_GET_ITEM(o, i);
        if (!PyBool_Check(b)) return false;
        l.push_back(b == Py_True);
      }
      out = std::move(l);
      return true;
    }
  }
  return false;
}

constexpr int64_t kReleaseGil = 1 << 16;  // elements of the first operand

// Releases the GIL for its scope when `on` (taken back before an exception reaches the handler).
struct NoGil {
  PyThreadState* state = nullptr;
  explicit NoGil(bool on) : state(on ? PyEval_SaveThread() : nullptr) {}
  ~NoGil() {
    if (state) PyEval_RestoreThread(state);
  }
  NoGil(const NoGil&) = delete;
  NoGil& operator=(const NoGil&) = delete;
};

// call(h, *args) -> the op's first output (the loss), or NotImplemented (see the file comment).
PyObject* call(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  HANDLE_TH_ERRORS
  if (nargs < 1) return PyErr_Format(PyExc_TypeError, "lossext._C.call: no op handle"), nullptr;
  const Py_ssize_t h = PyLong_AsSsize_t(args[0]);
  if (h < 0 || h >= static_cast<Py_ssize_t>(ops().size()))
    return PyErr_Occurred() ? nullptr : (PyErr_Format(PyExc_ValueError, "lossext._C.call: bad handle"), nullptr);
  const Op& op = ops()[h];
  if (static_cast<size_t>(nargs - 1) != op.args.size() || at::impl::torch_function_mode_enabled())
    Py_RETURN_NOTIMPLEMENTED;
  // None for the trailing grad_mask: the default mask, filled below.
  const bool default_mask = op.args.back() == Arg::BoolList && args[nargs - 1] == Py_None;
  torch::jit::Stack stack(op.args.size());
  for (size_t i = 0; i < op.args.size(); ++i) {
    if (i + 1 == op.args.size() && default_mask) continue;
    if (!convert(args[i + 1], op.args[i], stack[i])) {
      PyErr_Clear();
      Py_RETURN_NOTIMPLEMENTED;
    }
  }
  if (default_mask) {
    // The default grad_mask: the differentiable arguments that require grad (grad mode on).
    c10::List<bool> mask;
    const bool on = c10::GradMode::is_enabled();
    for (size_t p : op.diff) mask.push_back(on && stack[p].isTensor() && stack[p].toTensor().requires_grad());
    stack.back() = std::move(mask);
  }
  {
    // Other Python threads (data loaders) run while a large loss computes, as around torch's ops;
    // a small one keeps the GIL (releasing and taking it back costs more than its kernel).
    const bool release = stack[0].isTensor() && stack[0].toTensor().numel() >= kReleaseGil;
    NoGil guard(release);
    op.handle.callBoxed(&stack);
  }
  return THPVariable_Wrap(std::move(stack[0]).toTensor());
  END_HANDLE_TH_ERRORS
}

PyMethodDef methods[] = {
    {"op_handle", op_handle, METH_VARARGS, "op_handle(name, diff) -> handle of lossext::<name> for call()"},
    {"call", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(call)), METH_FASTCALL,
     "call(handle, *args) -> the loss op's first output, or NotImplemented"},
    {nullptr, nullptr, 0, nullptr}};

}  // namespace
}  // namespace lossext

extern "C" {
PyMODINIT_FUNC PyInit__C(void) {
  // A call into the library: without a referenced symbol a linker run with --as-needed (the default
  // of some distributions) drops liblossext.so from this module's dependencies, and no op loads.
  static const char* isas = lossext::built_isas();
  static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C", "lossext native library", -1,
                                      lossext::methods};
  PyObject* m = PyModule_Create(&module);
  if (m != nullptr) PyModule_AddStringConstant(m, "built_isas", isas);
  return m;
}
}
