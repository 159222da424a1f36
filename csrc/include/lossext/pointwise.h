// The pointwise driver's contract, shared by the host op, the CPU loops and the CUDA kernels.
//
// A pointwise loss reads kInputs operands per element (input, target, weight, ...), all broadcast
// to one shape, and produces a per-element loss and, optionally, the gradient with respect to the
// first kGrads operands. The driver walks the elements (strided, broadcast, any dtype), applies the
// reduction and writes what was asked. A loss supplies only its functor:
//
//   struct MyLoss {
//     static constexpr int kInputs = 2, kGrads = 2;
//     explicit MyLoss(const double* params);              // scalar options from the host
//     template <class V> C10_HOST_DEVICE V operator()(const V (&x)[kInputs], V (&g)[kGrads]) const;
//   };   // returns the loss of one element; g[k] = d loss / d x[k]
//
// Optional domain checks (e.g. binary_cross_entropy's "input must lie in [0, 1]"): a functor that
// declares `static constexpr int kChecks = n;` provides instead
//     V operator()(const V (&x)[kInputs], V (&g)[kGrads], V (&bad)[kChecks]) const;
// setting bad[c] to 1 where the element fails check c and to 0 elsewhere, and
//     static const char* check_message(int c);   // host only
// The CPU driver counts the failures in its (deterministic) chunk partials, in the same pass, and
// raises RuntimeError(check_message(c) + counts) after the pass when a forward mode found any. A
// GPU cannot raise without a host sync, so the CUDA driver ignores `bad`: the functor itself must
// give failing elements a defined device-side result (NaN, for instance) and say so.
//
// Optional complex operands (l1_loss), opt-in: a functor that declares
// `static constexpr int kComponents = 2;` keeps kInputs/kGrads counting operands but reads and
// writes two values per operand:
//     V operator()(const V (&x)[2 * kInputs], V (&g)[2 * kGrads]) const;
// x[2k] / x[2k + 1] are the real / imaginary part of operand k (a real operand's imaginary part is
// 0; an absent one is 1 + 0i), g[2k] / g[2k + 1] are d loss / d re and d loss / d im of operand k
// (torch's gradient of a real loss with respect to a complex tensor: re + i im). An operand or
// output of a complex dtype (complex32/64/128: in_dtype / out_dtype) is read / written as its
// (re, im) pairs, strides counted in complex elements; a real output takes g[2k] only (torch's
// gradient of a real operand is the real part). The loss and grad_output stay real, `dtype` is the
// real computation dtype. Functors without kComponents compile to the same loops as before.
//
// Modes:
//   kForwardNone : out[0] = loss (elementwise)
//   kForwardReduce: loss = scale * sum(loss);  grads (where grad_mask has bit k) = scale * g[k]
//   kBackwardNone: x[kInputs] is grad_output; out[k] = scale * grad_output * g[k] (masked k)
//   kForwardRows : out[0][row] = scale * (sum of the losses of the row), a row being the innermost
//                  coalesced dimension (sizes[ndim - 1] elements, possibly 0 or 1; the host keeps it
//                  innermost and unmerged). out_strides[0][ndim - 1] is unused. Each row is summed
//                  by one thread in a fixed order: deterministic. (multilabel_soft_margin's 'none')
#pragma once

#include <c10/core/ScalarType.h>
#include <c10/macros/Macros.h>
#include <cstdint>
#include <type_traits>

namespace lossext {

constexpr int kPwMaxDims = 8;
constexpr int kPwMaxOperands = 8;  // inputs (+ grad_output); sigmoid_focal_loss_index reads 6 (+ 1)
constexpr int kPwMaxParams = 8;

enum class PwMode : int { kForwardNone = 0, kForwardReduce = 1, kBackwardNone = 2, kForwardRows = 3 };

struct PointwiseArgs {
  PwMode mode = PwMode::kForwardNone;
  c10::ScalarType dtype = c10::ScalarType::Float;  // the computation's (math: math_t of it)
  int64_t numel = 0;
  int ndim = 0;                       // after coalescing; dim 0 is the outermost
  int64_t sizes[kPwMaxDims] = {};
  int nin = 0;                        // operands read per element
  const void* in[kPwMaxOperands] = {};  // nullptr: the operand is the constant 1 (absent weight)
  int64_t in_strides[kPwMaxOperands][kPwMaxDims] = {};  // in elements
  // Elementwise outputs: [0] the loss (kForwardNone) or the gradients of operands 0..kGrads-1.
  void* out[kPwMaxOperands] = {};     // nullptr: not written
  int64_t out_strides[kPwMaxOperands][kPwMaxDims] = {};
  // kForwardReduce: where the 0-d loss goes (dtype). scale: the factor for loss and gradients.
  void* loss = nullptr;
  double scale = 1.0;
  double params[kPwMaxParams] = {};
  // Every operand and output is either absent, a broadcast scalar, or unit-stride in one dim.
  bool contiguous = false;
  // Each operand's and output's own dtype (Undefined: `dtype`). The drivers convert on load and
  // on store, so an integer or bool target, a mixed-precision operand or a float gradient of a
  // half operand (summed down in float before it is rounded) needs no converted copy. The
  // kForwardReduce loss and the kForwardRows sums are always of `dtype`.
  c10::ScalarType in_dtype[kPwMaxOperands] = {kUndef, kUndef, kUndef, kUndef, kUndef, kUndef, kUndef, kUndef};
  c10::ScalarType out_dtype[kPwMaxOperands] = {kUndef, kUndef, kUndef, kUndef, kUndef, kUndef, kUndef, kUndef};

  static constexpr c10::ScalarType kUndef = c10::ScalarType::Undefined;
  C10_HOST_DEVICE c10::ScalarType in_type(int k) const { return in_dtype[k] == kUndef ? dtype : in_dtype[k]; }
  C10_HOST_DEVICE c10::ScalarType out_type(int k) const { return out_dtype[k] == kUndef ? dtype : out_dtype[k]; }
};
static_assert(kPwMaxOperands == 8, "PointwiseArgs' dtype initialisers list kPwMaxOperands entries");

using PointwiseFn = void (*)(const PointwiseArgs&);

// F::kChecks, or 0 for a functor without domain checks.
template <class F, class = void>
struct PwChecks : std::integral_constant<int, 0> {};
template <class F>
struct PwChecks<F, std::void_t<decltype(F::kChecks)>> : std::integral_constant<int, F::kChecks> {};
template <class F>
constexpr int pw_checks_v = PwChecks<F>::value;
// Size of the `bad` array the drivers pass (arrays cannot be empty).
template <class F>
constexpr int pw_bad_size_v = pw_checks_v<F> > 0 ? pw_checks_v<F> : 1;

// F::kComponents (2: complex operands, see above), or 1.
template <class F, class = void>
struct PwComponents : std::integral_constant<int, 1> {};
template <class F>
struct PwComponents<F, std::void_t<decltype(F::kComponents)>> : std::integral_constant<int, F::kComponents> {};
template <class F>
constexpr int pw_components_v = PwComponents<F>::value;

// The dtype of one component of an element of dtype st: a complex dtype's real part, else st.
C10_HOST_DEVICE inline bool pw_is_complex(c10::ScalarType st) {
  return st == c10::ScalarType::ComplexHalf || st == c10::ScalarType::ComplexFloat ||
         st == c10::ScalarType::ComplexDouble;
}
C10_HOST_DEVICE inline c10::ScalarType pw_component_type(c10::ScalarType st) {
  switch (st) {
    case c10::ScalarType::ComplexHalf: return c10::ScalarType::Half;
    case c10::ScalarType::ComplexFloat: return c10::ScalarType::Float;
    case c10::ScalarType::ComplexDouble: return c10::ScalarType::Double;
    default: return st;
  }
}

// Calls the functor with or without the `bad` array, as it declares.
template <class F, class V>
C10_HOST_DEVICE inline V pw_eval(const F& f, const V (&x)[F::kInputs * pw_components_v<F>],
                                 V (&g)[F::kGrads * pw_components_v<F>], V (&bad)[pw_bad_size_v<F>]) {
  if constexpr (pw_checks_v<F> > 0) {
    return f(x, g, bad);
  } else {
    return f(x, g);
  }
}

}  // namespace lossext
