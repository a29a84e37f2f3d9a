"""Kept for existing imports: `from sunny_pipelines.sandbox.server import SandboxServer`.

The server lives in `sunny_pipelines.sandbox.core.server`."""

from sunny_pipelines.sandbox.core.server import SandboxServer

__all__ = ["SandboxServer"]
