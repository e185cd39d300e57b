// Device-independent helpers of the ms_deform_attn kernels: input checks and the float32 compute
// type of reduced-precision inputs. Free of CUDA headers.
#pragma once
#include <ATen/ATen.h>

namespace rlipv2 {
namespace msda {

// Checks the shapes the kernels rely on (the Python dispatcher raises friendlier ValueErrors first).
inline void check_inputs(const at::Tensor& value, const at::Tensor& spatial_shapes,
                         const at::Tensor& level_start_index, const at::Tensor& sampling_loc,
                         const at::Tensor& attn_weight) {
  TORCH_CHECK(value.dim() == 4, "ms_deform_attn: value must be (N, S, M, D), got ", value.sizes());
  TORCH_CHECK(spatial_shapes.dim() == 2 && spatial_shapes.size(1) == 2,
              "ms_deform_attn: spatial_shapes must be (L, 2), got ", spatial_shapes.sizes());
  const int64_t L = spatial_shapes.size(0);
  TORCH_CHECK(level_start_index.dim() == 1 && level_start_index.size(0) == L,
              "ms_deform_attn: level_start_index must be (L,) = (", L, ",), got ", level_start_index.sizes());
  TORCH_CHECK(sampling_loc.dim() == 6 && sampling_loc.size(0) == value.size(0) &&
                  sampling_loc.size(2) == value.size(2) && sampling_loc.size(3) == L && sampling_loc.size(5) == 2,
              "ms_deform_attn: sampling_locations must be (N, Lq, M, L, P, 2), got ", sampling_loc.sizes());
  TORCH_CHECK(attn_weight.dim() == 5 && attn_weight.sizes() == sampling_loc.sizes().slice(0, 5),
              "ms_deform_attn: attention_weights must be (N, Lq, M, L, P), got ", attn_weight.sizes());
  TORCH_CHECK(value.scalar_type() == sampling_loc.scalar_type() && value.scalar_type() == attn_weight.scalar_type(),
              "ms_deform_attn: value, sampling_locations and attention_weights must share a dtype");
  TORCH_CHECK(sampling_loc.device() == value.device() && attn_weight.device() == value.device(),
              "ms_deform_attn: value, sampling_locations and attention_weights must be on one device");
}

// float16 / bfloat16 inputs are computed in float32 and the results cast back.
inline bool is_reduced(const at::Tensor& t) {
  return t.scalar_type() == at::kHalf || t.scalar_type() == at::kBFloat16;
}

inline at::Tensor compute_type(const at::Tensor& t) {
  return is_reduced(t) ? t.to(at::kFloat).contiguous() : t.contiguous();
}

}  // namespace msda
}  // namespace rlipv2
