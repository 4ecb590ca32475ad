"""A fake Asterisk 22 speaking AMI on 127.0.0.1, with a seeded population of callees.

Run with ``python -m asterisk.pbx_simulator`` or ``allerta simulate pbx``.
"""
