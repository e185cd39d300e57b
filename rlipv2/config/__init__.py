"""Loading LazyConfigs with strict ``key=value`` overrides and the dataset registrations they declare."""
from .overrides import ConfigKeyError, apply_overrides, check_override_keys, load_config

__all__ = ["ConfigKeyError", "apply_overrides", "check_override_keys", "load_config"]
