// CPU forward and backward kernels of multi-scale deformable attention.
//
// Bilinear sampling follows grid_sample(mode="bilinear", padding_mode="zeros", align_corners=False):
// a normalised location x in [0, 1] maps to the pixel coordinate x * W - 0.5, and corners outside the
// feature map read zeros. The forward is parallel over (n, q); each (n, q, m) output row of D channels
// is accumulated in the inputs' dtype, with the channel loop vectorised. The backward is parallel over
// (n, m) slices (times chunks of queries when there are more threads than slices): each task owns
// its slice of grad_value (or a private buffer that is summed afterwards), so no atomics are needed.
#include <ATen/Parallel.h>
#include <torch/extension.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "ms_deform_attn_utils.h"
#include "ops.h"

namespace rlipv2 {
namespace {

// The four corners of one bilinear sample: positions inside the level (h * W + w), weights, validity.
template <typename T>
struct Corners {
  int64_t pos[4];
  T weight[4];
  bool valid[4];
  T lh, lw;  // fractional offsets of the sample from its top-left corner
};

// Sets up the corners of location (x, y) on an H x W map; false when no corner is inside.
template <typename T>
inline bool setup_corners(T x, T y, int64_t H, int64_t W, Corners<T>& c) {
  // x * W - 0.5, rounded as the CPU grid_sample rounds it (grid = 2x - 1, then (grid + 1) * W/2 - 0.5),
  // so that floor() agrees with the reference even for points within rounding of a pixel border.
  const T w_im = ((x * T(2) - T(1)) + T(1)) * (static_cast<T>(W) * T(0.5)) - T(0.5);
  const T h_im = ((y * T(2) - T(1)) + T(1)) * (static_cast<T>(H) * T(0.5)) - T(0.5);
  if (!(h_im >= T(-1) && w_im >= T(-1) && h_im < static_cast<T>(H) && w_im < static_cast<T>(W))) {
    return false;  // also false for NaN
  }
  // floor() of values in [-1, H) / [-1, W): truncation, corrected for negatives (no libm call without SSE4.1).
  int64_t h0 = static_cast<int64_t>(h_im);
  int64_t w0 = static_cast<int64_t>(w_im);
  h0 -= static_cast<T>(h0) > h_im;
  w0 -= static_cast<T>(w0) > w_im;
  const T lh = h_im - static_cast<T>(h0), lw = w_im - static_cast<T>(w0);
  const T hh = T(1) - lh, hw = T(1) - lw;
  const bool top = h0 >= 0, bottom = h0 + 1 < H, left = w0 >= 0, right = w0 + 1 < W;
  c.lh = lh;
  c.lw = lw;
  c.pos[0] = h0 * W + w0;
  c.pos[1] = c.pos[0] + 1;
  c.pos[2] = c.pos[0] + W;
  c.pos[3] = c.pos[2] + 1;
  c.weight[0] = hh * hw;
  c.weight[1] = hh * lw;
  c.weight[2] = lh * hw;
  c.weight[3] = lh * lw;
  c.valid[0] = top && left;
  c.valid[1] = top && right;
  c.valid[2] = bottom && left;
  c.valid[3] = bottom && right;
  return true;
}

// True when a sample skipped by setup_corners still makes the grid_sample reference return NaN: a
// non-finite source coordinate (a NaN or inf location, or one so large that the coordinate overflows)
// or a non-finite attention weight (the reference multiplies the zero sample by it: 0 * NaN, 0 * inf).
// Only evaluated for skipped samples, so the common path pays nothing.
template <typename T>
inline bool poisons(T x, T y, T a, int64_t H, int64_t W) {
  const T w_im = ((x * T(2) - T(1)) + T(1)) * (static_cast<T>(W) * T(0.5)) - T(0.5);
  const T h_im = ((y * T(2) - T(1)) + T(1)) * (static_cast<T>(H) * T(0.5)) - T(0.5);
  return !std::isfinite(w_im) || !std::isfinite(h_im) || !std::isfinite(a);
}

// Below this many multiply-adds, work is not split across threads: a few milliseconds of work gain
// little from a second thread, and lose a lot when the cores are shared with other processes (waking
// and joining OpenMP threads then costs more than the work).
constexpr int64_t kMinTaskWork = int64_t(1) << 23;

struct Dims {
  int64_t N, S, M, D, L, P, Lq;
};

// Forward over the (n, q) rows [begin, end). KD > 0 fixes D at compile time (fully unrolled loops).
// The points of a row are handled in batches: first their corners are computed and the value rows they
// read are prefetched, then the weighted rows are summed, so that the scattered reads overlap.
template <typename T, int KD>
void forward_rows(const T* value, const int64_t* shapes, const int64_t* starts, const T* loc, const T* attn,
                  T* out, const Dims& dm, const T* zeros, int64_t begin, int64_t end) {
  constexpr int kBatch = 16;
  const int64_t D = KD > 0 ? KD : dm.D;
  const int64_t M = dm.M, P = dm.P, S = dm.S, LP = dm.L * dm.P;
  const int64_t pos_stride = M * D;
  const T* rows[kBatch][4];
  T coef[kBatch][4];
  for (int64_t nq = begin; nq < end; ++nq) {
    const int64_t n = nq / dm.Lq;
    for (int64_t m = 0; m < M; ++m) {
      const int64_t row = nq * M + m;
      T* __restrict__ o = out + row * D;
      const T* lp = loc + row * LP * 2;
      const T* ap = attn + row * LP;
      for (int64_t b0 = 0; b0 < LP; b0 += kBatch) {
        const int64_t b1 = std::min(LP, b0 + kBatch);
        int count = 0;
        for (int64_t lpi = b0; lpi < b1; ++lpi) {
          const int64_t l = lpi / P;
          const int64_t H = shapes[2 * l], W = shapes[2 * l + 1];
          Corners<T> c;
          if (!setup_corners(lp[2 * lpi], lp[2 * lpi + 1], H, W, c)) {
            if (poisons(lp[2 * lpi], lp[2 * lpi + 1], ap[lpi], H, W)) {
              for (int64_t d = 0; d < D; ++d) o[d] = std::numeric_limits<T>::quiet_NaN();  // as the reference
            }
            continue;
          }
          const T* vbase = value + ((n * S + starts[l]) * M + m) * D;
          const T a = ap[lpi];
          for (int k = 0; k < 4; ++k) {
            if (c.valid[k]) {
              rows[count][k] = vbase + c.pos[k] * pos_stride;
              __builtin_prefetch(rows[count][k]);
              __builtin_prefetch(rows[count][k] + D - 1);
            } else {
              rows[count][k] = zeros;
            }
            coef[count][k] = a * c.weight[k];
          }
          ++count;
        }
        for (int i = 0; i < count; ++i) {
          const T* __restrict__ v0 = rows[i][0];
          const T* __restrict__ v1 = rows[i][1];
          const T* __restrict__ v2 = rows[i][2];
          const T* __restrict__ v3 = rows[i][3];
          const T c0 = coef[i][0], c1 = coef[i][1], c2 = coef[i][2], c3 = coef[i][3];
#pragma GCC ivdep
          for (int64_t d = 0; d < D; ++d) {
            o[d] += c0 * v0[d] + c1 * v1[d] + c2 * v2[d] + c3 * v3[d];
          }
        }
      }
    }
  }
}

// Sums over the channels, for one sample: go . sample, go . d(sample)/d(lw), go . d(sample)/d(lh).
// Kept in kLanes partial sums so that the compiler vectorises the loop without reassociating.
template <typename T, int KD>
inline void channel_sums(const T* __restrict__ go, const T* __restrict__ v0, const T* __restrict__ v1,
                         const T* __restrict__ v2, const T* __restrict__ v3, const Corners<T>& c, int64_t Drt,
                         T& s_val, T& s_lw, T& s_lh) {
  constexpr int kLanes = 16;
  const int64_t D = KD > 0 ? KD : Drt;
  const T w0 = c.weight[0], w1 = c.weight[1], w2 = c.weight[2], w3 = c.weight[3];
  const T lh = c.lh, lw = c.lw, hh = T(1) - c.lh, hw = T(1) - c.lw;
  T acc_v[kLanes] = {}, acc_w[kLanes] = {}, acc_h[kLanes] = {};
  int64_t d = 0;
  for (; d + kLanes <= D; d += kLanes) {
#pragma GCC ivdep
    for (int k = 0; k < kLanes; ++k) {
      const T g = go[d + k];
      const T a0 = v0[d + k], a1 = v1[d + k], a2 = v2[d + k], a3 = v3[d + k];
      acc_v[k] += g * (w0 * a0 + w1 * a1 + w2 * a2 + w3 * a3);
      acc_w[k] += g * (hh * (a1 - a0) + lh * (a3 - a2));
      acc_h[k] += g * (hw * (a2 - a0) + lw * (a3 - a1));
    }
  }
  T sv = 0, sw = 0, sh = 0;
  for (; d < D; ++d) {
    const T g = go[d];
    const T a0 = v0[d], a1 = v1[d], a2 = v2[d], a3 = v3[d];
    sv += g * (w0 * a0 + w1 * a1 + w2 * a2 + w3 * a3);
    sw += g * (hh * (a1 - a0) + lh * (a3 - a2));
    sh += g * (hw * (a2 - a0) + lw * (a3 - a1));
  }
  for (int k = 0; k < kLanes; ++k) {
    sv += acc_v[k];
    sw += acc_w[k];
    sh += acc_h[k];
  }
  s_val = sv;
  s_lw = sw;
  s_lh = sh;
}

// Backward of the queries [q_begin, q_end) of slice (n, m). grad_value rows of position s (within the
// whole flattened S) are at gv + s * gv_stride.
template <typename T, int KD>
void backward_slice(const T* value, const int64_t* shapes, const int64_t* starts, const T* loc, const T* attn,
                    const T* grad_out, T* gv, int64_t gv_stride, T* grad_loc, T* grad_attn, const Dims& dm,
                    const T* zeros, int64_t n, int64_t m, int64_t q_begin, int64_t q_end) {
  const int64_t D = KD > 0 ? KD : dm.D;
  const int64_t M = dm.M, L = dm.L, P = dm.P, S = dm.S;
  const int64_t pos_stride = M * D;
  for (int64_t q = q_begin; q < q_end; ++q) {
    const int64_t row = (n * dm.Lq + q) * M + m;
    const T* go = grad_out + row * D;
    const T* lp = loc + row * L * P * 2;
    const T* ap = attn + row * L * P;
    T* glp = grad_loc + row * L * P * 2;
    T* gap = grad_attn + row * L * P;
    for (int64_t l = 0; l < L; ++l) {
      const int64_t H = shapes[2 * l], W = shapes[2 * l + 1];
      const T* vbase = value + ((n * S + starts[l]) * M + m) * D;
      T* gbase = gv + starts[l] * gv_stride;
      for (int64_t p = 0; p < P; ++p) {
        const int64_t lpi = l * P + p;
        Corners<T> c;
        if (!setup_corners(lp[2 * lpi], lp[2 * lpi + 1], H, W, c)) {  // outside: gradients stay 0 ...
          if (poisons(lp[2 * lpi], lp[2 * lpi + 1], ap[lpi], H, W)) {  // ... unless the output is NaN
            gap[lpi] = glp[2 * lpi] = glp[2 * lpi + 1] = std::numeric_limits<T>::quiet_NaN();
          }
          continue;
        }
        const T a = ap[lpi];
        const T* v[4];
        for (int k = 0; k < 4; ++k) v[k] = c.valid[k] ? vbase + c.pos[k] * pos_stride : zeros;
        T s_val, s_lw, s_lh;
        channel_sums<T, KD>(go, v[0], v[1], v[2], v[3], c, D, s_val, s_lw, s_lh);
        gap[lpi] = s_val;
        glp[2 * lpi] = a * static_cast<T>(W) * s_lw;
        glp[2 * lpi + 1] = a * static_cast<T>(H) * s_lh;
        for (int k = 0; k < 4; ++k) {
          if (!c.valid[k]) continue;
          T* __restrict__ g = gbase + c.pos[k] * gv_stride;
          const T ck = a * c.weight[k];
#pragma GCC ivdep
          for (int64_t d = 0; d < D; ++d) g[d] += ck * go[d];
        }
      }
    }
  }
}

std::vector<int64_t> host_int64(const at::Tensor& t) {
  const at::Tensor c = t.to(at::kCPU, at::kLong).contiguous();
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

Dims dims_of(const at::Tensor& value, const at::Tensor& loc) {
  return Dims{value.size(0), value.size(1), value.size(2), value.size(3), loc.size(3), loc.size(4), loc.size(1)};
}

}  // namespace

at::Tensor ms_deform_attn_cpu_forward(const at::Tensor& value_in, const at::Tensor& spatial_shapes,
                                      const at::Tensor& level_start_index, const at::Tensor& loc_in,
                                      const at::Tensor& attn_in, int64_t im2col_step) {
  (void)im2col_step;  // the CPU kernel processes the whole batch at once
  msda::check_inputs(value_in, spatial_shapes, level_start_index, loc_in, attn_in);
  TORCH_CHECK(!value_in.is_cuda(), "ms_deform_attn_cpu_forward: expected CPU tensors");
  const at::Tensor value = msda::compute_type(value_in);
  const at::Tensor loc = msda::compute_type(loc_in);
  const at::Tensor attn = msda::compute_type(attn_in);
  const Dims dm = dims_of(value, loc);
  const std::vector<int64_t> shapes = host_int64(spatial_shapes), starts = host_int64(level_start_index);
  at::Tensor out = at::zeros({dm.N, dm.Lq, dm.M * dm.D}, value.options());
  AT_DISPATCH_FLOATING_TYPES(value.scalar_type(), "ms_deform_attn_cpu_forward", [&] {
    const std::vector<scalar_t> zeros(std::max<int64_t>(dm.D, 1), scalar_t(0));
    const scalar_t* vp = value.data_ptr<scalar_t>();
    const scalar_t* lp = loc.data_ptr<scalar_t>();
    const scalar_t* ap = attn.data_ptr<scalar_t>();
    scalar_t* op = out.data_ptr<scalar_t>();
    // Rows per task: about kMinTaskWork multiply-adds, so that small inputs (decoder queries) run
    // inline instead of paying the thread wake-up.
    const int64_t grain =
        std::max<int64_t>(1, kMinTaskWork / std::max<int64_t>(1, dm.M * dm.L * dm.P * dm.D * 4));
    at::parallel_for(0, dm.N * dm.Lq, grain, [&](int64_t begin, int64_t end) {
      if (dm.D == 32) {
        forward_rows<scalar_t, 32>(vp, shapes.data(), starts.data(), lp, ap, op, dm, zeros.data(), begin, end);
      } else {
        forward_rows<scalar_t, 0>(vp, shapes.data(), starts.data(), lp, ap, op, dm, zeros.data(), begin, end);
      }
    });
  });
  return msda::is_reduced(value_in) ? out.to(value_in.scalar_type()) : out;
}

std::vector<at::Tensor> ms_deform_attn_cpu_backward(const at::Tensor& value_in, const at::Tensor& spatial_shapes,
                                                    const at::Tensor& level_start_index, const at::Tensor& loc_in,
                                                    const at::Tensor& attn_in, const at::Tensor& grad_output_in,
                                                    int64_t im2col_step) {
  (void)im2col_step;
  msda::check_inputs(value_in, spatial_shapes, level_start_index, loc_in, attn_in);
  TORCH_CHECK(!value_in.is_cuda(), "ms_deform_attn_cpu_backward: expected CPU tensors");
  const at::Tensor value = msda::compute_type(value_in);
  const at::Tensor loc = msda::compute_type(loc_in);
  const at::Tensor attn = msda::compute_type(attn_in);
  const Dims dm = dims_of(value, loc);
  TORCH_CHECK(grad_output_in.numel() == dm.N * dm.Lq * dm.M * dm.D,
              "ms_deform_attn_cpu_backward: grad_output must be (N, Lq, M * D), got ", grad_output_in.sizes());
  const at::Tensor grad_output = grad_output_in.to(value.scalar_type()).contiguous();
  const std::vector<int64_t> shapes = host_int64(spatial_shapes), starts = host_int64(level_start_index);
  at::Tensor grad_value = at::zeros_like(value);
  at::Tensor grad_loc = at::zeros_like(loc);
  at::Tensor grad_attn = at::zeros_like(attn);

  // Tasks: every (n, m) slice, split into `chunks` query ranges when threads outnumber slices.
  const int64_t slices = dm.N * dm.M;
  const int64_t threads = at::get_num_threads();
  int64_t chunks = 1;
  if (slices > 0 && slices < threads && dm.Lq >= 64) {
    chunks = std::min<int64_t>((threads + slices - 1) / slices, dm.Lq / 32);
  }
  const int64_t q_per_chunk = chunks > 0 ? (dm.Lq + chunks - 1) / chunks : dm.Lq;
  // With chunks > 1 each task accumulates into its own (S, D) buffer, summed below.
  at::Tensor buffers;
  if (chunks > 1) buffers = at::zeros({slices * chunks, dm.S, dm.D}, value.options());

  AT_DISPATCH_FLOATING_TYPES(value.scalar_type(), "ms_deform_attn_cpu_backward", [&] {
    const std::vector<scalar_t> zeros(std::max<int64_t>(dm.D, 1), scalar_t(0));
    const scalar_t* vp = value.data_ptr<scalar_t>();
    const scalar_t* lp = loc.data_ptr<scalar_t>();
    const scalar_t* ap = attn.data_ptr<scalar_t>();
    const scalar_t* gop = grad_output.data_ptr<scalar_t>();
    scalar_t* gvp = grad_value.data_ptr<scalar_t>();
    scalar_t* glp = grad_loc.data_ptr<scalar_t>();
    scalar_t* gap = grad_attn.data_ptr<scalar_t>();
    scalar_t* bufp = chunks > 1 ? buffers.data_ptr<scalar_t>() : nullptr;
    const int64_t work = dm.Lq * dm.M * dm.L * dm.P * dm.D * 12;  // rough multiply-adds of the backward
    const int64_t grain = work < kMinTaskWork ? std::max<int64_t>(1, slices * chunks) : 1;
    at::parallel_for(0, slices * chunks, grain, [&](int64_t begin, int64_t end) {
      for (int64_t task = begin; task < end; ++task) {
        const int64_t nm = task / chunks, chunk = task % chunks;
        const int64_t n = nm / dm.M, m = nm % dm.M;
        const int64_t q0 = chunk * q_per_chunk, q1 = std::min(dm.Lq, q0 + q_per_chunk);
        scalar_t* gv = chunks > 1 ? bufp + task * dm.S * dm.D : gvp + (n * dm.S * dm.M + m) * dm.D;
        const int64_t gv_stride = chunks > 1 ? dm.D : dm.M * dm.D;
        if (dm.D == 32) {
          backward_slice<scalar_t, 32>(vp, shapes.data(), starts.data(), lp, ap, gop, gv, gv_stride, glp, gap, dm,
                                       zeros.data(), n, m, q0, q1);
        } else {
          backward_slice<scalar_t, 0>(vp, shapes.data(), starts.data(), lp, ap, gop, gv, gv_stride, glp, gap, dm,
                                      zeros.data(), n, m, q0, q1);
        }
      }
    });
  });
  if (chunks > 1) {
    // (N, M, chunks, S, D) -> sum over chunks -> (N, S, M, D)
    grad_value.copy_(buffers.view({dm.N, dm.M, chunks, dm.S, dm.D}).sum(2).permute({0, 2, 1, 3}));
  }
  std::vector<at::Tensor> grads{grad_value, grad_loc, grad_attn};
  if (msda::is_reduced(value_in)) {
    for (auto& g : grads) g = g.to(value_in.scalar_type());
  }
  return grads;
}

}  // namespace rlipv2
