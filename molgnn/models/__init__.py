"""molgnn.models."""

__all__: list[str] = []
