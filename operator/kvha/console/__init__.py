"""`kvha plan` and `kvha status`: what kvha would do if hosts failed now, and what it is doing.

Read-only commands for people (and CI checks); they read the cluster through `kvha.k8s.listing`
and decide nothing themselves: the plan is `kvha.reconcile.what_if`, the operator's own code.
"""
