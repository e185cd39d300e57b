// CPU kernel of triplet (pairwise) NMS: greedy NMS inside each group of HOI predictions, where the
// overlap of two predictions is IoU(sub)^alpha * IoU(obj)^beta ("+1 pixel" areas, float64).
// Groups are arbitrary int64 codes, so one call handles every (image, triplet class) group of a whole
// test set (rlipv2.evaluation.nms.batched_triplet_nms).
#include <torch/extension.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "ops.h"

namespace rlipv2 {
namespace {

inline double iou_plus1(const double* a, const double* b) {
  const double area_a = (a[2] - a[0] + 1) * (a[3] - a[1] + 1);
  const double area_b = (b[2] - b[0] + 1) * (b[3] - b[1] + 1);
  const double w = std::max(0.0, std::min(a[2], b[2]) - std::max(a[0], b[0]) + 1);
  const double h = std::max(0.0, std::min(a[3], b[3]) - std::max(a[1], b[1]) + 1);
  const double inter = w * h;
  return inter / (area_a + area_b - inter);
}

// x ** e as NumPy computes it for an array and a scalar exponent: its fast paths give exactly x for 1,
// sqrt(x) for 0.5 and x * x for 2 (std::pow may differ from sqrt in the last bit), so that this
// kernel and the numpy implementation (rlipv2/evaluation/nms.py) agree bit for bit.
inline double power_like_numpy(double x, double e) {
  if (e == 1.0) return x;
  if (e == 0.5) return std::sqrt(x);
  if (e == 2.0) return x * x;
  if (e == 0.0) return 1.0;
  return std::pow(x, e);
}

}  // namespace

at::Tensor triplet_nms_cpu(const at::Tensor& sub_boxes, const at::Tensor& obj_boxes, const at::Tensor& scores,
                           const at::Tensor& groups, double thresh, double alpha, double beta) {
  TORCH_CHECK(scores.dim() == 1, "triplet_nms: scores must be (N,), got ", scores.sizes());
  const int64_t n = scores.size(0);
  TORCH_CHECK(sub_boxes.dim() == 2 && sub_boxes.size(0) == n && sub_boxes.size(1) == 4,
              "triplet_nms: sub_boxes must be (N, 4), got ", sub_boxes.sizes());
  TORCH_CHECK(obj_boxes.dim() == 2 && obj_boxes.size(0) == n && obj_boxes.size(1) == 4,
              "triplet_nms: obj_boxes must be (N, 4), got ", obj_boxes.sizes());
  TORCH_CHECK(groups.dim() == 1 && groups.size(0) == n, "triplet_nms: groups must be (N,), got ", groups.sizes());
  TORCH_CHECK(!scores.is_cuda(), "triplet_nms_cpu: expected CPU tensors");
  at::Tensor keep = at::zeros({n}, scores.options().dtype(at::kBool));
  if (n == 0) return keep;
  const at::Tensor sub = sub_boxes.to(at::kDouble).contiguous();
  const at::Tensor obj = obj_boxes.to(at::kDouble).contiguous();
  const at::Tensor sc = scores.to(at::kDouble).contiguous();
  const at::Tensor gr = groups.to(at::kLong).contiguous();
  const double* sp = sub.data_ptr<double>();
  const double* op = obj.data_ptr<double>();
  const double* scp = sc.data_ptr<double>();
  const int64_t* gp = gr.data_ptr<int64_t>();

  // Processing order: by group, then descending score (NaN first, as numpy's argsort()[::-1] puts it),
  // then descending index (the official reversed ascending sort visits equal scores last index first).
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int64_t i, int64_t j) {
    if (gp[i] != gp[j]) return gp[i] < gp[j];
    const bool ni = std::isnan(scp[i]), nj = std::isnan(scp[j]);
    if (ni != nj) return ni;
    if (!ni && scp[i] != scp[j]) return scp[i] > scp[j];
    return i > j;
  });

  bool* kp = keep.data_ptr<bool>();
  std::vector<char> removed(n, 0);
  int64_t seg_begin = 0;
  while (seg_begin < n) {
    int64_t seg_end = seg_begin + 1;
    while (seg_end < n && gp[order[seg_end]] == gp[order[seg_begin]]) ++seg_end;
    for (int64_t a = seg_begin; a < seg_end; ++a) {
      if (removed[a]) continue;
      const int64_t i = order[a];
      kp[i] = true;
      for (int64_t b = a + 1; b < seg_end; ++b) {
        if (removed[b]) continue;
        const int64_t j = order[b];
        const double ovr = power_like_numpy(iou_plus1(sp + 4 * i, sp + 4 * j), alpha) *
                           power_like_numpy(iou_plus1(op + 4 * i, op + 4 * j), beta);
        if (!(ovr <= thresh)) removed[b] = 1;  // NaN overlaps suppress, as in the official loop
      }
    }
    seg_begin = seg_end;
  }
  return keep;
}

}  // namespace rlipv2
