"""The docs point only at files a user has: no reference material outside the repository."""
import glob
import os

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
DOCS = sorted(glob.glob(os.path.join(REPO, "docs", "*.md"))) + [
    os.path.join(REPO, p) for p in ("README.md", "projects/RLIPv2/README.md", "datasets/README.md")]


def test_docs_do_not_point_outside_the_repository():
    for path in DOCS:
        text = open(path, encoding="utf-8").read()
        for bad in ("../shared", "shared/reference", "rlipv2_design.md", "design notes", "codebase_conventions.md"):
            assert bad not in text, f"{os.path.relpath(path, REPO)} refers to '{bad}', which users do not have"

