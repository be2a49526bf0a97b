"""The Lua scripts (``sheppy_redis/lua/*.lua``), loaded with importlib.resources and run by EVALSHA.

Each script is ``_common.lua`` followed by its own file. ``run`` sends EVALSHA and falls back to EVAL
when the server does not know the script (first use, after a restart or ``SCRIPT FLUSH``); EVAL also
caches it, so later calls are EVALSHA again. The fallback works the same on a cluster node, which is
why we do not rely on redis-py's ``register_script`` (it needs a ``SCRIPT LOAD`` round trip per node).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from redis.exceptions import NoScriptError

__all__ = ["Script", "script"]

_Client = Any  # redis.asyncio.Redis or RedisCluster (or a pipeline of either)


@dataclass(frozen=True)
class Script:
    """One Lua script: its full source and SHA1."""

    name: str
    source: str
    sha: str

    async def run(self, client: _Client, keys: list[str], args: list[Any]) -> Any:
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await client.eval(self.source, len(keys), *keys, *args)

    def queue_eval(self, pipeline: _Client, keys: list[str], args: list[Any]) -> None:
        """Add this script to a pipeline as EVAL (no NOSCRIPT is possible inside a pipeline)."""
        pipeline.eval(self.source, len(keys), *keys, *args)


@cache
def _common() -> str:
    return resources.files("sheppy_redis").joinpath("lua", "_common.lua").read_text("utf-8")


@cache
def script(name: str) -> Script:
    """The script ``lua/<name>.lua``, with the common helpers in front."""
    body = resources.files("sheppy_redis").joinpath("lua", f"{name}.lua").read_text("utf-8")
    source = f"{_common()}\n-- {name}.lua\n{body}"
    return Script(name, source, hashlib.sha1(source.encode("utf-8")).hexdigest())
