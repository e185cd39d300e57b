"""RLIPv2-ParSeDA with Swin-L (embed 192, depths 2-2-18-2, drop_path 0.5; every norm frozen)."""
from .rlipv2_parseda_swin_t import model

model.backbone.embed_dim = 192
model.backbone.depths = [2, 2, 18, 2]
model.backbone.num_heads = [6, 12, 24, 48]
model.backbone.drop_path_rate = 0.5
model.neck.in_channels = [384, 768, 1536]
