"""In-memory fakes of the relay's three ports, and a deterministic simulation over them.

`fake_chain`, `fake_state` and `fake_sink` behave like the real adapters (the contract tests
in tests/integration/test_port_contracts.py run against both); `clock` makes the run's time,
ids and publish threads deterministic; `simulation` drives the real `Relay` through random
schedules of overlapping runs, crashes, freezes, stops and reorganisations from a seed.
"""
