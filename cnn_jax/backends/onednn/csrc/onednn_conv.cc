// 2-D convolutions on the CPU by oneDNN, called from XLA as typed FFI custom calls.
//
// Built and loaded by cnn_jax/backends/onednn/build.py (the package docstring says why). Three
// handlers, one per pass of a convolution, each taking two float32 buffers and writing one:
//
//   cnn_jax_onednn_conv_forward          (x, w)  -> y    y  = conv(x, w)
//   cnn_jax_onednn_conv_backward_data    (dy, w) -> dx   dx = d<dy, conv(x, w)>/dx
//   cnn_jax_onednn_conv_backward_weights (x, dy) -> dw   dw = d<dy, conv(x, w)>/dw
//
// Layouts are cnn_jax's: activations NHWC, kernels HWIO with I = C_in / groups. They are handed to
// oneDNN as strided views of its logical (N, C, H, W) and ([G,] O, I, KH, KW) dims, so activations
// are never copied; the kernel is reordered to the layout the chosen kernel wants (it is small).
// Attributes give the shapes, strides, padding (low, high), dilation (1 = none) and groups.
// Primitives are created once per distinct set of attributes and cached.
//
// Scratch memory is ours ("user" scratchpad mode), one buffer for the process, used by one call at
// a time (Run). oneDNN's own ("library") scratchpad belongs to the thread that created a
// primitive, and the cached primitives run on whichever XLA thread calls them: the gemm-based
// backward-weights convolution it picks for long kernels at a stride (the weight gradient of a
// 16x16 stride-8 transposed convolution) crashed when run on another thread than the one that
// created it (tests/backends/test_onednn.py, test_a_gemm_based_weight_gradient_runs_on_any_...).

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

// An NHWC activation as oneDNN's logical (N, C, H, W).
memory::desc Activation(ffi::Span<const int64_t> s) {
  const int64_t h = s[1], w = s[2], c = s[3];
  return memory::desc({s[0], c, h, w}, memory::data_type::f32, memory::dims{h * w * c, 1, w * c, c});
}

// An HWIO kernel (I = C_in / groups, O = C_out) as oneDNN's (O, I, KH, KW) or (G, O / G, I, KH, KW).
memory::desc Kernel(ffi::Span<const int64_t> s, int64_t groups) {
  const int64_t kh = s[0], kw = s[1], i = s[2], o = s[3];
  if (groups == 1) {
    return memory::desc({o, i, kh, kw}, memory::data_type::f32, memory::dims{1, o, kw * i * o, i * o});
  }
  return memory::desc({groups, o / groups, i, kh, kw}, memory::data_type::f32,
                      memory::dims{o / groups, 1, o, kw * i * o, i * o});
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
  const memory::dims strides{a.strides[0], a.strides[1]};
  const memory::dims dilation{a.dilation[0] - 1, a.dilation[1] - 1};  // oneDNN counts the gaps
  const memory::dims lo{a.pad_lo[0], a.pad_lo[1]}, hi{a.pad_hi[0], a.pad_hi[1]};
  const auto direct = dnnl::algorithm::convolution_direct;
  const auto attr = UserScratchpad();
  const dnnl::convolution_forward::primitive_desc forward(
      engine, dnnl::prop_kind::forward_training, direct, x, any_kernel, y, strides, dilation, lo,
      hi, attr);
  if (pass == kForward) {
    plan->conv = dnnl::convolution_forward(forward);
    plan->conv_kernel = forward.weights_desc();
    plan->conv_scratch = forward.scratchpad_desc();
  } else if (pass == kBackwardData) {
    const dnnl::convolution_backward_data::primitive_desc pd(engine, direct, x, any_kernel, y, strides,
                                                             dilation, lo, hi, forward, attr);
    plan->conv = dnnl::convolution_backward_data(pd);
    plan->conv_kernel = pd.weights_desc();
    plan->conv_scratch = pd.scratchpad_desc();
  } else {
    const dnnl::convolution_backward_weights::primitive_desc pd(engine, direct, x, any_kernel, y, strides,
                                                                dilation, lo, hi, forward, attr);
    plan->conv = dnnl::convolution_backward_weights(pd);
    plan->conv_kernel = pd.diff_weights_desc();
    plan->conv_scratch = pd.scratchpad_desc();
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

template <Pass P>
ffi::Error Handler(ffi::Buffer<ffi::F32> in0, ffi::Buffer<ffi::F32> in1, ffi::ResultBuffer<ffi::F32> out,
                   ffi::Span<const int64_t> x_shape, ffi::Span<const int64_t> w_shape,
                   ffi::Span<const int64_t> y_shape, ffi::Span<const int64_t> strides,
                   ffi::Span<const int64_t> pad_lo, ffi::Span<const int64_t> pad_hi,
                   ffi::Span<const int64_t> dilation, int64_t groups) {
  for (auto s : {x_shape, w_shape, y_shape}) {
    if (s.size() != 4) return ffi::Error::InvalidArgument("oneDNN conv: shapes must have 4 dims (NHWC, HWIO)");
  }
  for (auto s : {strides, pad_lo, pad_hi, dilation}) {
    if (s.size() != 2) return ffi::Error::InvalidArgument("oneDNN conv: 2 spatial dims expected");
  }
  try {
    Run(P, Attributes{x_shape, w_shape, y_shape, strides, pad_lo, pad_hi, dilation, groups},
        in0.untyped_data(), in1.untyped_data(), out->untyped_data());
  } catch (const dnnl::error& e) {
    return ffi::Error::Internal(std::string("oneDNN conv: ") + e.what());
  }
  return ffi::Error::Success();
}

}  // namespace

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
