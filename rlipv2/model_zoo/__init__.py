"""The project's LazyConfigs by name (``get_config``) and the helpers the configs are composed with."""
from .composition import BACKBONE_FIELDS, use_backbone
from .model_zoo import config_roots, get_config, get_config_file, list_configs

__all__ = ["get_config", "get_config_file", "list_configs", "config_roots", "use_backbone", "BACKBONE_FIELDS"]
