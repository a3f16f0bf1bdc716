"""``xontrib load hera``: forwards to :mod:`hera.xontrib`."""

from hera.xontrib import load as _load_xontrib_, unload as _unload_xontrib_

__all__ = ["_load_xontrib_", "_unload_xontrib_"]
