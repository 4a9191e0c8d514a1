"""Runtimes: where a stage's command runs, and what that place is made of.

`base.py` says what every runtime gives; `host.py` is the machine itself (dev
mode, and tracked runs until a sealed runtime is configured).
"""
