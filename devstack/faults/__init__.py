"""The fault campaign (`python -m devstack.faults`, campaign.py) and its parts: the world it
relays (world.py), trials (trial.py), the runs' launchers (launch.py, zygote.py) and the
crash-point wrapper they run (crashing_main.py), the scenarios, the verdict and the report.

Kept empty of imports: `python -m devstack.faults.zygote` and the unit tests import single
modules of it."""
