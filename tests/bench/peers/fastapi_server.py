"""fastapi_server.py: the seed a Python team would write, as a benchmark peer.

FastAPI (Debian python3-fastapi) on uvicorn (python3-uvicorn), one process:
- WebSocket /ws speaking the JSON subset of tests/bench/node-ws/server.mjs
  (welcome, subscribe -> subscribed, publish -> message to every subscriber
  + ack, ping -> pong);
- GET /sse/{ch}: an SSE stream (StreamingResponse fed by an asyncio.Queue per
  reader) and POST /v1/channels/{ch}/publish -> 200 {} broadcasting to the
  channel's SSE readers and WebSocket subscribers.
Run: PORT=8092 /usr/bin/python3 fastapi_server.py
"""
import asyncio
import json
import os
import time

import uvicorn
from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse

app = FastAPI()
ws_channels: dict[str, set[WebSocket]] = {}
sse_channels: dict[str, set[asyncio.Queue]] = {}
next_conn = 0


async def broadcast(channel: str, msg: dict) -> None:
    text = json.dumps(msg, separators=(",", ":"))
    for ws in list(ws_channels.get(channel, ())):
        try:
            await ws.send_text(text)
        except Exception:  # a closing socket: its handler removes it
            pass
    if sse_channels.get(channel):
        data = msg["data"] if isinstance(msg["data"], str) else json.dumps(msg["data"])
        event = msg.get("event") or "message"
        frame = ("" if event == "message" else f"event: {event}\n") + \
            "".join(f"data: {line}\n" for line in data.split("\n")) + "\n"
        for q in sse_channels[channel]:
            q.put_nowait(frame)


@app.websocket("/ws")
async def ws_endpoint(ws: WebSocket) -> None:
    global next_conn
    await ws.accept()
    next_conn += 1
    conn = str(next_conn)
    user = f"anon-{conn}"
    mine: set[str] = set()
    await ws.send_text(json.dumps({"type": "welcome", "conn": conn, "user": user, "edge": "fastapi"}))
    try:
        while True:
            raw = await ws.receive_text()
            try:
                m = json.loads(raw)
            except ValueError:
                await ws.send_text('{"type":"error","code":"bad_request","message":"not JSON"}')
                continue
            t = m.get("type")
            if t == "subscribe":
                ws_channels.setdefault(m["channel"], set()).add(ws)
                mine.add(m["channel"])
                await ws.send_text(json.dumps({"type": "subscribed", "channel": m["channel"], "offset": 0}))
            elif t == "publish":
                await broadcast(m["channel"], {"type": "message", "channel": m["channel"],
                                               "event": m.get("event", "message"), "data": m.get("data"),
                                               "from": user, "ts": int(time.time() * 1000)})
                await ws.send_text(json.dumps({"type": "ack", "channel": m["channel"], "id": m.get("id")}))
            elif t == "ping":
                await ws.send_text('{"type":"pong"}')
            else:
                await ws.send_text('{"type":"error","code":"bad_request","message":"unknown type"}')
    except WebSocketDisconnect:
        pass
    finally:
        for c in mine:
            ws_channels.get(c, set()).discard(ws)


@app.get("/sse/{channel}")
async def sse(channel: str, request: Request) -> StreamingResponse:
    q: asyncio.Queue = asyncio.Queue()
    sse_channels.setdefault(channel, set()).add(q)

    async def stream():
        try:
            yield "retry: 3000\n\n"
            while True:
                yield await q.get()
        finally:
            sse_channels[channel].discard(q)

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


@app.post("/v1/channels/{channel}/publish")
async def publish(channel: str, request: Request) -> dict:
    m = await request.json()
    await broadcast(channel, {"type": "message", "channel": channel, "event": m.get("event", "message"),
                              "data": m.get("data"), "from": "http", "ts": int(time.time() * 1000)})
    return {}


if __name__ == "__main__":
    uvicorn.run(app, host=os.environ.get("HOST", "127.0.0.1"), port=int(os.environ.get("PORT", "8092")),
                log_level="warning", backlog=4096, ws_max_size=65536)
