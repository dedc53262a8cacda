"""The contracts' Python side: the escrow driver with its ground truth (escrow.py, planned in
escrow_scenario.py) and the raw-log emitter (emitter.py)."""
