"""Config: TOML → validated frozen dataclasses (DESIGN.md, "Config").

Each section is a frozen dataclass whose fields carry their rule in metadata, so the schema is
written once: validation, defaults, the "allowed" text of error messages and the canonical TOML
dump all read it. Every problem in the catalogue declares its own [problem] fields the same way.
All errors are collected and reported together; nothing runs until the config is valid.
"""
from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np


class ConfigError(ValueError):
    """Invalid configuration; the message names every bad dotted key and what is allowed."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True)
class Rule:
    """What one config key accepts: a kind ('int', 'float', 'str', 'bool', 'ints', 'bounds'), a check, and its words."""

    kind: str
    check: Callable[[Any], bool] = lambda v: True
    allowed: str = ""

    def convert(self, value: Any) -> Any:
        """Return value converted to the rule's kind, or raise TypeError."""
        if self.kind == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError
            return value
        if self.kind == "float":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError
            return float(value)
        if self.kind == "str":
            if not isinstance(value, str):
                raise TypeError
            return value
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise TypeError
            return value
        if self.kind == "floats":  # a list of numbers
            if not isinstance(value, list) or not value or any(
                    isinstance(v, bool) or not isinstance(v, (int, float)) for v in value):
                raise TypeError
            return tuple(float(v) for v in value)
        if self.kind == "teacher":  # a list of neurons [a, w] or [a, w, b]
            if not isinstance(value, list) or not value or any(
                    not isinstance(n, list) or len(n) not in (2, 3)
                    or any(isinstance(c, bool) or not isinstance(c, (int, float)) for c in n) for n in value):
                raise TypeError
            return tuple(tuple(float(c) for c in n) for n in value)
        if self.kind == "strings":  # a list of strings
            if not isinstance(value, list) or any(not isinstance(v, str) for v in value):
                raise TypeError
            return tuple(value)
        if self.kind == "ints":  # an int, or a list of ints (one per axis)
            items = value if isinstance(value, list) else [value]
            if not items or any(isinstance(v, bool) or not isinstance(v, int) for v in items):
                raise TypeError
            return tuple(items)
        if self.kind == "bounds":  # a list of [lo, hi] pairs, one per axis
            if not isinstance(value, list) or not value:
                raise TypeError
            out = []
            for pair in value:
                if (not isinstance(pair, list) or len(pair) != 2
                        or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in pair)):
                    raise TypeError
                out.append((float(pair[0]), float(pair[1])))
            return tuple(out)
        raise AssertionError(self.kind)

    def describe(self) -> str:
        """The allowed values in words."""
        base = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false",
                "ints": "an integer or a list of integers", "floats": "a list of numbers", "strings": "a list of strings",
                "teacher": "a list of neurons [a, w] or [a, w, b]",
                "bounds": "a list of [lower, upper] pairs"}[self.kind]
        if self.allowed.startswith("one of"):
            return self.allowed
        return f"{base} {self.allowed}".strip()


def rule(default: Any, kind: str, check: Callable[[Any], bool] = lambda v: True,
         allowed: str = "", doc: str = "") -> Any:
    """A dataclass field with its validation rule; `default=REQUIRED` makes the key mandatory."""
    return field(default=default, metadata={"rule": Rule(kind, check, allowed), "doc": doc})


REQUIRED = object()


def positive(v: float) -> bool:
    return v > 0 and math.isfinite(v)


def choice(*options: str) -> tuple[Callable[[Any], bool], str]:
    """Check and words for a string that must be one of options."""
    return (lambda v: v in options), "one of " + ", ".join(repr(o) for o in options)


# ----------------------------------------------------------------------------- sections


@dataclass(frozen=True)
class InitConfig:
    """[init]: the initial law ρ_0."""

    kappa: float = rule(0.8, "float", positive, "> 0",
                        "scale of ρ_0: N(0, κ²/d I_d) for the MMN problems, N(mean, κ² I_D) otherwise")
    mean: tuple[float, ...] | None = rule(None, "floats", lambda v: all(math.isfinite(x) for x in v),
                                          "(finite, one per θ coordinate)", "centre of ρ_0 in θ-space")


@dataclass(frozen=True)
class DynamicsConfig:
    """[dynamics]: ξ, β, λ and the horizon (MATH §2)."""

    xi: float = rule(1.0, "float", positive, "> 0", "constant step-size schedule ξ")
    beta: float = rule(math.inf, "float", lambda v: v > 0, "> 0 (inf: noiseless)", "inverse temperature β")
    lam: float = rule(0.0, "float", lambda v: v >= 0 and math.isfinite(v), "≥ 0",
                      "weight decay λ (key 'lambda' in TOML)")
    t_end: float = rule(REQUIRED, "float", positive, "> 0", "final time t")


@dataclass(frozen=True)
class PdeConfig:
    """[pde]: the finite-volume grid (MATH §5)."""

    cells: tuple[int, ...] = rule((400,), "ints", lambda v: all(c >= 4 for c in v), "≥ 4 per axis",
                                  "cells per axis")
    bounds: tuple[tuple[float, float], ...] | None = rule(
        None, "bounds", lambda v: all(math.isfinite(lo) and math.isfinite(hi) and hi > lo for lo, hi in v),
        "with lower < upper, finite", "domain per axis (default: the problem's)")
    cfl: float = rule(0.8, "float", lambda v: 0 < v <= 1, "in (0, 1]",
                      "safety factor on the positivity bound dt ≤ h/(2 D a)")
    memory_gb: float = rule(4.0, "float", positive, "> 0", "refuse grids whose solve needs more memory")
    stepper: str = rule("explicit", "str", *choice("explicit", "implicit"),
                        "SSP-RK3, or the linearly implicit step (β < ∞) for long runs to equilibrium")
    rtol: float = rule(0.0, "float", lambda v: 0 <= v < 1, "in [0, 1) (0: off)",
                       "explicit stepper: local L1 error per step relative to the mass")
    dt: float = rule(0.01, "float", positive, "> 0", "implicit stepper: time step")
    gibbs_tol: float = rule(1e-11, "float", lambda v: 0 < v < 1, "in (0, 1)",
                            "mfdyn gibbs: stop when ‖T(ρ) − ρ‖₁ / mass is below this")
    gibbs_damping: float = rule(0.5, "float", lambda v: 0 < v <= 1, "in (0, 1]", "mfdyn gibbs: initial damping a")
    gibbs_max_iter: int = rule(20000, "int", lambda v: v >= 1, "≥ 1", "mfdyn gibbs: iteration limit")


@dataclass(frozen=True)
class ParticlesConfig:
    """[particles]: the N-particle SGD (MATH §2)."""

    n: int = rule(800, "int", lambda v: v >= 1, "≥ 1", "number of neurons N")
    eps: float = rule(1e-4, "float", positive, "> 0", "step size ε (clock t = kε)")
    batch: int = rule(1, "int", lambda v: v >= 1, "≥ 1", "samples per SGD step")
    seed: int = rule(0, "int", lambda v: v >= 0, "≥ 0", "seed of the SeedSequence for all draws")


@dataclass(frozen=True)
class OutputConfig:
    """[output]: snapshot spacing."""

    every: float = rule(0.5, "float", positive, "> 0", "time between saved snapshots")
    observables: tuple[str, ...] | None = rule(
        None, "strings", lambda v: len(v) >= 1, "(NumPy expressions of the grid coordinates)",
        "test functions f(z) compared between the engines (default: the problem's)")
    particle_risk: bool = rule(True, "bool", doc="compute the exact R_N of the particles at each snapshot "
                                                 "(O(N²) for the MMN problems: switch off for large-N sweeps)")


@dataclass(frozen=True)
class ProblemConfig:
    """[problem]: a catalogue name and that problem's own parameters (a frozen dataclass)."""

    name: str
    params: Any


@dataclass(frozen=True)
class Config:
    """A whole validated run configuration."""

    problem: ProblemConfig
    init: InitConfig
    dynamics: DynamicsConfig
    pde: PdeConfig
    particles: ParticlesConfig
    output: OutputConfig
    overrides: tuple[str, ...] = ()

    def save_times(self) -> "list[float]":
        """Snapshot times 0, every, 2·every, …, t_end (t_end always included)."""
        n = int(math.floor(self.dynamics.t_end / self.output.every + 1e-9))
        times = [k * self.output.every for k in range(n + 1)]
        if self.dynamics.t_end - times[-1] > 1e-9 * self.dynamics.t_end:
            times.append(self.dynamics.t_end)
        return times

    def to_toml(self) -> str:
        """Canonical TOML of the resolved config (defaults filled in); loads back to an equal Config."""
        lines = ["[problem]", f"name = {toml_value(self.problem.name)}"]
        lines += _section_lines(self.problem.params)
        for name in SECTIONS:
            lines += ["", f"[{name}]"] + _section_lines(getattr(self, name))
        return "\n".join(lines) + "\n"


SECTIONS: dict[str, type] = {"init": InitConfig, "dynamics": DynamicsConfig, "pde": PdeConfig,
                             "particles": ParticlesConfig, "output": OutputConfig}
# TOML keys that are Python keywords
_TOML_NAME = {"lam": "lambda"}
_FIELD_NAME = {v: k for k, v in _TOML_NAME.items()}


def toml_value(v: Any) -> str:
    """A Python value as a TOML literal (inf, lists, strings with escapes)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "inf" if v == math.inf else "-inf" if v == -math.inf else repr(v)
    if isinstance(v, (int,)):
        return str(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (tuple, list)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, (np.floating, np.integer)):
        return toml_value(v.item())
    raise TypeError(type(v))


def _section_lines(obj: Any) -> list[str]:
    return [f"{_TOML_NAME.get(f.name, f.name)} = {toml_value(getattr(obj, f.name))}"
            for f in dataclasses.fields(obj) if getattr(obj, f.name) is not None]


def build_section(cls: type, table: Any, section: str, errors: list[str]) -> Any:
    """Validate one TOML table against dataclass cls; append 'section.key: …' errors; return an instance or None."""
    if not isinstance(table, dict):
        errors.append(f"{section}: must be a table")
        return None
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    n_errors = len(errors)
    for key, raw in table.items():
        name = _FIELD_NAME.get(key, key)
        if name not in fields:
            known = ", ".join(sorted(_TOML_NAME.get(n, n) for n in fields))
            errors.append(f"{section}.{key}: unknown key; allowed keys: {known}")
            continue
        r: Rule = fields[name].metadata["rule"]
        try:
            value = r.convert(raw)
            ok = r.check(value)
        except TypeError:
            ok = False
        if not ok:
            errors.append(f"{section}.{key}: must be {r.describe()}, got {raw!r}")
            continue
        values[name] = value
    for name, f in fields.items():
        key = _TOML_NAME.get(name, name)
        if name not in values and f.default is REQUIRED and key not in table:
            errors.append(f"{section}.{key}: missing; must be {f.metadata['rule'].describe()}")
    if len(errors) > n_errors:
        return None
    return cls(**values)


def parse_override(text: str) -> tuple[str, str, Any]:
    """'section.key=value' → (section, key, value); the value is read as TOML, else as a bare string."""
    if "=" not in text or "." not in text.split("=", 1)[0]:
        raise ConfigError([f"--set {text!r}: must look like section.key=value"])
    dotted, raw = text.split("=", 1)
    section, key = dotted.strip().split(".", 1)
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return section, key, value


def load_config(source: str | Path, overrides: list[str] | tuple[str, ...] = (),
                from_text: bool = False) -> Config:
    """Read a TOML config (a path, or the text itself with from_text=True), apply `--set` overrides, validate.

    Raises ConfigError listing every problem (dotted key, what is allowed, what was given).
    """
    from mfdyn.problems import CATALOGUE  # late: the catalogue imports this module's helpers

    if from_text:
        text = str(source)
    else:
        path = Path(source)
        try:
            text = path.read_text()
        except OSError as exc:
            raise ConfigError([f"config {str(path)!r}: cannot read ({exc.strerror or exc})"]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"config is not valid TOML: {exc}"]) from None
    for text_override in overrides:
        section, key, value = parse_override(text_override)
        if section not in SECTIONS and section != "problem":
            raise ConfigError([f"--set {section}.{key}: unknown section {section!r}; allowed: "
                               + ", ".join(["problem", *SECTIONS])])
        table = data.setdefault(section, {})
        if not isinstance(table, dict):
            raise ConfigError([f"{section}: must be a table"])
        table[key] = value

    errors: list[str] = []
    for name in data:
        if name not in SECTIONS and name != "problem":
            errors.append(f"{name}: unknown section; allowed: " + ", ".join(["problem", *SECTIONS]))
    problem_table = data.get("problem")
    problem = None
    if not isinstance(problem_table, dict) or "name" not in problem_table:
        errors.append("problem.name: missing; must be one of " + ", ".join(repr(n) for n in CATALOGUE))
    elif problem_table["name"] not in CATALOGUE:
        errors.append(f"problem.name: unknown problem {problem_table['name']!r}; allowed: "
                      + ", ".join(repr(n) for n in CATALOGUE))
    else:
        problem_cls = CATALOGUE[problem_table["name"]]
        rest = {k: v for k, v in problem_table.items() if k != "name"}
        params = build_section(problem_cls.Params, rest, "problem", errors)
        if params is not None:
            problem = ProblemConfig(problem_table["name"], params)
    sections = {name: build_section(cls, data.get(name, {}), name, errors) for name, cls in SECTIONS.items()}
    if problem is not None and sections["init"] is not None:
        errors += CATALOGUE[problem.name].check(problem.params, sections["init"])
    if errors:
        raise ConfigError(errors)
    cfg = Config(problem=problem, **sections, overrides=tuple(overrides))
    _check_consistency(cfg, len(CATALOGUE[problem.name].coordinates(problem.params)), errors)
    if errors:
        raise ConfigError(errors)
    return cfg


def _coordinates(cfg: Config) -> tuple[str, ...]:
    """The grid coordinates of a config's problem."""
    from mfdyn.problems import CATALOGUE

    return CATALOGUE[cfg.problem.name].coordinates(cfg.problem.params)


def _is_multiple(x: float, step: float) -> bool:
    k = x / step
    return abs(k - round(k)) <= 1e-6 * max(1.0, k)


def _check_consistency(cfg: Config, ndim: int, errors: list[str]) -> None:
    """Rules that tie keys of different sections together (ndim: the problem's grid dimension)."""
    d, p, o = cfg.dynamics, cfg.particles, cfg.output
    if len(cfg.pde.cells) not in (1, ndim):
        errors.append(f"pde.cells: must be one integer or {ndim} (one per axis of {cfg.problem.name}), "
                      f"got {list(cfg.pde.cells)}")
    if cfg.pde.bounds is not None and len(cfg.pde.bounds) != ndim:
        errors.append(f"pde.bounds: must have {ndim} [lower, upper] pair(s) for {cfg.problem.name}, "
                      f"got {len(cfg.pde.bounds)}")
    if cfg.pde.stepper == "implicit" and d.beta == math.inf:
        errors.append("pde.stepper: 'implicit' needs a finite dynamics.beta (it is a diffusion step); "
                      "use 'explicit' for β = inf")
    if o.observables is not None:
        from mfdyn.expressions import check_observable

        coords = _coordinates(cfg)
        for expression in o.observables:
            reason = check_observable(expression, coords)
            if reason is not None:
                errors.append(f"output.observables: {expression!r} is not a finite expression of "
                              f"{', '.join(coords)} ({reason})")
    if o.every > d.t_end:
        errors.append(f"output.every: must be ≤ dynamics.t_end = {d.t_end}, got {o.every}")
    if not _is_multiple(d.t_end, p.eps):
        errors.append(f"dynamics.t_end: must be a whole number of SGD steps particles.eps = {p.eps}, got {d.t_end}")
    if not _is_multiple(o.every, p.eps):
        errors.append(f"output.every: must be a whole number of SGD steps particles.eps = {p.eps}, got {o.every}")
