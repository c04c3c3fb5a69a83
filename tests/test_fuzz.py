"""Fuzzing the config path: corrupted configs and --set values give one line and exit code 2, never a traceback."""
from __future__ import annotations

import json
import math
import random
import tomllib
from pathlib import Path

from mfdyn.config import ConfigError, load_config
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
