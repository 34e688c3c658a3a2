// 2-D and 3-D convolutions on the CPU by oneDNN, called from XLA as typed FFI custom calls.
//
// Built and loaded by cnn_jax/backends/onednn/build.py (the package docstring says why). Three
// handlers, one per pass of a convolution, each taking two float32 buffers and writing one:
//
//   cnn_jax_onednn_conv_forward          (x, w)  -> y    y  = conv(x, w)
//   cnn_jax_onednn_conv_backward_data    (dy, w) -> dx   dx = d<dy, conv(x, w)>/dx
//   cnn_jax_onednn_conv_backward_weights (x, dy) -> dw   dw = d<dy, conv(x, w)>/dw
//
// and one plain C function, cnn_jax_onednn_conv_implementation, that names the implementation
// oneDNN chose for a pass (its verbose name: "brgconv:avx512_core", "x64:gemm:jit", "ref:any"), so
// that the Python side can say when a convolution takes a slow one.
//
// Layouts are cnn_jax's: activations channels-last, NHWC or NDHWC, kernels HWIO or DHWIO with
// I = C_in / groups. They are handed to oneDNN as strided views of its logical (N, C, [D,] H, W) and
// ([G,] O, I, [KD,] KH, KW) dims, so activations are never copied; the kernel is reordered to the
// layout the chosen kernel wants (it is small). The rank (4 or 5) comes with the shapes; the other
// attributes give the strides, padding (low, high) and dilation (1 = none) of each spatial dim, and
// the groups. (1-D convolutions arrive as 2-D ones of height 1.) Primitives are created once per
// distinct set of attributes and cached.
//
// Scratch memory is ours ("user" scratchpad mode), one buffer for the process, used by one call at
// a time (Run). oneDNN's own ("library") scratchpad belongs to the thread that created a
// primitive, and the cached primitives run on whichever XLA thread calls them: the gemm-based
// backward-weights convolution it picks for long kernels at a stride (the weight gradient of a
// 16x16 stride-8 transposed convolution) crashed when run on another thread than the one that
// created it (tests/backends/test_onednn.py, test_a_gemm_based_weight_gradient_runs_on_any_...).

#include <algorithm>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "oneapi/dnnl/dnnl.hpp"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;
using dnnl::memory;

namespace {

enum Pass { kForward = 0, kBackwardData = 1, kBackwardWeights = 2 };

dnnl::engine& Engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// A channels-last activation (N, spatial..., C) as oneDNN's logical (N, C, spatial...).
memory::desc Activation(ffi::Span<const int64_t> s) {
  const size_t rank = s.size();
  memory::dims dims{s[0], s[rank - 1]}, strides{0, 1};
  int64_t step = s[rank - 1];  // elements between neighbours along the dim being visited
  for (size_t i = 1; i + 1 < rank; ++i) dims.push_back(s[i]);
  strides.resize(rank);
  for (size_t i = rank - 2; i > 0; --i) {  // spatial dims, innermost first
    strides[i + 1] = step;
    step *= s[i];
  }
  strides[0] = step;
  return memory::desc(dims, memory::data_type::f32, strides);
}

// A (spatial..., I, O) kernel (I = C_in / groups, O = C_out) as oneDNN's (O, I, spatial...) or
// (G, O / G, I, spatial...).
memory::desc Kernel(ffi::Span<const int64_t> s, int64_t groups) {
  const size_t rank = s.size();
  const int64_t i = s[rank - 2], o = s[rank - 1];
  memory::dims taps, tap_strides(rank - 2);
  int64_t step = i * o;
  for (size_t j = 0; j + 2 < rank; ++j) taps.push_back(s[j]);
  for (size_t j = rank - 2; j-- > 0;) {
    tap_strides[j] = step;
    step *= s[j];
  }
  memory::dims dims{o, i}, strides{1, o};
  if (groups > 1) {
    dims = {groups, o / groups, i};
    strides = {o / groups, 1, o};
  }
  dims.insert(dims.end(), taps.begin(), taps.end());
  strides.insert(strides.end(), tap_strides.begin(), tap_strides.end());
  return memory::desc(dims, memory::data_type::f32, strides);
}

struct Attributes {
  ffi::Span<const int64_t> x_shape, w_shape, y_shape, strides, pad_lo, pad_hi, dilation;
  int64_t groups;

  std::string Key(Pass pass) const {
    std::string key = std::to_string(pass) + "/" + std::to_string(groups);
    for (auto s : {x_shape, w_shape, y_shape, strides, pad_lo, pad_hi, dilation}) {
      key += "/";
      for (int64_t v : s) key += std::to_string(v) + ",";
    }
    return key;
  }
};

struct Plan {
  dnnl::primitive conv;
  memory::desc user_kernel, conv_kernel;
  memory::desc conv_scratch, reorder_scratch;
  bool reorder = false;
  dnnl::primitive kernel_reorder;  // user -> conv layout (forward, backward data), or back (weights)
  std::string implementation;      // oneDNN's name of the convolution's implementation
};

dnnl::primitive_attr UserScratchpad() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

std::shared_ptr<Plan> MakePlan(Pass pass, const Attributes& a) {
  auto& engine = Engine();
  auto plan = std::make_shared<Plan>();
  const auto x = Activation(a.x_shape), y = Activation(a.y_shape);
  plan->user_kernel = Kernel(a.w_shape, a.groups);
  const memory::desc any_kernel(plan->user_kernel.get_dims(), memory::data_type::f32, memory::format_tag::any);
  const memory::dims strides(a.strides.begin(), a.strides.end());
  const memory::dims lo(a.pad_lo.begin(), a.pad_lo.end()), hi(a.pad_hi.begin(), a.pad_hi.end());
  memory::dims dilation;
  for (int64_t d : a.dilation) dilation.push_back(d - 1);  // oneDNN counts the gaps
  const auto direct = dnnl::algorithm::convolution_direct;
  const auto attr = UserScratchpad();
  const dnnl::convolution_forward::primitive_desc forward(
      engine, dnnl::prop_kind::forward_training, direct, x, any_kernel, y, strides, dilation, lo,
      hi, attr);
  if (pass == kForward) {
    plan->conv = dnnl::convolution_forward(forward);
    plan->conv_kernel = forward.weights_desc();
    plan->conv_scratch = forward.scratchpad_desc();
    plan->implementation = forward.impl_info_str();
  } else if (pass == kBackwardData) {
    const dnnl::convolution_backward_data::primitive_desc pd(engine, direct, x, any_kernel, y, strides,
                                                             dilation, lo, hi, forward, attr);
    plan->conv = dnnl::convolution_backward_data(pd);
    plan->conv_kernel = pd.weights_desc();
    plan->conv_scratch = pd.scratchpad_desc();
    plan->implementation = pd.impl_info_str();
  } else {
    const dnnl::convolution_backward_weights::primitive_desc pd(engine, direct, x, any_kernel, y, strides,
                                                                dilation, lo, hi, forward, attr);
    plan->conv = dnnl::convolution_backward_weights(pd);
    plan->conv_kernel = pd.diff_weights_desc();
    plan->conv_scratch = pd.scratchpad_desc();
    plan->implementation = pd.impl_info_str();
  }
  plan->reorder = plan->conv_kernel != plan->user_kernel;
  if (plan->reorder) {
    const auto& from = pass == kBackwardWeights ? plan->conv_kernel : plan->user_kernel;
    const auto& to = pass == kBackwardWeights ? plan->user_kernel : plan->conv_kernel;
    const dnnl::reorder::primitive_desc pd(engine, from, engine, to, attr);
    plan->kernel_reorder = dnnl::reorder(pd);
    plan->reorder_scratch = pd.scratchpad_desc();
  }
  return plan;
}

std::shared_ptr<Plan> GetPlan(Pass pass, const Attributes& a) {
  static std::mutex mu;
  static std::unordered_map<std::string, std::shared_ptr<Plan>> plans;
  const std::string key = a.Key(pass);
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = plans.find(key);
    if (it != plans.end()) return it->second;
  }
  auto plan = MakePlan(pass, a);  // outside the lock: creating a primitive takes milliseconds
  std::lock_guard<std::mutex> lock(mu);
  return plans.emplace(key, plan).first->second;
}

// The scratch buffer of `desc`'s size, 64-byte aligned, grown on demand (callers hold the execution
// mutex).
memory Scratch(const memory::desc& desc) {
  static std::vector<unsigned char> buffer;
  const size_t size = desc.get_size() + 64;
  if (buffer.size() < size) buffer.resize(size);
  const auto address = reinterpret_cast<uintptr_t>(buffer.data());
  return memory(desc, Engine(), reinterpret_cast<void*>((address + 63) & ~uintptr_t{63}));
}

// XLA runs independent custom calls concurrently on its thread pool. Each calling thread gets its own
// OpenMP team, and oneDNN's kernels synchronise their team's threads: five backward-weights calls in
// one program, after a forward call, never finished (tests/backends/test_onednn.py,
// test_independent_calls_in_one_program_finish_and_match_xla). One call executes at a time; the
// others wait here, asleep.
void Run(Pass pass, const Attributes& a, void* in0, void* in1, void* out) {
  static std::mutex execution;
  auto& engine = Engine();
  const auto plan = GetPlan(pass, a);
  std::lock_guard<std::mutex> one_at_a_time(execution);
  dnnl::stream stream(engine);
  // The reorder and the convolution run one after the other: they can share the buffer.
  const auto reorder_scratch = [&] { return Scratch(plan->reorder_scratch); };
  const auto x_md = Activation(a.x_shape), y_md = Activation(a.y_shape);
  memory staged;
  if (plan->reorder) staged = memory(plan->conv_kernel, engine);
  if (pass == kForward || pass == kBackwardData) {
    memory w(plan->user_kernel, engine, in1);
    memory kernel = w;
    if (plan->reorder) {
      plan->kernel_reorder.execute(stream, {{DNNL_ARG_FROM, w}, {DNNL_ARG_TO, staged},
                                            {DNNL_ARG_SCRATCHPAD, reorder_scratch()}});
      stream.wait();
      kernel = staged;
    }
    const auto scratch = Scratch(plan->conv_scratch);
    if (pass == kForward) {
      plan->conv.execute(stream, {{DNNL_ARG_SRC, memory(x_md, engine, in0)},
                                  {DNNL_ARG_WEIGHTS, kernel},
                                  {DNNL_ARG_DST, memory(y_md, engine, out)},
                                  {DNNL_ARG_SCRATCHPAD, scratch}});
    } else {
      plan->conv.execute(stream, {{DNNL_ARG_DIFF_DST, memory(y_md, engine, in0)},
                                  {DNNL_ARG_WEIGHTS, kernel},
                                  {DNNL_ARG_DIFF_SRC, memory(x_md, engine, out)},
                                  {DNNL_ARG_SCRATCHPAD, scratch}});
    }
  } else {
    memory dw(plan->user_kernel, engine, out);
    plan->conv.execute(stream, {{DNNL_ARG_SRC, memory(x_md, engine, in0)},
                                {DNNL_ARG_DIFF_DST, memory(y_md, engine, in1)},
                                {DNNL_ARG_DIFF_WEIGHTS, plan->reorder ? staged : dw},
                                {DNNL_ARG_SCRATCHPAD, Scratch(plan->conv_scratch)}});
    if (plan->reorder) {
      stream.wait();
      plan->kernel_reorder.execute(stream, {{DNNL_ARG_FROM, staged}, {DNNL_ARG_TO, dw},
                                            {DNNL_ARG_SCRATCHPAD, reorder_scratch()}});
    }
  }
  stream.wait();
}

// Why attributes cannot describe a convolution, or "" when they can: three shapes of one rank, 4
// (NHWC, HWIO) or 5 (NDHWC, DHWIO), and one stride, padding and dilation per spatial dim.
std::string Invalid(const Attributes& a) {
  const size_t rank = a.x_shape.size();
  if (rank != 4 && rank != 5) return "shapes must have 4 or 5 dims (NHWC, HWIO or NDHWC, DHWIO)";
  if (a.w_shape.size() != rank || a.y_shape.size() != rank) return "shapes of different ranks";
  for (auto s : {a.strides, a.pad_lo, a.pad_hi, a.dilation}) {
    if (s.size() != rank - 2) return std::to_string(rank - 2) + " spatial dims expected";
  }
  return "";
}

template <Pass P>
ffi::Error Handler(ffi::Buffer<ffi::F32> in0, ffi::Buffer<ffi::F32> in1, ffi::ResultBuffer<ffi::F32> out,
                   ffi::Span<const int64_t> x_shape, ffi::Span<const int64_t> w_shape,
                   ffi::Span<const int64_t> y_shape, ffi::Span<const int64_t> strides,
                   ffi::Span<const int64_t> pad_lo, ffi::Span<const int64_t> pad_hi,
                   ffi::Span<const int64_t> dilation, int64_t groups) {
  const Attributes a{x_shape, w_shape, y_shape, strides, pad_lo, pad_hi, dilation, groups};
  const std::string invalid = Invalid(a);
  if (!invalid.empty()) return ffi::Error::InvalidArgument("oneDNN conv: " + invalid);
  try {
    Run(P, a, in0.untyped_data(), in1.untyped_data(), out->untyped_data());
  } catch (const dnnl::error& e) {
    return ffi::Error::Internal(std::string("oneDNN conv: ") + e.what());
  }
  return ffi::Error::Success();
}

}  // namespace

// The name of the implementation oneDNN runs pass `pass` (0 forward, 1 backward data, 2 backward
// weights) of the convolution with these attributes (as the handlers take them; the spatial lists
// have rank - 2 entries), copied into `name` (at most `size` bytes with the final zero). Creates
// and caches the pass's primitive as its first call would. Returns 0, or -1 with the reason in
// `name` when oneDNN rejects the attributes.
extern "C" int cnn_jax_onednn_conv_implementation(
    int pass, int64_t rank, const int64_t* x_shape, const int64_t* w_shape, const int64_t* y_shape,
    const int64_t* strides, const int64_t* pad_lo, const int64_t* pad_hi, const int64_t* dilation,
    int64_t groups, char* name, int64_t size) {
  using Span = ffi::Span<const int64_t>;
  const size_t r = static_cast<size_t>(rank), n = r - 2;
  const Attributes a{Span(x_shape, r), Span(w_shape, r), Span(y_shape, r), Span(strides, n),
                     Span(pad_lo, n), Span(pad_hi, n), Span(dilation, n), groups};
  std::string text = Invalid(a);
  int status = text.empty() && pass >= kForward && pass <= kBackwardWeights ? 0 : -1;
  if (status == 0) {
    try {
      text = GetPlan(static_cast<Pass>(pass), a)->implementation;
    } catch (const dnnl::error& e) {
      text = e.what(), status = -1;
    }
  } else if (text.empty()) {
    text = "unknown pass " + std::to_string(pass);
  }
  const size_t length = std::min(text.size(), static_cast<size_t>(size > 0 ? size - 1 : 0));
  if (size > 0) std::copy_n(text.data(), length, name), name[length] = '\0';
  return status;
}

#define CNN_JAX_CONV_BINDING                                                              \
  ffi::Ffi::Bind()                                                                        \
      .Arg<ffi::Buffer<ffi::F32>>()                                                       \
      .Arg<ffi::Buffer<ffi::F32>>()                                                       \
      .Ret<ffi::Buffer<ffi::F32>>()                                                       \
      .Attr<ffi::Span<const int64_t>>("x_shape")                                          \
      .Attr<ffi::Span<const int64_t>>("w_shape")                                          \
      .Attr<ffi::Span<const int64_t>>("y_shape")                                          \
      .Attr<ffi::Span<const int64_t>>("strides")                                          \
      .Attr<ffi::Span<const int64_t>>("pad_lo")                                           \
      .Attr<ffi::Span<const int64_t>>("pad_hi")                                           \
      .Attr<ffi::Span<const int64_t>>("dilation")                                         \
      .Attr<int64_t>("groups")

XLA_FFI_DEFINE_HANDLER_SYMBOL(cnn_jax_onednn_conv_forward, Handler<kForward>, CNN_JAX_CONV_BINDING);
XLA_FFI_DEFINE_HANDLER_SYMBOL(cnn_jax_onednn_conv_backward_data, Handler<kBackwardData>, CNN_JAX_CONV_BINDING);
XLA_FFI_DEFINE_HANDLER_SYMBOL(cnn_jax_onednn_conv_backward_weights, Handler<kBackwardWeights>,
                              CNN_JAX_CONV_BINDING);
