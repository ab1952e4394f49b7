"""``codemods.decide``: the codemods' decision per site, in memory, never raising."""

from __future__ import annotations

from codemods import decide

LOOP = """\
import time


def fetch(client):
    for attempt in range(5):
        try:
            return client.get()
        except ConnectionError:
            time.sleep(2 ** attempt)
    raise RuntimeError("gave up")
"""


def test_decide_reports_the_rewrite_its_range_and_policy() -> None:
    (site,) = decide(LOOP, "pkg/fetch.py")
    assert site.selector == "retry-loop"
    assert site.action == "rewritten"
    assert (site.line, site.end_line) == (5, 9)
    assert site.policy == "5 attempts, 1s doubling, on ConnectionError"


def test_decide_on_a_file_that_does_not_parse_is_empty() -> None:
    assert decide("def broken(:\n") == []
    assert decide("") == []


def test_decide_writes_nothing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "fetch.py"
    path.write_text(LOOP)
    decide(LOOP, str(path))
    assert path.read_text() == LOOP


def test_decorator_site_spans_the_function() -> None:
    source = (
        "import tenacity\n\n\n"
        "@tenacity.retry(stop=tenacity.stop_after_attempt(3), reraise=True)\n"
        "def ping(host):\n"
        "    return host.ping()\n"
    )
    (site,) = decide(source)
    assert site.selector == "tenacity"
    assert site.action == "rewritten"
    assert (site.line, site.end_line) == (4, 6)
    assert site.policy.startswith("3 attempts")


def test_nested_calls_of_one_retry_construct_are_one_site() -> None:
    source = (
        "from tenacity import retry\n\n"
        "class Embedder:\n"
        "    def embed(self, items, **retry_kwargs):\n"
        "        return retry(**retry_kwargs)(self.__call__)(items)\n"
    )
    (site,) = decide(source)
    assert site.action == "kept" and site.line == 5
