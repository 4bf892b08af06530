"""The logging rule, checked over the source: a log call's message is a literal template.

loguru formats a message with ``str.format`` when the call has arguments, and the text
format's template is itself formatted; text from a caller inside either acts as a
template (``{0.__class__}``, attribute walks to ``os.environ``) or a colour tag. So every
``logger.<level>(...)`` (also after ``bind``/``opt``, and through a logger kept in a
variable such as ``self.log``) takes a string literal as its message, and caller values go
in as keyword arguments.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("notifyctl", "daemon", "web", "mock", "bench")
LEVELS = {"trace", "debug", "info", "success", "warning", "error", "critical", "exception", "log"}


def _log_calls(tree: ast.AST):
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr not in LEVELS:
            continue
        target = ast.unparse(node.func.value).lower()  # logger, self.log, _log(m), _LazyLog(...)
        if "log" in target:
            yield node


def _message(call: ast.Call) -> ast.expr | None:
    args = call.args[1:] if call.func.attr == "log" else call.args
    return args[0] if args else None


SOURCES = sorted(path for package in PACKAGES for path in (ROOT / package).rglob("*.py"))


def test_the_source_has_log_calls_to_check():
    calls = [
        call for path in SOURCES for call in _log_calls(ast.parse(path.read_text(), str(path)))
    ]
    assert len(calls) > 40  # the walk finds the calls, so an empty pass below means something


@pytest.mark.parametrize("path", SOURCES, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_log_message_is_a_literal_template(path):
    offenders = []
    for call in _log_calls(ast.parse(path.read_text(), str(path))):
        message = _message(call)
        if message is None:
            continue
        literal = isinstance(message, ast.Constant) and isinstance(message.value, str)
        if not literal:
            offenders.append(f"{path.relative_to(ROOT)}:{call.lineno}: {ast.unparse(message)}")
    assert not offenders, "log messages built from values:\n" + "\n".join(offenders)


@pytest.mark.parametrize("path", SOURCES, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_log_field_has_a_name_that_says_what_it_holds(path):
    """Keyword arguments become JSON fields: ``n``, ``e`` or ``ms`` tell a reader nothing,
    and one name must not mean two things (``status``: a message's, ``http_status``)."""
    offenders = []
    for call in _log_calls(ast.parse(path.read_text(), str(path))):
        for keyword in call.keywords:
            if keyword.arg is not None and len(keyword.arg) < 3:
                offenders.append(f"{path.relative_to(ROOT)}:{call.lineno}: {keyword.arg}=")
    assert not offenders, "log fields with cryptic names:\n" + "\n".join(offenders)
