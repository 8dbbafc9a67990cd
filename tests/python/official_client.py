"""Drives weir's HStreamDB-compatible server with the official Python client.

The official client (PyPI `hstreamdb` 0.5.0) was written by the HStreamDB
project, not by us, so it checks that the development server speaks
HStreamDB's wire protocol rather than weir's idea of it.

Commands (each exits 0 on success and non-zero with a message on stderr):

  roundtrip --url hstream://HOST:PORT --stream NAME
      Create a stream, append raw and JSON records with and without keys and
      with gzip, run the buffered producer, list streams, read every record
      back through shard readers, check they are identical, check that a
      missing stream raises NOT_FOUND, delete the stream.

  read --url hstream://HOST:PORT --stream NAME --count N
      Read N records from every shard of an existing stream through shard
      readers and print them as JSON lines (key, payload, record id), so a
      test can compare what weir wrote with what the official client reads.

Options for both:

  --nodes N    the cluster must describe N running nodes, and the client's
               lookups must have sent it to more than one of them (roundtrip
               creates 8 shards then, so that they spread).
  --tls-ca FILE [--tls-cert FILE --tls-key FILE]
               connect with secure_client to an hstreams:// URL. The client
               opens the channels to nodes it learns from lookups without
               TLS (a bug of hstreamdb 0.5.0); this script gives those
               channels the same credentials, so a TLS cluster can be read.

The URL names one seed (the client parses a single host); the client learns
the other nodes from DescribeCluster.
"""

import argparse
import asyncio
import json
import sys
import time

import grpc
from hstreamdb import (
    insecure_client,
    secure_client,
    BufferedProducer,
    ShardOffset,
    SpecialOffset,
)

DEADLINE_SECONDS = 60


class CheckFailed(Exception):
    pass


def expect(condition, message):
    if not condition:
        raise CheckFailed(message)


async def read_all(client, stream, expected_count):
    """Reads every record of every shard from the earliest offset."""
    shards = await client.list_shards(stream)
    records = []
    for shard in shards:
        reader_id = f"reader-{stream}-{shard.id}-{time.monotonic_ns()}"
        offset = ShardOffset(specialOffset=SpecialOffset.EARLIEST)
        async with client.with_reader(
            stream, reader_id, offset, 1000, shard_id=shard.id
        ) as reader:
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline:
                batch = list(await reader.read(100))
                if batch:
                    records.extend(batch)
                    deadline = time.monotonic() + 2
                if len(records) >= expected_count:
                    break
    return records


def comparable(payload):
    """A payload as it must read back: str and bytes both go in as RAW bytes;
    JSON records come back with every number as a float (an HRecord is a
    protobuf Struct, which only has doubles)."""
    if isinstance(payload, str):
        return payload.encode("utf-8")
    if isinstance(payload, dict):
        return json.loads(json.dumps(payload), parse_int=float)
    return payload


def sort_key(key, payload):
    """A total order over (key, payload) pairs: None keys read as the default
    key "", and payloads of different types compare by a canonical text."""
    if isinstance(payload, bytes):
        text = "b:" + payload.hex()
    else:
        text = "j:" + json.dumps(payload, sort_keys=True)
    return (key or "", text)


async def connect(args):
    if not args.tls_ca:
        return await insecure_client(url=args.url)
    read = lambda path: open(path, "rb").read() if path else None
    root, key, chain = read(args.tls_ca), read(args.tls_key), read(args.tls_cert)
    client = await secure_client(
        url=args.url, root_certificates=root, private_key=key, certificate_chain=chain
    )
    credentials = grpc.ssl_channel_credentials(
        root_certificates=root, private_key=key, certificate_chain=chain
    )

    def secure_channel(target):
        channel = client._channels.get(target)
        if not channel:
            channel = grpc.aio.secure_channel(target, credentials)
            client._channels[target] = channel
        return channel

    client._get_channel = secure_channel
    return client


async def check_cluster(client, stream, nodes):
    """The cluster lists `nodes` running nodes and the shards of `stream`
    are served by more than one of them."""
    if not nodes:
        return
    info = await client._stub.DescribeCluster(None)
    running = [s.node.id for s in info.serverNodesStatus if s.state == 1]
    expect(len(info.serverNodes) == nodes, f"DescribeCluster lists {len(info.serverNodes)} nodes, want {nodes}")
    expect(len(running) == nodes, f"{len(running)} running nodes, want {nodes}: {info}")
    owners = set()
    for shard in await client.list_shards(stream):
        node = await client._lookup_append_api(shard.id)
        owners.add((node.host, node.port))
    expect(len(owners) > 1, f"every shard of {stream} is on one node: {owners}")


async def roundtrip(args):
    client = await connect(args)
    stream = args.stream
    shard_count = 8 if args.nodes else 2
    await client.create_stream(stream, replication_factor=1, backlog=0, shard_count=shard_count)
    await check_cluster(client, stream, args.nodes)

    names = [s.name for s in await client.list_streams()]
    expect(stream in names, f"list_streams does not show {stream}: {names}")

    written = []  # (key or None, payload as it should read back)

    async def append(payloads, key=None, compresstype=None):
        ids = list(await client.append(stream, payloads, key=key, compresstype=compresstype))
        expect(len(ids) == len(payloads), f"append returned {len(ids)} ids for {len(payloads)} records")
        batch_ids = {i.batch_id for i in ids}
        expect(len(batch_ids) == 1, f"one batch must share one batch id, got {batch_ids}")
        expect(sorted(i.batch_index for i in ids) == list(range(len(payloads))), f"batch indexes {ids}")
        for p in payloads:
            written.append((key, comparable(p)))

    await append([b"raw-bytes", "raw-text", b"\x00\xff binary"])
    await append([b"keyed-raw", {"device": "d1", "temp": 21.5}], key="device-1")
    await append([{"nested": {"a": [1, 2, 3]}, "ok": True, "none": None}])
    await append(["gzip-text", {"gz": "yes"}], key="device-2", compresstype="gzip")

    succeeded = []
    failed = []

    class Callback(BufferedProducer.AppendCallback):
        def on_success(self, stream_name, payloads, stream_keyid):
            succeeded.extend(payloads)

        def on_fail(self, stream_name, payloads, stream_keyid, e):
            failed.append((payloads, e))

    producer = client.new_producer(
        append_callback=Callback(),
        size_trigger=256,
        time_trigger=0.2,
        workers=2,
        retry_count=2,
    )
    for i in range(40):
        key = f"producer-key-{i % 5}"
        payload = {"n": i, "key": key} if i % 2 else f"producer-{i}"
        await producer.append(stream, payload, key=key)
        written.append((key, comparable(payload)))
    await producer.wait_and_close()
    expect(not failed, f"buffered producer failures: {failed}")
    expect(len(succeeded) == 40, f"buffered producer delivered {len(succeeded)} of 40")

    records = await read_all(client, stream, len(written))
    expect(len(records) == len(written), f"read {len(records)} records, wrote {len(written)}")
    got = sorted(sort_key(r.header.key, r.payload) for r in records)
    want = sorted(sort_key(k, p) for k, p in written)
    expect(got == want, f"records differ:\n got  {got}\n want {want}")
    for r in records:
        expect(r.header.publish_time.seconds > 0, f"record {r.id} has no publish time")

    try:
        await client.delete_stream(f"{stream}-missing")
        raise CheckFailed("deleting a missing stream did not fail")
    except grpc.aio.AioRpcError as e:
        expect(e.code() == grpc.StatusCode.NOT_FOUND, f"missing stream gave {e.code()}")
        body = json.loads(e.details())
        expect(body.get("error") == 200, f"missing stream error body {body}")

    await client.delete_stream(stream)
    names = [s.name for s in await client.list_streams()]
    expect(stream not in names, f"{stream} still listed after delete: {names}")
    print(json.dumps({"records": len(records), "stream": stream}))


async def read(args):
    client = await connect(args)
    await check_cluster(client, args.stream, args.nodes)
    records = await read_all(client, args.stream, args.count)
    for r in records:
        payload = r.payload
        if isinstance(payload, bytes):
            payload = {"raw_hex": payload.hex()}
        else:
            payload = {"json": payload}
        print(
            json.dumps(
                {
                    "id": f"{r.id.shard_id}-{r.id.batch_id}-{r.id.batch_index}",
                    "key": r.header.key,
                    "payload": payload,
                },
                sort_keys=True,
            )
        )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["roundtrip", "read"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--stream", required=True)
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--nodes", type=int, default=0)
    parser.add_argument("--tls-ca")
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    args = parser.parse_args()
    try:
        command = roundtrip if args.command == "roundtrip" else read
        asyncio.run(asyncio.wait_for(command(args), DEADLINE_SECONDS))
    except CheckFailed as e:
        print(f"check failed: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
