"""The operator view as an Airflow plugin: registered through the ``airflow.plugins`` entry point,
listed by ``airflow plugins`` with its app and views, and cheap to import (every Airflow component
imports plugins)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def test_airflow_plugins_lists_the_app_and_both_views(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(AIRFLOW_HOME=str(tmp_path), AIRFLOW__CORE__LOAD_EXAMPLES="False",
               AIRFLOW__CORE__PLUGINS_FOLDER=str(tmp_path / "plugins"))
    out = subprocess.run([str(BIN / "airflow"), "plugins", "--output", "json"], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    plugins = {p["name"]: p for p in json.loads(out.stdout)}
    ours = plugins["docpost"]
    assert "airflow.plugins" in ours["source"] and "docpost.ui.plugin:DocpostPlugin" in ours["source"]
    assert ours["fastapi_apps"] == [{"app": "docpost.ui.plugin.LazyApp", "url_prefix": "/docpost",
                                     "name": "docpost operator view"}]
    views = {v["destination"]: v for v in ours["external_views"]}
    assert views["nav"]["href"] == "/docpost/" and views["nav"]["url_route"] == "docpost"
    assert views["dag_run"]["href"] == "/docpost/run/{DAG_ID}/{RUN_ID}" and views["dag_run"]["url_route"]


def test_importing_the_plugin_costs_nothing_beyond_airflow_s_plugin_manager():
    code = ("import sys, airflow.plugins_manager; before = set(sys.modules); import docpost.ui.plugin; "
            "print(sorted(set(sys.modules) - before))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().replace("'", '"')) == ["docpost", "docpost.ui", "docpost.ui.plugin"]


@pytest.mark.parametrize("prefix", ["/api/v2", "/ui", "/execution", "/auth", "/pluginsv2"])
def test_the_prefix_is_none_airflow_reserves(prefix):
    from docpost.ui.plugin import URL_PREFIX

    assert not URL_PREFIX.startswith(prefix)
