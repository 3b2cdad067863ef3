"""Plugin discovery through real entry points (temporary dist-info directories on sys.path)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from valuesim import plugins
from valuesim.errors import ConfigError, ProviderError


@pytest.fixture(autouse=True)
def _fresh_plugins(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(plugins.ALLOW_ENV, raising=False)
    monkeypatch.delenv(plugins.BLOCK_ENV, raising=False)
    plugins.plugin_manager.cache_clear()
    yield
    plugins.plugin_manager.cache_clear()


def fake_distribution(site: Path, name: str, module_source: str) -> None:
    """Install a one-module distribution ``name`` whose entry point is ``name``."""
    (site / f"{name}.py").write_text(textwrap.dedent(module_source))
    dist = site / f"{name}-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[valuesim]\n{name} = {name}\n")


def test_entry_point_plugins_register_through_the_same_hook_as_builtins(
    testplugin_site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(testplugin_site))
    found = plugins.providers(plugins.make_plugin_manager())
    assert {"transformers", "testprovider"} <= set(found)
    assert found["testprovider"].package == "valuesim-testprovider"
    assert "static" in plugins.descriptor_generators(plugins.make_plugin_manager())


def test_without_the_distribution_the_provider_is_gone() -> None:
    assert "testprovider" not in plugins.providers(plugins.make_plugin_manager())
    with pytest.raises(ProviderError, match=r"unknown provider 'testprovider'.*installed: .*transformers"):
        plugins.get_provider_factory("testprovider")


@pytest.mark.parametrize(
    ("allow", "block", "loaded"),
    [
        (None, None, True),
        ("testprovider", None, True),
        ("other, testprovider", None, True),
        ("other", None, False),
        ("", None, False),  # an empty allowlist loads no external plugin
        (None, "testprovider", False),
        ("testprovider", "testprovider", False),
    ],
)
def test_allow_and_block_lists(
    testplugin_site: Path, monkeypatch: pytest.MonkeyPatch, allow: str | None, block: str | None,
    loaded: bool,
) -> None:
    monkeypatch.syspath_prepend(str(testplugin_site))
    if allow is not None:
        monkeypatch.setenv(plugins.ALLOW_ENV, allow)
    if block is not None:
        monkeypatch.setenv(plugins.BLOCK_ENV, block)
    found = plugins.providers(plugins.make_plugin_manager())
    assert ("testprovider" in found) is loaded
    assert "transformers" in found  # built-ins always load


def test_a_plugin_that_fails_to_import_is_named_with_the_way_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_distribution(tmp_path, "valuesim_broken", "import a_module_that_does_not_exist\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(
        ConfigError,
        match=r"plugin 'valuesim_broken'.*failed to load: ModuleNotFoundError.*"
        r"VALUESIM_BLOCK_PLUGINS=valuesim_broken",
    ):
        plugins.make_plugin_manager()
    monkeypatch.setenv(plugins.BLOCK_ENV, "valuesim_broken")
    assert "transformers" in plugins.providers(plugins.make_plugin_manager())


def test_a_hook_that_does_not_exist_is_caught_by_check_pending(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_distribution(
        tmp_path, "valuesim_typo",
        """
        from valuesim import hookimpl

        @hookimpl
        def register_provider(register):  # singular: not a valuesim hook
            pass
        """,
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError, match="'valuesim_typo' implements a hook valuesim does not define"):
        plugins.make_plugin_manager()


def test_a_hookimpl_with_wrong_arguments_is_invalid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_distribution(
        tmp_path, "valuesim_badargs",
        """
        from valuesim import hookimpl

        @hookimpl
        def register_providers(register, extra):
            pass
        """,
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError, match=r"plugin 'valuesim_badargs'.*is invalid"):
        plugins.make_plugin_manager()


def test_two_plugins_cannot_claim_one_provider_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_distribution(
        tmp_path, "valuesim_impostor",
        """
        from valuesim import hookimpl
        from valuesim.llm.types import Capabilities

        class Factory:
            name = "transformers"
            package = "valuesim-impostor"
            capabilities = Capabilities(logprobs=True)

        @hookimpl
        def register_providers(register):
            register(Factory())
        """,
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError, match="two plugins register the provider 'transformers'"):
        plugins.providers(plugins.make_plugin_manager())


def test_provider_infos_report_package_version_and_capabilities(
    testplugin_site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(testplugin_site))
    infos = {i.name: i for i in plugins.provider_infos(plugins.make_plugin_manager())}
    test = infos["testprovider"]
    assert (test.package, test.version) == ("valuesim-testprovider", "0.1")
    assert (test.logprobs, test.top_logprobs, test.sampling, test.text_generation, test.batch_api) == (
        True, 5, True, False, False,
    )
    assert infos["transformers"].package == "valuesim"


def test_the_core_lists_providers_without_any_sdk_or_torch() -> None:
    code = textwrap.dedent(
        """
        import sys
        for name in ("openai", "anthropic", "google", "google.genai", "torch", "transformers"):
            sys.modules[name] = None  # any import of these now fails
        from valuesim.plugins import provider_infos
        import valuesim.llm.engine, valuesim.stages.simulate, valuesim.commands.score
        print(sorted(i.name for i in provider_infos()))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        env={"PATH": "/usr/bin:/bin", "VALUESIM_PLUGINS": ""},
    )
    assert "'transformers'" in out.stdout
