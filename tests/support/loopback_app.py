"""An aiohttp application served on 127.0.0.1 on a free port, inside the test's own event loop."""

from __future__ import annotations

from aiohttp import web


class LoopbackApp:
    """Base of the fake hosted APIs: subclasses add their routes in `routes`."""

    def __init__(self) -> None:
        self.port = 0
        self._runner: web.AppRunner | None = None

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    async def start(self):  # type: ignore[no-untyped-def]  # returns the subclass
        app = web.Application()
        self.routes(app)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
