"""Connection handlers on kernel sockets (loopback): they know nothing of the sensor's TCP."""

from __future__ import annotations

import asyncio

import pytest

from dynapot.sensor.actions import ScriptRunner, proxy, substitute
from dynapot.services import recorder
from dynapot.services.contract import ConnectionInfo
from dynapot.services.recorder import record

INFO = ConnectionInfo("tcp", "198.18.0.3", 40000, "198.18.0.20", 21, "Microsoft Windows XP SP3", "dp-xp")


async def serve(handler, reports):
    def report(kind, detail, data):
        reports.append((kind, detail, data))

    async def on_connect(reader, writer):
        await handler(reader, writer, INFO, report)

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def test_record_keeps_what_arrives():
    async def main():
        reports = []
        server, port = await serve(record, reports)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /admin HTTP/1.0\r\n\x00\xff\r\n")
        writer.write_eof()
        assert await asyncio.wait_for(reader.read(), 5) == b""
        server.close()
        return reports

    reports = asyncio.run(main())
    assert reports[0][0] == "data"
    assert "GET /admin" in reports[0][1] and "\\x00\\xff" in reports[0][1]
    assert reports[0][2] == {"bytes": 25}


def test_record_stops_at_its_limit(monkeypatch):
    monkeypatch.setattr(recorder, "RECORD_LIMIT", 1000)

    async def main():
        reports = []
        server, port = await serve(record, reports)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"A" * 5000)
        await asyncio.wait_for(reader.read(), 5)
        server.close()
        return reports

    reports = asyncio.run(main())
    assert reports[0][2]["bytes"] == 1000


def test_honeyd_script_gets_the_connection_and_variables():
    script = (
        'echo "220 $HONEYD_IP_DST $HONEYD_DST_PORT from $HONEYD_IP_SRC:$HONEYD_SRC_PORT"; '
        'read line; echo "you said $line"'
    )

    async def main():
        reports = []
        runner = ScriptRunner()
        server, port = await serve(runner.handler(script), reports)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        banner = await asyncio.wait_for(reader.readline(), 5)
        writer.write(b"USER root\n")
        reply = await asyncio.wait_for(reader.readline(), 5)
        await asyncio.wait_for(reader.read(), 5)
        server.close()
        return banner, reply, reports

    banner, reply, reports = asyncio.run(main())
    assert banner == b"220 198.18.0.20 21 from 198.18.0.3:40000\n"
    assert reply == b"you said USER root\n"
    kinds = [r[0] for r in reports]
    assert kinds[0] == "script" and "data" in kinds


def test_script_variables_are_quoted():
    evil = ConnectionInfo("tcp", "$(reboot)", 1, "198.18.0.20", 2, None, "t")
    assert substitute("sh x.sh $ipsrc $dport", evil) == "sh x.sh '$(reboot)' 2"


def test_script_limit_refuses_extra_sessions():
    async def main():
        reports = []
        runner = ScriptRunner(max_processes=1)
        server, port = await serve(runner.handler("sleep 30"), reports)
        first = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.sleep(0.3)
        reader, _ = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(reader.read(), 5) == b""
        first[1].close()
        server.close()
        return reports

    reports = asyncio.run(main())
    assert ("script-refused", "too many scripts running", {"command": "sleep 30"}) in reports


def test_proxy_relays_both_ways():
    async def main():
        async def upstream(reader, writer):
            data = await reader.read(100)
            writer.write(b"echo:" + data)
            await writer.drain()
            writer.close()

        real = await asyncio.start_server(upstream, "127.0.0.1", 0)
        real_port = real.sockets[0].getsockname()[1]
        reports = []
        server, port = await serve(proxy(f"127.0.0.1:{real_port}"), reports)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"hello")
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        await asyncio.sleep(0.2)  # let the proxy see both ends close
        server.close()
        real.close()
        await asyncio.sleep(0.1)
        return answer, reports

    answer, reports = asyncio.run(main())
    assert answer == b"echo:hello"
    assert reports[0] == ("proxy", f"127.0.0.1:{reports[0][1].split(':')[1]}", None)


@pytest.mark.parametrize("target", ["127.0.0.1:1"])
def test_proxy_to_nowhere_is_reported(target):
    async def main():
        reports = []
        server, port = await serve(proxy(target), reports)
        reader, _ = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.wait_for(reader.read(), 15)
        server.close()
        return reports

    reports = asyncio.run(main())
    assert reports[0][0] == "proxy-failed"
