"""Fuzzing the config path: corrupted configs and --set values give one line and exit code 2, never a traceback;
every key of the schema against a value of every TOML type: one line naming the key and exit 2 when bad, valid
when good (the configs are validated, not run)."""
from __future__ import annotations

import dataclasses
import json
import math
import random
import tomllib
from pathlib import Path

import pytest

from mfdyn.config import SECTIONS, ConfigError, load_config
from mfdyn.problems import PROBLEMS
from mfdyn.schema import REQUIRED, toml_key, toml_value
from validation.cli import main

CONFIGS = sorted(p for p in (Path(__file__).resolve().parents[1] / "configs").glob("*.toml")
                 if "base" not in tomllib.loads(p.read_text()))
WRONG_VALUES = ["text", "", True, False, [1, 2], [], {"a": 1}, -1, 0, -0.5, 1e300, -1e300, math.inf, -math.inf,
                math.nan, 10**30, [[1.0]], [["x", 2]], [1, "a"]]


def dump(value) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {dump(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(dump(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else "inf" if value == math.inf else "-inf" if value == -math.inf else repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    return str(value)


def to_toml(data: dict) -> str:
    lines = []
    for section, table in data.items():
        if isinstance(table, dict):
            lines.append(f"[{section}]")
            lines += [f"{k} = {dump(v)}" for k, v in table.items()]
        else:
            lines.insert(0, f"{section} = {dump(table)}")
    return "\n".join(lines) + "\n"


def mutate(rng: random.Random, text: str) -> str:
    data = tomllib.loads(text)
    kind = rng.randrange(7)
    if kind == 0:                                   # break the syntax
        cut = rng.randrange(1, len(text))
        return text[:cut] + rng.choice(["=", "[", "\"", "]]", "\n=\n", "x y"]) + text[cut + 1:]
    section = rng.choice(list(data))
    table = data[section]
    key = rng.choice(list(table)) if table else "x"
    if kind == 1:
        table[key] = rng.choice(WRONG_VALUES)
    elif kind == 2:
        table.pop(key, None)
        if section == "problem" and key != "name":
            table["name"] = table.get("name", "mmn_isotropic")
            table.pop(rng.choice(list(table)))
    elif kind == 3:
        table[rng.choice(["colour", "Delta", "cells_", "t-end", "seed2"])] = 1
    elif kind == 4:
        data[rng.choice(["solver", "Particles", "pdes", "output2"])] = {"a": 1}
    elif kind == 5:
        data["problem"]["name"] = rng.choice(["mmn", "MMN_isotropic", "", "teacher", "ou"])
    else:
        data[section] = rng.choice(WRONG_VALUES[:8])
    return to_toml(data)


def test_two_hundred_corrupted_configs_each_give_one_line_and_exit_2(tmp_path, capsys):
    rng = random.Random(12345)
    texts = [p.read_text() for p in CONFIGS]
    bad = attempts = 0
    while bad < 220 and attempts < 3000:
        attempts += 1
        text = mutate(rng, rng.choice(texts))
        path = tmp_path / f"fuzz{attempts}.toml"
        path.write_text(text)
        try:
            load_config(path)
            continue                                # still valid: not a corruption
        except ConfigError:
            pass
        out = tmp_path / f"fuzz{attempts}.h5"
        code = main(["run", str(path), "--out", str(out)])
        err = capsys.readouterr().err
        assert code == 2, (text, err)
        assert err.count("\n") == 1 and err.startswith("mfdyn: error: ") and "Traceback" not in err, err
        assert not out.exists()
        bad += 1
    assert bad >= 200, (bad, attempts)


def test_two_hundred_random_set_values_each_give_one_line_and_exit_2(tmp_path, capsys):
    rng = random.Random(777)
    base = CONFIGS[0]
    sections = {name: list(table) for name, table in tomllib.loads(base.read_text()).items()}
    values = ["abc", "[1,", "{", "1e999", "-1", "0", "nan", "true", "[1, 2, 3]", "\"x\"", "-inf", "1.5.2", "",
              "[[0, 1], [2]]", "10000000000000000000000"]
    bad = attempts = 0
    while bad < 200 and attempts < 2000:
        attempts += 1
        section = rng.choice(list(sections) + ["nope", "Problem"])
        key = rng.choice(sections.get(section, ["x"]) + ["unknown_key"])
        text = rng.choice([f"{section}.{key}={rng.choice(values)}", f"{section}{key}=1", f"{section}.{key}",
                           f"={rng.choice(values)}"])
        try:
            load_config(base, [text])
            continue
        except ConfigError:
            pass
        out = tmp_path / f"set{attempts}.h5"
        code = main(["run", str(base), "--out", str(out), "--set", text])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, (text, err)
        assert not out.exists()
        bad += 1
    assert bad >= 200, (bad, attempts)


# A value of every TOML type, as TOML literals: strings, integers, floats, booleans, arrays (empty, of each
# kind, nested, mixed), an inline table, the date-time kinds, and inf / nan alone and in arrays
EVERY_TYPE = ['"text"', '""', '"explicit"', "0", "-3", "7", "9223372036854775807", "0.5", "-2.5", "1e300", "1e-300",
              "true", "[]", "[1, 2]", "[0.25]", '["a", "b"]', "[[0.0, 1.0]]", "[[1, 2], [3]]", '[1, "a"]',
              "{ a = 1 }", "1979-05-27T07:32:00Z", "1979-05-27", "07:32:00", "inf", "nan", "[inf]", "[nan, 1.0]"]
# Good values of the keys whose default is "none given"
GOOD = {"init.mean": "[0.3]", "pde.bounds": "[[-4.0, 4.0]]", "output.observables": '["tanh(theta1)"]'}
BUILT_IN = [name for name, cls in PROBLEMS.items() if cls.__module__.startswith("mfdyn.problems")]


def config_text(problem: str, section: str, key: str, literal: str) -> str:
    """The smallest config of `problem` (its name and dynamics.t_end), with section.key = literal set."""
    tables = {"problem": {"name": json.dumps(problem)}, "dynamics": {"t_end": "1.0"}}
    tables.setdefault(section, {})[key] = literal
    return "".join(f"[{name}]\n" + "".join(f"{k} = {v}\n" for k, v in table.items()) for name, table in tables.items())


# The section keys are tried on a problem in a reduced coordinate and on one in full θ-space
SECTION_PROBLEMS = ("mmn_isotropic", "ornstein_uhlenbeck")


def schema_keys() -> list[tuple[str, str, str, str | None]]:
    """(problem, section, key, a good literal or None) for every key of the schema: each section key on the
    SECTION_PROBLEMS, each problem key on every problem that takes it, and problem.name."""
    out = []
    for problem in BUILT_IN:
        fields = [(name, f) for name, cls in SECTIONS.items() for f in dataclasses.fields(cls)
                  if problem in SECTION_PROBLEMS]
        fields += [("problem", f) for f in dataclasses.fields(PROBLEMS[problem].Params)]
        for section, f in fields:
            key = toml_key(f.name)
            default = None if f.default in (None, REQUIRED) else toml_value(f.default)
            good = default if default is not None else GOOD.get(f"{section}.{key}") if problem == "ornstein_uhlenbeck" else None
            out.append((problem, section, key, good))
        out.append((problem, "problem", "name", json.dumps(problem)))
    return out


KEYS = schema_keys()


def test_the_schema_keys_cover_every_section_and_problem_key():
    named = {f"{section}.{key}" for _, section, key, _ in KEYS}
    assert {f"{s}.{toml_key(f.name)}" for s, cls in SECTIONS.items() for f in dataclasses.fields(cls)} <= named
    assert {f"problem.{toml_key(f.name)}" for p in BUILT_IN for f in dataclasses.fields(PROBLEMS[p].Params)} <= named
    assert "problem.name" in named and "dynamics.lambda" in named and len(BUILT_IN) >= 5


GROUPS = sorted({(problem, section) for problem, section, _, _ in KEYS})


@pytest.mark.parametrize("problem,section", GROUPS)
def test_every_key_against_every_toml_type_is_valid_or_one_line_naming_it(problem, section, tmp_path, capsys):
    """Each key of a section of the problem's config, set to each value of EVERY_TYPE: either the config is
    valid, or `mfdyn run` exits 2 with one line that names the key, before any file; and each key's default
    (or a known good value) is valid."""
    path, out = tmp_path / "c.toml", tmp_path / "c.h5"
    keys = [(key, good) for p, s, key, good in KEYS if (p, s) == (problem, section)]
    bad = 0
    for key, good in keys:
        if good is not None:
            load_config(config_text(problem, section, key, good), from_text=True)     # raises if not valid
        for literal in EVERY_TYPE:
            text = config_text(problem, section, key, literal)
            try:
                load_config(text, from_text=True)
                continue                                               # a good value: valid
            except ConfigError:
                pass
            path.write_text(text)
            code = main(["run", str(path), "--out", str(out)])
            err = capsys.readouterr().err
            assert code == 2, (text, err)
            assert err.count("\n") == 1 and err.startswith("mfdyn: error: invalid config: "), (text, err)
            assert f"{section}.{key}" in err, (text, err)
            assert not out.exists()
            bad += 1
    assert bad >= len(EVERY_TYPE) // 2 * len(keys)                    # most types are wrong for most keys
