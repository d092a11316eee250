"""The vendor boundary: nothing above `providers/` (the registry aside) and `simulator/`
names a vendor, and no vendor package imports another. Adding a vendor means one provider
package and one simulator front."""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path
from typing import get_type_hints

import pytest
from pydantic import ValidationError

from roost.config.load import validated
from roost.providers.accounts import AccountBase
from roost.providers.registry import VENDORS, account_models, vendor

ROOT = Path(__file__).resolve().parent.parent / "daemon" / "roost"
PROVIDERS = ROOT / "providers"
VENDOR_WORDS = re.compile(
    r"nest_wwn|nest_web|netatmo|\bsdm\b|google|\bwwn\b|\bnest\b|smartdevicemanagement",
    re.IGNORECASE,
)


def named_vendors(root: Path) -> list[str]:
    """`file:line: text` of every line under `root` (but providers/ and simulator/) that
    names a vendor."""
    found = []
    for path in sorted(root.rglob("*.py")):
        if path.is_relative_to(PROVIDERS) or path.is_relative_to(root / "simulator"):
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if VENDOR_WORDS.search(line):
                found.append(f"{path.relative_to(root)}:{number}: {line.strip()}")
    return found


def test_no_module_outside_providers_and_simulator_names_a_vendor() -> None:
    assert named_vendors(ROOT) == []


def test_the_check_finds_a_vendor_name(tmp_path: Path) -> None:
    (tmp_path / "config.py").write_text('API = "https://api.netatmo.com"\n')
    (tmp_path / "providers").mkdir()
    assert named_vendors(tmp_path) == ['config.py:1: API = "https://api.netatmo.com"']


def vendor_imports(package: Path) -> set[str]:
    """The other vendor packages that modules of `package` import."""
    others = set(VENDORS) - {package.name}
    found: set[str] = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                parts = name.split(".")
                if parts[:2] == ["roost", "providers"] and len(parts) > 2 and parts[2] in others:
                    found.add(parts[2])
    return found


@pytest.mark.parametrize("name", VENDORS)
def test_no_vendor_package_imports_another(name: str) -> None:
    assert vendor_imports(PROVIDERS / name) == set()


def test_the_import_check_finds_a_cross_import(tmp_path: Path) -> None:
    package = tmp_path / "nest_web"
    package.mkdir()
    (package / "session.py").write_text("from roost.providers.nest_wwn.errors import x\n")
    assert vendor_imports(package) == {"nest_wwn"}


@pytest.mark.parametrize("name", VENDORS)
def test_every_vendor_exports_its_boundary(name: str) -> None:
    package = vendor(name)
    assert issubclass(package.Account, AccountBase)
    assert get_type_hints(package.Account)["provider"] is not str  # its Literal
    assert package.WRITE_LIMITS.per_device is not None
    assert callable(package.build)
    assert package.oauth is None or callable(package.oauth)


def test_the_settings_union_is_assembled_from_the_registry() -> None:
    assert {m.__module__.split(".")[2] for m in account_models()} == set(VENDORS)


@pytest.mark.parametrize("name", VENDORS)
def test_every_credential_field_of_every_vendor_names_a_plain_file(name: str) -> None:
    model = vendor(name).Account
    fields = [f.name for f in dataclasses.fields(model) if f.name.endswith("_credential")]
    assert fields, "each vendor reads at least one secret from a credential file"
    for field in fields:
        with pytest.raises(ValidationError, match=f"{field}\n.*plain file name"):
            validated(model, provider=name, name="a", **{field: "../etc/shadow"})
