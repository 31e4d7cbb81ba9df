"""A small asyncio PostgreSQL client for load generators: trust login, and statements sent
the way libpq's PQexecParams, psycopg 3 and node-postgres send them (Parse of the unnamed
statement, Bind, Describe, Execute, Sync in one write: one round trip, no named prepared
statement, so it runs through PgBouncer 1.18 in transaction mode), or as a simple Query.
Values travel as text both ways. Cheap per query, so that on a small machine the
generator leaves the CPU to what it measures."""
import asyncio
import struct

_SYNC = b"S\0\0\0\4"
_DESCRIBE_PORTAL = b"D\0\0\0\6P\0"
_EXECUTE = b"E\0\0\0\11\0\0\0\0\0"


class PgError(Exception):
    """An ErrorResponse: fields by their one-letter codes (S, C, M, ...)."""

    def __init__(self, fields):
        self.fields = fields
        super().__init__(f"{fields.get('C', '?')}: {fields.get('M', '?')}")


def _message(kind, body):
    return kind + struct.pack("!i", len(body) + 4) + body


def _error_fields(body):
    fields = {}
    for part in body.split(b"\0"):
        if part:
            fields[chr(part[0])] = part[1:].decode(errors="replace")
    return fields


def _field_names(body):
    (n,), pos, names = struct.unpack_from("!h", body), 2, []
    for _ in range(n):
        end = body.index(b"\0", pos)
        names.append(body[pos:end].decode())
        pos = end + 1 + 18  # table oid, column, type oid, size, modifier, format
    return names


def columns(row):
    """A DataRow body as a list of text values (None for NULL)."""
    (n,), pos, out = struct.unpack_from("!h", row), 2, []
    for _ in range(n):
        (size,) = struct.unpack_from("!i", row, pos)
        pos += 4
        if size < 0:
            out.append(None)
        else:
            out.append(row[pos:pos + size].decode())
            pos += size
    return out


class _Protocol(asyncio.Protocol):
    def __init__(self):
        self.buf = bytearray()
        self.rows = []
        self.fields = []
        self.error = None
        self.waiter = None
        self.transport = None
        self.lost = None

    def connection_made(self, transport):
        self.transport = transport

    def connection_lost(self, exc):
        self.lost = exc or ConnectionResetError("server closed the connection")
        if self.waiter and not self.waiter.done():
            self.waiter.set_exception(self.lost)

    def data_received(self, data):
        buf = self.buf
        buf += data
        pos, end = 0, len(buf)
        while end - pos >= 5:
            size = int.from_bytes(buf[pos + 1:pos + 5], "big")
            if end - pos < 1 + size:
                break
            kind = buf[pos]
            if kind == 0x44:  # DataRow
                self.rows.append(bytes(buf[pos + 5:pos + 1 + size]))
            elif kind == 0x54:  # RowDescription: keep the column names
                self.fields = _field_names(bytes(buf[pos + 5:pos + 1 + size]))
            elif kind == 0x45:  # ErrorResponse
                self.error = PgError(_error_fields(bytes(buf[pos + 5:pos + 1 + size])))
            elif kind == 0x52 and buf[pos + 5:pos + 9] != b"\0\0\0\0":  # an auth request other than Ok
                self.error = PgError({"C": "28000", "M": "only trust authentication is supported"})
            elif kind == 0x5A:  # ReadyForQuery: the exchange is over
                rows, error, self.rows, self.error = self.rows, self.error, [], None
                if self.waiter and not self.waiter.done():
                    if error:
                        self.waiter.set_exception(error)
                    else:
                        self.waiter.set_result(rows)
            pos += 1 + size
        del buf[:pos]

    def exchange(self, payload):
        if self.lost:
            raise self.lost
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(payload)
        return self.waiter


class Connection:
    """One client connection; query() returns the DataRow bodies of the answer."""

    def __init__(self, protocol):
        self._p = protocol

    @classmethod
    async def connect(cls, port, dbname, user="postgres", host="127.0.0.1", timeout=30):
        loop = asyncio.get_running_loop()
        _, protocol = await asyncio.wait_for(loop.create_connection(_Protocol, host, port), timeout)
        body = struct.pack("!i", 196608) + b"user\0" + user.encode() + b"\0database\0" + dbname.encode() + b"\0\0"
        try:
            await asyncio.wait_for(protocol.exchange(struct.pack("!i", len(body) + 4) + body), timeout)
        except BaseException:
            protocol.transport.close()
            raise
        return cls(protocol)

    def query(self, sql, params=()):
        """Extended protocol, unnamed statement, text parameters (None is NULL), text results."""
        bind = [b"\0\0\0\0", struct.pack("!h", len(params))]
        for p in params:
            if p is None:
                bind.append(b"\xff\xff\xff\xff")
            else:
                v = str(p).encode()
                bind.append(struct.pack("!i", len(v)) + v)
        bind.append(b"\0\0")
        payload = (_message(b"P", b"\0" + sql.encode() + b"\0\0\0") + _message(b"B", b"".join(bind)) +
                   _DESCRIBE_PORTAL + _EXECUTE + _SYNC)
        return self._p.exchange(payload)

    def simple(self, sql):
        """A simple Query message (what an admin console understands)."""
        return self._p.exchange(_message(b"Q", sql.encode() + b"\0"))

    async def table(self, sql):
        """A simple Query's answer as a list of {column: text} dicts."""
        rows = await self.simple(sql)
        return [dict(zip(self._p.fields, columns(r))) for r in rows]

    def sync(self):
        """A lone Sync: a pooler answers it itself (ReadyForQuery), no server involved."""
        return self._p.exchange(_SYNC)

    def close(self):
        if self._p.transport and not self._p.transport.is_closing():
            self._p.transport.write(b"X\0\0\0\4")
            self._p.transport.close()
