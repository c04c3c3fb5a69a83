"""The README's config table is the schema's own (mfdyn.config.markdown_table): they cannot drift apart."""
import dataclasses
import re
from pathlib import Path

from mfdyn.config import SECTIONS, markdown_table

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_config_table_is_generated_from_the_schema():
    text = README.read_text()
    block = re.search(r"<!-- config-table:start -->\n(.*?)\n<!-- config-table:end -->", text, re.S)
    assert block, "README.md has no config-table markers"
    assert block.group(1) == markdown_table(), "README config table is stale: paste `python -m mfdyn.config`"


def test_the_table_names_every_key_with_its_doc():
    table = markdown_table()
    for name, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            key = "lambda" if f.name == "lam" else f.name
            assert f"`{name}.{key}`" in table
            assert f.metadata["doc"], f"{name}.{key} has no doc in the schema"
