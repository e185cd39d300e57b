// CUDA forward and backward kernels of multi-scale deformable attention.
//
// One warp handles one (n, q, m) row: its lanes cover the D channels (looping when D > 32), every lane
// computes the same bilinear corners (grid_sample semantics: x * W - 0.5, zero padding). The backward
// reduces the channel sums of grad_sampling_locations / grad_attention_weights with warp shuffles (one
// writer per element, no atomics) and scatters grad_value with atomicAdd. float16 / bfloat16 inputs are
// computed in float32 and the results cast back. This file is compiled only when WITH_CUDA is defined.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>

#include <vector>

#include "ms_deform_attn_utils.h"

namespace rlipv2 {
namespace {

constexpr int kWarp = 32;
constexpr int kThreads = 256;  // 8 rows per block

template <typename T>
struct Corners {
  int64_t pos[4];
  T weight[4];
  bool valid[4];
  T lh, lw;
};

template <typename T>
__device__ __forceinline__ bool setup_corners(T x, T y, int64_t H, int64_t W, Corners<T>& c) {
  // x * W - 0.5, written as the CUDA grid_sample computes it (grid = 2x - 1, then ((grid + 1) * W - 1) / 2),
  // so that floor() agrees with the reference for points within rounding of a pixel border.
  const T w_im = (((x * T(2) - T(1)) + T(1)) * static_cast<T>(W) - T(1)) / T(2);
  const T h_im = (((y * T(2) - T(1)) + T(1)) * static_cast<T>(H) - T(1)) / T(2);
  if (!(h_im >= T(-1) && w_im >= T(-1) && h_im < static_cast<T>(H) && w_im < static_cast<T>(W))) return false;
  const int64_t h0 = static_cast<int64_t>(floor(h_im));
  const int64_t w0 = static_cast<int64_t>(floor(w_im));
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

template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
  for (int offset = kWarp / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

template <typename T>
__global__ void forward_kernel(const T* __restrict__ value, const int64_t* __restrict__ shapes,
                               const int64_t* __restrict__ starts, const T* __restrict__ loc,
                               const T* __restrict__ attn, T* __restrict__ out, int64_t rows, int64_t Lq, int64_t S,
                               int64_t M, int64_t D, int64_t L, int64_t P) {
  const int64_t row = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (row >= rows) return;  // uniform across the warp
  const int64_t m = row % M, n = row / (Lq * M);
  const T* lp = loc + row * L * P * 2;
  const T* ap = attn + row * L * P;
  const int64_t pos_stride = M * D;
  for (int64_t d = lane; d - lane < D; d += kWarp) {
    const bool active = d < D;
    T acc = T(0);
    for (int64_t l = 0; l < L; ++l) {
      const int64_t H = shapes[2 * l], W = shapes[2 * l + 1];
      const T* vbase = value + ((n * S + starts[l]) * M + m) * D + d;
      for (int64_t p = 0; p < P; ++p) {
        const int64_t lpi = l * P + p;
        Corners<T> c;
        if (!setup_corners(lp[2 * lpi], lp[2 * lpi + 1], H, W, c) || !active) continue;
        const T a = ap[lpi];
        T s = T(0);
#pragma unroll
        for (int k = 0; k < 4; ++k) {
          if (c.valid[k]) s += c.weight[k] * vbase[c.pos[k] * pos_stride];
        }
        acc += a * s;
      }
    }
    if (active) out[row * D + d] = acc;
  }
}

template <typename T>
__global__ void backward_kernel(const T* __restrict__ value, const int64_t* __restrict__ shapes,
                                const int64_t* __restrict__ starts, const T* __restrict__ loc,
                                const T* __restrict__ attn, const T* __restrict__ grad_out, T* __restrict__ grad_value,
                                T* __restrict__ grad_loc, T* __restrict__ grad_attn, int64_t rows, int64_t Lq,
                                int64_t S, int64_t M, int64_t D, int64_t L, int64_t P) {
  const int64_t row = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (row >= rows) return;  // uniform across the warp
  const int64_t m = row % M, n = row / (Lq * M);
  const T* lp = loc + row * L * P * 2;
  const T* ap = attn + row * L * P;
  const T* go = grad_out + row * D;
  const int64_t pos_stride = M * D;
  for (int64_t l = 0; l < L; ++l) {
    const int64_t H = shapes[2 * l], W = shapes[2 * l + 1];
    const int64_t base = ((n * S + starts[l]) * M + m) * D;
    for (int64_t p = 0; p < P; ++p) {
      const int64_t lpi = l * P + p;
      Corners<T> c;
      if (!setup_corners(lp[2 * lpi], lp[2 * lpi + 1], H, W, c)) continue;  // gradients stay 0
      const T a = ap[lpi];
      const T hh = T(1) - c.lh, hw = T(1) - c.lw;
      T s_val = T(0), s_w = T(0), s_h = T(0);
      for (int64_t d = lane; d < D; d += kWarp) {
        const T g = go[d];
        T v[4];
#pragma unroll
        for (int k = 0; k < 4; ++k) {
          v[k] = c.valid[k] ? value[base + c.pos[k] * pos_stride + d] : T(0);
          if (c.valid[k]) atomicAdd(grad_value + base + c.pos[k] * pos_stride + d, a * c.weight[k] * g);
        }
        s_val += g * (c.weight[0] * v[0] + c.weight[1] * v[1] + c.weight[2] * v[2] + c.weight[3] * v[3]);
        s_w += g * (hh * (v[1] - v[0]) + c.lh * (v[3] - v[2]));
        s_h += g * (hw * (v[2] - v[0]) + c.lw * (v[3] - v[1]));
      }
      s_val = warp_sum(s_val);
      s_w = warp_sum(s_w);
      s_h = warp_sum(s_h);
      if (lane == 0) {
        grad_attn[row * L * P + lpi] = s_val;
        grad_loc[(row * L * P + lpi) * 2] = a * static_cast<T>(W) * s_w;
        grad_loc[(row * L * P + lpi) * 2 + 1] = a * static_cast<T>(H) * s_h;
      }
    }
  }
}

int64_t num_blocks(int64_t rows) { return (rows * kWarp + kThreads - 1) / kThreads; }

}  // namespace

at::Tensor ms_deform_attn_cuda_forward(const at::Tensor& value_in, const at::Tensor& spatial_shapes,
                                       const at::Tensor& level_start_index, const at::Tensor& loc_in,
                                       const at::Tensor& attn_in, int64_t im2col_step) {
  (void)im2col_step;  // the whole batch is one launch
  msda::check_inputs(value_in, spatial_shapes, level_start_index, loc_in, attn_in);
  TORCH_CHECK(value_in.is_cuda(), "ms_deform_attn_cuda_forward: expected CUDA tensors");
  const c10::cuda::OptionalCUDAGuard guard(value_in.device());
  const at::Tensor value = msda::compute_type(value_in);
  const at::Tensor loc = msda::compute_type(loc_in);
  const at::Tensor attn = msda::compute_type(attn_in);
  const at::Tensor shapes = spatial_shapes.to(value.device(), at::kLong).contiguous();
  const at::Tensor starts = level_start_index.to(value.device(), at::kLong).contiguous();
  const int64_t N = value.size(0), S = value.size(1), M = value.size(2), D = value.size(3);
  const int64_t Lq = loc.size(1), L = loc.size(3), P = loc.size(4);
  at::Tensor out = at::zeros({N, Lq, M * D}, value.options());
  const int64_t rows = N * Lq * M;
  if (rows > 0 && D > 0) {
    const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
    AT_DISPATCH_FLOATING_TYPES(value.scalar_type(), "ms_deform_attn_cuda_forward", [&] {
      forward_kernel<scalar_t><<<num_blocks(rows), kThreads, 0, stream>>>(
          value.data_ptr<scalar_t>(), shapes.data_ptr<int64_t>(), starts.data_ptr<int64_t>(),
          loc.data_ptr<scalar_t>(), attn.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), rows, Lq, S, M, D, L, P);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }
  return msda::is_reduced(value_in) ? out.to(value_in.scalar_type()) : out;
}

std::vector<at::Tensor> ms_deform_attn_cuda_backward(const at::Tensor& value_in, const at::Tensor& spatial_shapes,
                                                     const at::Tensor& level_start_index, const at::Tensor& loc_in,
                                                     const at::Tensor& attn_in, const at::Tensor& grad_output_in,
                                                     int64_t im2col_step) {
  (void)im2col_step;
  msda::check_inputs(value_in, spatial_shapes, level_start_index, loc_in, attn_in);
  TORCH_CHECK(value_in.is_cuda(), "ms_deform_attn_cuda_backward: expected CUDA tensors");
  const c10::cuda::OptionalCUDAGuard guard(value_in.device());
  const at::Tensor value = msda::compute_type(value_in);
  const at::Tensor loc = msda::compute_type(loc_in);
  const at::Tensor attn = msda::compute_type(attn_in);
  const at::Tensor shapes = spatial_shapes.to(value.device(), at::kLong).contiguous();
  const at::Tensor starts = level_start_index.to(value.device(), at::kLong).contiguous();
  const int64_t N = value.size(0), S = value.size(1), M = value.size(2), D = value.size(3);
  const int64_t Lq = loc.size(1), L = loc.size(3), P = loc.size(4);
  TORCH_CHECK(grad_output_in.numel() == N * Lq * M * D,
              "ms_deform_attn_cuda_backward: grad_output must be (N, Lq, M * D), got ", grad_output_in.sizes());
  const at::Tensor grad_output = grad_output_in.to(value.scalar_type()).contiguous();
  at::Tensor grad_value = at::zeros_like(value);
  at::Tensor grad_loc = at::zeros_like(loc);
  at::Tensor grad_attn = at::zeros_like(attn);
  const int64_t rows = N * Lq * M;
  if (rows > 0 && D > 0) {
    const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
    AT_DISPATCH_FLOATING_TYPES(value.scalar_type(), "ms_deform_attn_cuda_backward", [&] {
      backward_kernel<scalar_t><<<num_blocks(rows), kThreads, 0, stream>>>(
          value.data_ptr<scalar_t>(), shapes.data_ptr<int64_t>(), starts.data_ptr<int64_t>(),
          loc.data_ptr<scalar_t>(), attn.data_ptr<scalar_t>(), grad_output.data_ptr<scalar_t>(),
          grad_value.data_ptr<scalar_t>(), grad_loc.data_ptr<scalar_t>(), grad_attn.data_ptr<scalar_t>(), rows, Lq,
          S, M, D, L, P);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }
  std::vector<at::Tensor> grads{grad_value, grad_loc, grad_attn};
  if (msda::is_reduced(value_in)) {
    for (auto& g : grads) g = g.to(value_in.scalar_type());
  }
  return grads;
}

}  // namespace rlipv2
