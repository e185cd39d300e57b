"""The web demo's request handler (rlipv2.engine.web_demo), without Gradio: inputs to drawings, table and
triplets.json; bad inputs and unloadable models give one-line errors and leave the handler serving."""
import json
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from rlipv2.engine.demo_outputs import TABLE_HEADERS, drawing_name, triplet_table
from rlipv2.engine.web_demo import WebDemoError, WebDemoHandler, WebDemoLimits, render_example_images

OBJECTS, RELATIONS = "person, bicycle, cup, dog", "hold, ride, sit on"
KW = dict(predictor_kwargs=dict(min_size=64, max_size=128, device="cpu"), draw_min_size=96)


@pytest.fixture(scope="module")
def model_files(tiny_model_files):
    return tiny_model_files


@pytest.fixture(scope="module")
def handler(model_files):
    h = WebDemoHandler.from_config(*model_files, **KW)
    assert h.ready, h.load_error
    return h


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    d = tmp_path_factory.mktemp("web_demo_images")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(d / "a.png")
    Image.fromarray(rng.integers(0, 255, (64, 40, 3), dtype=np.uint8)).save(d / "a.jpg")
    return d


def test_request_gives_drawings_table_and_document(handler, images):
    res = handler([str(images / "a.png"), str(images / "a.jpg")], OBJECTS, "hold, ride, sit on", 0.0, 3)
    doc = res.document
    assert set(doc) == {"objects", "relations", "score_thresh", "images"}  # tools/demo.py's schema
    assert doc["objects"] == ["person", "bicycle", "cup", "dog"] and doc["relations"] == ["hold", "ride", "sit on"]
    assert [im["file_name"] for im in doc["images"]] == ["a.png", "a.jpg"]  # names, no server paths
    assert [im["visualization"] for im in doc["images"]] == ["a.jpg", "a_1.jpg"]
    assert [(im["height"], im["width"]) for im in doc["images"]] == [(48, 64), (64, 40)]
    for im in doc["images"]:
        assert len(im["triplets"]) == 3  # top-k, threshold 0
        for t in im["triplets"]:
            assert t["relation"] in doc["relations"] and t["subject"]["label"] in doc["objects"]
            assert len(t["subject"]["box"]) == 4 and 0.0 <= t["score"] <= 1.0
    json.dumps(doc)  # serialisable as triplets.json
    # drawings: one per image, upscaled so that the shortest side is draw_min_size
    assert [name for _, name in res.drawings] == ["a.jpg", "a_1.jpg"]
    assert [d.shape for d, _ in res.drawings] == [(96, 128, 3), (153, 96, 3)]
    assert all(d.dtype == np.uint8 for d, _ in res.drawings)
    # table: one row per triplet, best score first
    assert len(res.table) == 6 and all(len(r) == len(TABLE_HEADERS) for r in res.table)
    scores = [r[TABLE_HEADERS.index("score")] for r in res.table]
    assert scores == sorted(scores, reverse=True)
    assert {r[0] for r in res.table} == {"a.png", "a.jpg"}
    assert "6 triplets in 2 images" in res.summary

    high = handler([str(images / "a.png")], OBJECTS, RELATIONS, 1.0, 100)
    assert high.document["images"][0]["triplets"] == [] and high.table == []  # nothing scores >= 1


def test_model_loaded_once_and_label_embeddings_cached(model_files, images):
    h = WebDemoHandler.from_config(*model_files, **KW)
    model, encoder = h.predictor.model, h.predictor.model.text_encoder
    img = [str(images / "a.png")]
    first = h(img, OBJECTS, RELATIONS, 0.5, 5)
    misses = encoder.cache_misses
    second = h(img, " person,bicycle , cup, dog ", RELATIONS, 0.2, 7)  # same labels, other spacing and sliders
    assert h.predictor.model is model and h.requests_served == 2
    assert (first.label_cache_hit, second.label_cache_hit) == (False, True)
    assert encoder.cache_misses == misses and "from the cache" in second.summary
    third = h(img, "person, horse", RELATIONS, 0.5, 5)
    assert third.label_cache_hit is False and encoder.cache_misses == misses + 1


def test_concurrent_requests_keep_their_own_labels(handler, images):
    vocabularies = [("person, dog", "hold, walk"), ("cup, bicycle, person", "ride"), ("person", "sit on, hold")]
    img = [str(images / "a.png")]

    def request(i):
        objects, relations = vocabularies[i % len(vocabularies)]
        return i, handler(img, objects, relations, 0.0, 4).document

    with ThreadPoolExecutor(max_workers=4) as pool:
        done = list(pool.map(request, range(9)))
    for i, doc in done:
        objects, relations = (set(s.split(", ")) for s in vocabularies[i % len(vocabularies)])
        triplets = doc["images"][0]["triplets"]
        assert len(triplets) == 4
        assert all(t["relation"] in relations and t["object"]["label"] in objects for t in triplets)


def _png_with_size(path, width, height):
    """A PNG whose header claims width x height (only the header: a decompression bomb in miniature)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))
    return path


def _bad_files(d):
    (d / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    (d / "notes.png").write_text("this is text, not an image")
    (d / "empty.jpg").write_bytes(b"")
    good = np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(good).save(d / "full.jpg", quality=95)
    data = (d / "full.jpg").read_bytes()
    (d / "truncated.jpg").write_bytes(data[: len(data) // 2])
    _png_with_size(d / "huge.png", 30000, 30000)
    return d


@pytest.mark.parametrize("case, expected", [
    (dict(objects=""), "object labels: empty"),
    (dict(objects=None), "object labels: empty"),
    (dict(relations=" , ,"), "relation labels: empty"),
    (dict(objects=["person", 3]), "object labels: label texts must be strings"),
    (dict(objects=42), "object labels: expected comma-separated text"),
    (dict(relations=", ".join(f"r{i}" for i in range(201))), "relation labels: 201 labels, at most 200"),
    (dict(objects="person, " + "x" * 101), "object labels: label 'xxxx"),
    (dict(score_thresh=float("nan")), "score threshold: nan is outside [0, 1]"),
    (dict(score_thresh=-0.1), "score threshold: -0.1 is outside [0, 1]"),
    (dict(score_thresh=1.5), "score threshold: 1.5 is outside [0, 1]"),
    (dict(score_thresh="high"), "score threshold: expected a number, got 'high'"),
    (dict(score_thresh=True), "score threshold: expected a number"),
    (dict(top_k=0), "top-k: 0 is outside [1, 1000]"),
    (dict(top_k=2.5), "top-k: expected a whole number, got 2.5"),
    (dict(top_k=10**6), "top-k: 1000000 is outside"),
    (dict(top_k=None), "top-k: expected a number, got None"),
    (dict(files=None), "images: none given"),
    (dict(files=[]), "images: none given"),
    (dict(files=["a.png"] * 9), "images: 9 given, at most 8"),
    (dict(files=[{"orig_name": "x.png"}]), "images: expected uploaded files"),
    (dict(files=["missing.jpg"]), "image 'missing.jpg': file not found"),
    (dict(files=["broken.jpg"]), "image 'broken.jpg': not a readable image"),
    (dict(files=["notes.png"]), "image 'notes.png': not a readable image"),
    (dict(files=["empty.jpg"]), "image 'empty.jpg': not a readable image"),
    (dict(files=["truncated.jpg"]), "image 'truncated.jpg': cannot decode it"),
    (dict(files=["huge.png"]), "image 'huge.png': too large (more than 40000000 pixels)"),
    (dict(files=["full.jpg", "broken.jpg"]), "image 'broken.jpg'"),  # checked before any image runs
])
def test_bad_requests_give_one_line_errors_and_the_handler_keeps_serving(handler, tmp_path, case, expected):
    d = _bad_files(tmp_path)
    request = dict(files=[str(d / "full.jpg")], objects=OBJECTS, relations=RELATIONS, score_thresh=0.3, top_k=5)
    request.update(case)
    if isinstance(request["files"], list):
        request["files"] = [str(d / f) if isinstance(f, str) else f for f in request["files"]]
    served = handler.requests_served
    with pytest.raises(WebDemoError) as err:
        handler(**request)
    message = str(err.value)
    assert message.startswith(expected), message
    assert "\n" not in message and str(tmp_path) not in message  # one line, no server paths
    assert handler.requests_served == served  # refused before the model ran
    ok = handler([str(d / "full.jpg")], OBJECTS, RELATIONS, 0.0, 2)  # still serving
    assert len(ok.table) == 2


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "I;16", "CMYK"])
def test_other_pixel_formats_are_converted(handler, tmp_path, mode):
    rgb = Image.fromarray(np.random.default_rng(2).integers(0, 255, (40, 50, 3), dtype=np.uint8))
    img = rgb.convert("L").convert("I;16") if mode == "I;16" else rgb.convert(mode)
    path = tmp_path / ("img.jpg" if mode == "CMYK" else "img.png")
    img.save(path)
    res = handler([str(path)], OBJECTS, RELATIONS, 0.0, 1)
    assert res.drawings[0][0].shape == (96, 120, 3) and len(res.table) == 1


def test_request_limits_are_configurable(model_files, tmp_path):
    h = WebDemoHandler.from_config(*model_files, limits=WebDemoLimits(max_images=1, max_pixels=100), **KW)
    Image.new("RGB", (20, 10)).save(tmp_path / "big.png")
    with pytest.raises(WebDemoError, match=r"^image 'big.png': too large \(20x10, more than 100 pixels\)$"):
        h([str(tmp_path / "big.png")], OBJECTS, RELATIONS)
    with pytest.raises(WebDemoError, match="^images: 2 given, at most 1 per request$"):
        h([str(tmp_path / "big.png")] * 2, OBJECTS, RELATIONS)


def test_uploaded_file_objects_keep_their_original_names(handler, images):
    class Upload:  # Gradio's FileData: a cache path and the name the user uploaded
        path, orig_name = str(images / "a.png"), "my photo.png"

    res = handler([Upload(), {"path": str(images / "a.jpg"), "orig_name": "b.jpg"}], OBJECTS, RELATIONS, 0.0, 1)
    assert [im["file_name"] for im in res.document["images"]] == ["my photo.png", "b.jpg"]
    assert [name for _, name in res.drawings] == ["my photo.jpg", "b.jpg"]


def _write(path, text):
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("what, expected", [
    ("missing config", "cannot load the model: config file '{d}/nope.py' not found"),
    ("missing weights", "cannot load the model: weights file '{d}/nope.pth' not found"),
    ("broken config", "cannot load the model from config '{d}/broken.py'"),
    ("config without model", "cannot load the model from config '{d}/no_model.py'"),
    ("garbage weights", "cannot load the model from config"),
    ("weights of another model", "cannot load the model from config"),
])
def test_unloadable_models_are_reported_and_the_handler_keeps_answering(model_files, tmp_path, images, what,
                                                                          expected):
    config, weights = model_files
    d = tmp_path
    if what == "missing config":
        config = str(d / "nope.py")
    elif what == "missing weights":
        weights = str(d / "nope.pth")
    elif what == "broken config":
        config = _write(d / "broken.py", "model = (\n")
    elif what == "config without model":
        config = _write(d / "no_model.py", "train = dict(output_dir='x')\n")
    elif what == "garbage weights":
        weights = _write(d / "garbage.pth", "not a checkpoint")
    else:
        import torch

        torch.save({"model": {"some.layer.weight": torch.zeros(3)}}, d / "other.pth")
        weights = str(d / "other.pth")
    h = WebDemoHandler.from_config(config, weights, **KW)
    assert not h.ready
    assert h.load_error.startswith(expected.format(d=d)), h.load_error
    assert "\n" not in h.load_error and h.describe().startswith("Model not loaded: cannot load the model")
    for _ in range(2):  # every request gets the reason, none crashes
        with pytest.raises(WebDemoError, match="^cannot load the model"):
            h([str(images / "a.png")], OBJECTS, RELATIONS)


def test_example_images_from_the_synthetic_world(tmp_path):
    paths = render_example_images(str(tmp_path / "a"), num=2, size=96)
    again = render_example_images(str(tmp_path / "b"), num=2, size=96)
    assert [p.rsplit("/", 1)[1] for p in paths] == ["example_0.jpg", "example_1.jpg"]
    for p, q in zip(paths, again):
        with Image.open(p) as a, Image.open(q) as b:
            assert a.size == (96, 96) and np.array_equal(np.asarray(a), np.asarray(b))  # deterministic


def test_demo_outputs_helpers():
    used = set()
    assert [drawing_name(n, used) for n in ("x/a.png", "a.jpg", "b.PNG", "a.webp", ".hidden")] == \
        ["a.jpg", "a_1.jpg", "b.jpg", "a_2.jpg", ".hidden.jpg"]
    doc = {"images": [
        {"file_name": "/srv/u/a.png", "triplets": [
            {"subject": {"box": [0, 0, 1, 1], "label": "person"}, "object": None, "relation": "walk", "score": 0.2},
            {"subject": {"box": [0, 0, 1, 1], "label": "person"}, "object": {"box": [1, 1, 2, 2.25], "label": "dog"},
             "relation": "walk", "score": 0.9}]},
        {"file_name": "b.png", "triplets": [
            {"subject": {"box": [0, 0, 1, 1], "label": "person"}, "object": {"box": [1, 1, 2, 2], "label": "cup"},
             "relation": "hold", "score": 0.5}]}]}
    assert triplet_table(doc) == [
        ["a.png", "person", "walk", "dog", 0.9, "[0.0, 0.0, 1.0, 1.0]", "[1.0, 1.0, 2.0, 2.2]"],
        ["b.png", "person", "hold", "cup", 0.5, "[0.0, 0.0, 1.0, 1.0]", "[1.0, 1.0, 2.0, 2.0]"],
        ["a.png", "person", "walk", "", 0.2, "[0.0, 0.0, 1.0, 1.0]", ""],
    ]


def test_handler_needs_a_predictor_or_a_reason():
    with pytest.raises(ValueError, match="needs a predictor or the load_error"):
        WebDemoHandler(None)


def test_large_images_are_reported_in_the_files_pixels(handler, tmp_path):
    """A large JPEG is decoded shrunk (to the model's input size); its boxes are still in the file's pixels, as in
    tools/demo.py."""
    path = tmp_path / "large.jpg"
    Image.fromarray(np.random.default_rng(3).integers(0, 255, (512, 640, 3), dtype=np.uint8)).save(path)
    shrunk, _, size = handler.predictor.load_image(str(path))
    assert size == (512, 640) and shrunk.shape[0] < 512  # the case under test: decoded shrunk
    res = handler([str(path)], OBJECTS, RELATIONS, 0.0, 3)
    im = res.document["images"][0]
    assert (im["height"], im["width"]) == (512, 640)
    expected = handler.predictor.predict_rgb(shrunk, "large.jpg", ["person", "bicycle", "cup", "dog"],
                                             ["hold", "ride", "sit on"], score_thresh=0.0, top_k=3,
                                             original_size=size)
    got = [t["subject"]["box"] + t["object"]["box"] for t in im["triplets"]]
    want = [t["subject"]["box"] + t["object"]["box"] for t in expected["triplets"]]
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert max(max(b) for b in got) > shrunk.shape[1]  # not the shrunk copy's pixels
