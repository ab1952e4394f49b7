"""Use sites of a project's own retry decorators: the names that say retry, the
definitions a run can reach, and their decisions.

A project often wraps its retry once (``cinder.utils.retry``, freqtrade's
``retrier``, metaflow's ``aws_retry``) and decorates dozens of functions with
it. The codemods answer for the definition (rewritten, or refused as a retry
engine); :mod:`codemods.project_retry` answers for each use, with the
definition's own decision when the run reaches it:

* in the same file: the decision the other codemods took on it in this run;
* in another file of the same run (``durable codemod PROJECT_DIR``):
  :func:`build_index` reads, before the run, every decorator imported from the
  project's own modules, finds the files defining them and asks the codemods
  about those definitions once (:class:`ProjectIndex`);
* else only the shape is known: a decorator imported from the project's own
  modules whose name says retry (:func:`says_retry`).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ._base import Site, _names_module
from ._project import first_party_modules

#: words that make a name a retry (``retry``, ``retrier``, ``aws_retry``, ``with_retries``)
_RETRY_WORDS = frozenset({"retry", "retries", "retrier", "retrying", "retryable", "retried"})
#: a word before the retry word that makes it something else (``no_retry``, ``on_retry``,
#: ``log_retry``, ``should_retry``)
_NOT_BEFORE = frozenset(
    {"no", "not", "non", "never", "without", "skip", "disable", "disabled", "dont", "on",
     "log", "count", "record", "track", "report", "is", "should", "can", "get", "set",
     "max", "num"}
)  # fmt: skip
#: a word after it that makes it a value, not a retry (``retry_after`` is the Retry-After
#: header, ``retry_count``, ``retry_delay``, ``retry_callback``)
_NOT_AFTER = frozenset(
    {"after", "count", "counter", "counts", "number", "delay", "delays", "header", "headers",
     "state", "callback", "hook", "hooks", "log", "logger", "metric", "metrics", "stats",
     "info", "id"}
)  # fmt: skip


def _words(name: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    return [w for w in spaced.lower().split("_") if w]


def says_retry(name: str) -> bool:
    """The name of a decorator says it retries: ``retry``, ``retrier``, ``aws_retry``,
    ``retry_on_db_error``, ``with_retries``, ``RetryDecorator``, ``autoretry``; not
    ``retry_after_header``, ``no_retry``, ``on_retry``, ``retry_count``."""
    words = _words(name.rsplit(".", 1)[-1])
    for i, word in enumerate(words):
        retry = word in _RETRY_WORDS or (
            word.endswith(("retry", "retries")) and not word.startswith(("no", "non"))
        )
        if not retry:
            continue
        if any(w in _NOT_BEFORE for w in words[:i]):
            continue
        if i + 1 < len(words) and words[i + 1] in _NOT_AFTER:
            continue
        return True
    return False


@dataclass(frozen=True)
class Definition:
    """A decorator's definition the run reaches, and the codemods' decision on it."""

    #: where it is defined: a path (another file) or "" (this file)
    path: str
    line: int
    end_line: int
    #: the codemods' decision on the definition (the site overlapping it), None if none
    decision: Site | None = None

    def where(self) -> str:
        return f"{self.path}:{self.line}" if self.path else f"line {self.line}"


@dataclass(frozen=True)
class ProjectIndex:
    """The definitions of the project's own decorators used in a run.

    ``definitions`` maps a file's key (:func:`module_key`) and a name to the definition;
    ``modules`` maps a dotted module name the run's files import to the key of the file
    of the run that is that module (``cinder.utils`` -> ``/src/cinder/utils``).
    """

    definitions: dict[tuple[str, str], Definition] = field(default_factory=dict)
    modules: dict[str, str] = field(default_factory=dict)

    @property
    def names(self) -> frozenset[str]:
        return frozenset(name for _key, name in self.definitions)

    def find(self, qualified: str, filename: str) -> Definition | None:
        """The definition ``qualified`` (``cinder.utils.retry``, ``.s3util.aws_retry``, as
        the use site in ``filename`` imports it) names, if the run holds it."""
        module, _, name = qualified.rpartition(".")
        key = _relative_key(module, filename) if module.startswith(".") else None
        key = key or self.modules.get(module)
        return self.definitions.get((key, name)) if key else None


def use_reason(label: str, module: str, definition: Definition | None) -> tuple[str, str] | None:
    """(reason, the definition's policy) for a use of the project's decorator ``label``
    (``utils.retry``) imported from ``module`` ("" when defined in the file), or None
    when it is not a retry: the run reads its definition and finds no retry there, and
    its name does not say retry."""
    decision = definition.decision if definition else None
    if decision is None and not says_retry(label):
        return None
    mine = f"a use of the project's own retry decorator `@{label}`"
    if definition is None:
        origin = f" (from {module})" if module else ""
        return (
            f"{mine}{origin}, defined in a file outside this run: its policy lives in its "
            "definition; run the codemod on the project's directory to read the "
            "definition's decision, then make each use a step with that policy",
            "",
        )
    where = definition.where()
    if decision is None:
        return (
            f"{mine}, defined at {where}, where the codemods read no retry: "
            "check its policy by hand",
            "",
        )
    if decision.action == "rewritten":
        return (
            f"{mine}, defined at {where}, which the {decision.selector} codemod "
            "rewrites into a step: each use becomes a step with it",
            decision.policy,
        )
    return (
        f"{mine}, defined at {where}: {decision.selector} {decision.action}: {decision.reason}",
        decision.policy,
    )


def _relative_key(module: str, filename: str) -> str:
    """The file key of a relative import's module (``..utils`` from ``pkg/sub/mod.py``)."""
    level = len(module) - len(module.lstrip("."))
    rest = module[level:]
    folder = Path(filename).resolve().parent
    for _ in range(level - 1):
        folder = folder.parent
    target = folder.joinpath(*rest.split(".")) if rest else folder
    return target.as_posix()


def _module_file(module: str, keys: Iterable[str]) -> str | None:
    """The key of the run's file that is the absolute ``module``: its path ends with the
    module's path and its top-level package is not inside another package."""
    tail = "/" + module.replace(".", "/")
    for key in keys:
        if key.endswith(tail) and not (Path(key[: -len(tail)]) / "__init__.py").is_file():
            return key
    return None


def module_key(path: str | Path) -> str:
    """A file's key: its absolute path without ``.py`` and without ``/__init__``."""
    key = Path(path).resolve().as_posix().removesuffix(".py")
    return key.removesuffix("/__init__")


#: package folders that hold third-party code copied into a project (``pip._vendor.tenacity``)
_VENDORED = frozenset(
    {"_vendor", "vendor", "vendored", "_vendored", "extern", "_extern", "third_party"}
)


def vendored(qualified: str) -> bool:
    """``qualified`` names code a project copied from a library, not its own."""
    return any(part in _VENDORED for part in qualified.split("."))


def is_first_party(qualified: str, filename: str, first_party: frozenset[str]) -> bool:
    """``qualified`` is imported from the project's own code: a relative import, a module
    ``first_party`` names, or, for a file not on disk (source given with a path such as
    ``cinder/volume/rbd.py``), a top-level package its path names."""
    if vendored(qualified):
        return False
    if qualified.startswith("."):
        return True
    module = qualified.rpartition(".")[0]
    if not module:
        return False
    if any(_names_module(name, module) for name in first_party):
        return True
    if not first_party and not Path(filename).is_file():
        parts = PurePosixPath(filename.replace("\\", "/")).parts[:-1]
        return module.split(".")[0] in parts
    return False


def definition_spans(tree: ast.Module) -> dict[str, tuple[int, int]]:
    """Qualified name (as libcst names them: ``A.m``, ``f.<locals>.g``) -> first line
    (decorators included) and last line of each def, class and module-level assignment."""
    spans: dict[str, tuple[int, int]] = {}

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = prefix + node.name
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                if not _is_overload(node):  # a typing stub is not the definition
                    spans.setdefault(name, (first, node.end_lineno or node.lineno))
                inner = f"{name}.<locals>." if not isinstance(node, ast.ClassDef) else f"{name}."
                visit(node.body, inner)
            elif isinstance(node, ast.Assign | ast.AnnAssign) and not prefix:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if isinstance(target, ast.Name):
                        spans[target.id] = (node.lineno, node.end_lineno or node.lineno)
            elif isinstance(node, ast.If | ast.Try) and not prefix:  # `if TYPE_CHECKING:` ...
                for block in (node.body, getattr(node, "orelse", [])):
                    visit(block, prefix)

    visit(tree.body, "")
    return spans


def _is_overload(node: ast.AST) -> bool:
    return any(
        (isinstance(d, ast.Name) and d.id == "overload")
        or (isinstance(d, ast.Attribute) and d.attr == "overload")
        for d in getattr(node, "decorator_list", [])
    )


def decision_for(sites: Iterable[Site], span: tuple[int, int]) -> Site | None:
    """The site that answers for a definition spanning ``span``: the one starting closest
    to its first line among those overlapping it (a rewritten one first)."""
    start, end = span
    near = [s for s in sites if s.line <= end and max(s.end_line, s.line) >= start]
    near.sort(key=lambda s: (s.action != "rewritten", abs(s.line - start), s.line))
    return near[0] if near else None


def resolve(
    dotted: str, scopes: list[str], imports: dict[str, str], spans: dict[str, tuple[int, int]]
) -> tuple[str, str] | None:
    """What a decorator's dotted name is bound to: ``("local", qualname)`` for a definition
    of the file (looked up from the innermost scope out, as libcst names them: ``A._retry``,
    ``f.<locals>.deco``), ``("import", qualified)`` for an imported name
    (``cinder.utils.retry``, ``.s3util.aws_retry``), else None."""
    for i in range(len(scopes), -1, -1):
        prefix = ".".join(scopes[:i])
        qualname = f"{prefix}.{dotted}" if prefix else dotted
        if qualname in spans:
            return "local", qualname
    head, _, tail = dotted.partition(".")
    if head in imports:
        return "import", f"{imports[head]}.{tail}" if tail else imports[head]
    return None


@dataclass(frozen=True)
class Use:
    """A use of a project retry decorator: the decorator's line, the function's last
    line and its ``def`` line (in the code analysed), the reason and the policy read."""

    line: int
    end_line: int
    def_line: int
    reason: str
    policy: str


def find_uses(
    code: str,
    filename: str,
    earlier: Iterable[Site] = (),
    project: ProjectIndex | None = None,
    original: str | None = None,
) -> list[Use]:
    """Every function of ``code`` decorated with a project retry decorator, answered.

    ``earlier``: the other codemods' sites in the file, with the lines of ``original``
    (the file as read, when earlier codemods changed ``code``): a decorator defined in
    the file is answered with the one overlapping its definition. ``project``: the
    definitions other files of the run hold. An ``ast`` pass (libcst's scope analysis
    costs seconds on a large file, for a codemod that never rewrites).
    """
    try:
        tree = ast.parse(code)
        spans = definition_spans(ast.parse(original) if original is not None else tree)
    except (SyntaxError, ValueError):
        return []
    imports = imported_names(tree)
    sites = list(earlier)
    first_party = first_party_modules(filename)
    lines = [line.encode("utf-8") for line in code.splitlines(keepends=True)]

    def definition_of(dotted: str, scopes: list[str]) -> tuple[str, Definition | None] | None:
        found = resolve(dotted, scopes, imports, spans)
        if found is None:
            return None
        kind, qualified = found
        if kind == "local":
            span = spans[qualified]
            return "", Definition("", span[0], span[1], decision_for(sites, span))
        module = qualified.rpartition(".")[0]
        if vendored(qualified):
            return None
        definition = project.find(qualified, filename) if project else None
        if definition is not None:  # a file of the run defines it: the project's own
            return module, definition
        if is_first_party(qualified, filename, first_party):
            return module, None
        return None

    uses: list[Use] = []

    def visit(body: list[ast.stmt], scopes: list[str]) -> None:
        for node in body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                if not isinstance(node, ast.ClassDef):
                    use = _use_of(node, scopes, definition_of, lines)
                    if use is not None:
                        uses.append(use)
                inner = node.name if isinstance(node, ast.ClassDef) else f"{node.name}.<locals>"
                visit(node.body, [*scopes, inner])
            else:
                for field_name in ("body", "orelse", "finalbody", "handlers"):
                    block = getattr(node, field_name, None)
                    if isinstance(block, list):
                        visit([b for b in block if isinstance(b, ast.stmt)], scopes)
                        for handler in block:
                            if isinstance(handler, ast.ExceptHandler):
                                visit(handler.body, scopes)

    visit(tree.body, [])
    uses.sort(key=lambda u: u.line)
    return uses


def _use_of(
    node: ast.FunctionDef | ast.AsyncFunctionDef,
    scopes: list[str],
    definition_of: Callable[[str, list[str]], tuple[str, Definition | None] | None],
    lines: list[bytes],
) -> Use | None:
    """The first decorator of ``node`` that is a project retry decorator, answered."""
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        label = _dotted(target)
        found = definition_of(label, scopes) if label else None
        if found is None:
            continue
        module, definition = found
        answer = use_reason(label, module, definition)
        if answer is None:
            continue
        reason, definition_policy = answer
        policy = _policy_of(decorator, definition_policy, lines)
        end = node.end_lineno or node.lineno
        return Use(decorator.lineno, end, node.lineno, reason, policy)
    return None


def _policy_of(decorator: ast.expr, definition_policy: str, lines: list[bytes]) -> str:
    """The decorator call's arguments as written, and the definition's policy."""
    parts: list[str] = []
    if isinstance(decorator, ast.Call):
        for arg in decorator.args:
            parts.append(_text(arg, lines))
        for keyword in decorator.keywords:
            value = _text(keyword.value, lines)
            parts.append(f"{keyword.arg}={value}" if keyword.arg else f"**{value}")
    read = ", ".join(parts)
    if isinstance(decorator, ast.Call) and not read and not definition_policy:
        read = "the decorator's defaults"
    if definition_policy:
        return f"{read} (definition: {definition_policy})" if read else definition_policy
    return read


def _text(node: ast.expr, lines: list[bytes]) -> str:
    """The source text of ``node`` (``lines``: the code's lines, UTF-8, as ``ast``'s
    column offsets count), on one line."""
    first, last = node.lineno - 1, (node.end_lineno or node.lineno) - 1
    start, end = node.col_offset, node.end_col_offset
    if first == last:
        chunk = lines[first][start:end]
    else:
        chunk = lines[first][start:] + b"".join(lines[first + 1 : last]) + lines[last][:end]
    return " ".join(chunk.decode("utf-8", errors="replace").split())


def imported_names(tree: ast.Module) -> dict[str, str]:
    """Local name -> the module path it is imported as (``utils`` -> ``cinder.utils``,
    ``retry`` -> ``.retry.retry``), for module-level imports."""
    out: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            for alias in node.names:
                local = alias.asname or alias.name
                joined = (
                    f"{base}.{alias.name}" if base and not base.endswith(".") else base + alias.name
                )
                out[local] = joined
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    out[alias.asname] = alias.name
                else:
                    head = alias.name.split(".")[0]
                    out.setdefault(head, head)
    return out


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        head = _dotted(node.value)
        return f"{head}.{node.attr}" if head else ""
    return ""


def used_decorators(source: str) -> set[str]:
    """The qualified names of the imported decorators ``source`` applies (as imported:
    ``cinder.utils.retry``, ``.s3util.aws_retry``)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return set()
    imports = imported_names(tree)
    found: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        for decorator in node.decorator_list:
            target = decorator.func if isinstance(decorator, ast.Call) else decorator
            name = _dotted(target)
            head, _, tail = name.partition(".")
            if name and head in imports:
                found.add(f"{imports[head]}.{tail}" if tail else imports[head])
    return found


def build_index(files: Iterable[str], selectors: Iterable[str]) -> ProjectIndex:
    """The definitions of the project's own decorators the ``files`` of a run use, each with
    the decision of the ``selectors`` codemods on it (definitions in files outside the run
    are not read)."""
    from .runner import GENERATED_MARKER, transform_source  # runner imports the codemods

    paths = {module_key(f): f for f in files}
    modules: dict[str, str | None] = {}
    wanted: dict[str, set[str]] = {}  # file key -> names defined there the run uses
    for path in paths.values():
        source = _read(path)
        if source is None or "@" not in source or "import" not in source:
            continue
        for qualified in used_decorators(source):
            if vendored(qualified):
                continue
            module, _, name = qualified.rpartition(".")
            if module.startswith("."):
                key: str | None = _relative_key(module, path)
            else:
                if module not in modules:
                    modules[module] = _module_file(module, paths) if module else None
                key = modules[module]
            if key is not None and key in paths:
                wanted.setdefault(key, set()).add(name)
    definitions: dict[tuple[str, str], Definition] = {}
    for file_key, names in wanted.items():
        path = paths[file_key]
        source = _read(path)
        if source is None or GENERATED_MARKER in source:
            continue
        try:
            spans = definition_spans(ast.parse(source))
            _code, sites = transform_source(source, tuple(selectors), path)
        except Exception:  # a definition the codemods cannot read: its uses go by name
            continue
        for name in names:
            span = spans.get(name)
            if span is None:
                continue
            decision = decision_for(sites, span)
            definitions[(file_key, name)] = Definition(path, span[0], span[1], decision)
    found = {module: key for module, key in modules.items() if key is not None}
    return ProjectIndex(definitions, found)


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


__all__ = [
    "Definition",
    "ProjectIndex",
    "build_index",
    "decision_for",
    "definition_spans",
    "find_uses",
    "is_first_party",
    "says_retry",
    "use_reason",
]
