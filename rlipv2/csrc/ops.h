// Declarations of the ops compiled into rlipv2._C. Only ATen types appear here: CUDA headers are
// included by the .cu files alone, and the CUDA entry points are declared only under WITH_CUDA.
#pragma once
#include <torch/extension.h>

#include <vector>

namespace rlipv2 {

// Binds every op family (register_ops.cpp).
void register_ops(pybind11::module& m);

// ---- Multi-scale deformable attention (Deformable-DETR layout) ----
// value (N, S, M, D), spatial_shapes (L, 2) int64 (H, W), level_start_index (L,) int64,
// sampling_loc (N, Lq, M, L, P, 2) in [0, 1] (x, y), attn_weight (N, Lq, M, L, P) -> (N, Lq, M * D).
// Backward returns {grad_value, grad_sampling_loc, grad_attn_weight}.
at::Tensor ms_deform_attn_cpu_forward(const at::Tensor& value, const at::Tensor& spatial_shapes,
                                      const at::Tensor& level_start_index, const at::Tensor& sampling_loc,
                                      const at::Tensor& attn_weight, int64_t im2col_step);
std::vector<at::Tensor> ms_deform_attn_cpu_backward(const at::Tensor& value, const at::Tensor& spatial_shapes,
                                                    const at::Tensor& level_start_index,
                                                    const at::Tensor& sampling_loc, const at::Tensor& attn_weight,
                                                    const at::Tensor& grad_output, int64_t im2col_step);

// ---- Triplet (pairwise) NMS of HOI predictions ----
// sub_boxes, obj_boxes (N, 4) xyxy, scores (N,), groups (N,) int64 -> keep mask (N,) bool.
at::Tensor triplet_nms_cpu(const at::Tensor& sub_boxes, const at::Tensor& obj_boxes, const at::Tensor& scores,
                           const at::Tensor& groups, double thresh, double alpha, double beta);

#ifdef WITH_CUDA
// CUDART_VERSION of the toolkit that compiled the kernels (cuda/cuda_version.cu).
int64_t cuda_runtime_version();

at::Tensor ms_deform_attn_cuda_forward(const at::Tensor& value, const at::Tensor& spatial_shapes,
                                       const at::Tensor& level_start_index, const at::Tensor& sampling_loc,
                                       const at::Tensor& attn_weight, int64_t im2col_step);
std::vector<at::Tensor> ms_deform_attn_cuda_backward(const at::Tensor& value, const at::Tensor& spatial_shapes,
                                                     const at::Tensor& level_start_index,
                                                     const at::Tensor& sampling_loc, const at::Tensor& attn_weight,
                                                     const at::Tensor& grad_output, int64_t im2col_step);
at::Tensor triplet_nms_cuda(const at::Tensor& sub_boxes, const at::Tensor& obj_boxes, const at::Tensor& scores,
                            const at::Tensor& groups, double thresh, double alpha, double beta);
#endif

}  // namespace rlipv2
