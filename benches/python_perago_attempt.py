"""One attempt's transfers through Python perago 0.6.1, for `benches/data_scale.rs`.

`cargo bench --bench data_scale` runs this script (when `PERAGO_BENCH_PYTHON` names a Python
with perago 0.6.1 installed) against the same dev server, repository, commit and injected
latency as the Rust attempts, so the ratio comes from one run:

    python3 -m venv /tmp/pyperago && /tmp/pyperago/bin/pip install perago==0.6.1
    PERAGO_BENCH_PYTHON=/tmp/pyperago/bin/python cargo bench --bench data_scale

It drives Python perago's own lakeFS runtime (`LakeFSWorkspaceRuntime`): download the
workspace, change 10 files, stage (branch, uploads, commit), delete the staging branch; and
prints one JSON line with the phase times in milliseconds.

Usage: python_perago_attempt.py ENDPOINT KEY SECRET REPOSITORY REF WORKDIR EXECUTION_ID
"""

import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace

from perago.config import LakeFSConfig
from perago.lakefs_runtime import LakeFSWorkspaceRuntime
from perago.models import WorkspaceInput, WorkspaceSpec

CHANGED = 10


def main() -> None:
    endpoint, key, secret, repository, ref, workdir, execution = sys.argv[1:8]
    runtime = LakeFSWorkspaceRuntime.from_config(
        LakeFSConfig(endpoint_url=endpoint, access_key_id=key, secret_access_key=secret)
    )
    spec = WorkspaceSpec(prefix="/")
    workspace = WorkspaceInput(repository=repository, branch="main", refType="commit", ref=ref)
    attempt = SimpleNamespace(
        workflow_instance_id="bench",
        reference_task_name="bench",
        seq=0,
        iteration=0,
        task_id=f"bench-{execution}",
        retry_count=0,
        execution_id=execution,
    )
    root = Path(workdir) / execution
    root.mkdir(parents=True)
    started = time.perf_counter()
    runtime.download_workspace(workspace, spec, root)
    download = time.perf_counter() - started
    files = sorted(p for p in root.rglob("*") if p.is_file())
    for path in files[:: max(1, len(files) // CHANGED)][:CHANGED]:
        path.write_text(f"changed by {execution}")
    started = time.perf_counter()
    staged = runtime.stage_workspace(root, workspace, spec, attempt)
    stage = time.perf_counter() - started
    runtime.cleanup_staging(staged)
    print(json.dumps({"download_ms": download * 1e3, "stage_ms": stage * 1e3}))


if __name__ == "__main__":
    main()
