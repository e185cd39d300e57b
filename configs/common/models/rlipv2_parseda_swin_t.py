"""RLIPv2-ParSeDA with Swin-T (embed 96, depths 2-2-6-2, drop_path 0.2; every norm frozen)."""
from detectron2.config import LazyCall as L

from rlipv2.modeling import FrozenNormSwinTransformer

from .rlipv2_parseda_r50 import model

model.backbone = L(FrozenNormSwinTransformer)(
    embed_dim=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24], window_size=7, drop_path_rate=0.2,
    out_indices=[1, 2, 3],
)
model.in_features = ["p1", "p2", "p3"]
model.neck.in_channels = [192, 384, 768]
# Swin path of the official code: the sine embedding has a -0.5 offset
model.position_embedding.offset = -0.5
