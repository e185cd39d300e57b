from .multi_scale_deform_attn import MSDeformAttn, ms_deform_attn, ms_deform_attn_pytorch
from .triplet_nms import triplet_nms, triplet_nms_pytorch

__all__ = ["MSDeformAttn", "ms_deform_attn", "ms_deform_attn_pytorch", "triplet_nms", "triplet_nms_pytorch"]
