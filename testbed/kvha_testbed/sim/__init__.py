"""The simulated part of KubeVirt: virt-handler and a medik8s fence agent as threads (and, in the
named fallback, virt-controller).

Not KubeVirt. A clearly named test double that reproduces the documented behaviour kvha depends
on (run strategies, launcher pods, heartbeats, what happens on dead nodes) against the real API
server, plus a ledger of which guests really run. Start at simulator.py.
"""
