"""The README and docs/: a short first page whose commands are the real ones, and no dead links.

No TensorFlow: this reads Markdown files and nothing else.
"""

import glob
import os
import re

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(REPO, "README.md")
PAGES = sorted(glob.glob(os.path.join(REPO, "docs", "*.md")))
MAIN_JOB = "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/python -m koalarization.demo"
# the stages the README's table sends a reader to, one page each
STAGE_PAGES = ("records", "training", "colorize", "video", "serving", "evaluation", "performance", "paper", "development")

LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def prose(text):
    """The text without fenced code blocks, indented code blocks and inline code: links there are not links."""
    text = re.sub(r"^```.*?^```[^\n]*$", "", text, flags=re.S | re.M)
    text = re.sub(r"^(?: {4}|\t).*$", "", text, flags=re.M)
    return re.sub(r"(`+).*?\1", "", text)


def anchors(path):
    """GitHub's heading anchors for a Markdown file: lower case, punctuation dropped, spaces -> '-'."""
    seen, found = {}, set()
    for heading in re.findall(r"^#{1,6}\s+(.*?)\s*#*\s*$", _headings_text(path), flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        found.add(slug if n == 0 else f"{slug}-{n}")
    return found


def _headings_text(path):
    """The file without fenced code (a '# comment' in a shell block is not a heading), inline code kept
    as its text, as GitHub does when it makes the anchor."""
    text = re.sub(r"^```.*?^```[^\n]*$", "", read(path), flags=re.S | re.M)
    return text.replace("`", "")


def links(path):
    return LINK.findall(prose(read(path)))


def test_readme_is_one_short_page():
    lines = read(README).splitlines()
    assert len(lines) <= 120, f"README.md has {len(lines)} lines; the detail belongs in docs/"


def test_readme_commands_are_the_main_job_and_exactly_what_ci_runs():
    text = read(README)
    ci = [line.strip() for line in read(os.path.join(REPO, ".ci", "run")).splitlines() if line.startswith("python3 -m venv")]
    assert len(ci) == 1, ".ci/run should run one set-up-and-test command line"
    commands = [line.strip() for line in text.splitlines() if line.startswith("    python3 -m venv")]
    assert MAIN_JOB in commands, "the README's main job"
    assert ci[0] in commands, f"the README's test command must be .ci/run's: {ci[0]}"


def test_readme_links_a_page_for_every_stage():
    linked = {os.path.normpath(os.path.join(REPO, t.split("#")[0])) for t in links(README)}
    missing = [p for p in STAGE_PAGES if os.path.join(REPO, "docs", p + ".md") not in linked]
    assert not missing, f"README.md links no docs page for: {missing}"
    unlinked = [os.path.basename(p) for p in PAGES if p not in linked]
    assert not unlinked, f"docs pages the README never links to: {unlinked}"


@pytest.mark.parametrize("page", [README] + PAGES, ids=lambda p: os.path.relpath(p, REPO))
def test_every_relative_link_resolves(page):
    broken = []
    for target in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, flags=re.I):  # http:, https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        path = os.path.normpath(os.path.join(os.path.dirname(page), file)) if file else page
        if not os.path.exists(path):
            broken.append(f"{target} (no such file)")
        elif anchor and path.endswith(".md") and anchor not in anchors(path):
            broken.append(f"{target} (no such heading in {os.path.relpath(path, REPO)})")
    assert not broken, f"{os.path.relpath(page, REPO)}: broken links: {broken}"
