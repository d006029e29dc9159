"""molgnn.interop."""

__all__: list[str] = []
