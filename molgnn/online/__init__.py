"""molgnn.online."""

__all__: list[str] = []
