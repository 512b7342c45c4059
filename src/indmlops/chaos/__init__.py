"""Chaostoolkit activities for the reference stack, working through the Target seam: `actions` (kill, wait for
recovery, rollbacks), `probes` (the steady-state hypothesis), `traffic` (QoS1 readings with per-machine
accounting across a fault) and `runner` (run an experiment from pytest and read its journal)."""
