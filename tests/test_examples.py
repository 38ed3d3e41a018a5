"""The FastAPI and Flask examples end to end, each against a real worker."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import httpx
from examples import fastapi_app, flask_app

from fennel.client.aio import AsyncResult
from fennel.job import Status


def test_fastapi_example(start_worker):
    start_worker("examples.fastapi_app:app")

    async def main() -> None:
        transport = httpx.ASGITransport(app=fastapi_app.api)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                r = await http.get("/square/7")
                assert r.status_code == 200
                assert r.json() == {"n": 7, "square": 49}

                many = await asyncio.gather(*(http.get(f"/square/{i}") for i in range(20)))
                assert [r.json()["square"] for r in many] == [i * i for i in range(20)]

                r = await http.get("/squares/5")
                assert r.json() == {"squares": [0, 1, 4, 9, 16]}

                r = await http.post("/thumbnails/cat.png")
                job_id = r.json()["job_id"]
                handle: AsyncResult[str] = AsyncResult(fastapi_app.app, job_id)
                assert await handle.get(timeout=30) == "thumbnails/cat.png"
                assert await handle.status() is Status.SUCCESS

                r = await http.get("/divide/1/0")
                assert r.status_code == 422
                assert "ZeroDivisionError" in r.json()["detail"]
        finally:
            await fastapi_app.app.aclose()

    asyncio.run(main())


def test_flask_example_from_many_threads(start_worker):
    start_worker("examples.flask_app:app")
    web = flask_app.web

    def add(i: int) -> int:
        with web.test_client() as client:
            r = client.get(f"/add?a={i}&b={i}")
            assert r.status_code == 200
            return int(r.get_json()["result"])

    with ThreadPoolExecutor(max_workers=12) as pool:
        assert list(pool.map(add, range(60))) == [2 * i for i in range(60)]

    client = web.test_client()
    r = client.post("/email/ann@example.com?wait=1")
    assert r.get_json() == {"result": "sent to ann@example.com"}
    r = client.post("/email/nobody?wait=1")
    assert r.status_code == 422
    assert r.get_json()["error"] == "ValueError"
    r = client.post("/email/bob@example.com")
    assert r.status_code == 202
    assert r.get_json()["job_id"]
