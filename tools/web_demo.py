#!/usr/bin/env python
"""Relation detection in the browser and over HTTP: a Gradio page for ``tools/demo.py``'s pipeline.

    pip install -e .[web]            # Gradio (pinned in requirements/web.txt)
    python tools/web_demo.py --config-file CFG --weights model_final.pth [--port 7860] [--host 127.0.0.1] \
        [--objects "person, horse"] [--relations "ride, feed"] [key=value ...]

The page takes one or more images (uploaded, or the bundled examples drawn from the synthetic relation
world), object and relation labels as comma-separated text (multi-word labels allowed), a score threshold
and a top-k; it shows the drawings (``tools/demo.py``'s), a table of triplets (sortable by clicking a
column header) and a ``triplets.json`` download in ``tools/demo.py``'s schema. Errors (a config or weights
that cannot be loaded, empty labels, an undecodable image, ...) are shown in the page; the server keeps
running. The model is loaded once; requests are queued and run one at a time per model (``--concurrency``);
label embeddings are reused across requests with the same labels.

HTTP API (``/detect``), e.g. with ``gradio_client`` (installed with Gradio)::

    from gradio_client import Client, handle_file
    client = Client("http://127.0.0.1:7860/")
    doc = client.predict([handle_file("photo.jpg")], "person, horse", "ride, feed", 0.3, 20, api_name="/detect")
    # doc: the triplets.json document, {"objects", "relations", "score_thresh", "images": [...]}

Bad input raises ``gradio_client.exceptions.AppError`` with the same one-line message as the page.
README.md ("Web demo") also shows the API with curl. The trailing ``key=value`` pairs override the config.
"""
import argparse
import atexit
import logging
import os
import shutil
import sys
import tempfile
import time
import uuid
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from rlipv2.engine.demo_outputs import TABLE_HEADERS, add_model_and_drawing_arguments  # noqa: E402
from rlipv2.engine.web_demo import WebDemoError, WebDemoHandler, WebDemoLimits, render_example_images  # noqa: E402
from rlipv2.utils.file_io import atomic_write_json  # noqa: E402

logger = logging.getLogger("rlipv2.web_demo")

DEFAULT_OBJECTS = "person, ball, bicycle, horse, chair, cup, kite, box, umbrella, dog"
DEFAULT_RELATIONS = "ride, hold, kick, carry, sit on, look at, next to, no interaction"
MISSING_GRADIO = "the web demo needs Gradio: pip install -e .[web]  (or: pip install -r requirements/web.txt)"


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-file", required=True, metavar="FILE", help="LazyConfig with a `model`")
    p.add_argument("--weights", default=None, help="checkpoint (default: train.init_checkpoint of the config)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    p.add_argument("--port", type=int, default=7860, help="port to listen on")
    p.add_argument("--objects", default=DEFAULT_OBJECTS, help="object labels filled in the page")
    p.add_argument("--relations", default=DEFAULT_RELATIONS, help="relation labels filled in the page")
    p.add_argument("--score-thresh", type=float, default=0.3, help="initial score threshold of the page")
    p.add_argument("--top-k", type=int, default=20, help="initial top-k (triplets per image) of the page")
    add_model_and_drawing_arguments(p)  # --nms-thresh, --max-draw, --draw-min-size, --min-size, --max-size, ...
    p.add_argument("--concurrency", type=int, default=1,
                   help="requests run at once on the model (1: one worker per model; more only overlaps "
                        "image decoding and drawing, the model itself runs one request at a time)")
    p.add_argument("--max-queue", type=int, default=64, help="requests waiting at most; more are refused")
    p.add_argument("--max-images", type=int, default=WebDemoLimits.max_images, help="images per request")
    p.add_argument("--max-file-size", default="50mb", help="largest upload Gradio accepts (e.g. 50mb)")
    p.add_argument("--examples", type=int, default=3, help="example images drawn from the synthetic world")
    p.add_argument("opts", nargs=argparse.REMAINDER, default=[], help="config overrides key=value")
    return p


def _escape_markdown(text: str) -> str:
    return "".join("\\" + c if c in "\\`*_[]<>#|" else c for c in text)


def _internal_error(e: Exception) -> str:
    """One line for the page on an unexpected failure (a bug, or the model failing on an input)."""
    return " ".join(f"internal error: {type(e).__name__}: {e}".split())


class RequestFiles:
    """Per-request download files (``triplets.json``) under one server directory; old ones are pruned."""

    def __init__(self, directory: str, keep_seconds: float = 3600.0):
        self.directory, self.keep_seconds = directory, keep_seconds
        os.makedirs(directory, exist_ok=True)

    def write_json(self, name: str, obj: Any) -> str:
        now = time.time()
        for d in os.listdir(self.directory):
            path = os.path.join(self.directory, d)
            if d.startswith("request-") and now - os.path.getmtime(path) > self.keep_seconds:
                shutil.rmtree(path, ignore_errors=True)
        path = os.path.join(self.directory, f"request-{uuid.uuid4().hex}", name)
        atomic_write_json(path, obj)
        return path


def build_app(handler: WebDemoHandler, *, files: RequestFiles, examples: list[str] = (),
              objects: str = DEFAULT_OBJECTS, relations: str = DEFAULT_RELATIONS, score_thresh: float = 0.3,
              top_k: int = 20, concurrency: int = 1):
    """The Gradio Blocks of the page and of the ``/detect`` API, both served by ``handler``."""
    import gradio as gr
    import pandas as pd
    from gradio.data_classes import FileData

    empty_table = pd.DataFrame([], columns=TABLE_HEADERS)

    def run_page(images, objects_text, relations_text, thresh, k):
        """The page's button: (status, drawings, table, triplets.json) or the error in the status line."""
        try:
            result = handler(images, objects_text, relations_text, thresh, k)
        except WebDemoError as e:
            return f"**Error:** {_escape_markdown(str(e))}", None, empty_table, None
        except Exception as e:  # a bug or a model failure: say so in the page, keep serving
            logger.exception("web demo: request failed")
            return f"**Error:** {_escape_markdown(_internal_error(e))}", None, empty_table, None
        json_path = files.write_json("triplets.json", result.document)
        return (_escape_markdown(result.summary), [(d, name) for d, name in result.drawings],
                pd.DataFrame(result.table, columns=TABLE_HEADERS), json_path)

    def detect(images: list[FileData], objects: str, relations: str, score_thresh: float = 0.3,
               top_k: int = 20) -> dict:
        """Detect (subject, relation, object) triplets in images with free-form labels.

        Args:
            images: image files (gradio_client: [handle_file(path), ...]).
            objects: comma-separated object labels, e.g. "person, horse".
            relations: comma-separated relation labels, e.g. "ride, feed".
            score_thresh: minimum triplet score in [0, 1].
            top_k: at most this many triplets per image.

        Returns:
            the triplets.json document of tools/demo.py: {"objects", "relations", "score_thresh", "images"}.
        """
        try:
            return handler(images, objects, relations, score_thresh, top_k).document
        except WebDemoError as e:
            raise gr.Error(str(e), print_exception=False) from None
        except Exception as e:
            logger.exception("web demo: API request failed")
            raise gr.Error(_internal_error(e), print_exception=False) from None

    # delete_cache: Gradio's copies of uploads and outputs older than an hour are removed every hour
    with gr.Blocks(title="RLIPv2 relation detection", delete_cache=(3600, 3600)) as app:
        gr.Markdown("# RLIPv2: relation detection with free-form labels\n"
                    "Upload images, name the objects and relations to look for (comma-separated), and press "
                    "**Detect**. Subjects are drawn in blue, objects in orange, relations on the line between them.")
        if handler.ready:
            gr.Markdown(f"Model: {_escape_markdown(handler.describe())}", elem_id="model-info")
        else:
            gr.Markdown(f"**Error:** {_escape_markdown(handler.load_error)}", elem_id="model-info")
        with gr.Row():
            with gr.Column(scale=2):
                images_in = gr.File(label="Images", file_count="multiple", file_types=["image"], elem_id="images")
                objects_in = gr.Textbox(label="Object labels (comma-separated)", value=objects, elem_id="objects")
                relations_in = gr.Textbox(label="Relation labels (comma-separated)", value=relations,
                                          elem_id="relations")
                thresh_in = gr.Slider(0.0, 1.0, value=score_thresh, step=0.01, label="Score threshold",
                                      elem_id="score-thresh")
                top_k_in = gr.Slider(1, 200, value=top_k, step=1, label="Top-k triplets per image", elem_id="top-k")
                button = gr.Button("Detect", variant="primary", elem_id="detect")
                if examples:
                    gr.Examples([[[path], objects, relations] for path in examples],
                                inputs=[images_in, objects_in, relations_in], label="Examples (synthetic world)")
            with gr.Column(scale=3):
                status = gr.Markdown(elem_id="status")
                gallery = gr.Gallery(label="Drawings", columns=2, height=480, object_fit="contain", format="jpeg",
                                     elem_id="drawings")
                table = gr.Dataframe(value=empty_table, headers=TABLE_HEADERS, label="Triplets (best score first)",
                                     datatype=["str", "str", "str", "str", "number", "str", "str"],
                                     interactive=False, elem_id="triplets")
                json_out = gr.File(label="triplets.json", elem_id="triplets-json")
        button.click(run_page, [images_in, objects_in, relations_in, thresh_in, top_k_in],
                     [status, gallery, table, json_out], concurrency_limit=concurrency, concurrency_id="model",
                     api_visibility="undocumented")
        gr.api(detect, api_name="detect", concurrency_limit=concurrency, concurrency_id="model")
    return app


def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    from detectron2.utils.logger import setup_logger

    setup_logger(name="rlipv2")
    bounds = (("--concurrency", args.concurrency, 1, 64), ("--max-queue", args.max_queue, 1, 10_000),
              ("--max-images", args.max_images, 1, 100), ("--examples", args.examples, 0, 20),
              ("--score-thresh", args.score_thresh, 0.0, 1.0), ("--top-k", args.top_k, 1, 200))
    for name, value, low, high in bounds:
        if not low <= value <= high:  # also refuses nan
            print(f"web_demo.py: error: {name} must be in [{low}, {high}], got {value}", file=sys.stderr)
            return 2
    try:
        import gradio  # noqa: F401
    except ImportError:
        print(f"web_demo.py: error: {MISSING_GRADIO}", file=sys.stderr)
        return 2
    workdir = tempfile.mkdtemp(prefix="rlipv2_web_demo_")
    atexit.register(shutil.rmtree, workdir, ignore_errors=True)
    handler = WebDemoHandler.from_config(
        args.config_file, args.weights, opts=args.opts,
        predictor_kwargs=dict(min_size=args.min_size, max_size=args.max_size, nms_thresh=args.nms_thresh,
                              device=args.device, truncate_queries=args.truncate_queries),
        max_draw=args.max_draw, draw_min_size=args.draw_min_size, limits=WebDemoLimits(max_images=args.max_images))
    examples = render_example_images(os.path.join(workdir, "examples"), args.examples) if args.examples else []
    app = build_app(handler, files=RequestFiles(os.path.join(workdir, "requests")), examples=examples,
                    objects=args.objects, relations=args.relations, score_thresh=args.score_thresh,
                    top_k=args.top_k, concurrency=args.concurrency)
    app.queue(max_size=args.max_queue, default_concurrency_limit=args.concurrency)
    logger.info(f"web demo on http://{args.host}:{args.port}/ ({handler.describe()})")
    app.launch(server_name=args.host, server_port=args.port, allowed_paths=[workdir], show_error=True,
               footer_links=["api"], max_file_size=args.max_file_size)
    return 0


if __name__ == "__main__":
    sys.exit(main())  # pragma: no cover
