"""The reference pages, generated from jupyter_memguard itself so that they cannot drift.

Object types (each one a cross-reference role and an entry in ``objects.inv``):

============  ==========================================  ===================================
role          one entry per                               from
============  ==========================================  ===================================
setting       ``c.MemGuard.<name>``                       ``app.MemGuard``'s config traits
endpoint      ``METHOD /api/memguard/...``                ``views.handlers.handlers()``
event         event kind (``memory_warning``, ...)        ``views/event_schemas/*/v2.yaml``
clicommand    ``jupyter memguard <command>``              ``views.cli.build_parser()``
verdict       verdict name                                ``models.VERDICTS``
metric        Prometheus metric                           ``views.metrics``
labsetting    JupyterLab setting                          ``labextension/schema/plugin.json``
============  ==========================================  ===================================

Directives: ``memguard-settings``, ``memguard-events``, ``memguard-metrics`` and
``memguard-lab-settings`` generate a whole list; ``memguard-endpoint``, ``memguard-verdict``
and ``memguard-command`` generate one entry each from the code and keep the hand-written
description written under them. When the build has read every page, a name the code has and
the pages lack (or the other way round) is a warning, so ``sphinx-build -W`` fails on drift.
"""

from __future__ import annotations

import argparse
import inspect
import json
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml
from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
LAB_SCHEMA = ROOT / "labextension" / "schema" / "plugin.json"
SCREENSHOTS = ROOT / "docs" / "_static" / "screenshots"
HTTP_METHODS = ("get", "head", "post", "put", "patch", "delete")
KINDS = ("setting", "endpoint", "event", "clicommand", "verdict", "metric", "labsetting")


# --------------------------------------------------------------------------- the code's lists
def settings_traits() -> dict[str, Any]:
    """Every ``c.MemGuard`` setting: name → trait, in the order app.py defines them."""
    from jupyter_memguard.app import MemGuard

    traits = MemGuard.class_own_traits(config=True)
    order = _source_order(MemGuard)
    return dict(sorted(traits.items(), key=lambda item: order.get(item[0], (1e9, item[0]))))


def settings_sections() -> list[tuple[str, list[str]]]:
    """The settings grouped as app.py groups them (its ``# --- title`` comments)."""
    from jupyter_memguard.app import MemGuard

    source = inspect.getsource(MemGuard)
    traits = settings_traits()
    sections: list[tuple[str, list[str]]] = [("Settings", [])]
    for line in source.splitlines():
        title = re.match(r"\s+# --- (.+)", line)
        if title:
            sections.append((title.group(1).strip(), []))
            continue
        name = re.match(r"\s{4}(\w+) = \w+\(", line)
        if name and name.group(1) in traits:
            sections[-1][1].append(name.group(1))
    placed = {n for _, names in sections for n in names}
    sections[-1][1].extend(n for n in traits if n not in placed)
    return [(title.capitalize(), names) for title, names in sections if names]


def _source_order(cls: type) -> dict[str, tuple[int, str]]:
    lines = inspect.getsource(cls).splitlines()
    order = {}
    for number, line in enumerate(lines):
        found = re.match(r"\s{4}(\w+) = \w+\(", line)
        if found:
            order.setdefault(found.group(1), (number, found.group(1)))
    return order


def endpoints() -> dict[str, tuple[str, str, type]]:
    """``METHOD /path`` → (method, path, handler class), for every route and method."""
    from tornado import web

    from jupyter_memguard.views.handlers import handlers

    found = {}
    for pattern, cls in handlers():
        path = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", pattern)
        for method in HTTP_METHODS:
            if getattr(cls, method) is not getattr(web.RequestHandler, method):
                found[f"{method.upper()} {path}"] = (method.upper(), path, cls)
    return found


def event_schemas() -> dict[str, dict[str, Any]]:
    """Event kind → its schema (the versioned yaml file the server registers)."""
    from jupyter_memguard.views.events import EVENT_KINDS, SCHEMA_DIR, SCHEMA_VERSION

    return {
        kind: yaml.safe_load((SCHEMA_DIR / kind / f"{SCHEMA_VERSION}.yaml").read_text())
        for kind in EVENT_KINDS
    }


def schema_files() -> set[str]:
    from jupyter_memguard.views.events import SCHEMA_DIR, SCHEMA_VERSION

    return {p.parent.name for p in SCHEMA_DIR.glob(f"*/{SCHEMA_VERSION}.yaml")}


def cli_commands() -> dict[str, argparse.ArgumentParser]:
    """``jupyter memguard`` command → its parser."""
    from jupyter_memguard.views.cli import build_parser

    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def cli_help(command: str) -> str:
    from jupyter_memguard.views.cli import build_parser

    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                if choice.dest == command:
                    return choice.help or ""
    return ""


def verdicts() -> dict[str, Any]:
    from jupyter_memguard.models import VERDICTS

    return dict(VERDICTS)


def metrics() -> dict[str, Any]:
    """Exported name → collector, for every metric memguard serves on ``/metrics``."""
    from prometheus_client.metrics import MetricWrapperBase

    from jupyter_memguard.views import metrics as module

    found = {}
    for value in vars(module).values():
        if isinstance(value, MetricWrapperBase):
            name = value._name + ("_total" if value._type == "counter" else "")
            found[name] = value
    return dict(sorted(found.items()))


def lab_settings() -> dict[str, dict[str, Any]]:
    return json.loads(LAB_SCHEMA.read_text())["properties"]


def expected(kind: str) -> set[str]:
    """The names of one object type that the code has (each must have its entry)."""
    return set(
        {
            "setting": settings_traits,
            "endpoint": endpoints,
            "event": event_schemas,
            "clicommand": cli_commands,
            "verdict": verdicts,
            "metric": metrics,
            "labsetting": lab_settings,
        }[kind]()
    )


# --------------------------------------------------------------------------- text helpers
_RST_SPECIAL = re.compile(r"([\\`*_|\[\]<>:])")


def text(value: str) -> str:
    """Plain text for RST (help strings and schema descriptions are not markup)."""
    return _RST_SPECIAL.sub(r"\\\1", " ".join(str(value).split()))


def literal(value: Any) -> str:
    shown = str(value)
    return f"``{shown}``" if shown.strip() else "(empty)"


def trait_type(trait: Any) -> str:
    from traitlets import Bool, Float, Int, List, Unicode, Union

    def one(t: Any) -> str:
        if isinstance(t, Union):
            return " or ".join(one(x) for x in t.trait_types)
        if isinstance(t, List):
            inner = getattr(t, "_trait", None)
            return f"list of {one(inner)}" if inner is not None else "list"
        for kind, name in ((Bool, "bool"), (Int, "int"), (Float, "float"), (Unicode, "str")):
            if isinstance(t, kind):
                return name
        return type(t).__name__

    shown = one(trait)
    return f"{shown} or None" if getattr(trait, "allow_none", False) else shown


def parameter_text(parse: Callable[..., Any]) -> str:
    """What a handler's declared query parameter accepts (from its parser's closure)."""
    bound = inspect.getclosurevars(parse).nonlocals
    kind = parse.__qualname__.split(".")[0]
    if kind == "_choice":
        return "one of " + ", ".join(literal(c) for c in bound["choices"])
    if kind == "_number":
        what = "an integer" if bound.get("integer") else "a number"
        return f"{what} from {bound['minimum']:g} to {bound['maximum']:g}"
    if kind == "_text":
        return f"text, at most {bound['max_length']} characters"
    if kind == "_verdict":
        return "a verdict name (see :doc:`verdicts`)"
    doc = (parse.__doc__ or "").strip().splitlines()
    return text(doc[0]) if doc else "a value"


def table(headers: list[str], rows: Iterable[list[str]], widths: str | None = None) -> list[str]:
    lines = [".. list-table::", "   :header-rows: 1"]
    if widths:
        lines.append(f"   :widths: {widths}")
    lines.append("")
    for row in [headers, *rows]:
        first, *rest = row
        lines.append(f"   * - {first}")
        lines.extend(f"     - {cell}" for cell in rest)
    lines.append("")
    return lines


# --------------------------------------------------------------------------- object types
def _setting_node(env: BuildEnvironment, sig: str, signode: addnodes.desc_signature) -> str:
    signode += addnodes.desc_addname("c.MemGuard.", "c.MemGuard.")
    signode += addnodes.desc_name(sig, sig)
    return sig


def _command_node(env: BuildEnvironment, sig: str, signode: addnodes.desc_signature) -> str:
    signode += addnodes.desc_addname("jupyter memguard ", "jupyter memguard ")
    signode += addnodes.desc_name(sig, sig)
    return sig


def _documented(env: BuildEnvironment) -> dict[str, dict[str, str]]:
    if not hasattr(env, "memguard_documented"):
        env.memguard_documented = {kind: {} for kind in KINDS}
    return env.memguard_documented


class Generated(SphinxDirective):
    """Base: render generated RST in place, and note which names this page documents."""

    kind = ""
    has_content = True

    def note(self, name: str) -> None:
        documented = _documented(self.env)[self.kind]
        if name in documented and documented[name] != self.env.docname:
            log.warning(
                "%s %r is documented twice (%s and %s)",
                self.kind,
                name,
                documented[name],
                self.env.docname,
                location=self.get_location(),
            )
        documented[name] = self.env.docname

    def render(self, lines: list[str]) -> list[nodes.Node]:
        container = nodes.section() if self._with_titles else nodes.container()
        source = f"<generated by memguard_reference for {self.env.docname}>"
        view = StringList(lines, source=source)
        if self._with_titles:
            nested_parse_with_titles(self.state, view, container)
        else:
            self.state.nested_parse(view, self.content_offset, container)
        return list(container.children)

    _with_titles = False

    def hand_written(self) -> list[str]:
        return ["", *("   " + line if line.strip() else "" for line in self.content), ""]


class SettingsDirective(Generated):
    """Every ``c.MemGuard`` setting, grouped as app.py groups them."""

    kind = "setting"
    _with_titles = True

    def run(self) -> list[nodes.Node]:
        traits = settings_traits()
        lines: list[str] = []
        for title, names in settings_sections():
            lines += [title, "-" * len(title), ""]
            for name in names:
                trait = traits[name]
                self.note(name)
                lines += [
                    f".. setting:: {name}",
                    "",
                    f"   :Type: {trait_type(trait)}",
                    f"   :Default: {literal(repr(trait.default()))}",
                    f"   :Command line: ``--MemGuard.{name}=...``",
                    "",
                    f"   {text(trait.help)}",
                    "",
                ]
        return self.render(lines)


class SettingsTableDirective(Generated):
    """A compact table of every setting with its default, linked to its entry."""

    kind = "setting"

    def run(self) -> list[nodes.Node]:
        rows = [
            [f":setting:`{name}`", literal(repr(t.default())), text(_first_sentence(t.help))]
            for name, t in settings_traits().items()
        ]
        return self.render(table(["setting", "default", "in short"], rows, "25 15 60"))


def _first_sentence(help_text: str) -> str:
    flat = " ".join(help_text.split())
    end = re.search(r"(?<=\.)\s+(?=[A-Z])", flat)
    return flat[: end.start()] if end else flat


class EndpointDirective(Generated):
    """One handler's routes, from the code, and the description written under it."""

    kind = "endpoint"
    required_arguments = 1  # the handler class's name

    def run(self) -> list[nodes.Node]:
        from jupyter_server.auth.utils import HTTP_METHOD_TO_AUTH_ACTION

        name = self.arguments[0]
        routes = {k: v for k, v in endpoints().items() if v[2].__name__ == name}
        if not routes:
            log.warning(
                "no handler %r in jupyter_memguard.views.handlers.handlers()",
                name,
                location=self.get_location(),
            )
            return []
        if not "".join(self.content).strip():
            log.warning("endpoint %s has no description", name, location=self.get_location())
        lines: list[str] = []
        for key, (method, path, cls) in routes.items():
            self.note(key)
            summary = (cls.__doc__ or "").strip().splitlines()[0]
            summary = summary.split(": ", 1)[-1]
            summary = summary[:1].upper() + summary[1:]
            lines += [f".. endpoint:: {key}", ""]
            lines.append(f"   :Summary: {text(summary)}")
            placeholders = re.findall(r"{(\w+)}", path)
            if placeholders:
                lines.append("   :Path parameters: " + ", ".join(literal(p) for p in placeholders))
            declared = getattr(cls, "parameters", {}) or {}
            if declared:
                lines.append("   :Query parameters:")
                for parameter, parse in declared.items():
                    lines.append(f"      - ``{parameter}``: {parameter_text(parse)}")
            else:
                lines.append("   :Query parameters: none (any other is a 400)")
            action = HTTP_METHOD_TO_AUTH_ACTION.get(method, "read")
            lines.append(f"   :Permission: ``{action}`` on the resource ``{cls.auth_resource}``")
            lines.append(f"   :Handler: ``jupyter_memguard.views.handlers.{cls.__name__}``")
            lines += self.hand_written()
        return self.render(lines)


class EventsDirective(Generated):
    """Every event memguard emits, with its schema's fields."""

    kind = "event"
    _with_titles = True

    def run(self) -> list[nodes.Node]:
        lines: list[str] = []
        stray = schema_files() - set(event_schemas())
        for kind in sorted(stray):
            log.warning(
                "event schema %s exists but EVENT_KINDS does not register it",
                kind,
                location=self.get_location(),
            )
        for kind, schema in event_schemas().items():
            self.note(kind)
            lines += [kind, "-" * len(kind), ""]
            lines += [f".. event:: {kind}", ""]
            lines.append(f"   :Schema id: ``{schema['$id']}``")
            lines.append(f"   :Title: {text(schema.get('title', ''))}")
            personal = "yes" if schema.get("personal-data") else "no"
            lines.append(f"   :Personal data: {personal}")
            lines += ["", f"   {text(schema.get('description', ''))}", ""]
            rows = list(_schema_rows(schema))
            lines += [
                "   " + line if line else ""
                for line in table(["field", "type", "required", "description"], rows, "22 18 10 50")
            ]
        return self.render(lines)


def _schema_type(spec: dict[str, Any]) -> str:
    kind = spec.get("type", "")
    kinds = kind if isinstance(kind, list) else [kind]
    shown = " or ".join(str(k) for k in kinds if k)
    if "enum" in spec:
        shown += ": " + ", ".join(literal(e) for e in spec["enum"])
    return shown or "any"


def _schema_rows(schema: dict[str, Any], prefix: str = "") -> Iterable[list[str]]:
    required = set(schema.get("required") or [])
    for name, spec in (schema.get("properties") or {}).items():
        yield [
            f"``{prefix}{name}``",
            _schema_type(spec),
            "yes" if name in required else "",
            text(spec.get("description", "")),
        ]
        if spec.get("properties"):
            yield from _schema_rows(spec, f"{prefix}{name}.")
        items = spec.get("items")
        if isinstance(items, dict) and items.get("properties"):
            yield from _schema_rows(items, f"{prefix}{name}[].")


class CommandDirective(Generated):
    """One ``jupyter memguard`` command: usage and options from argparse, then the text."""

    kind = "clicommand"
    required_arguments = 1
    _with_titles = True

    def run(self) -> list[nodes.Node]:
        name = self.arguments[0]
        parser = cli_commands().get(name)
        if parser is None:
            log.warning(
                "no command %r in jupyter_memguard.views.cli.build_parser()",
                name,
                location=self.get_location(),
            )
            return []
        self.note(name)
        parser.prog = f"jupyter memguard {name}"
        usage = parser.format_usage().replace("usage: ", "", 1).strip()
        summary = cli_help(name)
        title = f"``{name}``"
        lines = [title, "-" * len(title), "", f".. clicommand:: {name}", ""]
        lines += [f"   {text(summary[:1].upper() + summary[1:])}.", ""]
        lines += ["   .. code-block:: text", "", *("      " + u for u in usage.splitlines()), ""]
        lines += self.hand_written()
        lines += [f"   .. program:: jupyter memguard {name}", ""]
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            if action.option_strings:
                metavar = "" if action.nargs == 0 else " " + (action.metavar or action.dest.upper())
                signature = ", ".join(f"{o}{metavar}" for o in action.option_strings)
            else:
                signature = action.metavar or action.dest
            lines += [f"   .. option:: {signature}", ""]
            helptext = action.help or ""
            if action.default not in (None, False, argparse.SUPPRESS) and action.option_strings:
                helptext = f"{helptext} (default: {action.default})".strip()
            if action.type is not None and hasattr(action.type, "__name__"):
                helptext = f"{helptext} [{action.type.__name__}]".strip()
            shown = text(helptext[:1].upper() + helptext[1:]) if helptext else "See above."
            lines += [f"      {shown}", ""]
        return self.render(lines)


class VerdictDirective(Generated):
    """One verdict: its entry in models.VERDICTS, then when it is given (hand-written)."""

    kind = "verdict"
    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        name = self.arguments[0]
        info = verdicts().get(name)
        if info is None:
            log.warning("no verdict %r in models.VERDICTS", name, location=self.get_location())
            return []
        if not "".join(self.content).strip():
            log.warning("verdict %s has no description", name, location=self.get_location())
        self.note(name)
        lines = [
            f".. verdict:: {name}",
            "",
            f"   :Headline: {text(info.headline)}",
            f"   :Severity: ``{info.severity}``",
            "   :The kernel: " + ("survived, with its variables" if info.survived else "ended"),
            "   :Notice: " + ("none (the user did it, or expects it)" if info.quiet else "shown"),
            *self.hand_written(),
        ]
        return self.render(lines)


class VerdictTableDirective(Generated):
    kind = "verdict"

    def run(self) -> list[nodes.Node]:
        rows = [
            [f":verdict:`{v.name}`", text(v.headline), v.severity, "yes" if v.survived else "no"]
            for v in verdicts().values()
        ]
        return self.render(
            table(["verdict", "headline", "severity", "kernel survived"], rows, "25 45 15 15")
        )


class MetricsDirective(Generated):
    kind = "metric"

    def run(self) -> list[nodes.Node]:
        lines: list[str] = []
        for name, metric in metrics().items():
            self.note(name)
            labels = ", ".join(f"``{label}``" for label in metric._labelnames) or "none"
            lines += [
                f".. metric:: {name}",
                "",
                f"   :Type: {metric._type}",
                f"   :Labels: {labels}",
                "",
                f"   {text(metric._documentation)}",
                "",
            ]
        return self.render(lines)


class LabSettingsDirective(Generated):
    kind = "labsetting"

    def run(self) -> list[nodes.Node]:
        lines: list[str] = []
        for name, spec in lab_settings().items():
            self.note(name)
            lines += [f".. labsetting:: {name}", ""]
            lines.append(f"   :Title: {text(spec.get('title', ''))}")
            lines.append(f"   :Type: {_schema_type(spec)}")
            lines.append(f"   :Default: {literal(json.dumps(spec.get('default')))}")
            bounds = [
                f"{word} {spec[key]}"
                for key, word in (("minimum", "at least"), ("maximum", "at most"))
                if key in spec
            ]
            if bounds:
                lines.append(f"   :Range: {', '.join(bounds)}")
            lines += ["", f"   {text(spec.get('description', ''))}", ""]
        return self.render(lines)


class ScreenshotDirective(SphinxDirective):
    """A screenshot from ``docs/_static/screenshots`` (taken by the browser test), with its
    caption; left out, with a message in the build log, until the file has been copied there."""

    required_arguments = 1
    has_content = True
    option_spec = {"alt": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        name = self.arguments[0]
        if not (SCREENSHOTS / name).is_file():
            log.info(
                "memguard: screenshot %s is not in docs/_static/screenshots yet: left out",
                name,
                location=self.get_location(),
            )
            return []
        image = nodes.image(uri=f"/_static/screenshots/{name}", alt=self.options.get("alt", ""))
        figure = nodes.figure("", image)
        for paragraph in self.parse_content_to_nodes():
            if isinstance(paragraph, nodes.paragraph):
                figure += nodes.caption("", "", *paragraph.children)
                break
        return [figure]


# --------------------------------------------------------------------------- completeness
def _purge(app: Sphinx, env: BuildEnvironment, docname: str) -> None:
    for names in _documented(env).values():
        for name in [n for n, doc in names.items() if doc == docname]:
            del names[name]


def _merge(app: Sphinx, env: BuildEnvironment, docnames: set[str], other: Any) -> None:
    for kind, names in _documented(other).items():
        _documented(env)[kind].update(names)


def _check(app: Sphinx, env: BuildEnvironment) -> None:
    """Every name the code has is documented, and nothing documented is gone from the code."""
    documented = _documented(env)
    for kind in KINDS:
        have, wanted = set(documented[kind]), expected(kind)
        for name in sorted(wanted - have):
            log.warning("the reference does not document %s %r (it is in the code)", kind, name)
        for name in sorted(have - wanted):
            log.warning("the reference documents %s %r, which the code no longer has", kind, name)


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_object_type(
        "setting", "setting", "pair: %s; setting", parse_node=_setting_node, objname="setting"
    )
    app.add_object_type("endpoint", "endpoint", "pair: %s; REST endpoint", objname="endpoint")
    app.add_object_type("event", "event", "pair: %s; event", objname="event")
    app.add_object_type(
        "clicommand",
        "clicommand",
        "pair: %s; command",
        parse_node=_command_node,
        objname="command",
    )
    app.add_object_type("verdict", "verdict", "pair: %s; verdict", objname="verdict")
    app.add_object_type("metric", "metric", "pair: %s; metric", objname="metric")
    app.add_object_type(
        "labsetting", "labsetting", "pair: %s; JupyterLab setting", objname="JupyterLab setting"
    )
    app.add_directive("memguard-settings", SettingsDirective)
    app.add_directive("memguard-settings-table", SettingsTableDirective)
    app.add_directive("memguard-endpoint", EndpointDirective)
    app.add_directive("memguard-events", EventsDirective)
    app.add_directive("memguard-command", CommandDirective)
    app.add_directive("memguard-verdict", VerdictDirective)
    app.add_directive("memguard-verdict-table", VerdictTableDirective)
    app.add_directive("memguard-metrics", MetricsDirective)
    app.add_directive("memguard-lab-settings", LabSettingsDirective)
    app.add_directive("memguard-screenshot", ScreenshotDirective)
    app.connect("env-purge-doc", _purge)
    app.connect("env-merge-info", _merge)
    app.connect("env-check-consistency", _check)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
