"""The local services: anvil and the emulators (services.py), their process supervision
(processes.py), client helpers against them (clients.py), and a TCP fault proxy (tcphold.py)."""
