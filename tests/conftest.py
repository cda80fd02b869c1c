"""Shared pytest setup: the testbed's fixtures (plane, namespace, nodes, ...) for every test."""

pytest_plugins = ["kvha_testbed.fixtures"]
