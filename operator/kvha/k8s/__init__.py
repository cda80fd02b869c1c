"""The one adapter that talks to the Kubernetes API with the `kubernetes` client.

The client is synchronous; every call here runs in a worker thread so kopf's event loop never
blocks on the network.
"""
