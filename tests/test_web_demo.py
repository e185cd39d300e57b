"""tools/web_demo.py: the Gradio page and its HTTP API (skipped without Gradio), a real-browser test with Debian's
Chromium driven by Playwright (slow; skipped without them), and the 20-request load test (slow).

The request handler itself is tested without Gradio in tests/engine/test_web_demo_handler.py.
"""
import importlib.util
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"  # Debian's package (apt-get install chromium); Playwright never downloads one
OBJECTS, RELATIONS = "person, bicycle, cup, dog", "hold, ride, sit on"
NEEDS_WEB = "the web demo's tests need Gradio: pip install -e .[web]"


def _tool(name: str):
    """tools/<name>.py as a module (the name `tools` is taken in site-packages)."""
    spec = importlib.util.spec_from_file_location(f"rlipv2_tool_{name}", REPO / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def gradio():
    """Gradio, or a skip that says how to install it (listed first: nothing is built when it is missing)."""
    return pytest.importorskip("gradio", reason=NEEDS_WEB)


@pytest.fixture(scope="module")
def model_files(gradio, request):
    """The tiny model's files, written only once Gradio is known to be there."""
    return request.getfixturevalue("tiny_model_files")


@pytest.fixture(scope="module")
def image_file(tmp_path_factory):
    from rlipv2.engine.web_demo import render_example_images

    return render_example_images(str(tmp_path_factory.mktemp("web_images")), num=1, size=128)[0]


def _launch(tool, handler, tmp_path, **kwargs):
    app = tool.build_app(handler, files=tool.RequestFiles(str(tmp_path / "requests")), **kwargs)
    app.queue(max_size=8, default_concurrency_limit=1)
    bench = _tool("benchmark_web_demo")
    app.launch(server_name="127.0.0.1", server_port=bench.free_port(), prevent_thread_lock=True, quiet=True)
    return app


def test_api_and_page_endpoint_in_process(gradio, model_files, image_file, tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    from rlipv2.engine.web_demo import WebDemoHandler

    tool = _tool("web_demo")
    handler = WebDemoHandler.from_config(*model_files, predictor_kwargs=dict(min_size=64, max_size=128,
                                                                              device="cpu"))
    app = _launch(tool, handler, tmp_path)
    try:
        client = Client(app.local_url, verbose=False)
        info = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
        assert list(info) == ["/detect"]  # the documented API; the page's own endpoint is undocumented
        assert [p["parameter_name"] for p in info["/detect"]["parameters"]] == \
            ["images", "objects", "relations", "score_thresh", "top_k"]
        doc = client.predict([handle_file(image_file)], OBJECTS, RELATIONS, 0.0, 3, api_name="/detect")
        assert doc["objects"] == OBJECTS.split(", ") and doc["relations"] == RELATIONS.split(", ")
        assert doc["images"][0]["file_name"] == os.path.basename(image_file)
        assert len(doc["images"][0]["triplets"]) == 3
        with pytest.raises(AppError, match="^relation labels: empty"):
            client.predict([handle_file(image_file)], OBJECTS, "", api_name="/detect")

        # the page's button: status line, drawings, table and the triplets.json download
        status, gallery, table, json_file = client.predict([handle_file(image_file)], OBJECTS, RELATIONS, 0.0, 2,
                                                           api_name="/run_page")
        assert status.startswith("2 triplets in 1 image"), status
        assert len(gallery) == 1 and table["headers"][:4] == ["image", "subject", "relation", "object"]
        assert len(table["data"]) == 2
        downloaded = json.loads(Path(json_file).read_text())
        assert set(downloaded) == {"objects", "relations", "score_thresh", "images"}
        assert len(downloaded["images"][0]["triplets"]) == 2
        status, gallery, table, json_file = client.predict([handle_file(image_file)], " , ", RELATIONS, 0.3, 2,
                                                           api_name="/run_page")
        assert status.startswith("**Error:** object labels: empty") and json_file is None and not table["data"]

        # a failure inside the model is reported as an internal error, and the server keeps serving
        def boom(*args, **kwargs):
            raise RuntimeError("boom")

        handler.predictor.predict_raw = boom
        status = client.predict([handle_file(image_file)], OBJECTS, RELATIONS, 0.3, 2, api_name="/run_page")[0]
        assert status == "**Error:** internal error: RuntimeError: boom"
        with pytest.raises(AppError, match="^internal error: RuntimeError: boom$"):
            client.predict([handle_file(image_file)], OBJECTS, RELATIONS, api_name="/detect")
        del handler.predictor.predict_raw
        assert client.predict([handle_file(image_file)], OBJECTS, RELATIONS, 0.0, 1, api_name="/detect")["images"]
    finally:
        app.close()


def test_page_shows_a_model_that_could_not_be_loaded(gradio, model_files, image_file, tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    from rlipv2.engine.web_demo import WebDemoHandler

    tool = _tool("web_demo")
    handler = WebDemoHandler.from_config(model_files[0], str(tmp_path / "missing.pth"))
    app = _launch(tool, handler, tmp_path)
    try:
        expected = f"cannot load the model: weights file '{tmp_path}/missing.pth' not found"
        header = [c["props"]["value"] for c in app.config["components"]
                  if c.get("props", {}).get("elem_id") == "model-info"]
        assert header == [f"**Error:** {tool._escape_markdown(expected)}"]  # the page header says why
        client = Client(app.local_url, verbose=False)
        with pytest.raises(AppError, match="^cannot load the model: weights file"):
            client.predict([handle_file(image_file)], OBJECTS, RELATIONS, api_name="/detect")
        status = client.predict([handle_file(image_file)], OBJECTS, RELATIONS, 0.3, 2, api_name="/run_page")[0]
        assert "cannot load the model" in status
    finally:
        app.close()


def test_cli_refuses_bad_options_with_exit_status_2(capsys):
    tool = _tool("web_demo")
    for option, value in (("--concurrency", "0"), ("--score-thresh", "nan"), ("--top-k", "201")):
        assert tool.main(["--config-file", "x.py", option, value]) == 2
        assert f"error: {option} must be in [" in capsys.readouterr().err


@pytest.fixture(scope="module")
def browser_tools(gradio):
    """Playwright and Debian's Chromium, or a skip that says which is missing."""
    pytest.importorskip("playwright.sync_api", reason="Playwright is not installed: pip install -r "
                                                      "requirements/web-test.txt")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install chromium (Debian's package)")


@pytest.mark.slow  # a server subprocess and a real browser (~40 s)
def test_in_a_real_browser(browser_tools, model_files, image_file, tmp_path):
    from playwright.sync_api import sync_playwright

    bench = _tool("benchmark_web_demo")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    with bench.WebDemoServer(*model_files, log_path=str(tmp_path / "server.log"),
                             extra_args=["--min-size", "128", "--max-size", "256", "--examples", "2",
                                         "--objects", OBJECTS, "--relations", RELATIONS]) as server, \
            sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(server.url, timeout=60_000)
            assert "RLIPv2" in page.locator("#model-info").inner_text(timeout=60_000)
            page.locator("#images input[type=file]").set_input_files(image_file)
            page.locator("#objects textarea").fill("person, bicycle, cup, dog, sports ball")  # multi-word label
            page.locator("#relations textarea").fill(RELATIONS)
            thresh = page.locator("#score-thresh input[type=number]")
            thresh.fill("0")
            thresh.press("Enter")
            page.locator("#detect").click()
            status = page.locator("#status")
            status.get_by_text("triplets in 1 image").wait_for(timeout=120_000)
            rows = page.locator("#triplets [role=row][data-index]")  # the table's body rows (virtualised)
            rows.first.wait_for(timeout=30_000)
            assert rows.count() >= 1
            first_row = rows.first.inner_text()
            assert "person" in first_row and any(r in first_row for r in RELATIONS.split(", "))

            def scores():
                return [float(rows.nth(i).locator("[role=gridcell]").nth(4).inner_text()) for i in range(rows.count())]

            def sort_by_score(order: str):  # the column menu (shown once the header is selected)
                page.locator("#triplets th[title=score]").click()
                page.locator("#triplets th[title=score] .cell-menu-button").click()
                page.get_by_text(f"Sort {order}").click()

            best_first = scores()
            assert best_first == sorted(best_first, reverse=True)
            sort_by_score("ascending")
            ascending = scores()
            assert ascending == sorted(ascending) and ascending[0] <= min(best_first) < max(best_first)
            sort_by_score("descending")
            assert scores() == sorted(scores(), reverse=True) and scores()[0] == best_first[0]
            drawing = page.locator("#drawings img").first
            drawing.wait_for(timeout=30_000)
            assert drawing.evaluate("img => img.complete && img.naturalWidth") >= 480  # drawn, upscaled
            assert page.locator("#triplets-json").get_by_text("triplets.json").count() >= 1
            shot = tmp_path / "web_demo.png"
            page.screenshot(path=str(shot), full_page=True)
            with Image.open(shot) as im:
                assert im.size[0] == 1280 and np.asarray(im.convert("L")).std() > 10  # not a blank page
            if os.environ.get("RLIPV2_WEB_DEMO_SCREENSHOT"):  # README's picture (docs/images/web_demo.png), 128 colours
                with Image.open(shot) as im:
                    im.convert("RGB").quantize(128, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
                        os.environ["RLIPV2_WEB_DEMO_SCREENSHOT"], optimize=True)

            # errors show in the page, and the server keeps serving
            page.locator("#objects textarea").fill(" , ")
            page.locator("#detect").click()
            status.get_by_text("object labels: empty").wait_for(timeout=60_000)
            page.locator("#objects textarea").fill(OBJECTS)
            page.locator("#images input[type=file]").set_input_files(str(broken))
            page.locator("#detect").click()
            status.get_by_text("image 'broken.jpg': not a readable image").wait_for(timeout=60_000)
            assert bench.answers(server.url)
        finally:
            browser.close()
    assert "Traceback" not in server.log()


@pytest.mark.slow  # 20 requests through a server subprocess (~40 s)
def test_load_20_concurrent_api_requests(gradio, tmp_path):
    out = tmp_path / "load.json"
    bench = _tool("benchmark_web_demo")
    assert bench.main(["--model", "tiny", "--requests", "20", "--timeout", "400", "--json", str(out)]) == 0
    fig = json.loads(out.read_text())
    assert fig["succeeded"] == 20 and fig["server_up_after"] and fig["p95_s"] >= fig["p50_s"] > 0


def test_percentile():
    bench = _tool("benchmark_web_demo")
    assert bench.percentile([3.0, 1.0, 2.0, 4.0], 50) == 2.5
    assert bench.percentile(list(map(float, range(21))), 95) == pytest.approx(19.0)
    assert bench.percentile([7.0], 95) == 7.0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
