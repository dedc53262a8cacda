"""`python -m devstack.faults --kills 300`: the fault campaign (devstack/faults/campaign.py)."""

import sys

from devstack.faults.campaign import main

sys.exit(main())
