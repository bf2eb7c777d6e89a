#!/usr/bin/env python3
"""Milepost protocol v1 client in Python, on aioquic.

Written from ``proto/PROTOCOL.md`` alone (not from the Rust sources): it is the proof that a
phone team can implement the protocol from the specification. Section numbers in comments
("spec 3.1") refer to that document.

Library:

- ``Writer`` / ``Reader``: the value encoding (spec 3): raw ``u8``, varints, zigzag, ``f32``,
  options, strings, vectors, enums.
- dataclasses for the messages (spec 4) with ``encode`` / ``decode`` functions, and the values
  version 2 appends (spec 12: delivery changes, the recipient-driver thread), which this
  version-1 client only meets in the spec's vectors.
- ``MilepostClient``: one QUIC connection (ALPN ``milepost/1``, DATAGRAM extension, server
  certificate verified against a given CA): ``hello``, ``send_batch``, ``send_live`` +
  ``next_live_ack`` (the server-opened push stream), ``next_push``, ``query``, ``command``,
  ``subscribe``, ``close``, and the QUIC close code the server used (``close_code``).

CLI (``python milepost_client.py --help``):

- ``hello``: connect, Hello, print the Welcome (or the Error frame and close code) as JSON.
- ``send``: connect, Hello, send N synthetic fixes in batches and/or as live datagrams, print
  every Ack / Error as JSON lines.
- ``scenario``: the conformance scenario run by ``tests/python_client.rs``; reads its
  parameters (address, CA, tokens) as one JSON object on stdin and prints one JSON result.

Tokens are secrets (spec 8): the CLI reads them from an environment variable or stdin, never
from argv, and never prints them.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import re
import ssl
import struct
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Optional

from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.quic import events
from aioquic.quic.configuration import QuicConfiguration

ALPN = "milepost/1"
PROTOCOL_VERSION = 1
#: Largest payload a client may send before Welcome (spec 2).
DEFAULT_MAX_FRAME = 65536
#: Hard limit on any payload; larger server frames are a protocol violation (spec 2).
HARD_MAX_FRAME = 1 << 20

# ---------------------------------------------------------------------------------------------
# Enumerations (spec 5)
# ---------------------------------------------------------------------------------------------

#: ErrorCode index -> name (spec 5.2). The index is also the QUIC application close code.
ERROR_CODES = [
    "NoError", "ProtocolViolation", "UnsupportedVersion", "TokenInvalid", "TokenExpired",
    "WrongRole", "OutOfScope", "FrameTooLarge", "BadBatchSize", "RateLimited", "ServerBusy",
    "ShuttingDown", "StorageFailure", "HelloTimeout", "SeqOutOfWindow", "BadQuery",
    "TokenRevoked", "TooManyConnections", "DiskFull", "RouteRefused", "OutcomeRefused",
    "NotFound", "UploadRefused",
]
ERROR_CODE = {name: i for i, name in enumerate(ERROR_CODES)}

#: RejectReason index -> name (spec 5.3).
REJECT_REASONS = [
    "LatitudeOutOfRange", "LongitudeOutOfRange", "NullIsland", "AccuracyInvalid",
    "AccuracyTooPoor", "FutureTimestamp", "TooOld", "ImplausibleJump", "MockLocation",
    "ConflictingDuplicate", "FieldOutOfRange",
]

#: Activity index -> name (spec 5.1).
ACTIVITIES = ["Unknown", "Still", "Walking", "Running", "Cycling", "InVehicle"]

#: Enumerations of spec 9 (index -> name). Version 1 enums are closed (spec, top): an index
#: outside these lists is undecodable.
FAILURE_REASONS = ["RecipientAbsent", "AddressNotFound", "AccessProblem", "Refused", "Damaged",
                   "Other"]
PARCEL_STATES = ["Planned", "OutForDelivery", "ArrivingSoon", "Arrived", "Delivered", "Failed",
                 "Returned"]
PARCEL_EVENTS = ["OutForDelivery", "StopsAway", "EtaChanged", "ArrivingSoon", "Arrived",
                 "Delivered", "Failed", "Delayed", "Returned", "DeliveredTo",
                 # Version 2 (spec 12): never sent to this version-1 client.
                 "NextStep", "DeliveryChanged", "Message"]
DISPATCH_EVENTS = ["RouteStarted", "RouteFinished", "DriverStalled", "RunningLate",
                   "AttemptFailed", "OffRoute", "BackOnRoute", "StopArrived", "StopDeparted",
                   "StopPassed", "DriverMoving"]
DRIVER_EVENTS = ["RouteAssigned", "Resequenced", "Instructions",
                 # Version 2 (spec 12).
                 "Message", "DeliveryChanged"]
NEXT_STEPS = ["Reattempt", "Hold", "Return"]
DELIVERY_CHANGES = ["Reschedule", "Neighbour", "PickupPoint", "SafePlace"]
MESSAGE_FROM = ["Recipient", "Driver"]
SERVER_MSGS = ["Welcome", "Ack", "Error", "QueryResult", "Done", "ParcelStatus", "Push",
               "FeedSnapshot", "FeedEvent", "FeedPosition", "FeedResync"]


def error_name(code: Optional[int]) -> Optional[str]:
    """The name of an ErrorCode / close code, ``Unknown(n)`` for one this client does not know."""
    if code is None:
        return None
    return ERROR_CODES[code] if 0 <= code < len(ERROR_CODES) else f"Unknown({code})"


# ---------------------------------------------------------------------------------------------
# Value encoding (spec 3)
# ---------------------------------------------------------------------------------------------


class DecodeError(ValueError):
    """The bytes are not a valid encoding of the expected message (spec 11 "Strictness")."""


class Writer:
    """Appends encoded values (spec 3.1) to a byte buffer."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def u8(self, v: int) -> "Writer":
        """``u8``: one raw byte, not a varint."""
        self.buf.append(v & 0xFF)
        return self

    def varint(self, v: int) -> "Writer":
        """``u16``/``u32``/``u64``: the shortest unsigned varint form."""
        if v < 0:
            raise ValueError("varint of a negative value")
        if v < 251:
            self.buf.append(v)
        elif v < 1 << 16:
            self.buf += b"\xfb" + struct.pack("<H", v)
        elif v < 1 << 32:
            self.buf += b"\xfc" + struct.pack("<I", v)
        elif v < 1 << 64:
            self.buf += b"\xfd" + struct.pack("<Q", v)
        else:
            raise ValueError("varint above u64")
        return self

    def signed(self, n: int, bits: int) -> "Writer":
        """``i16``/``i32``/``i64``: zigzag, then the unsigned varint."""
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        if not lo <= n <= hi:
            raise ValueError(f"{n} does not fit i{bits}")
        return self.varint(((n << 1) ^ (n >> (bits - 1))) & ((1 << bits) - 1))

    def f32(self, v: float) -> "Writer":
        """``f32``: 4 bytes IEEE-754 little-endian."""
        self.buf += struct.pack("<f", v)
        return self

    def f64(self, v: float) -> "Writer":
        """``f64``: 8 bytes IEEE-754 little-endian."""
        self.buf += struct.pack("<d", v)
        return self

    def boolean(self, v: bool) -> "Writer":
        """``bool``: 00 or 01."""
        self.buf.append(1 if v else 0)
        return self

    def option(self, v, write) -> "Writer":
        """``Option<T>``: 00, or 01 then the value written by ``write(self, v)``."""
        if v is None:
            self.buf.append(0)
        else:
            self.buf.append(1)
            write(self, v)
        return self

    def string(self, s: str) -> "Writer":
        """``String``: UTF-8 byte length as a u64 varint, then the bytes."""
        raw = s.encode("utf-8")
        self.varint(len(raw))
        self.buf += raw
        return self

    def bytes(self) -> bytes:
        """The encoded bytes."""
        return bytes(self.buf)


class Reader:
    """Reads encoded values (spec 3.1) from one message's bytes, strictly (spec 11)."""

    def __init__(self, data: bytes) -> None:
        self.data = bytes(data)
        self.pos = 0

    def _take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise DecodeError(f"truncated: need {n} bytes at offset {self.pos}")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def u8(self) -> int:
        """One raw byte."""
        return self._take(1)[0]

    def varint(self, bits: int = 64) -> int:
        """An unsigned varint of a field declared ``u{bits}``; a wider marker is an error."""
        b = self.u8()
        if b < 251:
            return b
        width = {0xFB: 2, 0xFC: 4, 0xFD: 8}.get(b)
        if width is None or width * 8 > bits:
            raise DecodeError(f"bad varint marker {b:#x} for u{bits}")
        # The spec says the reference decoder accepts non-shortest forms; so do we (spec 3.1).
        return int.from_bytes(self._take(width), "little")

    def signed(self, bits: int) -> int:
        """A zigzag ``i{bits}``."""
        z = self.varint(bits)
        return (z >> 1) ^ -(z & 1)

    def f32(self) -> float:
        """4-byte float."""
        return struct.unpack("<f", self._take(4))[0]

    def f64(self) -> float:
        """8-byte float."""
        return struct.unpack("<d", self._take(8))[0]

    def boolean(self) -> bool:
        """00 / 01; anything else is an error."""
        b = self.u8()
        if b > 1:
            raise DecodeError(f"bad bool byte {b:#x}")
        return b == 1

    def option(self, read):
        """``Option<T>``: None or ``read(self)``."""
        tag = self.u8()
        if tag == 0:
            return None
        if tag == 1:
            return read(self)
        raise DecodeError(f"bad option tag {tag:#x}")

    def length(self) -> int:
        """A string/vector length, checked against the bytes left before anything is allocated."""
        n = self.varint(64)
        if n > len(self.data) - self.pos:
            raise DecodeError(f"length {n} runs past the end of the message")
        return n

    def string(self) -> str:
        """UTF-8 string; invalid UTF-8 is an error."""
        raw = self._take(self.length())
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise DecodeError(f"invalid UTF-8: {e}") from None

    def vec(self, read) -> list:
        """``Vec<T>``."""
        # Every element is at least one byte, so `length` bounds the count too.
        return [read(self) for _ in range(self.length())]

    def enum_index(self, names: list, what: str) -> int:
        """An enum variant index (u32 varint) that must be known."""
        i = self.varint(32)
        if i >= len(names):
            raise DecodeError(f"unknown {what} index {i}")
        return i

    def finish(self) -> None:
        """Bytes left over after the message are an error (spec 2)."""
        if self.pos != len(self.data):
            raise DecodeError(f"{len(self.data) - self.pos} bytes left over after the message")


# ---------------------------------------------------------------------------------------------
# Messages (spec 4)
# ---------------------------------------------------------------------------------------------


@dataclass
class Fix:
    """One GPS fix (spec 4.2 ``Fix``). ``activity`` is an Activity index (spec 5.1)."""

    t_ms: int
    lat_e7: int
    lon_e7: int
    accuracy_m: float
    speed_mps: Optional[float] = None
    heading_deg: Optional[float] = None
    altitude_m: Optional[float] = None
    battery_pct: Optional[int] = None
    activity: Optional[int] = None
    mock: bool = False

    @staticmethod
    def from_degrees(t_ms: int, lat: float, lon: float, accuracy_m: float, **kw) -> "Fix":
        """A fix from degrees (rounded to 1e-7)."""
        return Fix(t_ms, round(lat * 1e7), round(lon * 1e7), accuracy_m, **kw)

    def write(self, w: Writer) -> None:
        """Encodes the 10 fields in wire order."""
        w.signed(self.t_ms, 64).signed(self.lat_e7, 32).signed(self.lon_e7, 32)
        w.f32(self.accuracy_m)
        w.option(self.speed_mps, Writer.f32)
        w.option(self.heading_deg, Writer.f32)
        w.option(self.altitude_m, Writer.f32)
        w.option(self.battery_pct, Writer.u8)
        w.option(self.activity, Writer.varint)
        w.boolean(self.mock)

    @staticmethod
    def read(r: Reader) -> "Fix":
        """Decodes the 10 fields in wire order."""
        return Fix(
            t_ms=r.signed(64),
            lat_e7=r.signed(32),
            lon_e7=r.signed(32),
            accuracy_m=r.f32(),
            speed_mps=r.option(Reader.f32),
            heading_deg=r.option(Reader.f32),
            altitude_m=r.option(Reader.f32),
            battery_pct=r.option(Reader.u8),
            activity=r.option(lambda rr: rr.enum_index(ACTIVITIES, "Activity")),
            mock=r.boolean(),
        )


@dataclass
class DeviceInfo:
    """Free-text device description (spec 4.2 ``DeviceInfo``)."""

    device_id: str = "py-client"
    app: str = "milepost-python/0.1"
    os: str = sys.platform


@dataclass
class Limits:
    """Server limits from Welcome (spec 4.2 ``Limits``)."""

    max_frame: int
    max_batch: int
    max_fixes_per_s: int


@dataclass
class Welcome:
    """``ServerMsg::Welcome`` (index 0)."""

    server_time_ms: int
    limits: Limits
    watermark: int
    kind: str = "Welcome"


@dataclass
class Rejection:
    """A refused fix in an Ack; ``reason`` is a RejectReason index (spec 5.3)."""

    seq: int
    reason: int

    @property
    def reason_name(self) -> str:
        """The reason's name."""
        return REJECT_REASONS[self.reason]


@dataclass
class Ack:
    """``ServerMsg::Ack`` (index 1)."""

    first_seq: int
    count: int
    duplicates: int
    rejected: list
    watermark: int
    kind: str = "Ack"


@dataclass
class ErrorFrame:
    """``ServerMsg::Error`` (index 2); ``code`` is an ErrorCode index (spec 5.2)."""

    code: int
    message: str
    kind: str = "Error"

    @property
    def code_name(self) -> str:
        """The code's name."""
        return error_name(self.code)


@dataclass
class DriverPosition:
    """One match of a query (spec 4.2 ``DriverPosition``)."""

    driver: str
    seq: int
    fix: Fix
    distance_m: float


@dataclass
class QueryResult:
    """``ServerMsg::QueryResult`` (index 3)."""

    id: int
    drivers: list = field(default_factory=list)
    truncated: bool = False
    kind: str = "QueryResult"


# -- spec 9: routes, outcomes, updates (as plain dataclasses; enum values as names) ----------


@dataclass
class Point:
    """``Point``: degrees as f64."""

    lat: float
    lon: float


@dataclass
class TimeWindow:
    """``TimeWindow``, UTC ms."""

    start_ms: int
    end_ms: int


@dataclass
class ParcelRef:
    """``Parcel`` on a stop: tracking number and optional one-time code."""

    tracking: str
    otp: Optional[str] = None


@dataclass
class Stop:
    """``Stop`` (spec 9), every field written on the wire."""

    id: str
    lat: float
    lon: float
    parcels: list
    radius_m: Optional[float] = None
    window: Optional[TimeWindow] = None
    service_s: Optional[int] = None
    planned_arrival_ms: Optional[int] = None
    path: list = field(default_factory=list)
    instructions: str = ""
    otp_required: bool = False


@dataclass
class Route:
    """``Route`` (spec 9)."""

    id: str
    depot: str
    driver: str
    planned_start_ms: int
    stops: list
    start: Optional[Point] = None


@dataclass
class Proof:
    """``Proof``: digests (64 hex chars) and/or the one-time code."""

    photo_sha256: Optional[str] = None
    signature_sha256: Optional[str] = None
    otp: Optional[str] = None


@dataclass
class Delivered:
    """``Outcome::Delivered`` (index 0)."""

    proof: Proof


@dataclass
class Failed:
    """``Outcome::Failed`` (index 1); ``reason`` is a FailureReason name."""

    reason: str
    note: str = ""


@dataclass
class Returned:
    """``Outcome::Returned`` (index 2): back to the sender, no more attempts."""

    note: str = ""


@dataclass
class DeliveredTo:
    """``Outcome::DeliveredTo`` (index 3): handed to a named person (1 to 100 bytes)."""

    proof: Proof
    received_by: str


@dataclass
class ParcelUpdate:
    """``ParcelUpdate``; ``kind`` is a ParcelEvent name, ``fields`` its fields by name."""

    tracking: str
    fix_t_ms: int
    kind: str
    fields: dict = field(default_factory=dict)


@dataclass
class DispatchUpdate:
    """``DispatchUpdate``; ``kind`` is a DispatchEvent name, ``fields`` its fields by name."""

    route_id: str
    driver: str
    fix_t_ms: int
    kind: str
    fields: dict = field(default_factory=dict)


@dataclass
class DriverUpdate:
    """``DriverUpdate``; ``kind`` is a DriverEvent name, ``fields`` its fields by name."""

    driver: str
    route_id: str
    kind: str
    fields: dict = field(default_factory=dict)


@dataclass
class ParcelStatus:
    """``ParcelStatus`` (spec 9); ``state`` is a ParcelState name."""

    tracking: str
    route_id: str
    stop: str
    state: str
    stops_away: Optional[int] = None
    eta_ms: Optional[int] = None
    earliest_ms: Optional[int] = None
    latest_ms: Optional[int] = None
    window: Optional[TimeWindow] = None
    last_event: Optional[ParcelUpdate] = None


def _write_opt_str(w: Writer, v: Optional[str]) -> None:
    w.option(v, Writer.string)


def write_route(w: Writer, r: Route) -> None:
    """Encodes a ``Route`` (spec 9)."""
    w.string(r.id).string(r.depot).string(r.driver).signed(r.planned_start_ms, 64)
    w.option(r.start, lambda ww, p: ww.f64(p.lat).f64(p.lon))
    w.varint(len(r.stops))
    for st in r.stops:
        w.string(st.id).f64(st.lat).f64(st.lon).option(st.radius_m, Writer.f64)
        w.varint(len(st.parcels))
        for p in st.parcels:
            w.string(p.tracking)
            _write_opt_str(w, p.otp)
        w.option(st.window, lambda ww, tw: ww.signed(tw.start_ms, 64).signed(tw.end_ms, 64))
        w.option(st.service_s, Writer.varint)
        w.option(st.planned_arrival_ms, lambda ww, t: ww.signed(t, 64))
        w.varint(len(st.path))
        for p in st.path:
            w.f64(p.lat).f64(p.lon)
        w.string(st.instructions).boolean(st.otp_required)


def _write_proof(w: Writer, p: Proof) -> None:
    _write_opt_str(w, p.photo_sha256)
    _write_opt_str(w, p.signature_sha256)
    _write_opt_str(w, p.otp)


def write_outcome(w: Writer, o) -> None:
    """Encodes an ``Outcome`` (``Delivered``, ``Failed``, ``Returned`` or ``DeliveredTo``)."""
    if isinstance(o, Delivered):
        _write_proof(w.varint(0), o.proof)
    elif isinstance(o, Failed):
        w.varint(1).varint(FAILURE_REASONS.index(o.reason)).string(o.note)
    elif isinstance(o, Returned):
        w.varint(2).string(o.note)
    elif isinstance(o, DeliveredTo):
        _write_proof(w.varint(3), o.proof)
        w.string(o.received_by)
    else:
        raise TypeError(f"not an Outcome: {o!r}")


def _read_window(r: Reader) -> TimeWindow:
    return TimeWindow(r.signed(64), r.signed(64))


def read_delivery_change(r: Reader) -> dict:
    """Decodes a version-2 ``DeliveryChange`` (spec 12) as a dict with its ``kind``."""
    kind = DELIVERY_CHANGES[r.enum_index(DELIVERY_CHANGES, "DeliveryChange")]
    if kind == "Reschedule":
        return {"kind": kind, "window": _read_window(r)}
    if kind == "Neighbour":
        return {"kind": kind, "name": r.string(), "address": r.string()}
    if kind == "PickupPoint":
        return {"kind": kind, "id": r.string(), "name": r.string()}
    return {"kind": kind, "place": r.string()}


def write_delivery_change(w: Writer, c: dict) -> None:
    """Encodes a version-2 ``DeliveryChange`` given as ``read_delivery_change`` returns it."""
    kind = c["kind"]
    w.varint(DELIVERY_CHANGES.index(kind))
    if kind == "Reschedule":
        w.signed(c["window"].start_ms, 64).signed(c["window"].end_ms, 64)
    elif kind == "Neighbour":
        w.string(c["name"]).string(c["address"])
    elif kind == "PickupPoint":
        w.string(c["id"]).string(c["name"])
    else:
        w.string(c["place"])


def read_parcel_update(r: Reader) -> ParcelUpdate:
    """Decodes a ``ParcelUpdate``."""
    tracking, fix_t_ms = r.string(), r.signed(64)
    kind = PARCEL_EVENTS[r.enum_index(PARCEL_EVENTS, "ParcelEvent")]
    f: dict = {}
    if kind == "StopsAway":
        f["n"] = r.varint(32)
    elif kind == "EtaChanged":
        f["eta_ms"], f["earliest_ms"], f["latest_ms"] = r.signed(64), r.signed(64), r.signed(64)
    elif kind in ("Delivered", "DeliveredTo"):
        f["proof"] = {"photo_sha256": r.option(Reader.string),
                      "signature_sha256": r.option(Reader.string),
                      "otp_verified": r.boolean()}
        f["at_ms"] = r.signed(64)
        if kind == "DeliveredTo":
            f["received_by"] = r.string()
    elif kind == "Failed":
        f["reason"] = FAILURE_REASONS[r.enum_index(FAILURE_REASONS, "FailureReason")]
        f["note"] = r.string()
    elif kind == "Delayed":
        f["eta_ms"], f["window_end_ms"] = r.signed(64), r.signed(64)
    elif kind == "Returned":
        f["note"] = r.string()
    elif kind == "NextStep":
        f["reason"] = FAILURE_REASONS[r.enum_index(FAILURE_REASONS, "FailureReason")]
        f["attempt"] = r.varint(32)
        step = NEXT_STEPS[r.enum_index(NEXT_STEPS, "NextStep")]
        f["next"] = {"kind": step, "place": r.string()} if step == "Hold" else {"kind": step}
    elif kind == "DeliveryChanged":
        f["change"] = read_delivery_change(r)
    elif kind == "Message":
        f["from"] = MESSAGE_FROM[r.enum_index(MESSAGE_FROM, "MessageFrom")]
        f["text"], f["at_ms"] = r.string(), r.signed(64)
    return ParcelUpdate(tracking, fix_t_ms, kind, f)


def read_dispatch_update(r: Reader) -> DispatchUpdate:
    """Decodes a ``DispatchUpdate``."""
    route_id, driver, fix_t_ms = r.string(), r.string(), r.signed(64)
    kind = DISPATCH_EVENTS[r.enum_index(DISPATCH_EVENTS, "DispatchEvent")]
    f: dict = {}
    if kind == "RouteFinished":
        f["delivered"], f["failed"] = r.varint(32), r.varint(32)
    elif kind == "DriverStalled":
        f["idle_s"], f["no_fix"] = r.varint(32), r.boolean()
    elif kind == "RunningLate":
        f["stop"], f["minutes"] = r.string(), r.varint(32)
    elif kind == "AttemptFailed":
        f["stop"] = r.string()
        f["reason"] = FAILURE_REASONS[r.enum_index(FAILURE_REASONS, "FailureReason")]
    elif kind == "OffRoute":
        f["distance_m"] = r.f32()
    elif kind == "StopArrived":
        f["stop"], f["at_ms"] = r.string(), r.signed(64)
    elif kind == "StopDeparted":
        f["stop"], f["dwell_s"] = r.string(), r.varint(32)
    elif kind == "StopPassed":
        f["stop"] = r.string()
    return DispatchUpdate(route_id, driver, fix_t_ms, kind, f)


def read_driver_update(r: Reader) -> DriverUpdate:
    """Decodes a ``DriverUpdate`` (the content of ``ServerMsg::Push``)."""
    driver, route_id = r.string(), r.string()
    kind = DRIVER_EVENTS[r.enum_index(DRIVER_EVENTS, "DriverEvent")]
    f: dict = {}
    if kind == "Resequenced":
        f["order"] = r.vec(Reader.string)
    elif kind == "Instructions":
        f["stop"], f["tracking"], f["text"] = r.string(), r.string(), r.string()
    elif kind == "Message":
        f["stop"], f["tracking"], f["text"] = r.string(), r.string(), r.string()
        f["at_ms"] = r.signed(64)
    elif kind == "DeliveryChanged":
        f["stop"], f["tracking"] = r.string(), r.string()
        f["change"] = read_delivery_change(r)
    return DriverUpdate(driver, route_id, kind, f)


def read_update(r: Reader):
    """Decodes an ``Update``: ParcelUpdate, DispatchUpdate or DriverUpdate."""
    i = r.enum_index(["Parcel", "Dispatch", "Driver"], "Update")
    return (read_parcel_update, read_dispatch_update, read_driver_update)[i](r)


def read_parcel_status(r: Reader) -> ParcelStatus:
    """Decodes a ``ParcelStatus``."""
    tracking, route_id, stop = r.string(), r.string(), r.string()
    state = PARCEL_STATES[r.enum_index(PARCEL_STATES, "ParcelState")]
    stops_away = r.option(lambda rr: rr.varint(32))
    eta, earliest, latest = (r.option(lambda rr: rr.signed(64)) for _ in range(3))
    window = r.option(_read_window)
    return ParcelStatus(tracking, route_id, stop, state, stops_away, eta, earliest, latest,
                        window, r.option(read_parcel_update))


def read_driver_position(r: Reader) -> "DriverPosition":
    """Decodes a ``DriverPosition``."""
    return DriverPosition(r.string(), r.varint(64), Fix.read(r), r.f32())


# -- server messages added in the final v1 (spec 4.1) -----------------------------------------


@dataclass
class Done:
    """``ServerMsg::Done`` (index 4): the command ``id`` was applied."""

    id: int
    kind: str = "Done"


@dataclass
class ParcelStatusAnswer:
    """``ServerMsg::ParcelStatus`` (index 5)."""

    id: int
    status: ParcelStatus
    kind: str = "ParcelStatus"


@dataclass
class Push:
    """``ServerMsg::Push`` (index 6), on the push stream."""

    update: DriverUpdate
    kind: str = "Push"


@dataclass
class FeedSnapshot:
    """``ServerMsg::FeedSnapshot`` (index 7)."""

    offset: int
    parcel: Optional[ParcelStatus]
    positions: list
    kind: str = "FeedSnapshot"


@dataclass
class FeedEvent:
    """``ServerMsg::FeedEvent`` (index 8); ``update`` is a Parcel/Dispatch/DriverUpdate."""

    offset: int
    update: object
    kind: str = "FeedEvent"


@dataclass
class FeedPosition:
    """``ServerMsg::FeedPosition`` (index 9)."""

    position: "DriverPosition"
    kind: str = "FeedPosition"


@dataclass
class FeedResync:
    """``ServerMsg::FeedResync`` (index 10): a FeedSnapshot follows."""

    kind: str = "FeedResync"


# -- client messages added in the final v1 ----------------------------------------------------


def _command(cid: int, kind: int) -> Writer:
    return Writer().varint(3).varint(cid).varint(kind)


def encode_assign_route(cid: int, route: Route) -> bytes:
    """``ClientMsg::Command`` (3) / ``AssignRoute`` (0)."""
    w = _command(cid, 0)
    write_route(w, route)
    return w.bytes()


def encode_resequence(cid: int, route_id: str, order: list) -> bytes:
    """``ClientMsg::Command`` / ``Resequence`` (1)."""
    w = _command(cid, 1).string(route_id).varint(len(order))
    for stop in order:
        w.string(stop)
    return w.bytes()


def encode_report_outcome(cid: int, stop: str, tracking: Optional[str], outcome) -> bytes:
    """``ClientMsg::Command`` / ``ReportOutcome`` (2); ``outcome`` is Delivered or Failed."""
    w = _command(cid, 2).string(stop)
    _write_opt_str(w, tracking)
    write_outcome(w, outcome)
    return w.bytes()


def encode_set_instructions(cid: int, tracking: str, text: str) -> bytes:
    """``ClientMsg::Command`` / ``SetInstructions`` (3); at most 1000 bytes of UTF-8."""
    return _command(cid, 3).string(tracking).string(text).bytes()


def encode_parcel_status(cid: int, tracking: str) -> bytes:
    """``ClientMsg::Command`` / ``ParcelStatus`` (4)."""
    return _command(cid, 4).string(tracking).bytes()


def encode_send_message(cid: int, tracking: str, text: str) -> bytes:
    """Version 2 (spec 12): ``CommandKind::SendMessage`` (index 6)."""
    return _command(cid, 6).string(tracking).string(text).bytes()


def encode_change_delivery(cid: int, tracking: str, change: dict) -> bytes:
    """Version 2 (spec 12): ``CommandKind::ChangeDelivery`` (index 7)."""
    w = _command(cid, 7).string(tracking)
    write_delivery_change(w, change)
    return w.bytes()


def encode_get_route(cid: int, route_id: str) -> bytes:
    """Version 2 (spec 12): ``CommandKind::GetRoute`` (index 8), a dispatcher's read of a
    loaded route's plan (answered by ``ServerMsg::Route``, without one-time codes)."""
    return _command(cid, 8).string(route_id).bytes()


def encode_upload(uid: int, sha256: str, size: int) -> bytes:
    """``ClientMsg::Upload`` (5): the header of a proof-file upload stream (spec 6.11)."""
    return Writer().varint(5).varint(uid).string(sha256).varint(size).bytes()


def _subscribe_after(w: Writer, after: Optional[int]) -> bytes:
    w.option(after, Writer.varint)
    return w.bytes()


def encode_subscribe_parcel(tracking: str, after: Optional[int] = None) -> bytes:
    """``ClientMsg::Subscribe`` (4) / ``FeedTarget::Parcel`` (0)."""
    return _subscribe_after(Writer().varint(4).varint(0).string(tracking), after)


def encode_subscribe_depot(after: Optional[int] = None) -> bytes:
    """``ClientMsg::Subscribe`` / ``FeedTarget::Depot`` (1)."""
    return _subscribe_after(Writer().varint(4).varint(1), after)


def encode_subscribe_area(min_lat_e7: int, min_lon_e7: int, max_lat_e7: int, max_lon_e7: int,
                          after: Optional[int] = None) -> bytes:
    """``ClientMsg::Subscribe`` / ``FeedTarget::Area`` (2)."""
    w = Writer().varint(4).varint(2)
    for v in (min_lat_e7, min_lon_e7, max_lat_e7, max_lon_e7):
        w.signed(v, 32)
    return _subscribe_after(w, after)


def encode_hello(token: str, subject: str, device: DeviceInfo,
                 version: int = PROTOCOL_VERSION) -> bytes:
    """``ClientMsg::Hello`` (index 0)."""
    w = Writer().varint(0).varint(version).string(token).string(subject)
    w.string(device.device_id).string(device.app).string(device.os)
    return w.bytes()


def encode_fix_batch(first_seq: int, fixes: list) -> bytes:
    """``ClientMsg::FixBatch`` (index 1)."""
    w = Writer().varint(1).varint(first_seq).varint(len(fixes))
    for f in fixes:
        f.write(w)
    return w.bytes()


def encode_query_within(qid: int, min_lat_e7: int, min_lon_e7: int, max_lat_e7: int,
                        max_lon_e7: int) -> bytes:
    """``ClientMsg::Query`` (index 2) with ``QueryKind::Within`` (0)."""
    w = Writer().varint(2).varint(qid).varint(0)
    for v in (min_lat_e7, min_lon_e7, max_lat_e7, max_lon_e7):
        w.signed(v, 32)
    return w.bytes()


def encode_query_nearby(qid: int, lat_e7: int, lon_e7: int, radius_m: float) -> bytes:
    """``ClientMsg::Query`` with ``QueryKind::Nearby`` (1)."""
    w = Writer().varint(2).varint(qid).varint(1).signed(lat_e7, 32).signed(lon_e7, 32)
    return w.f32(radius_m).bytes()


def encode_query_nearest(qid: int, lat_e7: int, lon_e7: int, k: int) -> bytes:
    """``ClientMsg::Query`` with ``QueryKind::Nearest`` (2)."""
    w = Writer().varint(2).varint(qid).varint(2).signed(lat_e7, 32).signed(lon_e7, 32)
    return w.varint(k).bytes()


def encode_live_fix(seq: int, fix: Fix) -> bytes:
    """``ClientDatagram::LiveFix`` (index 0): the whole datagram payload, no frame header."""
    w = Writer().varint(0).varint(seq)
    fix.write(w)
    return w.bytes()


def decode_server_msg(payload: bytes):
    """Decodes one ``ServerMsg`` payload strictly; raises ``DecodeError``."""
    r = Reader(payload)
    idx = r.varint(32)
    if idx == 0:
        msg = Welcome(r.signed(64), Limits(r.varint(32), r.varint(32), r.varint(32)), r.varint())
    elif idx == 1:
        first_seq, count, dups = r.varint(64), r.varint(32), r.varint(32)
        rejected = r.vec(lambda rr: Rejection(rr.varint(64),
                                              rr.enum_index(REJECT_REASONS, "RejectReason")))
        msg = Ack(first_seq, count, dups, rejected, r.varint(64))
    elif idx == 2:
        # Unknown error codes are tolerated here (spec 5.2: treat like ServerBusy), so no
        # enum_index check: the caller maps the number.
        msg = ErrorFrame(r.varint(32), r.string())
    elif idx == 3:
        qid = r.varint(32)
        msg = QueryResult(qid, r.vec(read_driver_position), r.boolean())
    elif idx == 4:
        msg = Done(r.varint(32))
    elif idx == 5:
        msg = ParcelStatusAnswer(r.varint(32), read_parcel_status(r))
    elif idx == 6:
        msg = Push(read_driver_update(r))
    elif idx == 7:
        msg = FeedSnapshot(r.varint(64), r.option(read_parcel_status),
                           r.vec(read_driver_position))
    elif idx == 8:
        msg = FeedEvent(r.varint(64), read_update(r))
    elif idx == 9:
        msg = FeedPosition(read_driver_position(r))
    elif idx == 10:
        msg = FeedResync()
    else:
        raise DecodeError(f"unknown ServerMsg index {idx}")
    r.finish()
    return msg


def frame(payload: bytes) -> bytes:
    """A stream frame: u32 little-endian payload length, then the payload (spec 2)."""
    return struct.pack("<I", len(payload)) + payload


def to_json(obj):
    """A JSON-friendly view of a decoded message (adds names next to enum indexes)."""
    d = asdict(obj)
    if isinstance(obj, ErrorFrame):
        d["code_name"] = obj.code_name
    if isinstance(obj, Ack):
        for rej in d["rejected"]:
            rej["reason_name"] = REJECT_REASONS[rej["reason"]]
    return d


# ---------------------------------------------------------------------------------------------
# QUIC connection (spec 1, 6)
# ---------------------------------------------------------------------------------------------


class ConnectionClosed(Exception):
    """The connection closed; ``code`` is the QUIC close code (authoritative, spec 1)."""

    def __init__(self, code: Optional[int], application: bool, reason: str) -> None:
        self.code = code
        self.application = application
        self.reason = reason
        kind = "application" if application else "transport"
        super().__init__(f"connection closed ({kind} code {code} {error_name(code) if application else ''}: {reason})")


class _Protocol(QuicConnectionProtocol):
    """aioquic protocol: reassembles frames per stream and queues decoded ServerMsgs."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.buffers: dict[int, bytearray] = {}
        self.queues: dict[int, asyncio.Queue] = {}
        #: Acks from server-opened unidirectional streams (the push stream, spec 6.3, 6.8).
        self.live_acks: asyncio.Queue = asyncio.Queue()
        #: Push frames (driver updates) from the push stream (spec 6.8).
        self.pushes: asyncio.Queue = asyncio.Queue()
        #: Every server-opened unidirectional stream is a push stream (spec 6.8).
        self.ack_stream_ids: set[int] = set()
        self.closed = asyncio.Event()
        self.close_info: Optional[tuple] = None
        self.decode_errors: list[str] = []

    def queue(self, stream_id: int) -> asyncio.Queue:
        """The queue of decoded messages of one client-opened stream."""
        return self.queues.setdefault(stream_id, asyncio.Queue())

    def _note_close(self) -> None:
        # aioquic reports ConnectionTerminated only after the draining period (3 PTO); the
        # close frame itself is known as soon as it is received, so look at it directly.
        ev = getattr(self._quic, "_close_event", None)
        if ev is not None and self.close_info is None:
            # frame_type None = application close (0x1d), else transport close (0x1c).
            self.close_info = (ev.error_code, ev.frame_type is None, ev.reason_phrase)
            self.closed.set()
            for q in list(self.queues.values()) + [self.live_acks, self.pushes]:
                q.put_nowait(None)

    def datagram_received(self, data, addr) -> None:  # noqa: D401 - aioquic hook
        super().datagram_received(data, addr)
        self._note_close()

    def quic_event_received(self, event: events.QuicEvent) -> None:
        if isinstance(event, events.StreamDataReceived):
            sid = event.stream_id
            buf = self.buffers.setdefault(sid, bytearray())
            buf += event.data
            server_uni = sid & 0x3 == 0x3
            target = self.live_acks if server_uni else self.queue(sid)
            if server_uni:
                self.ack_stream_ids.add(sid)
            while len(buf) >= 4:
                n = struct.unpack_from("<I", buf)[0]
                if n > HARD_MAX_FRAME:
                    self.decode_errors.append(f"stream {sid}: frame length {n} over 1 MiB")
                    self.close(ERROR_CODE["ProtocolViolation"], "frame too large")
                    return
                if len(buf) < 4 + n:
                    break
                payload = bytes(buf[4:4 + n])
                del buf[:4 + n]
                try:
                    msg = decode_server_msg(payload)
                except DecodeError as e:
                    # Spec 11: close with ProtocolViolation and reconnect with backoff.
                    self.decode_errors.append(f"stream {sid}: {e}: {payload.hex()}")
                    self.close(ERROR_CODE["ProtocolViolation"], "undecodable frame")
                    return
                if server_uni and isinstance(msg, Push):
                    self.pushes.put_nowait(msg)
                else:
                    target.put_nowait(msg)
        elif isinstance(event, events.ConnectionTerminated):
            self._note_close()
        self._note_close()

    def close(self, error_code: int = 0, reason_phrase: str = "") -> None:
        """Closes with an application error code (spec 1)."""
        self._quic.close(error_code=error_code, reason_phrase=reason_phrase)
        self.transmit()


class MilepostClient:
    """One Milepost connection. Use ``await MilepostClient.connect(...)``."""

    def __init__(self, proto: _Protocol, ctx) -> None:
        self._proto = proto
        self._ctx = ctx
        self.session_stream: Optional[int] = None
        self.welcome: Optional[Welcome] = None
        self.max_frame = DEFAULT_MAX_FRAME

    @classmethod
    async def connect(cls, host: str, port: int, ca_file: str, server_name: str = "localhost",
                      timeout: float = 10.0, idle_timeout: float = 30.0) -> "MilepostClient":
        """QUIC + TLS handshake: ALPN ``milepost/1``, the server certificate verified against
        ``ca_file`` for ``server_name``, the DATAGRAM extension enabled."""
        config = QuicConfiguration(
            is_client=True,
            alpn_protocols=[ALPN],
            server_name=server_name,
            verify_mode=ssl.CERT_REQUIRED,
            max_datagram_frame_size=65536,
            idle_timeout=idle_timeout,
        )
        config.load_verify_locations(cafile=ca_file)
        ctx = connect(host, port, configuration=config, create_protocol=_Protocol)
        proto = await asyncio.wait_for(ctx.__aenter__(), timeout)
        return cls(proto, ctx)

    # -- state ---------------------------------------------------------------------------------

    @property
    def close_info(self) -> Optional[tuple]:
        """(code, is_application_close, reason) once the connection closed, else None."""
        return self._proto.close_info

    @property
    def datagrams_negotiated(self) -> bool:
        """Whether the server allows DATAGRAM frames (its ``max_datagram_frame_size``)."""
        return getattr(self._proto._quic, "_remote_max_datagram_frame_size", None) is not None

    def _raise_closed(self):
        code, app, reason = self.close_info
        raise ConnectionClosed(code, app, reason)

    # -- streams -------------------------------------------------------------------------------

    def open_stream(self) -> int:
        """Opens a client bidirectional stream (the first one is the session stream)."""
        return self._proto._quic.get_next_available_stream_id(is_unidirectional=False)

    def send_frame(self, stream_id: int, payload: bytes, end_stream: bool = False) -> None:
        """Sends one frame; refuses payloads over the announced ``max_frame``."""
        if len(payload) > self.max_frame:
            raise ValueError(f"payload {len(payload)} bytes over max_frame {self.max_frame}")
        self._proto._quic.send_stream_data(stream_id, frame(payload), end_stream)
        self._proto.transmit()

    async def recv(self, stream_id: int, timeout: float = 10.0):
        """The next ServerMsg on a stream; raises ConnectionClosed if the connection closed
        first (a frame that arrived before the close is still returned)."""
        q = self._proto.queue(stream_id)
        if q.empty() and self.close_info is not None:
            self._raise_closed()
        msg = await asyncio.wait_for(q.get(), timeout)
        if msg is None:
            if not q.empty():
                return await self.recv(stream_id, timeout)
            self._raise_closed()
        return msg

    # -- session -------------------------------------------------------------------------------

    async def hello(self, token: str, subject: str, device: Optional[DeviceInfo] = None,
                    version: int = PROTOCOL_VERSION, timeout: float = 10.0):
        """Opens the session stream, sends Hello, returns the Welcome or the ErrorFrame.

        After an ErrorFrame the server closes the connection; ``wait_closed`` gives the code.
        Raises ConnectionClosed if the connection closed without a readable answer."""
        self.session_stream = self.open_stream()
        self.send_frame(self.session_stream, encode_hello(token, subject, device or DeviceInfo(),
                                                          version))
        msg = await self.recv(self.session_stream, timeout)
        if isinstance(msg, Welcome):
            self.welcome = msg
            self.max_frame = msg.limits.max_frame
        return msg

    async def send_batch(self, first_seq: int, fixes: list, stream_id: Optional[int] = None,
                         timeout: float = 10.0):
        """Sends a FixBatch (on the session stream by default), returns its Ack or ErrorFrame."""
        sid = self.session_stream if stream_id is None else stream_id
        self.send_frame(sid, encode_fix_batch(first_seq, fixes))
        return await self.recv(sid, timeout)

    async def query(self, payload: bytes, stream_id: Optional[int] = None,
                    timeout: float = 10.0):
        """Sends an encoded Query (``encode_query_*``), returns the QueryResult or ErrorFrame."""
        sid = self.session_stream if stream_id is None else stream_id
        self.send_frame(sid, payload)
        return await self.recv(sid, timeout)

    def send_live(self, seq: int, fix: Fix) -> bool:
        """Sends a LiveFix datagram. Returns False (nothing sent) if the server did not
        negotiate datagrams: then send a one-fix FixBatch instead (spec 6.3)."""
        if not self.datagrams_negotiated:
            return False
        self._proto._quic.send_datagram_frame(encode_live_fix(seq, fix))
        self._proto.transmit()
        return True

    async def next_live_ack(self, timeout: float = 5.0) -> Ack:
        """The next Ack from the server-opened push stream (spec 6.3)."""
        msg = await asyncio.wait_for(self._proto.live_acks.get(), timeout)
        if msg is None:
            self._raise_closed()
        if not isinstance(msg, Ack):
            raise DecodeError(f"unexpected message on the push stream: {msg}")
        return msg

    async def next_push(self, timeout: float = 5.0) -> Push:
        """The next driver Push from the push stream (spec 6.8; best effort)."""
        msg = await asyncio.wait_for(self._proto.pushes.get(), timeout)
        if msg is None:
            self._raise_closed()
        return msg

    async def command(self, payload: bytes, stream_id: Optional[int] = None,
                      timeout: float = 10.0):
        """Sends an encoded Command (``encode_assign_route`` ...), returns its answer: Done,
        ParcelStatusAnswer or ErrorFrame (spec 6.6)."""
        sid = self.session_stream if stream_id is None else stream_id
        self.send_frame(sid, payload)
        return await self.recv(sid, timeout)

    async def upload(self, data: bytes, uid: int = 1, sha256: Optional[str] = None,
                     timeout: float = 30.0):
        """Uploads a proof file on a new stream (spec 6.11): the header frame, the raw bytes,
        the end of the stream. Returns ``(sha256, answer)``; the answer is Done or ErrorFrame.
        ``sha256`` defaults to the bytes' digest (pass another to see a refusal)."""
        name = sha256 if sha256 is not None else hashlib.sha256(data).hexdigest()
        sid = self.open_stream()
        self.send_frame(sid, encode_upload(uid, name, len(data)))
        self._proto._quic.send_stream_data(sid, data, True)
        self._proto.transmit()
        return name, await self.recv(sid, timeout)

    def subscribe(self, payload: bytes) -> int:
        """Opens a new stream, sends an encoded Subscribe on it and returns the stream id; read
        the feed with ``recv(stream_id)`` (spec 6.7). The stream's sending side is kept open:
        finishing it ends the subscription."""
        sid = self.open_stream()
        self.send_frame(sid, payload)
        return sid

    async def wait_closed(self, timeout: float = 5.0) -> Optional[tuple]:
        """Waits for the peer to close; returns ``close_info`` (None on timeout)."""
        try:
            await asyncio.wait_for(self._proto.closed.wait(), timeout)
        except asyncio.TimeoutError:
            return None
        return self.close_info

    async def close(self, code: int = 0, reason: str = "") -> None:
        """Closes with ``code`` (NoError by default, spec 6.6) and releases the socket."""
        if self.close_info is None:
            self._proto.close(code, reason)
        try:
            await asyncio.wait_for(self._ctx.__aexit__(None, None, None), 5.0)
        except (asyncio.TimeoutError, Exception):  # closing must never fail the caller
            pass


def check_spec_vectors(protocol_md: str) -> list:
    """Checks this codec against every hex vector of PROTOCOL.md (sections 9 and 10): client
    messages and values are encoded and compared, server messages decoded and compared. A
    vector this function does not know is reported as a failure.

    Returns a list of (name, ok, detail)."""
    text = open(protocol_md, encoding="utf-8").read()
    blocks = {m.group(1): bytes.fromhex(m.group(2).replace("\n", " "))
              for m in re.finditer(r"```hex name=(\S+) type=\S+\n(.*?)```", text, re.S)}
    fix_a = Fix(1717000000000, 533498000, -62603000, 8.0)
    fix_b = Fix(1717000001000, 533498450, -62602700, 4.5, 12.5, 270.0, 57.25, 87, 5, True)

    def enc_fix(f):
        w = Writer()
        f.write(w)
        return w.bytes()

    hello = encode_hello("mp1.eyJyIjoiZHJpdmVyIn0.c2lnbmF0dXJl", "drv-42",
                         DeviceInfo("a1b2c3", "milepost-driver/3.2.1", "Android 14"))
    window = TimeWindow(1717003600000, 1717007200000)
    route = Route("R-17", "DUB1", "drv-42", 1717000000000,
                  [Stop("S1", 53.35, -6.26, [ParcelRef("T1")], window=window, service_s=90)],
                  start=Point(53.3498, -6.2603))
    w = Writer()
    write_route(w, route)
    route_bytes = w.bytes()
    def enc_outcome(o):
        w = Writer()
        write_outcome(w, o)
        return w.bytes()

    eta = ParcelUpdate("T1", 1717000000000, "EtaChanged",
                       {"eta_ms": 1717004000000, "earliest_ms": 1717003700000,
                        "latest_ms": 1717004300000})
    instructions = DriverUpdate("drv-42", "R-17", "Instructions",
                                {"stop": "S1", "tracking": "T1", "text": "leave at the door"})
    encoded = {
        "fix-minimal": enc_fix(fix_a),
        "fix-full": enc_fix(fix_b),
        "fixbatch": encode_fix_batch(1000, [fix_a, fix_b]),
        "frame-fixbatch": frame(encode_fix_batch(1000, [fix_a, fix_b])),
        "hello": hello,
        "query-within": encode_query_within(1, 533000000, -63000000, 534000000, -62000000),
        "query-nearby": encode_query_nearby(2, 533498000, -62603000, 1500.0),
        "query-nearest": encode_query_nearest(300, 533498000, -62603000, 5),
        "livefix": encode_live_fix(1002, fix_a),
        "command-assign-route": encode_assign_route(7, route),
        "command-resequence": encode_resequence(8, "R-17", ["S2", "S1"]),
        "command-report-outcome": encode_report_outcome(9, "S1", "T1",
                                                        Delivered(Proof(otp="4711"))),
        "command-set-instructions": encode_set_instructions(10, "T1", "leave at the door"),
        "command-parcel-status": encode_parcel_status(11, "T1"),
        "subscribe-parcel": encode_subscribe_parcel("T1"),
        "subscribe-depot": encode_subscribe_depot(42),
        "subscribe-area": encode_subscribe_area(533000000, -63000000, 534000000, -62000000),
        "route": route_bytes,
        "outcome-failed": enc_outcome(Failed("RecipientAbsent", "no answer")),
        "outcome-returned": enc_outcome(Returned("refused")),
        "outcome-delivered-to": enc_outcome(DeliveredTo(Proof(otp="4711"), "Ana")),
        "upload": encode_upload(12, hashlib.sha256(b"photo").hexdigest(), 5),
        # Version 2 (spec 12).
        "v2-hello": encode_hello("mp1.eyJyIjoiZHJpdmVyIn0.c2lnbmF0dXJl", "drv-42",
                                 DeviceInfo("a1b2c3", "milepost-driver/3.2.1", "Android 14"),
                                 version=2),
        "v2-cmd-send-message": encode_send_message(20, "T1", "gate 42"),
        "v2-cmd-change-delivery": encode_change_delivery(
            21, "T1", {"kind": "SafePlace", "place": "porch"}),
        "v2-cmd-get-route": encode_get_route(22, "R-17"),
    }
    decoded = {
        "welcome": Welcome(1717000005000, Limits(65536, 1000, 10), 999),
        "ack": Ack(1000, 2, 0, [], 1001),
        "ack-rejection": Ack(1000, 2, 1, [Rejection(1001, 7)], 1001),
        "error": ErrorFrame(9, "max 10 fixes/s"),
        "queryresult": QueryResult(2, [DriverPosition("drv-42", 1001, fix_a, 42.5)], False),
        "queryresult-empty": QueryResult(300, [], True),
        "done": Done(7),
        "parcelstatus": ParcelStatusAnswer(11, ParcelStatus(
            "T1", "R-17", "S1", "OutForDelivery", 2, 1717004000000, 1717003700000,
            1717004300000, window, eta)),
        "feed-snapshot": FeedSnapshot(3, None, [DriverPosition("drv-42", 1001, fix_a, 0.0)]),
        "feed-event": FeedEvent(4, eta),
        "feed-position": FeedPosition(DriverPosition("drv-42", 1002, fix_a, 0.0)),
        "feed-resync": FeedResync(),
        "push": Push(instructions),
        "push-route-assigned": Push(DriverUpdate("drv-42", "R-17", "RouteAssigned")),
        "v2-push-message": Push(DriverUpdate("drv-42", "R-17", "Message", {
            "stop": "S1", "tracking": "T1", "text": "gate 42", "at_ms": 1700000000000})),
        "v2-push-delivery-changed": Push(DriverUpdate("drv-42", "R-17", "DeliveryChanged", {
            "stop": "S1", "tracking": "T1",
            "change": {"kind": "Reschedule",
                       "window": TimeWindow(1700000000000, 1700014400000)}})),
    }
    out = []
    for name, got in encoded.items():
        want = blocks.get(name)
        out.append((name, got == want, "" if got == want else f"got {got.hex()}"))
    for name, want in decoded.items():
        try:
            got = decode_server_msg(blocks[name])
            out.append((name, got == want, "" if got == want else f"got {got}"))
        except Exception as e:  # report, do not stop
            out.append((name, False, repr(e)))
    # Decoders of the values that are not whole messages (spec 9).
    delivered_to = ParcelUpdate("T1", 1717000000000, "DeliveredTo",
                                {"proof": {"photo_sha256": None, "signature_sha256": None,
                                           "otp_verified": True},
                                 "at_ms": 1717000000000, "received_by": "Ana"})
    v2_message = ParcelUpdate("T1", 1700000000000, "Message",
                              {"from": "Driver", "text": "5 min", "at_ms": 1700000000000})
    v2_changed = ParcelUpdate("T1", 1700000000000, "DeliveryChanged",
                              {"change": {"kind": "Neighbour", "name": "Ana",
                                          "address": "no. 14"}})
    for name, want in (("update-eta", eta), ("update-delivered-to", delivered_to),
                       ("v2-update-message", v2_message),
                       ("v2-update-delivery-changed", v2_changed)):
        try:
            r = Reader(blocks[name])
            got = read_update(r)
            r.finish()
            out.append((name, got == want, "" if got == want else f"got {got}"))
        except Exception as e:  # report, do not stop
            out.append((name, False, repr(e)))
    for name, want in (("frame-ack", decoded["ack-rejection"]),
                       ("frame-push", decoded["push-route-assigned"])):
        fr = blocks.get(name, b"")
        try:
            ok = len(fr) >= 4 and struct.unpack_from("<I", fr)[0] == len(fr) - 4 and \
                decode_server_msg(fr[4:]) == want
            out.append((name, ok, ""))
        except Exception as e:  # report, do not stop
            out.append((name, False, repr(e)))
    # Every vector of the document must be checked here.
    checked = {name for name, _, _ in out}
    for name in sorted(set(blocks) - checked):
        out.append((name, False, "vector in PROTOCOL.md not checked by this client"))
    return out


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------


def now_ms() -> int:
    """Current UTC time in ms."""
    return int(time.time() * 1000)


def synthetic_fix(t_ms: int, i: int, lat: float = 38.9, lon: float = -77.03) -> Fix:
    """A plausible fix: `i` steps of ~11 m north of (lat, lon)."""
    return Fix.from_degrees(t_ms, lat + i * 1e-4, lon, 5.0)


def split_addr(addr: str) -> tuple[str, int]:
    """``host:port`` -> (host, port)."""
    host, _, port = addr.rpartition(":")
    return host.strip("[]"), int(port)


async def _open(addr: str, ca: str, server_name: str) -> MilepostClient:
    host, port = split_addr(addr)
    return await MilepostClient.connect(host, port, ca, server_name)


async def handshake_outcome(addr: str, ca: str, token: str, subject: str,
                            server_name: str = "localhost") -> dict:
    """Connects and sends Hello; reports the answer and, if refused, the close code."""
    c = await _open(addr, ca, server_name)
    out: dict = {}
    try:
        msg = await c.hello(token, subject)
        out["answer"] = to_json(msg)
    except ConnectionClosed as e:
        out["answer"] = None
        out["closed_before_answer"] = str(e)
    if c.welcome is None:
        info = await c.wait_closed(5.0)
        if info is not None:
            out["close_code"], out["close_application"], out["close_reason"] = info
            out["close_code_name"] = error_name(info[0]) if info[1] else None
    await c.close()
    return out


async def run_scenario(p: dict) -> dict:
    """The conformance scenario of tests/python_client.rs (see README)."""
    addr, ca, subject, token = p["addr"], p["ca"], p["subject"], p["token"]
    res: dict = {}
    c = await _open(addr, ca, p.get("server_name", "localhost"))
    w = await c.hello(token, subject)
    res["welcome"] = to_json(w)
    if not isinstance(w, Welcome):
        await c.close()
        return res
    res["datagrams_negotiated"] = c.datagrams_negotiated
    t = now_ms()
    batch1 = [synthetic_fix(t - 6000, 0), synthetic_fix(t - 5000, 1), synthetic_fix(t - 4000, 2)]
    res["ack_valid"] = to_json(await c.send_batch(1, batch1))
    null_island = Fix(t - 2500, 0, 0, 5.0)
    res["ack_invalid"] = to_json(await c.send_batch(4, [synthetic_fix(t - 3000, 3), null_island]))
    res["ack_resend"] = to_json(await c.send_batch(1, batch1))
    # A second request stream, no Hello on it (spec 6.2).
    extra = c.open_stream()
    res["ack_second_stream"] = to_json(await c.send_batch(6, [synthetic_fix(t - 2000, 4)],
                                                          stream_id=extra))
    res["live_sent"] = c.send_live(7, synthetic_fix(t - 1000, 5))
    if res["live_sent"]:
        try:
            res["ack_live"] = to_json(await c.next_live_ack(5.0))
            res["ack_stream_ids"] = sorted(c._proto.ack_stream_ids)
        except asyncio.TimeoutError:
            res["ack_live"] = None  # spec 6.3: resend it in a FixBatch
    # A proof photo on an upload stream (spec 6.11), then one whose bytes do not match.
    photo = b"\xff\xd8\xff a doorstep photo from the python client " * 50
    sha, answer = await c.upload(photo, uid=21)
    res["upload"] = {"sha256": sha, "answer": to_json(answer)}
    _, answer = await c.upload(b"other bytes", uid=22, sha256=sha)
    res["upload_mismatch"] = to_json(answer)
    res["decode_errors"] = list(c._proto.decode_errors)
    await c.close(0)

    if "forged_token" in p:
        res["forged"] = await handshake_outcome(addr, ca, p["forged_token"], subject)
    if "other_subject" in p:
        res["out_of_scope"] = await handshake_outcome(addr, ca, token, p["other_subject"])
    if "dispatcher_token" in p:
        d = await _open(addr, ca, "localhost")
        dw = await d.hello(p["dispatcher_token"], p["depot"])
        res["dispatcher_welcome"] = to_json(dw)
        lat_e7, lon_e7 = round(38.9 * 1e7), round(-77.03 * 1e7)
        qr = await d.query(encode_query_nearest(7, lat_e7, lon_e7, 5))
        res["query_nearest"] = to_json(qr)
        await d.close(0)
    return res


def _token_from_env(name: str) -> str:
    tok = os.environ.get(name)
    if not tok:
        sys.exit(f"set the token in ${name} (tokens are never read from the command line)")
    return tok


async def cli_send(a) -> int:
    """`send` subcommand."""
    c = await _open(a.addr, a.ca, a.server_name)
    w = await c.hello(_token_from_env(a.token_env), a.subject)
    print(json.dumps(to_json(w)), flush=True)
    if not isinstance(w, Welcome):
        info = await c.wait_closed()
        print(json.dumps({"close": info}), flush=True)
        await c.close()
        return 1
    seq = a.first_seq if a.first_seq else w.watermark + 1
    t0 = now_ms() - a.count * 1000
    fixes = [synthetic_fix(t0 + i * 1000, i, a.lat, a.lon) for i in range(a.count)]
    batch = max(1, min(a.batch, w.limits.max_batch))
    rc = 0
    try:
        for i in range(0, len(fixes), batch):
            msg = await c.send_batch(seq + i, fixes[i:i + batch])
            print(json.dumps(to_json(msg)), flush=True)
            rc |= isinstance(msg, ErrorFrame)
        if a.live:
            live_seq = seq + len(fixes)
            if c.send_live(live_seq, synthetic_fix(now_ms(), len(fixes), a.lat, a.lon)):
                print(json.dumps({"live_ack": to_json(await c.next_live_ack(5.0))}), flush=True)
            else:
                print(json.dumps({"live": "no datagram support negotiated"}), flush=True)
    except ConnectionClosed as e:
        print(json.dumps({"closed": [e.code, e.application, e.reason],
                          "code_name": error_name(e.code)}), flush=True)
        rc = 1
    await c.close(0)
    return rc


def main(argv=None) -> int:
    """CLI entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("hello", "send"):
        s = sub.add_parser(name)
        s.add_argument("--addr", required=True, help="host:port of the gateway")
        s.add_argument("--ca", required=True, help="CA certificate (PEM), e.g. <data>/ca.pem")
        s.add_argument("--server-name", default="localhost")
        s.add_argument("--subject", required=True, help="driver id (or depot for dispatcher)")
        s.add_argument("--token-env", default="MILEPOST_TOKEN",
                       help="environment variable holding the token")
        if name == "send":
            s.add_argument("--count", type=int, default=10, help="fixes to send")
            s.add_argument("--batch", type=int, default=100, help="fixes per FixBatch")
            s.add_argument("--first-seq", type=int, default=0,
                           help="seq of the first fix (default: Welcome.watermark + 1)")
            s.add_argument("--live", action="store_true", help="also send one live datagram")
            s.add_argument("--lat", type=float, default=38.9)
            s.add_argument("--lon", type=float, default=-77.03)
    sub.add_parser("scenario", help="conformance scenario; JSON parameters on stdin")
    v = sub.add_parser("vectors", help="check the codec against PROTOCOL.md's hex vectors")
    v.add_argument("protocol_md", nargs="?",
                   default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                        "..", "..", "proto", "PROTOCOL.md"))
    a = ap.parse_args(argv)

    if a.cmd == "vectors":
        results = check_spec_vectors(a.protocol_md)
        for name, ok, detail in results:
            print(f"{'ok  ' if ok else 'FAIL'} {name} {detail}")
        failed = sum(1 for _, ok, _ in results if not ok)
        print(f"{len(results) - failed} passed, {failed} failed")
        return 1 if failed else 0

    if a.cmd == "scenario":
        params = json.load(sys.stdin)
        print(json.dumps(asyncio.run(run_scenario(params)), sort_keys=True))
        return 0
    if a.cmd == "hello":
        out = asyncio.run(handshake_outcome(a.addr, a.ca, _token_from_env(a.token_env),
                                            a.subject, a.server_name))
        print(json.dumps(out, sort_keys=True))
        return 0 if (out.get("answer") or {}).get("kind") == "Welcome" else 1
    return asyncio.run(cli_send(a))


if __name__ == "__main__":
    sys.exit(main())
