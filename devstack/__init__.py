"""Local chain tooling shared by the tests and the demo, kept out of the relayer package."""
