"""One unit for the evaluation metrics: fractions (0-1) in JSON files and in the dicts the evaluators
return, percent in every line meant for people (CLI output, training log)."""
from __future__ import annotations

__all__ = ["in_percent", "is_count"]

_COUNT_PREFIXES = ("num_",)
_NON_METRIC = ("seconds", "cpu_seconds")


def is_count(key: str) -> bool:
    """Keys whose values are counts or times, not metrics (kept as they are)."""
    return key.startswith(_COUNT_PREFIXES) or key in _NON_METRIC


def in_percent(results):
    """A copy of a (nested) results dict with every metric in percent (counts and times unchanged)."""
    if isinstance(results, dict):
        return {k: (in_percent(v) if isinstance(v, dict) else
                    v if is_count(str(k)) or not isinstance(v, (int, float)) or isinstance(v, bool) else 100.0 * v)
                for k, v in results.items()}
    return results
