"""The line on stderr while a first run compiles: said during the wait, once per layout, never for a quick call."""

from __future__ import annotations

import io
import time

from streamdiv.progress import CompileNotice


def test_a_slow_first_call_is_announced_while_it_runs_and_only_once():
    stream = io.StringIO()
    notice = CompileNotice(delay=0.05, stream=stream)
    with notice.around(("hard probabilities", "<f4"), "hard probabilities, float32 predictions"):
        time.sleep(0.3)
        said_during_the_call = stream.getvalue()
    assert said_during_the_call.startswith("streamdiv: compiling the kernels for this layout "
                                           "(hard probabilities, float32 predictions), once")
    with notice.around(("hard probabilities", "<f4"), "hard probabilities, float32 predictions"):
        time.sleep(0.2)
    assert stream.getvalue() == said_during_the_call  # the same layout again: nothing more


def test_a_quick_first_call_says_nothing():
    stream = io.StringIO()
    notice = CompileNotice(delay=0.5, stream=stream)
    with notice.around(("binary labels", "<f8"), "binary labels, float64 predictions"):
        pass
    time.sleep(0.6)
    assert stream.getvalue() == ""
