"""A Cloud Storage outage in a fleet: RELAYER_CONFIG lists three relayers of the escrow
world, one of them with its ABI on gs://, and the storage emulator is stopped.

Runs during the outage must still relay the other two, and every relayer must end each
run in exactly one summary; once storage is back (a fresh emulator holding the ABI), runs
go on until every relayer is idle, and nothing may be lost. Each relayer has a trial of its
own (relayer id, topic, poller) and is judged by the usual verdict, over the runs' journals
and summaries narrowed to it; the fleet verdict adds the summaries and the exit codes.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections import Counter
from typing import Any

from devstack.chain.escrow import ARTIFACT_PATH
from devstack.faults.proc import Proc
from devstack.faults.trial import Trial
from devstack.faults.verdict import judge
from devstack.faults.world import World
from devstack.stack.clients import upload_blob
from devstack.stack.services import start_storage_emulator

BUCKET, OBJECT = "faults-abi", "escrow.json"
OK = ("ok", "idle", "skipped")
OUTAGE_RUN_S = 30.0  # three relayers of 60 events take ~2 s; an outage may cost retries


def _storage_with_abi() -> Any:
    storage = start_storage_emulator()
    upload_blob(storage.address, BUCKET, OBJECT, ARTIFACT_PATH.read_bytes(),
                content_type="application/json")  # fmt: skip
    return storage


def storage_outage(world: World, rng: random.Random) -> Trial:
    """Three relayers in one deployment, one reading its ABI from a stopped Cloud Storage."""
    interval, batch = rng.choice((2, 3)), rng.choice((6, 1000))
    fleet = [Trial(world, f"fleet{n}", lease_s=2.0, interval=interval, batch=batch)
             for n in range(3)]  # fmt: skip
    main = fleet[0]
    main.cleanups += [t.close for t in fleet[1:]]
    on_gs = rng.randrange(len(fleet))
    down = _storage_with_abi()
    host = down.env_value
    down.stop()  # the outage: the ABI's host answers nothing
    entries = [{"RELAYER_ID": t.relayer_id, "PUBSUB_TOPIC": t.topic.topic_id,
                "ABI_URI": f"gs://{BUCKET}/{OBJECT}" if n == on_gs else str(ARTIFACT_PATH)}
               for n, t in enumerate(fleet)]  # fmt: skip
    config = main.dir / "relayers.json"
    config.write_text(json.dumps({"relayers": entries}))
    for _ in range(rng.randint(1, 2)):
        proc = main.launch(RELAYER_CONFIG=str(config), STORAGE_EMULATOR_HOST=host)
        proc.wait(OUTAGE_RUN_S)  # a run still waiting on storage after this is hung
        main.wait_lease()
    back = _storage_with_abi()
    main.cleanups.append(back.stop)
    for _ in range(20):  # until every relayer finds nothing new
        proc = main.run(RELAYER_CONFIG=str(config), STORAGE_EMULATOR_HOST=back.env_value)
        if sorted(str(s.get("outcome")) for s in proc.summaries()) == ["idle"] * len(fleet):
            for t in fleet:
                t.recovered = True
            break
        main.wait_lease()
    main.verdict = lambda: _fleet_verdict(fleet, on_gs)
    return main


def _narrowed(proc: Proc, trial: Trial) -> Proc:
    """The run as one relayer saw it: its summary, its lease grants, an exit code to match."""
    summaries = [s for s in proc.summaries() if s.get("relayer_id") == trial.relayer_id]
    out = trial.dir / f"{proc.tag}.narrowed.out"  # not the run's own file: others read it
    out.write_text("".join(json.dumps(s) + "\n" for s in summaries))
    journal = trial.dir / f"{proc.tag}.narrowed.journal"
    mine = [e for e in proc.journal() if e["what"] == "acquired"
            and str(e.get("lease", "")).endswith("/" + trial.relayer_id)]  # fmt: skip
    journal.write_text("".join(json.dumps(e) + "\n" for e in mine))
    outcome = summaries[0].get("outcome") if len(summaries) == 1 else None
    code = proc.code if proc.code is None or proc.code < 0 else (0 if outcome in OK else 1)
    return dataclasses.replace(proc, out=out, journal_path=journal, code=code)


def _fleet_verdict(fleet: list[Trial], on_gs: int) -> tuple[Counter[str], list[str]]:
    main = fleet[0]
    figures: Counter[str] = Counter()
    findings: list[str] = []
    for n, trial in enumerate(fleet):
        evidence = trial.evidence()
        evidence["procs"] = [_narrowed(p, trial) for p in main.procs]
        got, said = judge(trial.world, evidence, trial.interval)
        figures.update(got)
        findings += [f"relayer {n}{' (gs://)' if n == on_gs else ''}: {f}" for f in said]
    figures["runs"] = len(main.procs)  # each process once, not once per relayer
    for proc in main.procs:
        summaries = proc.summaries()
        ids = Counter(s.get("relayer_id") for s in summaries)
        if any(ids[t.relayer_id] != 1 for t in fleet):
            figures["summaries_missing"] += 1
            findings.append(f"{proc.tag}: summaries per relayer {dict(ids)}")
        others = [s for s in summaries if s.get("relayer_id") != fleet[on_gs].relayer_id]
        if any(s.get("outcome") not in OK for s in others):
            figures["fleet_blocked"] += 1
            findings.append(f"{proc.tag}: a relayer without gs:// did not run: "
                            f"{[(s.get('outcome'), s.get('error')) for s in others]}")  # fmt: skip
        failed = any(s.get("outcome") not in OK for s in summaries)
        if proc.code not in ((1, 2) if failed else (0,)):
            figures["unclear"] += 1
            findings.append(f"{proc.tag}: exit {proc.code}, a relayer failed: {failed}")
    return figures, findings
