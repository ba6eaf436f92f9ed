"""Imported by the sweep's fork server: load mmsim and its compiled kernels once, so
every worker forked from it starts warm (see :mod:`mmsim.sweep`)."""

from mmsim.sweep import _warm

_warm()
