"""Config: TOML → validated frozen dataclasses (docs/guide.md, "Config").

Each section is a Section (mfdyn.schema) whose fields carry their rule, so the schema is written
once: validation on construction, defaults, the "allowed" words of error messages, the canonical
TOML dump and the README's config table all read it. Every registered problem declares its own
[problem] fields the same way. All errors are collected and reported together; nothing runs until
the config is valid.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from mfdyn.problems import PROBLEMS
from mfdyn.schema import (
    REQUIRED,
    ConfigError,
    Section,
    choice,
    key_name,
    parse_toml_value,
    positive,
    rule,
    shown,
    toml_key,
    toml_value,
)

# ----------------------------------------------------------------------------- sections


@dataclass(frozen=True)
class InitConfig(Section):
    """[init]: the initial law ρ_0."""

    section: ClassVar[str] = "init"

    kappa: float = rule(0.8, "float", positive, "> 0",
                        "scale of ρ_0: N(0, κ²/d I_d) for the MMN problems, N(mean, κ² I_D) otherwise")
    mean: tuple[float, ...] | None = rule(None, "floats", lambda v: all(math.isfinite(x) for x in v),
                                          "(finite, one per θ coordinate)", "centre of ρ_0 in θ-space")
    symmetric: bool = rule(False, "bool", doc="pair every neuron (a, w, b) with (−a, w, b), so the network's initial "
                                               "output is exactly 0; ρ_0 symmetrised in a (docs/math.md §7)")


@dataclass(frozen=True)
class DynamicsConfig(Section):
    """[dynamics]: ξ, β, λ and the horizon (docs/math.md §2)."""

    section: ClassVar[str] = "dynamics"

    xi: float = rule(1.0, "float", positive, "> 0", "constant step-size schedule ξ")
    beta: float = rule(math.inf, "float", lambda v: v > 0, "> 0 (inf: noiseless)", "inverse temperature β")
    lam: float = rule(0.0, "float", lambda v: v >= 0 and math.isfinite(v), "≥ 0",
                      "weight decay λ (key 'lambda' in TOML)")
    t_end: float = rule(REQUIRED, "float", positive, "> 0", "final time t")
    alpha: float = rule(1.0, "float", positive, "> 0, finite",
                        "output scale α: f = (α/N) Σ σ*; 1 is mean field, α → ∞ the lazy limit (docs/math.md §7)")
    centered: bool = rule(False, "bool", doc="train the centred model α(f_ρ − f_ρ0), whose initial output is 0 "
                                              "(docs/math.md §7)")


@dataclass(frozen=True)
class PdeConfig(Section):
    """[pde]: the finite-volume grid (docs/math.md §5)."""

    section: ClassVar[str] = "pde"

    cells: tuple[int, ...] = rule((400,), "ints", lambda v: all(c >= 4 for c in v), "≥ 4 per axis",
                                  "cells per axis")
    bounds: tuple[tuple[float, float], ...] | None = rule(
        None, "bounds", lambda v: all(math.isfinite(lo) and math.isfinite(hi) and hi > lo for lo, hi in v),
        "with lower < upper, finite", "domain per axis (default: the problem's)")
    cfl: float = rule(0.8, "float", lambda v: 0 < v <= 1, "in (0, 1]",
                      "safety factor on the positivity bound dt ≤ h/(2 D a)")
    memory_gb: float = rule(4.0, "float", positive, "> 0", "refuse grids whose solve needs more memory")
    stepper: str = rule("auto", "str", *choice("auto", "explicit", "ssprk43", "implicit", "trbdf2"),
                        "explicit: SSP-RK3; ssprk43: four-stage SSP-RK3 with twice the step, ⅔ of the work; trbdf2, "
                        "implicit, second order, error-controlled (β < ∞); implicit, the first-order linearly implicit "
                        "step; auto: trbdf2 where β < ∞ and the stiffness at ρ_0 makes it the cheaper, else ssprk43 "
                        "(the file records the choice and the stiffness)")
    rtol: float = rule(0.0, "float", lambda v: 0 <= v < 1, "in [0, 1) (0: off for explicit and ssprk43, 1e-6 for trbdf2)",
                       "local L1 error per step relative to the mass (explicit, ssprk43, trbdf2)")
    dt: float = rule(0.01, "float", positive, "> 0", "implicit stepper: time step; trbdf2: first step")
    gibbs_tol: float = rule(1e-11, "float", lambda v: 0 < v < 1, "in (0, 1)",
                            "mfdyn gibbs: stop when ‖T(ρ) − ρ‖₁ / mass is below this")
    gibbs_damping: float = rule(0.5, "float", lambda v: 0 < v <= 1, "in (0, 1]", "mfdyn gibbs: initial damping a")
    gibbs_max_iter: int = rule(20000, "int", lambda v: v >= 1, "≥ 1", "mfdyn gibbs: iteration limit")


@dataclass(frozen=True)
class ParticlesConfig(Section):
    """[particles]: the N-particle SGD (docs/math.md §2)."""

    section: ClassVar[str] = "particles"

    n: int = rule(800, "int", lambda v: v >= 1, "≥ 1", "number of neurons N")
    eps: float = rule(1e-4, "float", positive, "> 0", "step size ε (clock t = kε)")
    batch: int = rule(1, "int", lambda v: v >= 1, "≥ 1", "samples per SGD step")
    seed: int = rule(0, "int", lambda v: v >= 0, "≥ 0", "seed of the SeedSequence for all draws")
    coupled: bool = rule(False, "bool", doc="also run G (the N-particle gradient flow) and T (tracers of the PDE's ρ_t) "
                                            "from SGD's own θ(0) and noise, to split the gap (docs/math.md §8)")
    coupled_dt: float = rule(0.0, "float", lambda v: 0 <= v < math.inf, "≥ 0 (0: auto)",
                             "time step of G and T: a whole number of steps ε dividing output.every "
                             "(0: the largest such step ≤ 0.02)")


@dataclass(frozen=True)
class OutputConfig(Section):
    """[output]: snapshot spacing."""

    section: ClassVar[str] = "output"

    every: float = rule(0.5, "float", positive, "> 0", "time between saved snapshots")
    observables: tuple[str, ...] | None = rule(
        None, "strings", lambda v: len(v) >= 1, "(NumPy expressions of the grid coordinates)",
        "test functions f(z) compared between the engines (default: the problem's)")
    particle_risk: bool = rule(True, "bool", doc="compute the exact R_N of the particles (SGD, G, T) at each snapshot; "
                                                 "false leaves it NaN. O(N²) for the MMN problems, where it can take "
                                                 "most of the particles' time (the progress line then says so): switch "
                                                 "off for large-N sweeps")


@dataclass(frozen=True)
class KernelConfig(Section):
    """[kernel]: the lazy (tangent-kernel) limit engine (docs/math.md §7)."""

    section: ClassVar[str] = "kernel"

    rho0: str = rule("grid", "str", *choice("grid", "exact"),
                     "H_ρ0 from the grid's initial cell averages (the PDE's own ρ_0), or from the closed-form ρ_0 "
                     "by its own quadrature")


@dataclass(frozen=True)
class ProblemConfig:
    """[problem]: a registered problem's name and its own parameters (a Section of that problem)."""

    name: str
    params: Any


SECTIONS: dict[str, type[Section]] = {"init": InitConfig, "dynamics": DynamicsConfig, "pde": PdeConfig,
                                      "particles": ParticlesConfig, "output": OutputConfig, "kernel": KernelConfig}
TABLES = ("problem", *SECTIONS)


@dataclass(frozen=True)
class Config:
    """A whole validated run configuration (every section validated, and the rules that tie them).

    Build one with Config.from_dict, Config.from_toml, load_config (a file) or as_config (any of
    those); change one key with replace("particles.n", 1600), which validates again.
    """

    problem: ProblemConfig
    init: InitConfig
    dynamics: DynamicsConfig
    pde: PdeConfig
    particles: ParticlesConfig
    output: OutputConfig
    kernel: KernelConfig = KernelConfig()
    overrides: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        errors: list[str] = []
        _check_consistency(self, errors)
        if errors:
            raise ConfigError(errors)

    @classmethod
    def from_dict(cls, data: dict, overrides: tuple[str, ...] = ()) -> Config:
        """A Config from nested tables {"problem": {"name": …, …}, "dynamics": {…}, …} (TOML key names).

        Raises ConfigError listing every bad key, what is allowed and what was given.
        """
        if not isinstance(data, dict):
            raise ConfigError([f"config: must be a table of sections ({', '.join(TABLES)}), got {shown(data)}"])
        errors = [f"{key_name(name)}: unknown section; allowed: {', '.join(TABLES)}" for name in data if name not in TABLES]
        problem = _problem_config(data.get("problem"), errors)
        sections = {name: cls_.from_table(data.get(name, {}), errors) for name, cls_ in SECTIONS.items()}
        if problem is not None and sections["init"] is not None:
            errors += PROBLEMS[problem.name].check(problem.params, sections["init"])
        if errors:
            raise ConfigError(errors)
        return cls(problem=problem, **sections, overrides=tuple(overrides))

    @classmethod
    def from_toml(cls, text: str, overrides: tuple[str, ...] | list[str] = ()) -> Config:
        """A Config from TOML text, with `section.key=value` overrides applied first."""
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError([f"config is not valid TOML: {exc}"]) from None
        for override in overrides:
            _set(data, *parse_override(override))
        return cls.from_dict(data, tuple(overrides))

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """The resolved config as nested tables (TOML key names), the inverse of from_dict."""
        out = {"problem": {"name": self.problem.name, **_table(self.problem.params)}}
        out.update({name: _table(getattr(self, name)) for name in SECTIONS})
        return out

    def grid_key(self) -> str:
        """Canonical text of every table but [particles]: what the grid solve (and so the tracers' ρ_t, a sweep's
        one grid file per distinct key) and the test functions depend on."""
        return json.dumps({k: v for k, v in self.to_dict().items() if k != "particles"}, sort_keys=True, default=str)

    def replace(self, key: str, value: Any) -> Config:
        """A copy with one dotted key changed ("particles.n", 1600), validated; recorded in overrides."""
        data = self.to_dict()
        section, name = _split_key(key)
        _set(data, section, name, value)
        return Config.from_dict(data, self.overrides + (f"{key}={toml_value(value)}",))

    def save_times(self) -> list[float]:
        """Snapshot times 0, every, 2·every, …, t_end (t_end always included)."""
        n = int(math.floor(self.dynamics.t_end / self.output.every + 1e-9))
        times = [k * self.output.every for k in range(n + 1)]
        if self.dynamics.t_end - times[-1] > 1e-9 * self.dynamics.t_end:
            times.append(self.dynamics.t_end)
        return times

    @property
    def coordinates(self) -> tuple[str, ...]:
        """The grid (reduced) coordinates of the config's problem."""
        return PROBLEMS[self.problem.name].coordinates(self.problem.params)

    def to_toml(self) -> str:
        """Canonical TOML of the resolved config (defaults filled in); loads back to an equal Config."""
        lines = ["[problem]", f"name = {toml_value(self.problem.name)}"] + self.problem.params.toml_lines()
        for name in SECTIONS:
            lines += ["", f"[{name}]"] + getattr(self, name).toml_lines()
        return "\n".join(lines) + "\n"


def _table(section: Section) -> dict[str, Any]:
    return {toml_key(f.name): getattr(section, f.name)
            for f in dataclasses.fields(section) if getattr(section, f.name) is not None}


def _problem_config(table: Any, errors: list[str]) -> ProblemConfig | None:
    allowed = ", ".join(repr(n) for n in PROBLEMS)
    if not isinstance(table, dict) or "name" not in table:
        errors.append(f"problem.name: missing; must be one of {allowed}")
        return None
    name = table["name"]
    if not isinstance(name, str) or name not in PROBLEMS:
        errors.append(f"problem.name: unknown problem {shown(name)}; allowed: {allowed}")
        return None
    params = PROBLEMS[name].Params.from_table({k: v for k, v in table.items() if k != "name"}, errors, "problem")
    return None if params is None else ProblemConfig(name, params)


def _split_key(dotted: str) -> tuple[str, str]:
    section, _, key = dotted.strip().partition(".")
    if not key or section not in TABLES:
        raise ConfigError([f"{dotted!r}: must be section.key with a section among {', '.join(TABLES)}"])
    return section, key.strip()


def _set(data: dict, section: str, key: str, value: Any) -> None:
    table = data.setdefault(section, {})
    if not isinstance(table, dict):
        raise ConfigError([f"{section}: must be a table, got {shown(table)}"])
    table[key] = value


def parse_override(text: str) -> tuple[str, str, Any]:
    """'section.key=value' → (section, key, value); the value is read as TOML, else as a bare string."""
    if "=" not in text or "." not in text.split("=", 1)[0]:
        raise ConfigError([f"--set {text!r}: must look like section.key=value"])
    dotted, raw = text.split("=", 1)
    try:
        section, key = _split_key(dotted)
    except ConfigError:
        section = dotted.split(".", 1)[0].strip()
        raise ConfigError([f"--set {dotted.strip()}: unknown section {section!r}; allowed: "
                           + ", ".join(TABLES)]) from None
    return section, key, parse_toml_value(raw)


def load_config(source: str | Path, overrides: list[str] | tuple[str, ...] = (),
                from_text: bool = False) -> Config:
    """Read a TOML config (a path, or the text itself with from_text=True), apply `--set` overrides, validate.

    Raises ConfigError listing every problem (dotted key, what is allowed, what was given).
    """
    if from_text:
        return Config.from_toml(str(source), overrides)
    path = Path(source)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError([f"config {str(path)!r}: cannot read ({exc.strerror or exc})"]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not a TOML text file (invalid UTF-8 at byte {exc.start})"]) from None
    try:
        return Config.from_toml(text, overrides)
    except ConfigError as exc:
        if exc.problems and exc.problems[0].startswith("config is not valid TOML"):
            raise ConfigError([f"config {str(path)!r} is not valid TOML: "
                               + exc.problems[0].split(": ", 1)[1]]) from None
        raise


def as_config(config: Config | dict | str | Path, overrides: dict[str, Any] | None = None) -> Config:
    """Any form of config (a Config, a dict of tables, a path to a TOML file, or TOML text) with
    dotted overrides {"particles.n": 1600} applied, validated."""
    texts = [f"{k}={toml_value(v)}" for k, v in (overrides or {}).items()]
    if isinstance(config, Config):
        for key, value in (overrides or {}).items():
            config = config.replace(key, value)
        return config
    if isinstance(config, dict):
        data = {k: dict(v) if isinstance(v, dict) else v for k, v in config.items()}
        for key, value in (overrides or {}).items():
            _set(data, *_split_key(key), value)
        return Config.from_dict(data, tuple(texts))
    if isinstance(config, Path) or (isinstance(config, str) and "\n" not in config
                                    and (config.endswith(".toml") or "=" not in config or Path(config).exists())):
        return load_config(config, texts)
    if isinstance(config, str):
        return Config.from_toml(config, texts)
    raise ConfigError([f"config: must be a Config, a dict, a TOML path or TOML text, got {type(config).__name__}"])


def _is_multiple(x: float, step: float) -> bool:
    """x is a whole number ≥ 1 of step (to a relative 1e-6)."""
    k = x / step
    return math.isfinite(k) and round(k) >= 1 and abs(k - round(k)) <= 1e-6 * max(1.0, k)


MAX_SNAPSHOTS = 10**6        # save times per run: more is a mistake (a file of that many rows per dataset)
MAX_STEPS = 2**53            # SGD steps per run: beyond it the step count k of t = kε is not exact in a float


def machine_memory() -> float:
    """Bytes of physical memory of this machine (inf where the OS does not say)."""
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return math.inf


def _check_sizes(cfg: Config, ndim: int, errors: list[str]) -> None:
    """Sizes that cannot run, refused at once: too many snapshots or SGD steps,
    more particles than the machine's memory holds (a grid too large for pde.memory_gb is refused by the engines
    that build it, before they allocate: a particles-only run does not build the grid)."""
    d, p, o = cfg.dynamics, cfg.particles, cfg.output
    if d.t_end / o.every > MAX_SNAPSHOTS:
        errors.append(f"output.every: dynamics.t_end / output.every = {d.t_end / o.every:.3g} snapshots; allowed at "
                      f"most {MAX_SNAPSHOTS} (a larger output.every or a smaller dynamics.t_end)")
    if d.t_end / p.eps > MAX_STEPS:
        errors.append(f"particles.eps: dynamics.t_end / particles.eps = {d.t_end / p.eps:.3g} SGD steps; allowed at "
                      "most 2^53 (a larger particles.eps or a smaller dynamics.t_end)")
    machine, gib = machine_memory(), 2.0**30
    need = 8.0 * 2 * ndim * p.n                 # θ (N × D, D ≥ the grid's dimension) and its coordinates z
    if need > machine:
        errors.append(f"particles.n: {p.n} particles need more than {need / gib:.3g} GiB (θ and z), over this "
                      f"machine's {machine / gib:.1f} GiB of memory; use fewer particles.n")


def _check_consistency(cfg: Config, errors: list[str]) -> None:
    """Rules that tie keys of different sections together."""
    d, p, o = cfg.dynamics, cfg.particles, cfg.output
    ndim = len(cfg.coordinates)
    if len(cfg.pde.cells) not in (1, ndim):
        errors.append(f"pde.cells: must be one integer or {ndim} (one per axis of {cfg.problem.name}), "
                      f"got {list(cfg.pde.cells)}")
    if cfg.pde.bounds is not None and len(cfg.pde.bounds) != ndim:
        errors.append(f"pde.bounds: must have {ndim} [lower, upper] pair(s) for {cfg.problem.name}, "
                      f"got {len(cfg.pde.bounds)}")
    if cfg.pde.stepper in ("implicit", "trbdf2") and d.beta == math.inf:
        errors.append(f"pde.stepper: {cfg.pde.stepper!r} needs a finite dynamics.beta (it is a diffusion step); "
                      "use 'auto', 'ssprk43' or 'explicit' for β = inf")
    if o.observables is not None:
        from mfdyn.expressions import check_observable

        for expression in o.observables:
            reason = check_observable(expression, cfg.coordinates)
            if reason is not None:
                errors.append(f"output.observables: {expression!r} is not a finite expression of "
                              f"{', '.join(cfg.coordinates)} ({reason})")
    problem = PROBLEMS[cfg.problem.name]
    if cfg.init.symmetric and not problem.has_output_weight:
        errors.append(f"init.symmetric: {cfg.problem.name} has no output weight a to pair with −a; "
                      "use dynamics.centered = true for an initial output of 0")
    if cfg.init.symmetric and p.n % 2:
        errors.append(f"particles.n: must be even with init.symmetric = true (neurons come in pairs), got {p.n}")
    if not problem.has_network and (d.alpha != 1.0 or d.centered):
        key = "dynamics.alpha" if d.alpha != 1.0 else "dynamics.centered"
        errors.append(f"{key}: {cfg.problem.name} has no network output to scale or centre; "
                      "allowed: dynamics.alpha = 1, dynamics.centered = false")
    if p.coupled and not problem.can_couple():
        errors.append(f"particles.coupled: {cfg.problem.name} cannot provide G and T (it has no exact population "
                      "gradient or no point evaluation of the grid's Ψ); allowed for: "
                      + ", ".join(name for name, cls in PROBLEMS.items() if cls.can_couple()))
    if p.coupled_dt > 0 and not (_is_multiple(p.coupled_dt, p.eps) and _is_multiple(o.every, p.coupled_dt)):
        errors.append(f"particles.coupled_dt: must be a whole number of steps particles.eps = {p.eps} and divide "
                      f"output.every = {o.every}, got {p.coupled_dt}")
    if o.every > d.t_end:
        errors.append(f"output.every: must be ≤ dynamics.t_end = {d.t_end}, got {o.every}")
    if not _is_multiple(d.t_end, p.eps):
        errors.append(f"dynamics.t_end: must be a whole number of SGD steps particles.eps = {p.eps}, got {d.t_end}")
    if not _is_multiple(o.every, p.eps):
        errors.append(f"output.every: must be a whole number of SGD steps particles.eps = {p.eps}, got {o.every}")
    _check_sizes(cfg, ndim, errors)


__all__ = ["Config", "ConfigError", "DynamicsConfig", "InitConfig", "KernelConfig", "OutputConfig", "ParticlesConfig",
           "PdeConfig", "ProblemConfig", "REQUIRED", "SECTIONS", "as_config", "load_config", "parse_override"]


def _default_text(f: dataclasses.Field) -> str:
    if f.default is REQUIRED:
        return "required"
    if f.default is None:
        return "—"
    value = f.default[0] if isinstance(f.default, tuple) and len(f.default) == 1 and f.name == "cells" else f.default
    return f"`{toml_value(value)}`"


def _row(key: str, f: dataclasses.Field, extra: str = "") -> str:
    r = f.metadata["rule"]
    cells = [f"`{key}`", _default_text(f), r.describe().replace("|", "\\|"), f.metadata["doc"].replace("|", "\\|")]
    return "| " + " | ".join(cells + ([extra] if extra else [])) + " |"


def markdown_table() -> str:
    """The README's config reference, generated from the schema's own rules and docs (a test keeps the
    README equal to it). `python -m mfdyn.config` prints it."""
    lines = ["| key | default | allowed | meaning |", "| --- | --- | --- | --- |",
             "| `problem.name` | required | one of " + ", ".join(f"`{n}`" for n in PROBLEMS)
             + " | the problem; its own keys are below |"]
    for name, cls in SECTIONS.items():
        lines += [_row(f"{name}.{toml_key(f.name)}", f) for f in dataclasses.fields(cls)]
    owners: dict[str, list[str]] = {}
    fields: dict[str, dataclasses.Field] = {}
    for problem_name, problem in PROBLEMS.items():
        for f in dataclasses.fields(problem.Params):
            owners.setdefault(f.name, []).append(problem_name)
            fields.setdefault(f.name, f)
    lines += ["", "Problem keys (`[problem]`), by the problems that take them:", "",
              "| key | default | allowed | meaning | problems |", "| --- | --- | --- | --- | --- |"]
    lines += [_row(f"problem.{key}", fields[key], ", ".join(owners[key])) for key in owners]
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())
