"""kvha's data: the custom resources' pydantic models and read-only views of Kubernetes objects."""
