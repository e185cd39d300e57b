"""Loading LazyConfigs with strict ``key=value`` overrides."""
from .overrides import ConfigKeyError, apply_overrides, check_override_keys, load_config

__all__ = ["ConfigKeyError", "apply_overrides", "check_override_keys", "load_config"]
