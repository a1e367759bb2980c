"""`prefect deploy --all` registers every deployment of prefect.yaml with the stack's
Prefect server, and the stack's worker runs a scheduled flow run to completion. A
deployment that writes to the operational database is not on by default."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from lakehouse.settings import PROJECT_DIR
from tests.support.stack import running_stack

RUN_TIMEOUT_S = 240.0
# what writes to the operational database: the simulator, and the live path that runs it
_WRITES_TO_OLTP = ("lakehouse.oltp.simulate", "lakehouse.pipeline.live")


def _imports(module: str, seen: set[str] | None = None) -> set[str]:
    """The modules a flow module imports, through the other flow modules it imports."""
    seen = set() if seen is None else seen
    if module in seen:
        return set()
    seen.add(module)
    tree = ast.parse((PROJECT_DIR / (module.replace(".", "/") + ".py")).read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    for name in [m for m in found if m.startswith("flows.")]:
        found |= _imports(name, seen)
    return found


def _schedules_active(spec: dict[str, object]) -> list[bool]:
    return [s.get("active", True) for s in spec["schedules"]]  # type: ignore[attr-defined]


def test_what_writes_to_the_operational_database_is_off_by_default() -> None:
    spec = yaml.safe_load((PROJECT_DIR / "prefect.yaml").read_text())
    writers = {
        d["name"]
        for d in spec["deployments"]
        if _imports("flows." + Path(d["entrypoint"].split(":")[0]).stem) & set(_WRITES_TO_OLTP)
    }
    assert writers == {"demo-daily", "simulate-and-capture-daily"}  # the check finds them
    for deployment in spec["deployments"]:
        if deployment["name"] in writers:
            assert not any(_schedules_active(deployment)), deployment["name"]


@pytest.mark.stack
def test_deploy_all_then_worker_runs_a_scheduled_flow(tmp_path: Path) -> None:
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterTags,
        LogFilter,
        LogFilterFlowRunId,
    )
    from prefect.states import Scheduled

    spec = yaml.safe_load((PROJECT_DIR / "prefect.yaml").read_text())
    expected = {d["name"]: d for d in spec["deployments"]}
    flow_modules = {p.stem for p in (PROJECT_DIR / "flows").glob("*.py")} - {"__init__"}
    deployed_modules = {Path(d["entrypoint"].split(":")[0]).stem for d in expected.values()}
    assert deployed_modules == flow_modules - {"_runtime"}, "every flow has a deployment"
    assert all(d["schedules"] and d["work_pool"]["name"] == "lakehouse" for d in expected.values())

    with running_stack(tmp_path, ["prefect-worker"]) as stack:
        api = f"http://127.0.0.1:{stack.port('prefect_port')}/api"
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")},
            "PREFECT_API_URL": api,
            "PREFECT_HOME": str(tmp_path / "prefect-client"),
            "PREFECT_CLI_PROMPT": "false",
        }
        began = time.monotonic()
        deploy = subprocess.run(
            [str(Path(sys.executable).parent / "prefect"), "deploy", "--all", "--no-prompt"],
            cwd=PROJECT_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        print(f"prefect deploy --all: {time.monotonic() - began:.1f} s")
        assert deploy.returncode == 0, deploy.stdout[-3000:] + deploy.stderr[-3000:]

        with SyncPrefectClient(api) as client:
            deployments = {d.name: d for d in client.read_deployments()}
            assert set(deployments) == set(expected)
            for name, deployment in deployments.items():
                assert deployment.work_pool_name == "lakehouse"
                assert deployment.entrypoint == expected[name]["entrypoint"]
                assert len(deployment.schedules) == len(expected[name]["schedules"])
                # the server keeps each schedule's on/off as the file says
                assert [s.active for s in deployment.schedules] == _schedules_active(
                    expected[name]
                ), name
                assert deployment.pull_steps, f"{name} has no pull step"
            # keep the heavy pipeline flows from running on their schedules meanwhile
            check = deployments["health-check-every-10-minutes"]
            for deployment in deployments.values():
                if deployment.id != check.id:
                    client.pause_deployment(deployment.id)

            # the server's scheduler turns the active schedules into runs
            of_check = DeploymentFilter(id=DeploymentFilterId(any_=[check.id]))
            auto = FlowRunFilter(tags=FlowRunFilterTags(all_=["auto-scheduled"]))
            deadline = time.monotonic() + 120
            planned = client.read_flow_runs(deployment_filter=of_check, flow_run_filter=auto)
            while not planned and time.monotonic() < deadline:
                time.sleep(2)
                planned = client.read_flow_runs(deployment_filter=of_check, flow_run_filter=auto)
            server_log = stack.data_dir / "stack/prefect/prefect-server.log"
            errors = [line for line in server_log.read_text().splitlines() if "Error:" in line]
            assert planned, f"the scheduler made no runs from the schedules: {errors[-1:]}"
            assert all(r.state is not None and r.state.is_scheduled() for r in planned)

            when = datetime.now(UTC) + timedelta(seconds=5)
            run = client.create_flow_run_from_deployment(
                check.id, state=Scheduled(scheduled_time=when), name="scheduled-by-the-test"
            )
            began = time.monotonic()
            state = client.read_flow_run(run.id).state
            while time.monotonic() - began < RUN_TIMEOUT_S:
                state = client.read_flow_run(run.id).state
                if state is not None and state.is_final():
                    break
                time.sleep(2)
            worker_log = (stack.data_dir / "stack/prefect-worker/prefect-worker.log").read_text()
            assert state is not None and state.is_completed(), (
                f"flow run ended {state!r}; worker log: {worker_log[-3000:]}"
            )
            finished = client.read_flow_run(run.id)
            print(
                f"scheduled run completed {time.monotonic() - began:.1f} s after scheduling "
                f"(started {finished.start_time}, scheduled {when:%H:%M:%S})"
            )
            assert finished.start_time is not None and finished.start_time >= when - timedelta(
                seconds=1
            )
            # the run saw the stack's settings: the worker handed it the data directory
            # (the run's logs reach the server in batches, maybe after its final state)
            deadline = time.monotonic() + 30
            messages = ""
            while "flow runs work" not in messages and time.monotonic() < deadline:
                time.sleep(1)
                only_this_run = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run.id]))
                messages = "\n".join(log.message for log in client.read_logs(only_this_run))
            assert "flow runs work" in messages, messages
            assert str(stack.data_dir.resolve()) in messages, messages
