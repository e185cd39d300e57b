"""The request handler of the web demo (``tools/web_demo.py``), without any web framework.

:class:`WebDemoHandler` turns one request (image files, object and relation labels as comma-separated
text, a score threshold and a top-k) into drawings, table rows and the ``triplets.json`` document of
``tools/demo.py`` (:mod:`rlipv2.engine.demo_outputs`). The Gradio page and its HTTP API are a thin layer on
top of it, so everything a user can send is checked here, and tested here:

- the model is loaded once, when the handler is made; a config or weights that cannot be loaded leave
  a handler that answers every request with the load error (the server keeps running and the page says
  why);
- every bad input (no image, an undecodable or oversized image, an empty or oversized label list, a
  threshold or top-k out of range) raises :class:`WebDemoError` with one line naming the field or file;
- requests run one at a time on the model (a lock: the vocabulary is set on the model and then used by
  its forward pass), and the model's label-embedding cache serves every request with unchanged labels.
"""
from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from .demo_outputs import detect_and_draw, drawing_name, triplet_table, triplets_document
from .predictor import RelationPredictor, parse_label_list

logger = logging.getLogger(__name__)

__all__ = ["WebDemoError", "WebDemoLimits", "WebDemoResult", "WebDemoHandler", "render_example_images"]


class WebDemoError(ValueError):
    """A request the demo cannot serve; the message is one line meant for the page."""


@dataclass(frozen=True)
class WebDemoLimits:
    """Bounds on one request (memory and time stay bounded whatever a client sends)."""

    max_images: int = 8
    max_pixels: int = 40_000_000  # per image, decoded
    max_labels: int = 200  # per list (objects, relations)
    max_label_chars: int = 100
    max_top_k: int = 1000


@dataclass
class WebDemoResult:
    """What one request gives.

    Attributes:
        drawings: one (H', W', 3) uint8 RGB drawing per image, with its name (``<stem>.jpg``).
        table: rows of :data:`rlipv2.engine.demo_outputs.TABLE_HEADERS`, best score first.
        document: the ``triplets.json`` document (schema of ``tools/demo.py``).
        seconds: handling time.
        label_cache_hit: whether the model's label-embedding cache served the request (None: the model has
            no such cache).
    """

    drawings: list[tuple[np.ndarray, str]]
    table: list[list[Any]]
    document: dict[str, Any]
    seconds: float
    label_cache_hit: bool | None = None
    summary: str = ""


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _is_local(path: str) -> bool:
    return "://" not in path


def _file_path_and_name(item: Any) -> tuple[str, str]:
    """(path on the server, name to show) of an uploaded file: a path, or an object/dict with ``path``
    and ``orig_name`` (Gradio's FileData)."""
    if isinstance(item, (str, os.PathLike)):
        path = os.fspath(item)
        return path, os.path.basename(path)
    path = item.get("path") if isinstance(item, dict) else getattr(item, "path", None)
    name = item.get("orig_name") if isinstance(item, dict) else getattr(item, "orig_name", None)
    if not isinstance(path, str) or not path:
        raise WebDemoError(f"images: expected uploaded files, got a {type(item).__name__}")
    return path, name or os.path.basename(path)


class WebDemoHandler:
    """Serve relation-detection requests with one loaded model.

    Args:
        predictor: the loaded model, or None when loading failed (then ``load_error`` says why).
        load_error: the one-line reason the model could not be loaded.
        max_draw: draw at most this many triplets per image.
        draw_min_size: drawings of smaller images are upscaled to this shortest side.
        limits: bounds on one request (default: :class:`WebDemoLimits`).
    """

    def __init__(self, predictor: RelationPredictor | None, *, load_error: str | None = None, max_draw: int = 20,
                 draw_min_size: int = 480, limits: WebDemoLimits | None = None):
        if predictor is None and not load_error:
            raise ValueError("WebDemoHandler needs a predictor or the load_error that explains its absence")
        self.predictor = predictor
        self.load_error = load_error
        self.max_draw, self.draw_min_size = int(max_draw), int(draw_min_size)
        self.limits = limits or WebDemoLimits()
        self._lock = threading.Lock()
        self.requests_served = 0

    @classmethod
    def from_config(cls, config_file: str, weights: str | None = None, *, opts: Sequence[str] = (),
                    predictor_kwargs: dict[str, Any] | None = None, **kwargs) -> WebDemoHandler:
        """Load the model once; on failure return a handler that reports the error instead of raising."""
        try:
            if not os.path.isfile(config_file):
                raise WebDemoError(f"config file '{config_file}' not found")
            if weights and _is_local(weights) and not os.path.isfile(weights):
                raise WebDemoError(f"weights file '{weights}' not found")
            predictor = RelationPredictor(config_file, weights, opts=list(opts), **(predictor_kwargs or {}))
        except WebDemoError as e:
            error = f"cannot load the model: {e}"
        except Exception as e:  # any failure of LazyConfig.load / instantiate / the checkpointer
            logger.exception("web demo: loading the model failed")
            error = (f"cannot load the model from config '{config_file}'"
                     f"{f' and weights {weights!r}' if weights else ''}: {type(e).__name__}: {_one_line(e)}")
        else:
            return cls(predictor, **kwargs)
        logger.error("web demo: %s", error)
        return cls(None, load_error=error, **kwargs)

    @property
    def ready(self) -> bool:
        return self.predictor is not None

    def describe(self) -> str:
        """One line on the model for the page header."""
        if self.predictor is None:
            return f"Model not loaded: {self.load_error}"
        model = self.predictor.model
        params = sum(p.numel() for p in model.parameters())
        return f"{type(model).__name__} ({params / 1e6:.1f} M parameters) on {self.predictor.device}"

    # ----------------------------------------------------------------------------------------- inputs
    def parse_labels(self, text: Any, field_name: str) -> list[str]:
        """Comma-separated label text (or a list of strings) -> labels; one-line errors naming the field."""
        if text is None or (isinstance(text, str) and not text.strip()):
            raise WebDemoError(f"{field_name}: empty; type comma-separated names, e.g. 'person, horse'")
        if not isinstance(text, (str, list, tuple)):
            raise WebDemoError(f"{field_name}: expected comma-separated text, got a {type(text).__name__}")
        try:
            labels = parse_label_list(text)
        except (TypeError, ValueError) as e:
            raise WebDemoError(f"{field_name}: {_one_line(e)}") from None
        if len(labels) > self.limits.max_labels:
            raise WebDemoError(f"{field_name}: {len(labels)} labels, at most {self.limits.max_labels} are allowed")
        long = [t for t in labels if len(t) > self.limits.max_label_chars]
        if long:
            raise WebDemoError(f"{field_name}: label '{long[0][:40]}...' is longer than "
                               f"{self.limits.max_label_chars} characters")
        return labels

    @staticmethod
    def parse_number(value: Any, field_name: str, low: float, high: float, integer: bool = False) -> float | int:
        """A finite number in [low, high] (an integer if ``integer``); one-line errors naming the field."""
        if isinstance(value, bool) or value is None:
            raise WebDemoError(f"{field_name}: expected a number, got {value!r}")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise WebDemoError(f"{field_name}: expected a number, got {value!r}") from None
        if not math.isfinite(number) or not low <= number <= high:
            raise WebDemoError(f"{field_name}: {value!r} is outside [{low:g}, {high:g}]")
        if integer:
            if number != int(number):
                raise WebDemoError(f"{field_name}: expected a whole number, got {value!r}")
            return int(number)
        return number

    def read_images(self, files: Any) -> list[tuple[np.ndarray, str, tuple[int, int]]]:
        """Uploaded files -> [(H, W, 3) uint8 RGB, name, (height, width) of the file)]; every image is checked
        before any is run. A large image may be decoded shrunk; boxes are still reported in the file's pixels."""
        if files is None or (isinstance(files, (list, tuple)) and len(files) == 0):
            raise WebDemoError("images: none given; upload one or more images")
        if not isinstance(files, (list, tuple)):
            files = [files]
        if len(files) > self.limits.max_images:
            raise WebDemoError(f"images: {len(files)} given, at most {self.limits.max_images} per request")
        out = []
        for item in files:
            path, name = _file_path_and_name(item)
            image, size = self._read_image(path, name)
            out.append((image, name, size))
        return out

    def _read_image(self, path: str, name: str) -> tuple[np.ndarray, tuple[int, int]]:
        def fail(reason: str):
            raise WebDemoError(f"image '{name}': {reason.replace(path, name)}") from None

        if not os.path.isfile(path):
            fail("file not found on the server")
        try:
            with Image.open(path) as im:  # reads the header only: the size is checked before decoding
                width, height = im.size
        except Image.DecompressionBombError:
            fail(f"too large (more than {self.limits.max_pixels} pixels)")
        except Exception as e:  # PIL raises UnidentifiedImageError, OSError, ValueError, SyntaxError...
            fail(f"not a readable image ({type(e).__name__}: {_one_line(e)})")
        if width * height > self.limits.max_pixels:
            fail(f"too large ({width}x{height}, more than {self.limits.max_pixels} pixels)")
        if width == 0 or height == 0:
            fail(f"empty image ({width}x{height})")
        try:
            image, _, size = self.predictor.load_image(path)
        except ValueError as e:  # truncated or corrupt data, found while decoding
            cause = e.__cause__ or e
            fail(f"cannot decode it ({type(cause).__name__}: {_one_line(cause)})")
        return image, size

    # ---------------------------------------------------------------------------------------- request
    def __call__(self, files: Any, objects: Any, relations: Any, score_thresh: Any = 0.3, top_k: Any = 20
                 ) -> WebDemoResult:
        """Serve one request.

        Args:
            files: image paths, or uploaded-file objects with ``path`` and ``orig_name`` (one or a list).
            objects, relations: comma-separated label texts (multi-word labels allowed) or lists of strings.
            score_thresh: minimum triplet score, in [0, 1].
            top_k: at most this many triplets per image, in [1, ``limits.max_top_k``].

        Raises:
            WebDemoError: the model is not loaded, or an input is bad (one line naming the field or file).
        """
        if self.predictor is None:
            raise WebDemoError(self.load_error)
        t0 = time.perf_counter()
        objects = self.parse_labels(objects, "object labels")
        relations = self.parse_labels(relations, "relation labels")
        score_thresh = self.parse_number(score_thresh, "score threshold", 0.0, 1.0)
        top_k = self.parse_number(top_k, "top-k", 1, self.limits.max_top_k, integer=True)
        images = self.read_images(files)
        cache = getattr(self.predictor.model, "text_encoder", None)
        results, drawings, used = [], [], set()
        with self._lock:  # one request at a time on the model: it holds the vocabulary between the two calls
            misses = getattr(cache, "cache_misses", None)
            for image, name, size in images:
                result, drawing = detect_and_draw(
                    self.predictor, image, name, objects, relations, score_thresh=score_thresh, top_k=top_k,
                    max_draw=self.max_draw, draw_min_size=self.draw_min_size, original_size=size)
                result["visualization"] = drawing_name(name, used)
                results.append(result)
                drawings.append((drawing, result["visualization"]))
            cache_hit = None if misses is None else cache.cache_misses == misses
            self.requests_served += 1
        document = triplets_document(objects, relations, score_thresh, results)
        table = triplet_table(document)
        seconds = time.perf_counter() - t0
        summary = (f"{len(table)} triplet{'s' * (len(table) != 1)} in {len(results)} "
                   f"image{'s' * (len(results) != 1)}, {seconds:.2f} s"
                   + ("" if cache_hit is None else
                      "; label embeddings from the cache" if cache_hit else "; label embeddings computed"))
        logger.info("web demo: %s", summary)
        return WebDemoResult(drawings, table, document, seconds, cache_hit, summary)


def render_example_images(directory: str, num: int = 3, size: int = 256, seed: int = 2024) -> list[str]:
    """Draw ``num`` scenes of the synthetic relation world (:mod:`rlipv2.data.synthetic`) into ``directory``.

    Returns the JPEG paths (``example_<i>.jpg``); scenes are deterministic in ``seed``.
    """
    from ..data.synthetic import render_scene

    os.makedirs(directory, exist_ok=True)
    paths = []
    for i in range(num):
        image, _, _ = render_scene((seed, 2, i), size, 1, unseen=i % 2 == 1)
        path = os.path.join(directory, f"example_{i}.jpg")
        image.save(path, quality=92)
        paths.append(path)
    return paths
