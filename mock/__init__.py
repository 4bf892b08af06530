"""A fake of the external sending API, with JWT auth and fault injection.

It stands for a system that is not ours, so it imports nothing of notifyctl, daemon or web.
Start it with ``notifyctl mock`` or ``mock.server.serve(...)``.
"""
