"""`make bench`: the relayer against a floor, a naive relayer and a raw scan (see README.md)."""
