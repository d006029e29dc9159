"""Interoperability with other libraries' models."""

from molgnn.interop.torchmdnet import config_from_torchmdnet_args, from_torchmdnet

__all__ = ["config_from_torchmdnet_args", "from_torchmdnet"]
